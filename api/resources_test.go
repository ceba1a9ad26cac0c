package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/enrich"
)

// testResources: web-1 polled by libvirt twice 10 s apart (now is T+60s),
// its host hv1 reported by hsflowd.
func testResources() *enrich.ResourceTracker {
	tr := enrich.NewResourceTracker(enrich.ResourceTrackerConfig{StaleAfter: time.Hour, Now: func() time.Time { return T.Add(60 * time.Second) }})
	smp := func(at time.Duration, cpuNs, rx, rd uint64) enrich.VMResourceSample {
		return enrich.VMResourceSample{
			UUID: "11111111-1111-1111-1111-111111111111", Name: "web-1", Host: "hv1",
			Source: enrich.ResourceSourceLibvirt, Origin: "libvirt:qemu+tls://hv1/system", Time: T.Add(at), State: "running", Incarnation: 3,
			CPU: enrich.CPUSample{Have: enrich.HasCPUTime | enrich.HasVCPUs, TimeNs: cpuNs, VCPUs: 2},
			Mem: enrich.MemSample{Have: enrich.HasMemMax | enrich.HasMemBalloon | enrich.HasMemAvailable | enrich.HasMemUnused | enrich.HasMemSwapIn,
				MaxBytes: 4 << 30, BalloonBytes: 4 << 30, AvailableBytes: 4 << 30, UnusedBytes: 1 << 30},
			Disks: []enrich.DiskSample{{Name: "vda", Have: enrich.HasDiskIO | enrich.HasDiskErrors, ReadReqs: rd, ReadBytes: rd * 4096}},
			NICs:  []enrich.NICSample{{Name: "vnet0", MAC: [6]byte{0x52, 0x54, 0, 0, 0, 1}, Have: enrich.HasNICBytes | enrich.HasNICPackets, RxBytes: rx}},
		}
	}
	tr.PutVM(smp(40*time.Second, 0, 0, 0))
	tr.PutVM(smp(50*time.Second, 15e9, 1_250_000, 1000))
	tr.PutHost(enrich.HostResourceSample{Host: "hv1", Source: enrich.ResourceSourceHsflowd, Time: T.Add(55 * time.Second),
		Have: enrich.HasHostMem | enrich.HasHostCPU, CPUs: 32, MemTotalBytes: 256 << 30, MemFreeBytes: 100 << 30})
	return tr
}

func TestVMResourcesRoute(t *testing.T) {
	e := newEnv(t, nil)
	var out struct {
		VM         string  `json:"vm"`
		Source     string  `json:"source"`
		AgeSeconds float64 `json:"age_seconds"`
		CPU        struct {
			Percent       float64 `json:"percent"`
			PercentOfCore float64 `json:"percent_of_core"`
		} `json:"cpu"`
		Memory struct {
			UsedPercent float64 `json:"used_percent"`
		} `json:"memory"`
		NICs []struct {
			RxBitsPerS float64 `json:"rx_bits_per_s"`
		} `json:"nics"`
	}
	require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1/resources", &out))
	assert.Equal(t, "web-1", out.VM)
	assert.Equal(t, "libvirt", out.Source)
	assert.InDelta(t, 10, out.AgeSeconds, 1e-9)
	assert.InDelta(t, 150, out.CPU.PercentOfCore, 1e-9)
	assert.InDelta(t, 75, out.CPU.Percent, 1e-9)
	assert.InDelta(t, 75, out.Memory.UsedPercent, 1e-9)
	assert.InDelta(t, 1e6, out.NICs[0].RxBitsPerS, 1e-6)
	// by UUID too
	require.Equal(t, 200, e.get(t, "/api/v1/vms/11111111-1111-1111-1111-111111111111/resources", &out))
	assert.Equal(t, 404, e.get(t, "/api/v1/vms/db-1/resources", nil))

	var ser struct {
		Points []any `json:"points"`
	}
	require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1/resources/series?since=5m", &ser))
	assert.Len(t, ser.Points, 2)
	var vs struct {
		Resources []any `json:"resources"`
	}
	require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1/series", &vs))
	assert.Len(t, vs.Resources, 2, "the VM series carries the resource points")

	var hosts struct {
		Hosts []struct {
			Host         string  `json:"host"`
			VMs          int     `json:"vms"`
			CPUCoresUsed float64 `json:"cpu_cores_used"`
			Hypervisor   *struct {
				MemTotal uint64 `json:"memory_total_bytes"`
			} `json:"hypervisor"`
		} `json:"hosts"`
	}
	require.Equal(t, 200, e.get(t, "/api/v1/hosts", &hosts))
	require.Len(t, hosts.Hosts, 1)
	assert.Equal(t, "hv1", hosts.Hosts[0].Host)
	assert.Equal(t, 1, hosts.Hosts[0].VMs)
	assert.InDelta(t, 1.5, hosts.Hosts[0].CPUCoresUsed, 1e-9)
	require.NotNil(t, hosts.Hosts[0].Hypervisor)
	assert.EqualValues(t, 256<<30, hosts.Hosts[0].Hypervisor.MemTotal)
}
