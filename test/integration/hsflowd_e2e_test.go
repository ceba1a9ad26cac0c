package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/collector/blast"
	sh "github.com/vmflow/vmflow/internal/sflowhost"
)

// hsflowdInventory: hypervisor hv1 (no exporter listed: it is found by
// hsflowd's hostname) runs web-1 (found by the UUID in its host_descr) and
// db-1 (inventory UUID unknown to hsflowd: found by its adapter's MAC).
const hsflowdInventory = `hosts:
  - name: hv1
vms:
  - name: web-1
    uuid: 6b3c1d2e-4f50-4162-9374-8596a7b8c9da
    host: hv1
    interfaces: [{mac: "52:54:00:12:34:56"}]
  - name: db-1
    uuid: 0000aaaa-0000-4000-8000-000000000001
    host: hv1
    interfaces: [{mac: "52:54:00:12:34:57"}]
`

// hsflowdPoll is what hv1's hsflowd sends at poll n: per poll its 16 CPUs
// are busy 40 s (user 30 s, system 10 s) and idle 120 s (incl. 10 s
// iowait): 25%; web-1 uses 2 s of CPU (polls are ~2 s apart: one core), reads 100 requests and 1 MiB,
// receives 1.25 MB in 500 packets, has 1 more disk error.
func hsflowdPoll(n uint32) []byte {
	hv := sh.Hypervisor{
		Agent: netip.MustParseAddr("192.0.2.11"), Hostname: "hv1.example.net", UUID: [16]byte{0xa1},
		CPU: sh.HostCPU{CPUNum: 16, CPUSpeed: 2600, Uptime: 86400 + 10*n, LoadOne: 2.5,
			User: 1_000_000 + 30_000*n, System: 500_000 + 10_000*n, Idle: 9_000_000 + 110_000*n, WIO: 1000 + 10_000*n},
		Mem:     sh.HostMemory{Total: 64 << 30, Free: 10 << 30, Buffers: 1 << 30, Cached: 5 << 30},
		NodeMHz: 2600, NodeCPUs: 16, NodeMem: 64 << 30, NodeMemFree: 30 << 30,
		VMs: []sh.VM{
			{Name: "web-1", UUID: [16]byte{0x6b, 0x3c, 0x1d, 0x2e, 0x4f, 0x50, 0x41, 0x62, 0x93, 0x74, 0x85, 0x96, 0xa7, 0xb8, 0xc9, 0xda},
				MAC: [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, DSIndex: 65537, State: 1, CPUTimeMs: 100_000 + 2_000*n, VCPUs: 4,
				Memory: 4 << 30, MaxMemory: 8 << 30,
				Disk: sh.VirtDiskIO{Capacity: 40 << 30, Allocation: 10 << 30, RdReq: 1000 + 100*n, RdBytes: 1<<30 + uint64(n)<<20, Errs: 2 + n},
				Net:  sh.NetIO{BytesIn: 1e9 + 1_250_000*uint64(n), PktsIn: 1000 + 500*n, BytesOut: 5e8}},
			{Name: "db-1", UUID: [16]byte{0x11, 0x22}, MAC: [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x57}, DSIndex: 65538,
				State: 3, CPUTimeMs: 5000, VCPUs: 2, Memory: 2 << 30, MaxMemory: 2 << 30},
		},
	}
	return hv.Datagram(n, 1000*(1+n))
}

// TestHsflowdEndToEnd sends hsflowd-style datagrams over UDP to an
// in-process vmflow and reads the VMs' and the hypervisor's figures back
// from the API.
func TestHsflowdEndToEnd(t *testing.T) {
	if os.Getenv("VMFLOW_INTEGRATION") != "1" {
		t.Skip("set VMFLOW_INTEGRATION=1 (make test)")
	}
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	require.NoError(t, os.WriteFile(inv, []byte(hsflowdInventory), 0o644))
	cfg, _, err := app.Load("", []string{
		"VMFLOW_LOG_LEVEL=warn",
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=127.0.0.1:0",
		"VMFLOW_API_LISTEN=127.0.0.1:0",
		"VMFLOW_ENRICH_STATIC_FILE=" + inv,
	})
	require.NoError(t, err)
	a, err := app.New(cfg, cfg.Log.NewLogger(testLogWriter{t}))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(a.Stop)

	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", a.ListenPort(collector.ProtoSFlow)))
	require.NoError(t, err)
	defer conn.Close()
	base := "http://" + a.APIAddr() + "/api/v1"
	get := func(path string, out any) int {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
		}
		return resp.StatusCode
	}
	type vmRes struct {
		VM              string  `json:"vm"`
		Source          string  `json:"source"`
		Origin          string  `json:"origin"`
		Host            string  `json:"host"`
		State           string  `json:"state"`
		AgeSeconds      float64 `json:"age_seconds"`
		IntervalSeconds float64 `json:"interval_seconds"`
		CPU             struct {
			VCPUs         int      `json:"vcpus"`
			Percent       *float64 `json:"percent"`
			PercentOfCore *float64 `json:"percent_of_core"`
		} `json:"cpu"`
		Memory struct {
			MaxBytes     *uint64 `json:"max_bytes"`
			BalloonBytes *uint64 `json:"balloon_bytes"`
		} `json:"memory"`
		Disks []struct {
			Name          string   `json:"name"`
			ReadIOPS      *float64 `json:"read_iops"`
			ReadBytesPerS *float64 `json:"read_bytes_per_s"`
			Errors        *uint64  `json:"errors"`
			CapacityBytes *uint64  `json:"capacity_bytes"`
		} `json:"disks"`
		NICs []struct {
			Name          string   `json:"name"`
			RxBitsPerS    *float64 `json:"rx_bits_per_s"`
			RxPacketsPerS *float64 `json:"rx_packets_per_s"`
		} `json:"nics"`
	}

	// Two polls 2 s apart; the rates are over the interval vmflow measured.
	var web vmRes
	for n := uint32(0); n < 2; n++ {
		if n > 0 {
			time.Sleep(2 * time.Second)
		}
		_, err := conn.Write(hsflowdPoll(n))
		require.NoError(t, err)
		waitAPI(t, 5*time.Second, fmt.Sprintf("web-1 resources after poll %d", n), func() (bool, string) {
			web = vmRes{}
			code := get("/vms/web-1/resources", &web)
			return code == http.StatusOK && (n == 0 || web.IntervalSeconds > 0), fmt.Sprintf("status %d, %+v", code, web)
		})
	}
	dt := web.IntervalSeconds
	t.Logf("web-1: interval %.3f s, age %.3f s", dt, web.AgeSeconds)
	assert.InDelta(t, 2, dt, 1, "the interval between the two datagrams as received")
	assert.Equal(t, "hsflowd", web.Source)
	assert.Equal(t, "hsflowd:192.0.2.11", web.Origin)
	assert.Equal(t, "hv1", web.Host)
	assert.Equal(t, "running", web.State)
	assert.Equal(t, 4, web.CPU.VCPUs)
	require.NotNil(t, web.CPU.PercentOfCore)
	assert.InDelta(t, 2/dt*100, *web.CPU.PercentOfCore, 1e-6) // 2 s of CPU in dt
	assert.InDelta(t, 2/dt*100/4, *web.CPU.Percent, 1e-6)
	assert.EqualValues(t, 8<<30, *web.Memory.MaxBytes)
	assert.EqualValues(t, 4<<30, *web.Memory.BalloonBytes)
	require.Len(t, web.Disks, 1)
	assert.Equal(t, "*", web.Disks[0].Name)
	assert.InDelta(t, 100/dt, *web.Disks[0].ReadIOPS, 1e-6)
	assert.InDelta(t, float64(1<<20)/dt, *web.Disks[0].ReadBytesPerS, 1e-3)
	assert.EqualValues(t, 1, *web.Disks[0].Errors)
	assert.EqualValues(t, 40<<30, *web.Disks[0].CapacityBytes)
	require.Len(t, web.NICs, 1)
	assert.InDelta(t, 1_250_000*8/dt, *web.NICs[0].RxBitsPerS, 1e-3)
	assert.InDelta(t, 500/dt, *web.NICs[0].RxPacketsPerS, 1e-6)

	var db vmRes
	require.Equal(t, http.StatusOK, get("/vms/db-1/resources", &db), "db-1 attributed by its MAC")
	assert.Equal(t, "hsflowd", db.Source)
	assert.Equal(t, "paused", db.State)

	var hosts struct {
		Hosts []struct {
			Host       string `json:"host"`
			VMs        int    `json:"vms"`
			VCPUs      int    `json:"vcpus"`
			Hypervisor *struct {
				Source        string   `json:"source"`
				CPUs          int      `json:"cpus"`
				CPUPercent    *float64 `json:"cpu_percent"`
				MemTotalBytes *uint64  `json:"memory_total_bytes"`
				MemFreeBytes  *uint64  `json:"memory_free_bytes"`
				Domains       int      `json:"domains"`
			} `json:"hypervisor"`
		} `json:"hosts"`
	}
	require.Equal(t, http.StatusOK, get("/hosts", &hosts))
	require.Len(t, hosts.Hosts, 1)
	hv := hosts.Hosts[0]
	assert.Equal(t, "hv1", hv.Host, "hsflowd's hostname hv1.example.net is the inventory's hv1")
	assert.Equal(t, 2, hv.VMs)
	assert.Equal(t, 6, hv.VCPUs)
	require.NotNil(t, hv.Hypervisor)
	assert.Equal(t, "hsflowd", hv.Hypervisor.Source)
	assert.Equal(t, 16, hv.Hypervisor.CPUs)
	assert.Equal(t, 2, hv.Hypervisor.Domains)
	require.NotNil(t, hv.Hypervisor.CPUPercent)
	assert.InDelta(t, 25, *hv.Hypervisor.CPUPercent, 1e-9)
	assert.EqualValues(t, 64<<30, *hv.Hypervisor.MemTotalBytes)
	assert.EqualValues(t, 16<<30, *hv.Hypervisor.MemFreeBytes)

	// The decoder and the attribution counted what they did.
	m := (&hostileApp{App: a}).metrics(t)
	assert.Equal(t, 4.0, m[`vmflow_hsflowd_samples_total{kind="vm",result="attributed"}`])
	assert.Equal(t, 2.0, m[`vmflow_hsflowd_samples_total{kind="host",result="attributed"}`])
	assert.Equal(t, 2.0, m[`vmflow_decoder_host_records_total{kind="virt_node"}`])
	assert.Equal(t, 4.0, m[`vmflow_decoder_host_records_total{kind="virt_cpu"}`])
}

