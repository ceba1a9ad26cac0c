package decoder

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	sh "github.com/vmflow/vmflow/internal/sflowhost"
)

// Golden hsflowd datagrams, built field by field from sflow_host.txt (and
// hsflowd's sflow.h for host_cpu's three trailing counters) by
// internal/sflowhost; the expected decode is written out field by field.

var (
	hostAgent  = netip.MustParseAddr("10.0.0.11")
	hsHostUUID = [16]byte{0x4c, 0x4c, 0x45, 0x44, 0x00, 0x4e, 0x38, 0x10, 0x80, 0x35, 0xb4, 0xc0, 0x4f, 0x4b, 0x4d, 0x32}
	hsVMUUID   = [16]byte{0x6b, 0x3c, 0x1d, 0x2e, 0x4f, 0x50, 0x41, 0x62, 0x93, 0x74, 0x85, 0x96, 0xa7, 0xb8, 0xc9, 0xda}
	hsHostMAC  = [6]byte{0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e}
	hsVMMAC    = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	hsVMMAC2   = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x57}
)

// hostCPUFixture is a hypervisor's host_cpu in hsflowd's 80-byte form.
var hostCPUFixture = sh.HostCPU{
	LoadOne: 1.5, LoadFive: 0.75, LoadFifteen: 0.25, ProcRun: 3, ProcTotal: 412, CPUNum: 16, CPUSpeed: 2600,
	Uptime: 864000, User: 4_000_000, Nice: 10_000, System: 1_000_000, Idle: 90_000_000, WIO: 50_000,
	Intr: 20_000, SoftIntr: 30_000, Interrupts: 123456789, Contexts: 987654321,
	Ext: true, Steal: 0, Guest: 3_000_000, GuestNice: 0,
}

var hostMemFixture = sh.HostMemory{
	Total: 128 << 30, Free: 20 << 30, Shared: 1 << 30, Buffers: 2 << 30, Cached: 30 << 30,
	SwapTotal: 8 << 30, SwapFree: 7 << 30, PageIn: 1111, PageOut: 2222, SwapIn: 33, SwapOut: 44,
}

var hostDiskFixture = sh.HostDiskIO{Total: 2 << 40, Free: 1 << 40, PartMaxUsed: 6789, Reads: 5000, BytesRead: 5 << 30,
	ReadTime: 700, Writes: 6000, BytesWritten: 6 << 30, WriteTime: 800}

var hostNetFixture = sh.NetIO{BytesIn: 9_000_000_000, PktsIn: 7_000_000, ErrsIn: 1, DropsIn: 2,
	BytesOut: 8_000_000_000, PktsOut: 6_000_000, ErrsOut: 3, DropsOut: 4}

var vmDiskFixture = sh.VirtDiskIO{Capacity: 40 << 30, Allocation: 12 << 30, Available: 28 << 30,
	RdReq: 1500, RdBytes: 150 << 20, WrReq: 2500, WrBytes: 250 << 20, Errs: 7}

var vmNetFixture = sh.NetIO{BytesIn: 123_456_789, PktsIn: 100_000, ErrsIn: 5, DropsIn: 6,
	BytesOut: 987_654_321, PktsOut: 200_000, ErrsOut: 7, DropsOut: 8}

// hostSampleFixture is the hypervisor's own counter sample (physical
// entity 1): host_descr, host_adapters, host_cpu, host_memory,
// host_disk_io, host_net_io, virt_node.
func hostSampleFixture() []byte {
	return sh.CounterSample(17, sh.ClassPhysical, 1,
		sh.HostDescr("hv1.example.net", hsHostUUID, 3, 2, "6.1.0-28-amd64"),
		sh.HostAdapters(sh.Adapter{IfIndex: 2, MACs: [][6]byte{hsHostMAC}}),
		hostCPUFixture.Record(), hostMemFixture.Record(), hostDiskFixture.Record(), hostNetFixture.HostRecord(),
		sh.VirtNode(2600, 16, 128<<30, 60<<30, 3))
}

// vmSampleFixture is one VM's sample (logical entity 65536+3, as hsflowd
// numbers domains): host_descr, host_adapters, host_parent, virt_cpu,
// virt_memory, virt_disk_io, virt_net_io; expanded form.
func vmSampleFixture() []byte {
	return sh.ExpandedCounterSample(18, sh.ClassLogical, 65539,
		sh.HostDescr("web-1", hsVMUUID, 3, 2, ""),
		sh.HostAdapters(sh.Adapter{IfIndex: 7, MACs: [][6]byte{hsVMMAC}}, sh.Adapter{IfIndex: 8, MACs: [][6]byte{hsVMMAC2}}),
		sh.HostParent(sh.ClassPhysical, 1),
		sh.VirtCPU(1, 3_600_000, 4),
		sh.VirtMemory(4<<30, 8<<30),
		vmDiskFixture.Record(), vmNetFixture.VirtRecord())
}

func hostDatagramFixture() []byte {
	return sh.Datagram(hostAgent, 0, 42, 3_600_000, hostSampleFixture(), vmSampleFixture())
}

