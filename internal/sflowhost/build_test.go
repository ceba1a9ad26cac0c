package sflowhost

import (
	"bytes"
	"net/netip"
	"testing"
)

func testHypervisor() Hypervisor {
	return Hypervisor{
		Agent: netip.MustParseAddr("192.0.2.7"), SubAgent: 1, Hostname: "hv1", UUID: [16]byte{1, 2, 3},
		CPU: HostCPU{LoadOne: 1.5, CPUNum: 8, User: 100, Idle: 900, Ext: true, Steal: 3},
		Mem: HostMemory{Total: 64 << 30, Free: 32 << 30, PageIn: 7}, NodeMHz: 2400, NodeCPUs: 8, NodeMem: 64 << 30,
		VMs: []VM{
			{Name: "vm-a", UUID: [16]byte{9}, MAC: [6]byte{0x52, 0x54, 0, 0, 0, 1}, DSIndex: 65537, State: 1, CPUTimeMs: 12345,
				VCPUs: 2, Memory: 4 << 30, MaxMemory: 4 << 30, Disk: VirtDiskIO{Capacity: 10 << 30, RdReq: 5, WrBytes: 99, Errs: 1},
				Net: NetIO{BytesIn: 1000, PktsIn: 10, BytesOut: 2000, PktsOut: 20, DropsOut: 1}},
			{Name: "a-longer-name", DSIndex: 65538, IfIndex: 7, State: 1},
		},
	}
}

// TestAppendersMatchSpecBuilders: the appending encoders (what the
// synthetic cloud uses, allocation-free) write the same bytes as the
// field-by-field builders, and the announced lengths are the written ones.
func TestAppendersMatchSpecBuilders(t *testing.T) {
	h := testHypervisor()
	var samples [][]byte
	samples = append(samples, CounterSample(3, ClassPhysical, 1,
		HostDescr(h.Hostname, h.UUID, 3, 2, "6.1.0-28-amd64"),
		Record(FmtHostCPU, h.CPU.Record()[8:]), Record(FmtHostMemory, h.Mem.Record()[8:]),
		VirtNode(h.NodeMHz, h.NodeCPUs, h.NodeMem, h.NodeMemFree, 2)))
	for i, vm := range h.VMs {
		ifx := vm.IfIndex
		if ifx == 0 {
			ifx = uint32(100 + i)
		}
		samples = append(samples, CounterSample(3, ClassLogical, vm.DSIndex,
			HostDescr(vm.Name, vm.UUID, 3, 2, ""),
			HostAdapters(Adapter{IfIndex: ifx, MACs: [][6]byte{vm.MAC}}),
			HostParent(ClassPhysical, 1),
			VirtCPU(vm.State, vm.CPUTimeMs, vm.VCPUs),
			VirtMemory(vm.Memory, vm.MaxMemory),
			vm.Disk.Record(), vm.Net.VirtRecord()))
	}
	want := Datagram(h.Agent, 1, 3, 1000, samples...)
	got := h.Datagram(3, 1000)
	if !bytes.Equal(want, got) {
		t.Fatalf("datagrams differ:\n%x\n%x", want, got)
	}
	if n := len(samples[0]); n != h.HostSampleLen() {
		t.Errorf("HostSampleLen %d, written %d", h.HostSampleLen(), n)
	}
	for i := range h.VMs {
		if n := len(samples[1+i]); n != h.VMSampleLen(i) {
			t.Errorf("VMSampleLen(%d) %d, written %d", i, h.VMSampleLen(i), n)
		}
	}
	buf := make([]byte, 0, 4096)
	if a := testing.AllocsPerRun(100, func() {
		b := AppendHeader(buf, h.Agent, 1, 3, 1000)
		b = h.AppendHostSample(b, 3)
		_ = h.AppendVMSample(b, 3, 0)
	}); a != 0 {
		t.Errorf("%v allocations per datagram", a)
	}
}