// hsflowdRealCapture was sent by a real hsflowd 2.1.25 (KVM module) on a
// host named "vm" polling libvirt's test driver (domain "test"); the
// .sflowtool.txt beside it is what InMon's sflowtool prints for it
// (decoder/testdata/README.md).
const hsflowdRealCapture = "../../decoder/testdata/hsflowd-kvm-testdriver"

// sflowtoolBlocks reads sflowtool's text into one key/value map per
// sample, in order.
func sflowtoolBlocks(t *testing.T, path string) []map[string]string {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []map[string]string
	var cur map[string]string
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch {
		case k == "startSample":
			cur = map[string]string{}
		case k == "endSample":
			out = append(out, cur)
			cur = nil
		case cur != nil:
			cur[k] = v
		}
	}
	return out
}

func atoiU(t *testing.T, s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, s)
	return v
}

// TestHsflowdRealCaptureEndToEnd replays the real hsflowd's datagrams over
// UDP to vmflow: the test domain's and the hypervisor's figures in the API
// are the ones sflowtool reads from the same datagrams.
func TestHsflowdRealCaptureEndToEnd(t *testing.T) {
	if os.Getenv("VMFLOW_INTEGRATION") != "1" {
		t.Skip("set VMFLOW_INTEGRATION=1 (make test)")
	}
	dgs, err := blast.LoadPcap(hsflowdRealCapture+".pcap", 16399)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(dgs), 5)
	var vmS, hostS []map[string]string
	for _, s := range sflowtoolBlocks(t, hsflowdRealCapture+".sflowtool.txt") {
		switch {
		case strings.HasPrefix(s["sourceId"], "3:"):
			vmS = append(vmS, s)
		case s["sourceId"] == "2:1":
			hostS = append(hostS, s)
		}
	}
	require.Len(t, vmS, len(dgs))
	require.Len(t, hostS, len(dgs))
	lastVM, prevH, lastH := vmS[len(vmS)-1], hostS[len(hostS)-2], hostS[len(hostS)-1]
	require.Equal(t, "6695eb01-f6a4-8304-79aa-97f2502e193f", lastVM["UUID"])
	require.Equal(t, "vm", lastH["hostname"])

	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	require.NoError(t, os.WriteFile(inv, []byte(`hosts:
  - name: vm
vms:
  - name: test
    uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f
    host: vm
    interfaces: [{mac: "aa:bb:cc:dd:ee:ff"}]
`), 0o644))
	cfg, _, err := app.Load("", []string{
		"VMFLOW_LOG_LEVEL=warn",
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=127.0.0.1:0",
		"VMFLOW_API_LISTEN=127.0.0.1:0",
		"VMFLOW_ENRICH_STATIC_FILE=" + inv,
	})
	require.NoError(t, err)
	a, err := app.New(cfg, cfg.Log.NewLogger(testLogWriter{t}))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(a.Stop)
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", a.ListenPort(collector.ProtoSFlow)))
	require.NoError(t, err)
	defer conn.Close()
	for _, d := range dgs {
		_, err := conn.Write(d)
		require.NoError(t, err)
		time.Sleep(100 * time.Millisecond) // in order through the collector's workers
	}
	base := "http://" + a.APIAddr() + "/api/v1"
	getJSON := func(path string, out any) int {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
		}
		return resp.StatusCode
	}
	var vm struct {
		Source string `json:"source"`
		Host   string `json:"host"`
		State  string `json:"state"`
		CPU    struct {
			VCPUs int `json:"vcpus"`
		} `json:"cpu"`
		Memory struct {
			MaxBytes     uint64 `json:"max_bytes"`
			BalloonBytes uint64 `json:"balloon_bytes"`
		} `json:"memory"`
		Disks []struct {
			ReadReqsTotal uint64 `json:"read_reqs_total"`
			CapacityBytes uint64 `json:"capacity_bytes"`
		} `json:"disks"`
	}
	waitAPI(t, 5*time.Second, "test's resources", func() (bool, string) {
		code := getJSON("/vms/test/resources", &vm)
		return code == http.StatusOK && len(vm.Disks) == 1 && vm.Disks[0].ReadReqsTotal == atoiU(t, lastVM["vdsk_rd_req"]),
			fmt.Sprintf("status %d %+v", code, vm)
	})
	assert.Equal(t, "hsflowd", vm.Source)
	assert.Equal(t, "vm", vm.Host)
	assert.Equal(t, "running", vm.State) // vcpu_state 1
	assert.EqualValues(t, atoiU(t, lastVM["vcpu_cpuCount"]), vm.CPU.VCPUs)
	assert.Equal(t, atoiU(t, lastVM["vmem_maxMemory"]), vm.Memory.MaxBytes)
	assert.Equal(t, atoiU(t, lastVM["vmem_memory"]), vm.Memory.BalloonBytes)
	assert.Equal(t, atoiU(t, lastVM["vdsk_capacity"]), vm.Disks[0].CapacityBytes)

	var hosts struct {
		Hosts []struct {
			Host       string `json:"host"`
			Hypervisor *struct {
				CPUs          int      `json:"cpus"`
				CPUPercent    *float64 `json:"cpu_percent"`
				MemTotalBytes uint64   `json:"memory_total_bytes"`
				MemFreeBytes  uint64   `json:"memory_free_bytes"`
				Domains       int      `json:"domains"`
			} `json:"hypervisor"`
		} `json:"hosts"`
	}
	require.Equal(t, http.StatusOK, getJSON("/hosts", &hosts))
	require.Len(t, hosts.Hosts, 1)
	hv := hosts.Hosts[0]
	assert.Equal(t, "vm", hv.Host)
	require.NotNil(t, hv.Hypervisor)
	assert.EqualValues(t, atoiU(t, lastH["cpu_num"]), hv.Hypervisor.CPUs)
	assert.EqualValues(t, atoiU(t, lastH["vnode_num_domains"]), hv.Hypervisor.Domains)
	assert.Equal(t, atoiU(t, lastH["mem_total"]), hv.Hypervisor.MemTotalBytes)
	assert.Equal(t, min(atoiU(t, lastH["mem_free"])+atoiU(t, lastH["mem_buffers"])+atoiU(t, lastH["mem_cached"]),
		atoiU(t, lastH["mem_total"])), hv.Hypervisor.MemFreeBytes)
	busy := func(s map[string]string) uint64 {
		return atoiU(t, s["cpu_user"]) + atoiU(t, s["cpu_nice"]) + atoiU(t, s["cpu_system"]) +
			atoiU(t, s["cpuintr"]) + atoiU(t, s["cpu_sintr"]) + atoiU(t, s["cpu_steal"])
	}
	idle := func(s map[string]string) uint64 { return atoiU(t, s["cpu_idle"]) + atoiU(t, s["cpu_wio"]) }
	db, di := float64(busy(lastH)-busy(prevH)), float64(idle(lastH)-idle(prevH))
	require.NotNil(t, hv.Hypervisor.CPUPercent)
	assert.InDelta(t, 100*db/(db+di), *hv.Hypervisor.CPUPercent, 1e-9)
	t.Logf("hypervisor %q: %d CPUs at %.1f%%, %d of %d bytes free; test: %d vCPUs, balloon %d",
		hv.Host, hv.Hypervisor.CPUs, *hv.Hypervisor.CPUPercent, hv.Hypervisor.MemFreeBytes, hv.Hypervisor.MemTotalBytes,
		vm.CPU.VCPUs, vm.Memory.BalloonBytes)
}