func str64(s string) (n uint8, b [HostnameMax]byte) { return uint8(copy(b[:], s)), b }
func str32(s string) (n uint8, b [OSReleaseMax]byte) {
	return uint8(copy(b[:], s)), b
}

func wantHostCounters() []HostCounters {
	h := HostCounters{
		Exporter: testExporter.Addr(), Agent: hostAgent, Received: 42, SourceID: 2<<24 | 1,
		Have: HostHasDescr | HostHasAdapters | HostHasCPU | HostHasMemory | HostHasDiskIO | HostHasNetIO | HostHasVirtNode,
		UUID: hsHostUUID, MachineType: 3, OSName: 2,
		NumMACs: 1, MACs: [HostMACsMax]HostAdapterMAC{{IfIndex: 2, MAC: hsHostMAC}},
		CPU: HostCPU{LoadOne: 1.5, LoadFive: 0.75, LoadFifteen: 0.25, ProcRun: 3, ProcTotal: 412, CPUNum: 16,
			CPUSpeedMHz: 2600, Uptime: 864000, User: 4_000_000, Nice: 10_000, System: 1_000_000, Idle: 90_000_000,
			WIO: 50_000, Intr: 20_000, SoftIntr: 30_000, Interrupts: 123456789, Contexts: 987654321,
			HasExt: true, Guest: 3_000_000},
		Memory: HostMemory{Total: 128 << 30, Free: 20 << 30, Shared: 1 << 30, Buffers: 2 << 30, Cached: 30 << 30,
			SwapTotal: 8 << 30, SwapFree: 7 << 30, PageIn: 1111, PageOut: 2222, SwapIn: 33, SwapOut: 44},
		DiskIO: HostDiskIO{Total: 2 << 40, Free: 1 << 40, PartMaxUsed: 6789, Reads: 5000, BytesRead: 5 << 30,
			ReadTime: 700, Writes: 6000, BytesWritten: 6 << 30, WriteTime: 800},
		NetIO: NetIO{BytesIn: 9_000_000_000, PktsIn: 7_000_000, ErrsIn: 1, DropsIn: 2,
			BytesOut: 8_000_000_000, PktsOut: 6_000_000, ErrsOut: 3, DropsOut: 4},
		Node: VirtNode{MHz: 2600, CPUs: 16, Memory: 128 << 30, MemoryFree: 60 << 30, Domains: 3},
	}
	h.HostnameLen, h.Hostname = str64("hv1.example.net")
	h.OSReleaseLen, h.OSRelease = str32("6.1.0-28-amd64")
	vm := HostCounters{
		Exporter: testExporter.Addr(), Agent: hostAgent, Received: 42, SourceID: 3<<24 | 65539,
		Have: HostHasDescr | HostHasAdapters | HostHasParent | HostHasVirtCPU | HostHasVirtMemory | HostHasVirtDiskIO | HostHasVirtNetIO,
		UUID: hsVMUUID, MachineType: 3, OSName: 2,
		NumMACs: 2, MACs: [HostMACsMax]HostAdapterMAC{{IfIndex: 7, MAC: hsVMMAC}, {IfIndex: 8, MAC: hsVMMAC2}},
		ParentClass: 2, ParentIndex: 1,
		VCPU:    VirtCPU{State: 1, CPUTimeMs: 3_600_000, VCPUs: 4},
		VMemory: VirtMemory{Memory: 4 << 30, MaxMemory: 8 << 30},
		VDiskIO: VirtDiskIO{Capacity: 40 << 30, Allocation: 12 << 30, Available: 28 << 30,
			RdReq: 1500, RdBytes: 150 << 20, WrReq: 2500, WrBytes: 250 << 20, Errs: 7},
		VNetIO: NetIO{BytesIn: 123_456_789, PktsIn: 100_000, ErrsIn: 5, DropsIn: 6,
			BytesOut: 987_654_321, PktsOut: 200_000, ErrsOut: 7, DropsOut: 8},
	}
	vm.HostnameLen, vm.Hostname = str64("web-1")
	return []HostCounters{h, vm}
}

func TestSFlowHostGolden(t *testing.T) {
	data := hostDatagramFixture()
	for _, fast := range []bool{true, false} {
		d := newTestDecoder(t, fast)
		var b Batch
		if err := d.Decode(SourceSFlow, testExporter, data, 42, &b); err != nil {
			t.Fatalf("fast=%v: %v", fast, err)
		}
		if diff := cmp.Diff(wantHostCounters(), b.Hosts, cmpAddrs); diff != "" {
			t.Fatalf("fast=%v: host counters (-want +got):\n%s", fast, diff)
		}
		if b.Header.Samples != 2 || len(b.Counters) != 2 || b.Header.Skipped != 0 {
			t.Fatalf("fast=%v: samples %d counters %d skipped %d", fast, b.Header.Samples, len(b.Counters), b.Header.Skipped)
		}
		if !b.Hosts[1].IsVM() || b.Hosts[0].IsVM() {
			t.Fatal("IsVM: the hypervisor's sample is not a VM, the domain's is")
		}
		if got := b.Hosts[0].HostName(); got != "hv1.example.net" {
			t.Fatalf("hostname %q", got)
		}
	}
}

