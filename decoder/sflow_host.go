package decoder

import (
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// sFlow host structures (enterprise 0), https://sflow.org/sflow_host.txt,
// as hsflowd sends them (src/sflow/sflow.h): counter records of a physical
// host (data source class 2, physical entity) and of each virtual machine
// (class 3, logical entity, with host_parent naming its hypervisor).
const (
	sfHostDescr    = 2000
	sfHostAdapters = 2001
	sfHostParent   = 2002
	sfHostCPU      = 2003
	sfHostMemory   = 2004
	sfHostDiskIO   = 2005
	sfHostNetIO    = 2006
	sfVirtNode     = 2100
	sfVirtCPU      = 2101
	sfVirtMemory   = 2102
	sfVirtDiskIO   = 2103
	sfVirtNetIO    = 2104
)

// XDR sizes of the fixed-layout host structures.
const (
	hostCPULen      = 68 // 3 floats + 14 counters; hsflowd appends steal, guest, guest_nice (80)
	hostCPULenExt   = 80
	hostMemoryLen   = 72
	hostDiskIOLen   = 52
	netIOLen        = 40 // host_net_io and virt_net_io
	virtNodeLen     = 28
	virtCPULen      = 12
	virtMemoryLen   = 16
	virtDiskIOLen   = 52
	hostParentLen   = 8
	hostDescrMinLen = 4 + 16 + 4 + 4 + 4 // empty hostname, uuid, machine_type, os_name, empty os_release
)

// Bounds of the host_descr strings (hsflowd's SFL_MAX_HOSTNAME_CHARS and
// SFL_MAX_OSRELEASE_CHARS; the spec's string<64> and string<32>) and of the
// adapter MACs kept per sample.
const (
	HostnameMax  = 64
	OSReleaseMax = 32
	HostMACsMax  = 16
)

// Host record kinds, in format order (label kind of
// vmflow_decoder_host_records_total and vmflow_decoder_host_malformed_total).
const (
	hkDescr = iota
	hkAdapters
	hkParent
	hkCPU
	hkMemory
	hkDiskIO
	hkNetIO
	hkVirtNode
	hkVirtCPU
	hkVirtMemory
	hkVirtDiskIO
	hkVirtNetIO
	numHostKinds
)

var hostKindNames = [numHostKinds]string{
	"host_descr", "host_adapters", "host_parent", "host_cpu", "host_memory", "host_disk_io", "host_net_io",
	"virt_node", "virt_cpu", "virt_memory", "virt_disk_io", "virt_net_io",
}

// HostHas bits say which host records a HostCounters carries (bit i is
// host kind i: HostHasDescr is 2000, HostHasVirtCPU 2101...).
type HostHas uint16

const (
	HostHasDescr HostHas = 1 << iota
	HostHasAdapters
	HostHasParent
	HostHasCPU
	HostHasMemory
	HostHasDiskIO
	HostHasNetIO
	HostHasVirtNode
	HostHasVirtCPU
	HostHasVirtMemory
	HostHasVirtDiskIO
	HostHasVirtNetIO
)

// hostKind maps a counter record format to its host kind (-1: not one).
func hostKind(format uint32) int {
	switch {
	case format >= sfHostDescr && format <= sfHostNetIO:
		return int(format - sfHostDescr)
	case format >= sfVirtNode && format <= sfVirtNetIO:
		return hkVirtNode + int(format-sfVirtNode)
	}
	return -1
}

// HostAdapterMAC is one MAC address of one host_adapters adapter.
type HostAdapterMAC struct {
	IfIndex uint32
	MAC     [6]byte
}

// HostCPU is host_cpu (2003); loads that are NaN or infinite read as 0. Times are cumulative milliseconds summed
// over all CPUs; Steal, Guest, GuestNice only when HasExt (hsflowd's
// 80-byte form).
type HostCPU struct {
	LoadOne, LoadFive, LoadFifteen float32
	ProcRun, ProcTotal             uint32
	CPUNum, CPUSpeedMHz, Uptime    uint32 // Uptime in seconds
	User, Nice, System, Idle       uint32
	WIO, Intr, SoftIntr            uint32
	Interrupts, Contexts           uint32
	HasExt                         bool
	Steal, Guest, GuestNice        uint32
}

// HostMemory is host_memory (2004): gauges in bytes, paging counters.
type HostMemory struct {
	Total, Free, Shared, Buffers, Cached, SwapTotal, SwapFree uint64
	PageIn, PageOut, SwapIn, SwapOut                          uint32
}

// HostDiskIO is host_disk_io (2005). PartMaxUsed is in hundredths of a
// percent; times in ms.
type HostDiskIO struct {
	Total, Free  uint64
	PartMaxUsed  int32
	Reads        uint32
	BytesRead    uint64
	ReadTime     uint32
	Writes       uint32
	BytesWritten uint64
	WriteTime    uint32
}

// NetIO is host_net_io (2006) and virt_net_io (2104).
type NetIO struct {
	BytesIn                    uint64
	PktsIn, ErrsIn, DropsIn    uint32
	BytesOut                   uint64
	PktsOut, ErrsOut, DropsOut uint32
}

// VirtNode is virt_node (2100): the hypervisor.
type VirtNode struct {
	MHz, CPUs          uint32
	Memory, MemoryFree uint64
	Domains            uint32
}

// VirtCPU is virt_cpu (2101). State is libvirt's virDomainState; CPUTime
// the domain's cumulative CPU time in ms.
type VirtCPU struct {
	State, CPUTimeMs, VCPUs uint32
}

// VirtMemory is virt_memory (2102), bytes.
type VirtMemory struct {
	Memory, MaxMemory uint64
}

// VirtDiskIO is virt_disk_io (2103): the domain's disks together.
type VirtDiskIO struct {
	Capacity, Allocation, Available uint64
	RdReq                           uint32
	RdBytes                         uint64
	WrReq                           uint32
	WrBytes                         uint64
	Errs                            uint32
}

// HostCounters is one counter sample's host structures (hsflowd): the
// physical host, or one VM. It holds no references to the datagram. A
// record a sample carries twice is taken once (the first).
type HostCounters struct {
	Exporter netip.Addr
	Agent    netip.Addr
	SubAgent uint32
	Received int64
	SourceID uint32 // sFlow data source (class<<24 | index)

	Have HostHas

	// host_descr (2000).
	HostnameLen  uint8
	Hostname     [HostnameMax]byte
	UUID         [16]byte
	MachineType  uint32
	OSName       uint32
	OSReleaseLen uint8
	OSRelease    [OSReleaseMax]byte

	// host_adapters (2001): one entry per (adapter, MAC), the first
	// HostMACsMax; MACsDropped counts the rest.
	NumMACs     uint8
	MACs        [HostMACsMax]HostAdapterMAC
	MACsDropped uint32

	// host_parent (2002): the container's data source.
	ParentClass, ParentIndex uint32

	CPU     HostCPU    // 2003
	Memory  HostMemory // 2004
	DiskIO  HostDiskIO // 2005
	NetIO   NetIO      // 2006
	Node    VirtNode   // 2100
	VCPU    VirtCPU    // 2101
	VMemory VirtMemory // 2102
	VDiskIO VirtDiskIO // 2103
	VNetIO  NetIO      // 2104
}

// HostName returns host_descr's hostname (allocates).
func (h *HostCounters) HostName() string { return string(h.Hostname[:h.HostnameLen]) }

// OSReleaseString returns host_descr's os_release (allocates).
func (h *HostCounters) OSReleaseString() string { return string(h.OSRelease[:h.OSReleaseLen]) }

// IsVM says whether the sample describes a virtual machine: it names a
// parent (host_parent) or carries per-domain records without virt_node.
func (h *HostCounters) IsVM() bool {
	if h.Have&HostHasParent != 0 {
		return true
	}
	return h.Have&HostHasVirtNode == 0 && h.Have&(HostHasVirtCPU|HostHasVirtMemory|HostHasVirtDiskIO|HostHasVirtNetIO) != 0
}

// AddHost appends zeroed host counters and returns them for filling in.
func (b *Batch) AddHost() *HostCounters {
	if len(b.Hosts) < cap(b.Hosts) {
		b.Hosts = b.Hosts[:len(b.Hosts)+1]
		h := &b.Hosts[len(b.Hosts)-1]
		*h = HostCounters{}
		return h
	}
	b.Hosts = append(b.Hosts, HostCounters{})
	return &b.Hosts[len(b.Hosts)-1]
}

// hostSample routes one counter sample's records: host structures into a
// HostCounters (added to the batch on the first one), everything else to
// addCounterRecord. Both the fast and the goflow2 path use it (goflow2
// leaves host structures raw), so they decode them identically.
type hostSample struct {
	b                 *Batch
	m                 *sflowMeta
	srcType, srcIndex uint32
	h                 *HostCounters
}

func (s *hostSample) counterRecord(c *Counters, seen *counterSeen, format uint32, rec []byte, st *sflowStats) error {
	k := hostKind(format)
	if k < 0 {
		return addCounterRecord(c, seen, format, rec, st)
	}
	if err := validateHostRecord(k, rec); err != nil {
		st.host.malformed[k]++
		return err
	}
	if s.h == nil {
		s.h = s.b.AddHost()
		s.h.Exporter, s.h.Agent, s.h.SubAgent, s.h.Received = s.m.exporter, s.m.agent, s.m.subAgent, s.m.received
		s.h.SourceID = s.srcType<<24 | s.srcIndex&0x00ffffff
	}
	bit := HostHas(1) << k
	if s.h.Have&bit != 0 {
		st.skipped[skipDuplicateRecord]++
		return nil
	}
	s.h.Have |= bit
	st.host.records[k]++
	decodeHostRecord(s.h, k, rec)
	return nil
}

// drop removes the sample's HostCounters when the sample failed part-way.
func (s *hostSample) drop() {
	if s.h != nil {
		s.b.Hosts = s.b.Hosts[:len(s.b.Hosts)-1]
		s.h = nil
	}
}

var errHostRecord = errors.New("host record")

// xdrString checks an XDR string<max> at rec[off:] and returns its length
// and the offset after it (padded to 4).
func xdrString(rec []byte, off, max int) (n, next int, err error) {
	if len(rec) < off+4 {
		return 0, 0, ErrMalformed
	}
	l := sfU32(rec[off:])
	if l > uint32(max) {
		return 0, 0, ErrMalformed
	}
	n = int(l)
	next = off + 4 + (n+3)&^3
	if next > len(rec) {
		return 0, 0, ErrTruncated
	}
	return n, next, nil
}

// validateHostRecord checks that a host record holds every field of its
// kind: fixed layouts their XDR size, host_descr's strings their bounds,
// host_adapters every adapter and MAC it announces.
func validateHostRecord(k int, rec []byte) error {
	need := 0
	switch k {
	case hkDescr:
		_, off, err := xdrString(rec, 0, HostnameMax)
		if err == nil && len(rec) < off+24 {
			err = ErrMalformed
		}
		if err == nil {
			_, _, err = xdrString(rec, off+24, OSReleaseMax)
		}
		if err != nil {
			return fmt.Errorf("%w 0:%d host_descr: %d bytes: %w", errHostRecord, sfHostDescr, len(rec), err)
		}
		return nil
	case hkAdapters:
		if err := validateAdapters(rec); err != nil {
			return fmt.Errorf("%w 0:%d host_adapters: %d bytes: %w", errHostRecord, sfHostAdapters, len(rec), err)
		}
		return nil
	case hkParent:
		need = hostParentLen
	case hkCPU:
		need = hostCPULen
	case hkMemory:
		need = hostMemoryLen
	case hkDiskIO:
		need = hostDiskIOLen
	case hkNetIO, hkVirtNetIO:
		need = netIOLen
	case hkVirtNode:
		need = virtNodeLen
	case hkVirtCPU:
		need = virtCPULen
	case hkVirtMemory:
		need = virtMemoryLen
	case hkVirtDiskIO:
		need = virtDiskIOLen
	}
	if len(rec) < need {
		return fmt.Errorf("%w %s: %d bytes, need %d: %w", errHostRecord, hostKindNames[k], len(rec), need, ErrMalformed)
	}
	return nil
}

// validateAdapters walks host_adapters: count, then per adapter ifIndex,
// MAC count and MACs (6 bytes padded to 8). Counts are checked against the
// bytes left before they are used, so a huge count costs nothing.
func validateAdapters(rec []byte) error {
	if len(rec) < 4 {
		return ErrMalformed
	}
	n := sfU32(rec)
	off := 4
	if uint64(n)*8 > uint64(len(rec)-off) {
		return ErrTruncated
	}
	for i := uint32(0); i < n; i++ {
		if len(rec) < off+8 {
			return ErrTruncated
		}
		macs := sfU32(rec[off+4:])
		off += 8
		if uint64(macs)*8 > uint64(len(rec)-off) {
			return ErrTruncated
		}
		off += int(macs) * 8
	}
	return nil
}

// decodeHostRecord fills h from a record validateHostRecord accepted.
func decodeHostRecord(h *HostCounters, k int, rec []byte) {
	switch k {
	case hkDescr:
		n := int(sfU32(rec))
		h.HostnameLen = uint8(copy(h.Hostname[:], rec[4:4+n]))
		off := 4 + (n+3)&^3
		copy(h.UUID[:], rec[off:off+16])
		h.MachineType = sfU32(rec[off+16:])
		h.OSName = sfU32(rec[off+20:])
		off += 24
		n = int(sfU32(rec[off:]))
		h.OSReleaseLen = uint8(copy(h.OSRelease[:], rec[off+4:off+4+n]))
	case hkAdapters:
		n := sfU32(rec)
		off := 4
		for i := uint32(0); i < n; i++ {
			ifIndex, macs := sfU32(rec[off:]), sfU32(rec[off+4:])
			off += 8
			for j := uint32(0); j < macs; j++ {
				if int(h.NumMACs) < HostMACsMax {
					h.MACs[h.NumMACs] = HostAdapterMAC{IfIndex: ifIndex, MAC: [6]byte(rec[off : off+6])}
					h.NumMACs++
				} else {
					h.MACsDropped++
				}
				off += 8
			}
		}
	case hkParent:
		h.ParentClass, h.ParentIndex = sfU32(rec), sfU32(rec[4:])
	case hkCPU:
		c := &h.CPU
		c.LoadOne, c.LoadFive, c.LoadFifteen = sfF32(rec[0:]), sfF32(rec[4:]), sfF32(rec[8:])
		c.ProcRun, c.ProcTotal = sfU32(rec[12:]), sfU32(rec[16:])
		c.CPUNum, c.CPUSpeedMHz, c.Uptime = sfU32(rec[20:]), sfU32(rec[24:]), sfU32(rec[28:])
		c.User, c.Nice, c.System, c.Idle = sfU32(rec[32:]), sfU32(rec[36:]), sfU32(rec[40:]), sfU32(rec[44:])
		c.WIO, c.Intr, c.SoftIntr = sfU32(rec[48:]), sfU32(rec[52:]), sfU32(rec[56:])
		c.Interrupts, c.Contexts = sfU32(rec[60:]), sfU32(rec[64:])
		if len(rec) >= hostCPULenExt {
			c.HasExt = true
			c.Steal, c.Guest, c.GuestNice = sfU32(rec[68:]), sfU32(rec[72:]), sfU32(rec[76:])
		}
	case hkMemory:
		m := &h.Memory
		m.Total, m.Free, m.Shared, m.Buffers = sfU64(rec[0:]), sfU64(rec[8:]), sfU64(rec[16:]), sfU64(rec[24:])
		m.Cached, m.SwapTotal, m.SwapFree = sfU64(rec[32:]), sfU64(rec[40:]), sfU64(rec[48:])
		m.PageIn, m.PageOut, m.SwapIn, m.SwapOut = sfU32(rec[56:]), sfU32(rec[60:]), sfU32(rec[64:]), sfU32(rec[68:])
	case hkDiskIO:
		d := &h.DiskIO
		d.Total, d.Free, d.PartMaxUsed = sfU64(rec[0:]), sfU64(rec[8:]), int32(sfU32(rec[16:]))
		d.Reads, d.BytesRead, d.ReadTime = sfU32(rec[20:]), sfU64(rec[24:]), sfU32(rec[32:])
		d.Writes, d.BytesWritten, d.WriteTime = sfU32(rec[36:]), sfU64(rec[40:]), sfU32(rec[48:])
	case hkNetIO:
		decodeNetIO(&h.NetIO, rec)
	case hkVirtNode:
		n := &h.Node
		n.MHz, n.CPUs, n.Memory, n.MemoryFree, n.Domains = sfU32(rec[0:]), sfU32(rec[4:]), sfU64(rec[8:]), sfU64(rec[16:]), sfU32(rec[24:])
	case hkVirtCPU:
		h.VCPU = VirtCPU{State: sfU32(rec[0:]), CPUTimeMs: sfU32(rec[4:]), VCPUs: sfU32(rec[8:])}
	case hkVirtMemory:
		h.VMemory = VirtMemory{Memory: sfU64(rec[0:]), MaxMemory: sfU64(rec[8:])}
	case hkVirtDiskIO:
		d := &h.VDiskIO
		d.Capacity, d.Allocation, d.Available = sfU64(rec[0:]), sfU64(rec[8:]), sfU64(rec[16:])
		d.RdReq, d.RdBytes, d.WrReq, d.WrBytes, d.Errs = sfU32(rec[24:]), sfU64(rec[28:]), sfU32(rec[36:]), sfU64(rec[40:]), sfU32(rec[48:])
	case hkVirtNetIO:
		decodeNetIO(&h.VNetIO, rec)
	}
}

func decodeNetIO(n *NetIO, rec []byte) {
	n.BytesIn, n.PktsIn, n.ErrsIn, n.DropsIn = sfU64(rec[0:]), sfU32(rec[8:]), sfU32(rec[12:]), sfU32(rec[16:])
	n.BytesOut, n.PktsOut, n.ErrsOut, n.DropsOut = sfU64(rec[20:]), sfU32(rec[28:]), sfU32(rec[32:]), sfU32(rec[36:])
}

// sfF32 reads an XDR float; NaN and infinities (no load average is one)
// read as 0, so that nothing downstream (JSON, sums) meets them.
func sfF32(b []byte) float32 {
	f := math.Float32frombits(sfU32(b))
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return 0
	}
	return f
}

