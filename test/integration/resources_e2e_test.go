package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/internal/testenv/libvirtd"
)

// VM resources end to end: vmflow following a real libvirtd (test driver,
// testdata/libvirt/stats-node.xml) polls every window (stats_interval
// defaults to aggregate.window) and serves each VM's CPU, memory, disks
// and vNICs with source and age, the per-host sums, and the resource
// series.
func TestLibvirtResourcesThroughAPI(t *testing.T) {
	d := libvirtd.Start(t)
	node, err := filepath.Abs("../../testdata/libvirt/stats-node.xml")
	require.NoError(t, err)
	uri := d.URI("test://" + node)
	a := startVMFlowLibvirt(t, []libvirtConn{{URI: uri, Host: "hv-res", Exporters: []string{"192.0.2.20"}}}, time.Hour, time.Second)

	type res struct {
		VM         string  `json:"vm"`
		Source     string  `json:"source"`
		Host       string  `json:"host"`
		AgeSeconds float64 `json:"age_seconds"`
		CPU        struct {
			VCPUs   int      `json:"vcpus"`
			Percent *float64 `json:"percent"`
		} `json:"cpu"`
		Memory struct {
			UsedPercent *float64 `json:"used_percent"`
			MaxBytes    uint64   `json:"max_bytes"`
		} `json:"memory"`
		Disks []struct {
			Name     string   `json:"name"`
			ReadIOPS *float64 `json:"read_iops"`
		} `json:"disks"`
		NICs []struct {
			Name       string   `json:"name"`
			RxBitsPerS *float64 `json:"rx_bits_per_s"`
		} `json:"nics"`
	}
	var got res
	get := func(path string, out any) int {
		resp, err := http.Get("http://" + a.APIAddr() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 {
			require.NoError(t, json.Unmarshal(body, out), "%s", body)
		}
		return resp.StatusCode
	}
	waitAPI(t, 15*time.Second, "db-1 resources with rates", func() (bool, string) {
		code := get("/api/v1/vms/db-1/resources", &got)
		return code == 200 && got.CPU.Percent != nil && len(got.NICs) == 2, fmt.Sprintf("%d %+v", code, got)
	})
	assert.Equal(t, "libvirt", got.Source)
	assert.Equal(t, "hv-res", got.Host)
	assert.Less(t, got.AgeSeconds, 5.0)
	assert.Equal(t, 4, got.CPU.VCPUs)
	assert.InDelta(t, 25, *got.CPU.Percent, 3, "the test driver's CPU time is the wall clock: one of 4 vCPUs")
	require.NotNil(t, got.Memory.UsedPercent)
	assert.InDelta(t, 50, *got.Memory.UsedPercent, 1e-6, "dommemstat: available 3145728, unused 1572864")
	assert.EqualValues(t, 4194304*1024, got.Memory.MaxBytes)
	require.Len(t, got.Disks, 2)
	require.NotNil(t, got.Disks[0].ReadIOPS)
	assert.InEpsilon(t, 100000, *got.Disks[0].ReadIOPS, 0.1)
	require.NotNil(t, got.NICs[0].RxBitsPerS)
	assert.InEpsilon(t, 800000, *got.NICs[0].RxBitsPerS, 0.1)

	var hosts struct {
		Hosts []struct {
			Host  string `json:"host"`
			VMs   int    `json:"vms"`
			VCPUs int    `json:"vcpus"`
		} `json:"hosts"`
	}
	require.Equal(t, 200, get("/api/v1/hosts", &hosts))
	require.Len(t, hosts.Hosts, 1)
	assert.Equal(t, "hv-res", hosts.Hosts[0].Host)
	assert.Equal(t, 3, hosts.Hosts[0].VMs)
	assert.Equal(t, 4+2+1, hosts.Hosts[0].VCPUs)

	var ser struct {
		Points []json.RawMessage `json:"points"`
	}
	require.Equal(t, 200, get("/api/v1/vms/db-1/resources/series?since=5m", &ser))
	assert.GreaterOrEqual(t, len(ser.Points), 2)
	assert.Equal(t, 404, get("/api/v1/vms/no-such-vm/resources", &got))
}