// TestSFlowHostSpecSizes: the 68-byte host_cpu of the spec (without
// hsflowd's steal/guest) decodes with HasExt false; a record a sample
// carries twice is taken once.
func TestSFlowHostSpecSizes(t *testing.T) {
	c := hostCPUFixture
	c.Ext = false
	rec := c.Record()
	if len(rec) != 8+68 {
		t.Fatalf("spec host_cpu record is %d bytes", len(rec))
	}
	data := sh.Datagram(hostAgent, 0, 1, 1, sh.CounterSample(1, 2, 1, rec, hostCPUFixture.Record()))
	d := newTestDecoder(t, true)
	var b Batch
	if err := d.Decode(SourceSFlow, testExporter, data, 42, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Hosts) != 1 || b.Hosts[0].CPU.HasExt || b.Hosts[0].CPU.Idle != 90_000_000 || b.Header.Skipped != 1 {
		t.Fatalf("got %+v skipped %d", b.Hosts, b.Header.Skipped)
	}
}

// TestSFlowHostMalformed: every host record cut short, and host_descr and
// host_adapters with lengths or counts past their bounds, reject the
// datagram (malformed or truncated) on both paths, counted per kind.
func TestSFlowHostMalformed(t *testing.T) {
	full := map[string][]byte{
		"host_descr": sh.HostDescr("hv1", hsHostUUID, 3, 2, "6.1"), "host_adapters": sh.HostAdapters(sh.Adapter{IfIndex: 1, MACs: [][6]byte{hsHostMAC}}),
		"host_parent": sh.HostParent(2, 1), "host_cpu": hostCPUFixture.Record(), "host_memory": hostMemFixture.Record(),
		"host_disk_io": hostDiskFixture.Record(), "host_net_io": hostNetFixture.HostRecord(),
		"virt_node": sh.VirtNode(1, 2, 3, 4, 5), "virt_cpu": sh.VirtCPU(1, 2, 3), "virt_memory": sh.VirtMemory(1, 2),
		"virt_disk_io": vmDiskFixture.Record(), "virt_net_io": vmNetFixture.VirtRecord(),
	}
	cases := map[string][]byte{}
	for kind, rec := range full {
		body := rec[8:]
		for cut := 4; cut <= len(body); cut += 4 { // every shorter 4-aligned body
			if kind == "host_cpu" && len(body)-cut >= 68 {
				continue // the spec's fields are there (76: tolerated, the spec's 68 plus some)
			}
			cases[kind+"/cut"+strconv.Itoa(cut)] = sh.Record(binary.BigEndian.Uint32(rec), body[:len(body)-cut])
		}
	}
	cases["host_descr/hostname>64"] = sh.Record(sh.FmtHostDescr, sh.Cat(sh.Str(string(make([]byte, 68))), hsHostUUID[:], sh.XDR(3, 2), sh.Str("")))
	cases["host_descr/os_release>32"] = sh.Record(sh.FmtHostDescr, sh.Cat(sh.Str("h"), hsHostUUID[:], sh.XDR(3, 2), sh.Str(string(make([]byte, 36)))))
	cases["host_descr/hostname_len_huge"] = sh.Record(sh.FmtHostDescr, sh.Cat(sh.XDR(0xfffffffc), hsHostUUID[:], sh.XDR(3, 2, 0)))
	cases["host_adapters/count_huge"] = sh.Record(sh.FmtHostAdapters, sh.XDR(0x7fffffff, 1, 0))
	cases["host_adapters/macs_huge"] = sh.Record(sh.FmtHostAdapters, sh.XDR(1, 1, 0x20000000))
	cases["host_adapters/macs_past_end"] = sh.Record(sh.FmtHostAdapters, sh.Cat(sh.XDR(1, 1, 2), hsHostMAC[:], []byte{0, 0}))
	for _, fast := range []bool{true, false} {
		for name, rec := range cases {
			d := newTestDecoder(t, fast)
			var b Batch
			data := sh.Datagram(hostAgent, 0, 1, 1, sh.CounterSample(1, 3, 9, sh.HostDescr("ok", hsVMUUID, 0, 0, ""), rec))
			err := d.Decode(SourceSFlow, testExporter, data, 42, &b)
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("fast=%v %s: err %v", fast, name, err)
			}
			if len(b.Hosts) != 0 {
				t.Fatalf("fast=%v %s: %d hosts kept from a failed sample", fast, name, len(b.Hosts))
			}
			if got := fxCount(d.m.host.malformed[hostKindOf(t, name)]); got != 1 {
				t.Fatalf("fast=%v %s: malformed counter %v", fast, name, got)
			}
		}
	}
}

func hostKindOf(t *testing.T, name string) int {
	i := slices.Index(hostKindNames[:], strings.SplitN(name, "/", 2)[0])
	if i < 0 {
		t.Fatalf("no kind in %q", name)
	}
	return i
}