// hostStats counts one datagram's host records (used, and malformed: the
// datagram is then rejected with reason malformed or truncated).
type hostStats struct {
	records   [numHostKinds]uint32
	malformed [numHostKinds]uint32
}

type hostMetrics struct {
	records   [numHostKinds]prometheus.Counter
	malformed [numHostKinds]prometheus.Counter
}

func newHostMetrics(reg prometheus.Registerer) (hostMetrics, error) {
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_decoder_host_records_total",
		Help: "sFlow host structure records (hsflowd 0:2000-2006, 0:2100-2104) decoded and used, by kind.",
	}, []string{"kind"})
	malformed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_decoder_host_malformed_total",
		Help: "sFlow host structure records shorter than their fields or with out-of-bounds lengths (the datagram is rejected), by kind.",
	}, []string{"kind"})
	var hm hostMetrics
	if reg != nil {
		var err error
		if records, err = register(reg, records); err != nil {
			return hm, err
		}
		if malformed, err = register(reg, malformed); err != nil {
			return hm, err
		}
	}
	for i := range hm.records {
		hm.records[i] = records.WithLabelValues(hostKindNames[i])
		hm.malformed[i] = malformed.WithLabelValues(hostKindNames[i])
	}
	return hm, nil
}

func (hm *hostMetrics) add(st *hostStats) {
	for i, n := range st.records {
		if n != 0 {
			hm.records[i].Add(float64(n))
		}
	}
	for i, n := range st.malformed {
		if n != 0 {
			hm.malformed[i].Add(float64(n))
		}
	}
}
