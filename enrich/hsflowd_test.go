package enrich

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
	sh "github.com/vmflow/vmflow/internal/sflowhost"
)

var (
	hsAgentAddr = netip.MustParseAddr("10.0.0.11")
	hsUUIDWeb   = [16]byte{0x6b, 0x3c, 0x1d, 0x2e, 0x4f, 0x50, 0x41, 0x62, 0x93, 0x74, 0x85, 0x96, 0xa7, 0xb8, 0xc9, 0xda}
	hsUUIDDB    = [16]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00}
	hsMACWeb    = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	hsMACDB     = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x57}
)

// hsIndex: hv1 runs web-1 (known by UUID) and db-1 (its inventory UUID
// differs from what hsflowd reports: found by MAC).
func hsIndex() *Index {
	return build([]Snapshot{{Source: StaticSourceName,
		VMs: []VM{
			{Name: "web-1", UUID: "6B3C1D2E-4F50-4162-9374-8596A7B8C9DA", Host: "hv1", Interfaces: []Interface{{MAC: hsMACWeb}}},
			{Name: "db-1", UUID: "0000aaaa-0000-0000-0000-000000000001", Host: "hv1", Interfaces: []Interface{{MAC: hsMACDB}}},
		},
		Hosts: []Host{{Name: "hv1"}},
	}}, mergeInput{merge: MergeLibvirtFirst, reg: newRegistry()})
}

// hsHypervisor is hv1 at poll n (10 s apart): per poll the host's CPUs are
// busy 40 s of 160 s (25%), web-1 uses 20 s of CPU (200% of a core, 50% of
// its 4 vCPUs), reads 100 requests / 1 MiB, receives 1.25 MB (1 Mbit/s).
func hsHypervisor(n uint32) sh.Hypervisor {
	return sh.Hypervisor{
		Agent: hsAgentAddr, Hostname: "HV1.example.net", UUID: [16]byte{1},
		CPU: sh.HostCPU{CPUNum: 16, User: 1_000_000 + 30_000*n, System: 500_000 + 10_000*n, Idle: 9_000_000 + 110_000*n,
			WIO: 1000 + 10_000*n, Uptime: 86400},
		Mem:     sh.HostMemory{Total: 64 << 30, Free: 10 << 30, Buffers: 1 << 30, Cached: 5 << 30},
		NodeMHz: 2600, NodeCPUs: 16, NodeMem: 64 << 30, NodeMemFree: 30 << 30,
		VMs: []sh.VM{
			{Name: "web-1", UUID: hsUUIDWeb, MAC: hsMACWeb, DSIndex: 65537, State: 1, CPUTimeMs: 100_000 + 20_000*n, VCPUs: 4,
				Memory: 4 << 30, MaxMemory: 8 << 30,
				Disk: sh.VirtDiskIO{Capacity: 40 << 30, Allocation: 10 << 30, RdReq: 1000 + 100*n, RdBytes: 1<<30 + uint64(n)<<20, Errs: 2 + n},
				Net:  sh.NetIO{BytesIn: 1e9 + 1_250_000*uint64(n), PktsIn: 1000 + 500*n, BytesOut: 5e8}},
			{Name: "db-1", UUID: hsUUIDDB, MAC: hsMACDB, DSIndex: 65538, State: 3, CPUTimeMs: 5000, VCPUs: 2, Memory: 2 << 30, MaxMemory: ^uint64(0)}, // unlimited
			{Name: "ghost", UUID: [16]byte{9}, MAC: [6]byte{2, 0, 0, 0, 0, 9}, DSIndex: 65539, State: 1, VCPUs: 1},
		},
	}
}

func decodeHosts(t *testing.T, data []byte, at time.Time) []decoder.HostCounters {
	d, err := decoder.New(decoder.DefaultConfig(), nil)
	require.NoError(t, err)
	var b decoder.Batch
	require.NoError(t, d.Decode(decoder.SourceSFlow, netip.AddrPortFrom(hsAgentAddr, 40000), data, at.UnixNano(), &b))
	return b.Hosts
}

