package decoder

import "net/netip"

// Source says which export protocol produced a record.
type Source uint8

const (
	SourceUnknown Source = iota
	SourceSFlow
	SourceIPFIX
	SourceNetFlow9
	// SourceProbe marks the pairs holding the vmflow probe's measurements
	// (aggregate.Latency); they never have traffic.
	SourceProbe
)

func (s Source) String() string {
	switch s {
	case SourceSFlow:
		return "sflow"
	case SourceIPFIX:
		return "ipfix"
	case SourceNetFlow9:
		return "netflow9"
	case SourceProbe:
		return "probe"
	}
	return "unknown"
}

// Tunnel is the encapsulation found around the inner packet.
type Tunnel uint8

const (
	TunnelNone Tunnel = iota
	TunnelVXLAN
	TunnelGeneve
)

func (t Tunnel) String() string {
	switch t {
	case TunnelVXLAN:
		return "vxlan"
	case TunnelGeneve:
		return "geneve"
	}
	return ""
}

// Record flags.
const (
	FlagL3        uint16 = 1 << iota // SrcIP/DstIP/Proto are set
	FlagL4                           // SrcPort/DstPort are set
	FlagTruncated                    // the sampled header ended before the parser was done
	FlagFragment                     // IP non-first fragment: no L4 header
	FlagHasTTL                       // TTL is set
)

// Record is one sampled packet (sFlow) or one flow record (IPFIX, NetFlow v9),
// flattened. It holds no pointers into the receive buffer: it may outlive the
// datagram. When the packet is tunnelled (VXLAN/Geneve), the L2/L3/L4 fields
// describe the inner packet and Outer* keep the tunnel endpoints.
type Record struct {
	Source    Source
	Exporter  netip.Addr // UDP source address of the datagram
	Agent     netip.Addr // sFlow agent address; Exporter for IPFIX/NetFlow
	SubAgent  uint32     // sFlow sub-agent id
	ObsDomain uint32     // IPFIX observation domain / NetFlow v9 source id
	Received  int64      // unix nanoseconds when the datagram arrived

	// SamplingRate is 1-in-N (1 = every packet). For sFlow it comes from
	// the sample; for IPFIX/NetFlow from configuration (OVS sends none).
	SamplingRate uint32
	InIf, OutIf  uint32 // ingress/egress interface (sFlow ifIndex, IPFIX ingressInterface/egressInterface)

	// Bytes are Ethernet frame bytes without FCS actually observed (not
	// scaled by the sampling rate): sFlow frame_length - stripped; IPFIX
	// layer2OctetDeltaCount, or octetDeltaCount + 14*packets.
	Bytes   uint64
	Packets uint64 // 1 for an sFlow sample

	DroppedPackets uint64 // IPFIX droppedPacketDeltaCount (OVS)
	DroppedBytes   uint64
	FlowStart      int64 // unix ns, 0 if unknown (IPFIX/NetFlow)
	FlowEnd        int64
	EndReason      uint8 // IPFIX flowEndReason

	SrcMAC, DstMAC [6]byte
	VLAN           uint16 // innermost VLAN id, 0 if none
	OuterVLAN      uint16 // QinQ outer VLAN id
	EtherType      uint16
	SrcIP, DstIP   netip.Addr
	Proto          uint8 // IP protocol number
	TOS            uint8
	TTL            uint8
	SrcPort        uint16
	DstPort        uint16
	TCPFlags       uint8 // FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10
	ICMPType       uint8
	ICMPCode       uint8
	Flags          uint16

	Tunnel                   Tunnel
	VNI                      uint32 // VXLAN/Geneve VNI, or sFlow/IPFIX tunnel key
	OuterSrcIP, OuterDstIP   netip.Addr
	OuterSrcMAC, OuterDstMAC [6]byte
}

// PortNameMax bounds Counters.PortName.
const PortNameMax = 64

// Counters is one interface's counters from an sFlow counter sample.
type Counters struct {
	Exporter netip.Addr
	Agent    netip.Addr
	SubAgent uint32
	Received int64
	SourceID uint32 // sFlow data source (type<<24 | index)
	// Uptime is the agent's uptime (ms) in the datagram header and
	// SampleSeq the counter sample's sequence number (per data source):
	// either going back tells an agent restart or a port reset.
	Uptime    uint32
	SampleSeq uint32

	IfIndex    uint32
	IfType     uint32
	IfSpeed    uint64
	IfStatus   uint32
	HasIf      bool // generic interface counters (0:1) present
	InOctets   uint64
	InUcast    uint64
	InMcast    uint64
	InBcast    uint64
	InDiscard  uint64
	InErrors   uint64
	InUnknown  uint64
	OutOctets  uint64
	OutUcast   uint64
	OutMcast   uint64
	OutBcast   uint64
	OutDiscard uint64
	OutErrors  uint64

	HasOFPort  bool // OVS 0:1004 OpenFlow port record
	DatapathID uint64
	OFPort     uint32

	PortNameLen uint8 // OVS port name record, if sent
	PortName    [PortNameMax]byte
}

// Name returns the port name (allocates; not for the hot path).
func (c *Counters) Name() string { return string(c.PortName[:c.PortNameLen]) }

// Header describes one decoded datagram, for per-exporter accounting.
type Header struct {
	Source    Source
	Version   uint16
	Exporter  netip.AddrPort
	Agent     netip.Addr
	SubAgent  uint32
	ObsDomain uint32
	// Sequence is the datagram sequence (sFlow, NetFlow v9 packet count)
	// or, for IPFIX, the count of data records sent before this message.
	Sequence uint32
	Uptime   uint32 // sFlow agent uptime ms / NetFlow sysUptime
	// Samples counts flow samples/flow records and counter samples in the
	// datagram; DataRecords counts IPFIX data records (what its sequence counts).
	Samples     int
	DataRecords int
	// Skipped counts records that were decoded but not usable (unknown
	// template, unsupported format), already counted in decoder metrics.
	Skipped int
}

// Batch is the reusable output of decoding one datagram. Reset keeps the
// backing arrays so steady-state decoding does not allocate.
type Batch struct {
	flow flowCache // IPFIX/NetFlow v9 fast path of this batch (flow_cache.go)

	Header   Header
	Records  []Record
	Counters []Counters
	// Measurements are the vmflow probe's records (probe_decode.go):
	// never traffic.
	Measurements []Measurement
	Hosts        []HostCounters // sFlow host structures (hsflowd), sflow_host.go
}

// Reset empties the batch, keeping its capacity.
func (b *Batch) Reset() {
	b.Header = Header{}
	b.Records = b.Records[:0]
	b.Counters = b.Counters[:0]
	b.Measurements = b.Measurements[:0]
	b.Hosts = b.Hosts[:0]
}

// AddRecord appends a zeroed record and returns it for filling in.
func (b *Batch) AddRecord() *Record {
	if len(b.Records) < cap(b.Records) {
		b.Records = b.Records[:len(b.Records)+1]
		r := &b.Records[len(b.Records)-1]
		*r = Record{}
		return r
	}
	b.Records = append(b.Records, Record{})
	return &b.Records[len(b.Records)-1]
}

// AddCounters appends zeroed counters and returns them for filling in.
func (b *Batch) AddCounters() *Counters {
	if len(b.Counters) < cap(b.Counters) {
		b.Counters = b.Counters[:len(b.Counters)+1]
		c := &b.Counters[len(b.Counters)-1]
		*c = Counters{}
		return c
	}
	b.Counters = append(b.Counters, Counters{})
	return &b.Counters[len(b.Counters)-1]
}
