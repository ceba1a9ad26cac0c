// Package sflowhost builds sFlow v5 datagrams carrying the sFlow host
// structures (https://sflow.org/sflow_host.txt) the way hsflowd sends them,
// field by field from the specification, for tests (decoder golden tests,
// the hsflowd end-to-end test). It imports nothing of vmflow.
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
	b := Cat(F32(c.LoadOne), F32(c.LoadFive), F32(c.LoadFifteen),
		XDR(c.ProcRun, c.ProcTotal, c.CPUNum, c.CPUSpeed, c.Uptime,
			c.User, c.Nice, c.System, c.Idle, c.WIO, c.Intr, c.SoftIntr, c.Interrupts, c.Contexts))
	if c.Ext {
		b = Cat(b, XDR(c.Steal, c.Guest, c.GuestNice))
	}
	return Record(FmtHostCPU, b)
}

// HostMemory is host_memory (2004).
type HostMemory struct {
	Total, Free, Shared, Buffers, Cached, SwapTotal, SwapFree uint64
	PageIn, PageOut, SwapIn, SwapOut                          uint32
}

func (m HostMemory) Record() []byte {
	return Record(FmtHostMemory, Cat(U64(m.Total), U64(m.Free), U64(m.Shared), U64(m.Buffers), U64(m.Cached),
		U64(m.SwapTotal), U64(m.SwapFree), XDR(m.PageIn, m.PageOut, m.SwapIn, m.SwapOut)))
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

func (n NetIO) body() []byte {
	return Cat(U64(n.BytesIn), XDR(n.PktsIn, n.ErrsIn, n.DropsIn), U64(n.BytesOut), XDR(n.PktsOut, n.ErrsOut, n.DropsOut))
}

// HostRecord is host_net_io (2006).
func (n NetIO) HostRecord() []byte { return Record(FmtHostNetIO, n.body()) }

// VirtRecord is virt_net_io (2104).
func (n NetIO) VirtRecord() []byte { return Record(FmtVirtNetIO, n.body()) }

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
	return Record(FmtVirtDiskIO, Cat(U64(d.Capacity), U64(d.Allocation), U64(d.Available), XDR(d.RdReq), U64(d.RdBytes),
		XDR(d.WrReq), U64(d.WrBytes), XDR(d.Errs)))
}

// Hypervisor is one hsflowd host and its VMs, for building the datagram it
// sends each polling interval.
type Hypervisor struct {
	Agent    netip.Addr
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
	samples := [][]byte{CounterSample(seq, ClassPhysical, 1,
		HostDescr(h.Hostname, h.UUID, 3, 2, "6.1.0-28-amd64"),
		h.CPU.Record(), h.Mem.Record(),
		VirtNode(h.NodeMHz, h.NodeCPUs, h.NodeMem, h.NodeMemFree, uint32(len(h.VMs))))}
	for i, vm := range h.VMs {
		samples = append(samples, CounterSample(seq, ClassLogical, vm.DSIndex,
			HostDescr(vm.Name, vm.UUID, 3, 2, ""),
			HostAdapters(Adapter{IfIndex: uint32(100 + i), MACs: [][6]byte{vm.MAC}}),
			HostParent(ClassPhysical, 1),
			VirtCPU(vm.State, vm.CPUTimeMs, vm.VCPUs),
			VirtMemory(vm.Memory, vm.MaxMemory),
			vm.Disk.Record(), vm.Net.VirtRecord()))
	}
	return Datagram(h.Agent, 0, seq, uptimeMs, samples...)
}