func TestHsflowdAttribution(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	tr := NewResourceTracker(ResourceTrackerConfig{Now: func() time.Time { return now }})
	idx := hsIndex()
	reg := prometheus.NewRegistry()
	h := NewHsflowd(tr, func() *Index { return idx }, reg)
	for n := uint32(0); n < 2; n++ {
		now = t0.Add(time.Duration(n) * 10 * time.Second)
		h.Put(decodeHosts(t, hsHypervisor(n).Datagram(n, 1000), now))
	}

	web, ok := tr.Find("6b3c1d2e-4f50-4162-9374-8596a7b8c9da", "web-1", "hv1")
	require.True(t, ok)
	assert.Equal(t, ResourceSourceHsflowd, web.Source)
	assert.Equal(t, "hsflowd:10.0.0.11", web.Origin)
	assert.Equal(t, "hv1", web.Host)
	assert.Equal(t, "running", web.State)
	assert.Equal(t, 4, web.CPU.VCPUs)
	require.NotNil(t, web.CPU.PercentOfCore)
	assert.InDelta(t, 200, *web.CPU.PercentOfCore, 1e-9)
	assert.InDelta(t, 50, *web.CPU.PercentOfVCPUs, 1e-9)
	assert.EqualValues(t, 4<<30, *web.Mem.BalloonBytes)
	assert.EqualValues(t, 8<<30, *web.Mem.MaxBytes)
	assert.Nil(t, web.Mem.UsedPercent, "virt_memory says nothing of what the guest uses")
	require.Len(t, web.Disks, 1)
	assert.Equal(t, "*", web.Disks[0].Name)
	assert.InDelta(t, 10, *web.Disks[0].ReadIOPS, 1e-9)
	assert.InDelta(t, float64(1<<20)/10, *web.Disks[0].ReadBytesPerS, 1e-9)
	assert.EqualValues(t, 1, *web.Disks[0].Errors)
	assert.EqualValues(t, 40<<30, *web.Disks[0].CapacityBytes)
	require.Len(t, web.NICs, 1)
	assert.InDelta(t, 1e6, *web.NICs[0].RxBitsPerS, 1e-9)
	assert.InDelta(t, 50, *web.NICs[0].RxPacketsPerS, 1e-9)

	db, ok := tr.Find("0000aaaa-0000-0000-0000-000000000001", "db-1", "hv1")
	require.True(t, ok, "db-1 attributed by its adapter MAC")
	assert.Equal(t, "paused", db.State)
	assert.Equal(t, ResourceSourceHsflowd, db.Source)
	assert.Nil(t, db.Mem.MaxBytes, "maxMemory -1 is unlimited, not 16 EiB")
	assert.EqualValues(t, 2<<30, *db.Mem.BalloonBytes)
	_, ok = tr.Find("", "ghost", "")
	assert.False(t, ok, "a VM the inventory does not know is dropped")
	assert.Len(t, tr.All(), 2)

	hosts := tr.Hosts()
	require.Len(t, hosts, 1)
	hv := hosts[0]
	assert.Equal(t, "hv1", hv.Host, "HV1.example.net is the inventory's hv1")
	assert.Equal(t, 2, hv.VMs)
	require.NotNil(t, hv.Hypervisor)
	assert.Equal(t, ResourceSourceHsflowd, hv.Hypervisor.Source)
	assert.Equal(t, 16, hv.Hypervisor.CPUs)
	assert.Equal(t, 3, hv.Hypervisor.Domains)
	require.NotNil(t, hv.Hypervisor.CPUPercent)
	assert.InDelta(t, 25, *hv.Hypervisor.CPUPercent, 1e-9) // 40 s busy of 160 s (iowait is idle)
	assert.EqualValues(t, 64<<30, *hv.Hypervisor.MemTotalBytes)
	assert.EqualValues(t, 16<<30, *hv.Hypervisor.MemFreeBytes) // free + buffers + cache

	assert.Equal(t, 4.0, testutil.ToFloat64(h.samples["vm/attributed"]))
	assert.Equal(t, 2.0, testutil.ToFloat64(h.samples["vm/unknown_vm"]))
	assert.Equal(t, 2.0, testutil.ToFloat64(h.samples["host/attributed"]))
}

