// Package sflowhost builds sFlow v5 datagrams carrying the sFlow host
// structures (https://sflow.org/sflow_host.txt) the way hsflowd sends them,
// field by field from the specification, for tests (decoder golden tests,
// the hsflowd end-to-end test) and the synthetic cloud's hsflowd
// (internal/synth, with the allocation-free Append* encoders). It imports
// nothing of vmflow.
package sflowhost

import (
	"encoding/binary"
	"math"
	"net/netip"
)

// Data source classes (sFlow v5 data source type).
const (
	ClassPhysical = 2 // entPhysicalEntry: the host itself (hsflowd ds_index 1)
	ClassLogical  = 3 // a virtual machine
)

// Counter record formats (enterprise 0).
const (
	FmtHostDescr    = 2000
	FmtHostAdapters = 2001
	FmtHostParent   = 2002
	FmtHostCPU      = 2003
	FmtHostMemory   = 2004
	FmtHostDiskIO   = 2005
	FmtHostNetIO    = 2006
	FmtVirtNode     = 2100
	FmtVirtCPU      = 2101
	FmtVirtMemory   = 2102
	FmtVirtDiskIO   = 2103
	FmtVirtNetIO    = 2104
)

// XDR appends 32-bit big-endian words.
func XDR(vals ...uint32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.BigEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// U64 is an XDR unsigned hyper.
func U64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// F32 is an XDR float.
func F32(v float32) []byte { return XDR(math.Float32bits(v)) }

// Str is an XDR string: length, bytes, padding to 4.
func Str(s string) []byte {
	b := append(XDR(uint32(len(s))), s...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Cat concatenates.
func Cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Datagram is an sFlow v5 datagram with an IPv4 agent address.
func Datagram(agent netip.Addr, subAgent, seq, uptimeMs uint32, samples ...[]byte) []byte {
	a := agent.As4()
	return Cat(XDR(5, 1), a[:], XDR(subAgent, seq, uptimeMs, uint32(len(samples))), Cat(samples...))
}

// CounterSample is a compact counter sample (format 2) of data source
// class:index.
func CounterSample(seq, class, index uint32, records ...[]byte) []byte {
	body := Cat(XDR(seq, class<<24|index, uint32(len(records))), Cat(records...))
	return Cat(XDR(2, uint32(len(body))), body)
}

// ExpandedCounterSample is an expanded counter sample (format 4).
func ExpandedCounterSample(seq, class, index uint32, records ...[]byte) []byte {
	body := Cat(XDR(seq, class, index, uint32(len(records))), Cat(records...))
	return Cat(XDR(4, uint32(len(body))), body)
}

// Record wraps a counter record body with its format and length.
func Record(format uint32, body []byte) []byte {
	return Cat(XDR(format, uint32(len(body))), body)
}

// HostDescr is host_descr (2000): string hostname<64>, opaque uuid[16],
// machine_type, os_name, string os_release<32>.
func HostDescr(hostname string, uuid [16]byte, machineType, osName uint32, osRelease string) []byte {
	return Record(FmtHostDescr, Cat(Str(hostname), uuid[:], XDR(machineType, osName), Str(osRelease)))
}

// Adapter is one host_adapter: ifIndex and its MAC addresses.
type Adapter struct {
	IfIndex uint32
	MACs    [][6]byte
}

// HostAdapters is host_adapters (2001): adapter<>, each ifIndex then
// mac<> (6 bytes padded to 8).
func HostAdapters(adapters ...Adapter) []byte {
	body := XDR(uint32(len(adapters)))
	for _, a := range adapters {
		body = Cat(body, XDR(a.IfIndex, uint32(len(a.MACs))))
		for _, m := range a.MACs {
			body = Cat(body, m[:], []byte{0, 0})
		}
	}
	return Record(FmtHostAdapters, body)
}

// HostParent is host_parent (2002): container type and index.
func HostParent(class, index uint32) []byte {
	return Record(FmtHostParent, XDR(class, index))
}

// HostCPU is host_cpu (2003). Ext adds hsflowd's cpu_steal, cpu_guest,
// cpu_guest_nice (80 bytes instead of the spec's 68).
type HostCPU struct {
	LoadOne, LoadFive, LoadFifteen       float32
	ProcRun, ProcTotal, CPUNum, CPUSpeed uint32
	Uptime                               uint32
	User, Nice, System, Idle, WIO        uint32
	Intr, SoftIntr, Interrupts, Contexts uint32
	Ext                                  bool
	Steal, Guest, GuestNice              uint32
}

func (c HostCPU) Record() []byte {
	return c.appendRecord(nil)
}

// HostMemory is host_memory (2004).
type HostMemory struct {
	Total, Free, Shared, Buffers, Cached, SwapTotal, SwapFree uint64
	PageIn, PageOut, SwapIn, SwapOut                          uint32
}

func (m HostMemory) Record() []byte {
	return m.appendRecord(nil)
}

// HostDiskIO is host_disk_io (2005).
type HostDiskIO struct {
	Total, Free      uint64
	PartMaxUsed      uint32 // hundredths of a percent
	Reads            uint32
	BytesRead        uint64
	ReadTime, Writes uint32
	BytesWritten     uint64
	WriteTime        uint32
}

func (d HostDiskIO) Record() []byte {
	return Record(FmtHostDiskIO, Cat(U64(d.Total), U64(d.Free), XDR(d.PartMaxUsed, d.Reads), U64(d.BytesRead),
		XDR(d.ReadTime, d.Writes), U64(d.BytesWritten), XDR(d.WriteTime)))
}

// NetIO is host_net_io (2006) and virt_net_io (2104).
type NetIO struct {
	BytesIn                    uint64
	PktsIn, ErrsIn, DropsIn    uint32
	BytesOut                   uint64
	PktsOut, ErrsOut, DropsOut uint32
}

// HostRecord is host_net_io (2006).
func (n NetIO) HostRecord() []byte { return n.appendRecord(nil, FmtHostNetIO) }

// VirtRecord is virt_net_io (2104).
func (n NetIO) VirtRecord() []byte { return n.appendRecord(nil, FmtVirtNetIO) }

// VirtNode is virt_node (2100).
func VirtNode(mhz, cpus uint32, memory, memoryFree uint64, domains uint32) []byte {
	return Record(FmtVirtNode, Cat(XDR(mhz, cpus), U64(memory), U64(memoryFree), XDR(domains)))
}

// VirtCPU is virt_cpu (2101): state (virDomainState), cpuTime (ms),
// nrVirtCpu.
func VirtCPU(state, cpuTimeMs, vcpus uint32) []byte {
	return Record(FmtVirtCPU, XDR(state, cpuTimeMs, vcpus))
}

// VirtMemory is virt_memory (2102): memory, maxMemory (bytes).
func VirtMemory(memory, maxMemory uint64) []byte {
	return Record(FmtVirtMemory, Cat(U64(memory), U64(maxMemory)))
}

// VirtDiskIO is virt_disk_io (2103).
type VirtDiskIO struct {
	Capacity, Allocation, Available uint64
	RdReq                           uint32
	RdBytes                         uint64
	WrReq                           uint32
	WrBytes                         uint64
	Errs                            uint32
}

func (d VirtDiskIO) Record() []byte {
	return d.appendRecord(nil)
}

// Hypervisor is one hsflowd host and its VMs, for building the datagram it
// sends each polling interval.
type Hypervisor struct {
	Agent    netip.Addr
	SubAgent uint32 // sFlow sub-agent id (0 unless another agent shares the address)
	Hostname string
	UUID     [16]byte
	CPU      HostCPU
	Mem      HostMemory
	// Node: virt_node's MHz, CPUs, memory, free memory (domains is len(VMs)).
	NodeMHz, NodeCPUs    uint32
	NodeMem, NodeMemFree uint64
	VMs                  []VM
}

// VM is one domain as hsflowd reports it.
type VM struct {
	Name                    string // hsflowd puts the domain name in host_descr's hostname
	UUID                    [16]byte
	MAC                     [6]byte
	IfIndex                 uint32 // host_adapters ifIndex (0: 100 + its position in VMs)
	DSIndex                 uint32 // logical entity index (hsflowd: 65536 + n)
	State, CPUTimeMs, VCPUs uint32
	Memory, MaxMemory       uint64
	Disk                    VirtDiskIO
	Net                     NetIO
}

// Datagram is the hypervisor's datagram: its own counter sample (physical
// entity 1: host_descr, host_adapters, host_cpu, host_memory, virt_node)
// and one per VM (host_descr, host_adapters, host_parent, virt_cpu,
// virt_memory, virt_disk_io, virt_net_io).
func (h Hypervisor) Datagram(seq, uptimeMs uint32) []byte {
	b := AppendHeader(nil, h.Agent, h.SubAgent, seq, uptimeMs)
	b = h.AppendHostSample(b, seq)
	for i := range h.VMs {
		b = h.AppendVMSample(b, seq, i)
	}
	SetSampleCount(b, uint32(1+len(h.VMs)))
	return b
}

// Appending encoders: they write into b's spare capacity and allocate only
// when it runs out (the synthetic cloud reuses one buffer per hypervisor).

func a32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func a64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func aStr(b []byte, s string) []byte {
	b = a32(b, uint32(len(s)))
	b = append(b, s...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// open appends a format and a length placeholder; end fills the length in.
func open(b []byte, format uint32) ([]byte, int) {
	b = a32(b, format)
	return a32(b, 0), len(b)
}

func end(b []byte, at int) []byte {
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// AppendHeader appends an sFlow v5 datagram header with an IPv4 agent and
// a sample count of 0 (SetSampleCount sets it).
func AppendHeader(b []byte, agent netip.Addr, subAgent, seq, uptimeMs uint32) []byte {
	a := agent.As4()
	b = a32(a32(b, 5), 1)
	b = append(b, a[:]...)
	return a32(a32(a32(a32(b, subAgent), seq), uptimeMs), 0)
}

// SetSampleCount sets the sample count of the datagram b (AppendHeader).
func SetSampleCount(b []byte, n uint32) { binary.BigEndian.PutUint32(b[24:], n) }

func openSample(b []byte, seq, class, index, records uint32) ([]byte, int) {
	b, at := open(b, 2)
	return a32(a32(a32(b, seq), class<<24|index), records), at
}

func appendHostDescr(b []byte, hostname string, uuid *[16]byte, osRelease string) []byte {
	b, at := open(b, FmtHostDescr)
	b = aStr(b, hostname)
	b = append(b, uuid[:]...)
	b = a32(a32(b, 3), 2) // x86_64, linux
	return end(aStr(b, osRelease), at)
}

func (c *HostCPU) appendRecord(b []byte) []byte {
	b, at := open(b, FmtHostCPU)
	for _, f := range [3]float32{c.LoadOne, c.LoadFive, c.LoadFifteen} {
		b = a32(b, math.Float32bits(f))
	}
	for _, v := range [...]uint32{c.ProcRun, c.ProcTotal, c.CPUNum, c.CPUSpeed, c.Uptime,
		c.User, c.Nice, c.System, c.Idle, c.WIO, c.Intr, c.SoftIntr, c.Interrupts, c.Contexts} {
		b = a32(b, v)
	}
	if c.Ext {
		b = a32(a32(a32(b, c.Steal), c.Guest), c.GuestNice)
	}
	return end(b, at)
}

func (m *HostMemory) appendRecord(b []byte) []byte {
	b, at := open(b, FmtHostMemory)
	for _, v := range [...]uint64{m.Total, m.Free, m.Shared, m.Buffers, m.Cached, m.SwapTotal, m.SwapFree} {
		b = a64(b, v)
	}
	for _, v := range [...]uint32{m.PageIn, m.PageOut, m.SwapIn, m.SwapOut} {
		b = a32(b, v)
	}
	return end(b, at)
}

func (d *VirtDiskIO) appendRecord(b []byte) []byte {
	b, at := open(b, FmtVirtDiskIO)
	b = a32(a64(a64(a64(b, d.Capacity), d.Allocation), d.Available), d.RdReq)
	b = a32(a64(a32(a64(b, d.RdBytes), d.WrReq), d.WrBytes), d.Errs)
	return end(b, at)
}

func (n *NetIO) appendRecord(b []byte, format uint32) []byte {
	b, at := open(b, format)
	b = a32(a32(a32(a64(b, n.BytesIn), n.PktsIn), n.ErrsIn), n.DropsIn)
	b = a32(a32(a32(a64(b, n.BytesOut), n.PktsOut), n.ErrsOut), n.DropsOut)
	return end(b, at)
}

// AppendHostSample appends the hypervisor's own counter sample (physical
// entity 1: host_descr, host_cpu, host_memory, virt_node).
func (h *Hypervisor) AppendHostSample(b []byte, seq uint32) []byte {
	b, at := openSample(b, seq, ClassPhysical, 1, 4)
	b = appendHostDescr(b, h.Hostname, &h.UUID, "6.1.0-28-amd64")
	b = h.CPU.appendRecord(b)
	b = h.Mem.appendRecord(b)
	var vn int
	b, vn = open(b, FmtVirtNode)
	b = a32(a64(a64(a32(a32(b, h.NodeMHz), h.NodeCPUs), h.NodeMem), h.NodeMemFree), uint32(len(h.VMs)))
	b = end(b, vn)
	return end(b, at)
}

// AppendVMSample appends VM i's counter sample (host_descr, host_adapters,
// host_parent, virt_cpu, virt_memory, virt_disk_io, virt_net_io).
func (h *Hypervisor) AppendVMSample(b []byte, seq uint32, i int) []byte {
	vm := &h.VMs[i]
	b, at := openSample(b, seq, ClassLogical, vm.DSIndex, 7)
	b = appendHostDescr(b, vm.Name, &vm.UUID, "")
	var r int
	b, r = open(b, FmtHostAdapters)
	ifIndex := vm.IfIndex
	if ifIndex == 0 {
		ifIndex = uint32(100 + i)
	}
	b = a32(a32(a32(b, 1), ifIndex), 1)
	b = append(b, vm.MAC[:]...)
	b = end(append(b, 0, 0), r)
	b, r = open(b, FmtHostParent)
	b = end(a32(a32(b, ClassPhysical), 1), r)
	b, r = open(b, FmtVirtCPU)
	b = end(a32(a32(a32(b, vm.State), vm.CPUTimeMs), vm.VCPUs), r)
	b, r = open(b, FmtVirtMemory)
	b = end(a64(a64(b, vm.Memory), vm.MaxMemory), r)
	b = vm.Disk.appendRecord(b)
	b = vm.Net.appendRecord(b, FmtVirtNetIO)
	return end(b, at)
}

// VMSampleLen is the length of VM i's counter sample.
func (h *Hypervisor) VMSampleLen(i int) int {
	vm := &h.VMs[i]
	return 20 + (8 + 4 + pad4(len(vm.Name)) + 16 + 8 + 4) + 28 + 16 + 20 + 24 + 60 + 48
}

// HostSampleLen is the length of the hypervisor's own counter sample.
func (h *Hypervisor) HostSampleLen() int {
	n := 80
	if !h.CPU.Ext {
		n = 68
	}
	return 20 + (8 + 4 + pad4(len(h.Hostname)) + 16 + 8 + 4 + pad4(len("6.1.0-28-amd64"))) + 8 + n + 8 + 72 + 8 + 28
}

func pad4(n int) int { return (n + 3) &^ 3 }