// TestHsflowdLibvirtFirst: where libvirt and hsflowd both report a VM, the
// fresh libvirt figures are the VM's (never a sum); hsflowd's take over
// when libvirt's go stale.
func TestHsflowdLibvirtFirst(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	tr := NewResourceTracker(ResourceTrackerConfig{StaleAfter: 30 * time.Second, Now: func() time.Time { return now }})
	idx := hsIndex()
	h := NewHsflowd(tr, func() *Index { return idx }, nil)
	tr.PutVM(VMResourceSample{UUID: "6b3c1d2e-4f50-4162-9374-8596a7b8c9da", Name: "web-1", Host: "hv1", Source: ResourceSourceLibvirt,
		Time: t0, CPU: CPUSample{Have: HasVCPUs, VCPUs: 4}})
	h.Put(decodeHosts(t, hsHypervisor(0).Datagram(0, 1), t0))
	r, ok := tr.VM("6b3c1d2e-4f50-4162-9374-8596a7b8c9da")
	require.True(t, ok)
	assert.Equal(t, ResourceSourceLibvirt, r.Source)
	now = t0.Add(40 * time.Second)
	h.Put(decodeHosts(t, hsHypervisor(4).Datagram(1, 2), now))
	r, _ = tr.VM("6b3c1d2e-4f50-4162-9374-8596a7b8c9da")
	assert.Equal(t, ResourceSourceHsflowd, r.Source)
	assert.InDelta(t, 200, *r.CPU.PercentOfCore, 1e-9) // hsflowd's own two samples, 40 s apart
}

// TestHsflowdHostNames: the hypervisor's name by exporter identity, else
// hostname, else the agent; unknown names are bounded.
func TestHsflowdHostNames(t *testing.T) {
	tr := NewResourceTracker(ResourceTrackerConfig{})
	idx := build([]Snapshot{{Source: StaticSourceName, Hosts: []Host{{Name: "hv7", Exporters: []netip.Addr{hsAgentAddr}}}}},
		mergeInput{merge: MergeLibvirtFirst, reg: newRegistry()})
	h := NewHsflowd(tr, func() *Index { return idx }, nil)
	hv := hsHypervisor(0)
	hv.VMs = nil
	h.Put(decodeHosts(t, hv.Datagram(0, 1), time.Now()))
	require.Len(t, tr.Hosts(), 1)
	assert.Equal(t, "hv7", tr.Hosts()[0].Host, "the agent address is hv7's exporter identity")

	h = NewHsflowd(tr, func() *Index { return &Index{} }, nil)
	for i := 0; i < HsflowdMaxUnknownHosts+10; i++ {
		hv.Agent = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		hv.Hostname = ""
		c := decodeHosts(t, hv.Datagram(0, 1), time.Now())
		c[0].Agent = hv.Agent
		h.Put(c)
	}
	assert.Equal(t, 10.0, testutil.ToFloat64(h.samples["host/host_limit"]))
	assert.Len(t, tr.Hosts(), 1+HsflowdMaxUnknownHosts)
}

// TestHsflowdConcurrent: collector workers call Put at once (run with -race).
func TestHsflowdConcurrent(t *testing.T) {
	tr := NewResourceTracker(ResourceTrackerConfig{})
	idx := hsIndex()
	h := NewHsflowd(tr, func() *Index { return idx }, nil)
	t0 := time.Now()
	var batches [][]decoder.HostCounters
	for n := uint32(0); n < 8; n++ {
		batches = append(batches, decodeHosts(t, hsHypervisor(n).Datagram(n, 1), t0.Add(time.Duration(n)*time.Second)))
	}
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, b := range batches {
				h.Put(b)
			}
		}()
	}
	for w := 0; w < 4; w++ {
		<-done
	}
	assert.Len(t, tr.All(), 2)
	assert.Equal(t, 64.0, testutil.ToFloat64(h.samples["vm/attributed"]))
}
