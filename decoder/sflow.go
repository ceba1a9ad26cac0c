package decoder

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// sFlow v5 sample formats (enterprise 0), https://sflow.org/SFLOW-DATAGRAM5.txt
const (
	sflowFlowSample            = 1
	sflowCounterSample         = 2
	sflowExpandedFlowSample    = 3
	sflowExpandedCounterSample = 4
	sflowDropSample            = 5 // https://sflow.org/sflow_drops.txt
)

// sFlow flow record formats (enterprise 0).
const (
	sfRawHeader        = 1
	sfSampledEthernet  = 2
	sfSampledIPv4      = 3
	sfSampledIPv6      = 4
	sfExtSwitch        = 1001
	sfExtRouter        = 1002
	sfExtGateway       = 1003
	sfIPv4TunnelEgress = 1023 // https://sflow.org/sflow_tunnels.txt
	sfIPv4TunnelIngres = 1024
	sfIPv6TunnelEgress = 1025
	sfIPv6TunnelIngres = 1026
	sfVNIEgress        = 1029
	sfVNIIngress       = 1030
	sfEgressQueue      = 1036
	sfExtACL           = 1037
	sfExtFunction      = 1038
)

// sFlow counter record formats (enterprise 0).
const (
	sfIfCounters  = 1
	sfEthCounters = 2
	sfOFPort      = 1004 // OVS: OpenFlow port (datapath id, port number)
	sfPortName    = 1005 // OVS: port name (string)
)

// sampled_header header_protocol values we parse.
const (
	hdrProtoEthernet = 1
	hdrProtoIPv4     = 11
	hdrProtoIPv6     = 12
)

const (
	sampledIPv4Len = 32 // sampled_ipv4: length, protocol, src, dst, src_port, dst_port, tcp_flags, tos
	sampledIPv6Len = 56
	ifCountersLen  = 88
	ethCountersLen = 52
)

func sfU32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func sfU64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// sflowDecoder decodes sFlow v5. It holds only configuration and is safe for
// concurrent use.
type sflowDecoder struct {
	cfg SFlowConfig
}

// sflowMeta is what every record of one datagram shares.
type sflowMeta struct {
	exporter netip.Addr
	agent    netip.Addr
	subAgent uint32
	received int64
	uptime   uint32 // agent uptime (ms) of the datagram
}

// ifIndexCompact decodes the 32-bit input/output of a compact flow sample
// (format 1): the top 2 bits are the format, 0 = ifIndex in the low 30 bits;
// 1 = packet discarded, 2 = several interfaces (OVS sends 0x80000000|n for a
// flood to n ports). Anything but a single ifIndex gives 0.
func ifIndexCompact(v uint32) uint32 {
	if v>>30 == 0 {
		return v
	}
	return 0
}

// ifIndexExpanded decodes the format/value pair of an expanded flow sample.
func ifIndexExpanded(format, value uint32) uint32 {
	if format == 0 {
		return value
	}
	return 0
}

// sampledIP is a sampled_ipv4/sampled_ipv6 structure (flow records 0:3, 0:4
// and the OVS tunnel records 0:1023-1026).
type sampledIP struct {
	ok       bool
	length   uint32
	proto    uint32
	src, dst netip.Addr
	sport    uint32
	dport    uint32
	tcpFlags uint32
	tos      uint32 // tos (IPv4) or priority (IPv6)
}

func decodeSampledIPv4(rec []byte, s *sampledIP) {
	s.ok = true
	s.length = sfU32(rec[0:])
	s.proto = sfU32(rec[4:])
	s.src = netip.AddrFrom4([4]byte(rec[8:12]))
	s.dst = netip.AddrFrom4([4]byte(rec[12:16]))
	s.sport = sfU32(rec[16:])
	s.dport = sfU32(rec[20:])
	s.tcpFlags = sfU32(rec[24:])
	s.tos = sfU32(rec[28:])
}

func decodeSampledIPv6(rec []byte, s *sampledIP) {
	s.ok = true
	s.length = sfU32(rec[0:])
	s.proto = sfU32(rec[4:])
	s.src = netip.AddrFrom16([16]byte(rec[8:24]))
	s.dst = netip.AddrFrom16([16]byte(rec[24:40]))
	s.sport = sfU32(rec[40:])
	s.dport = sfU32(rec[44:])
	s.tcpFlags = sfU32(rec[48:])
	s.tos = sfU32(rec[52:])
}

// flowAcc gathers the records of one flow sample; emit turns them into one
// Record. Both the fast path and the goflow2 path fill it through the same
// setters, so they map records identically. When a sample carries the same
// record format twice, the first one wins (the second is counted as skipped).
type flowAcc struct {
	hasHdr   bool
	hdrProto uint32
	frameLen uint32
	stripped uint32
	hdr      []byte // aliases the datagram; only read during emit

	ip4, ip6 sampledIP

	hasSwitch bool
	srcVLAN   uint32

	tunEgress, tunIngress sampledIP // OVS 0:1023/1025, 0:1024/1026

	hasVNIEgress, hasVNIIngress bool
	vniEgress, vniIngress       uint32
}

func (a *flowAcc) setHeader(proto, frameLen, stripped uint32, hdr []byte, st *sflowStats) {
	switch proto {
	case hdrProtoEthernet, hdrProtoIPv4, hdrProtoIPv6:
	default:
		st.skipped[skipHeaderProtocol]++
		return
	}
	if a.hasHdr {
		st.skipped[skipDuplicateRecord]++
		return
	}
	st.records[recRawHeader]++
	a.hasHdr = true
	a.hdrProto, a.frameLen, a.stripped, a.hdr = proto, frameLen, stripped, hdr
}

func (a *flowAcc) setSampledIP(dst *sampledIP, src *sampledIP, kind int, st *sflowStats) {
	if dst.ok {
		st.skipped[skipDuplicateRecord]++
		return
	}
	st.records[kind]++
	*dst = *src
}

func (a *flowAcc) setSwitch(srcVLAN uint32, st *sflowStats) {
	if a.hasSwitch {
		st.skipped[skipDuplicateRecord]++
		return
	}
	st.records[recExtSwitch]++
	a.hasSwitch = true
	a.srcVLAN = srcVLAN
}

func (a *flowAcc) setVNI(has *bool, dst *uint32, vni uint32, kind int, st *sflowStats) {
	if *has {
		st.skipped[skipDuplicateRecord]++
		return
	}
	st.records[kind]++
	*has = true
	*dst = vni
}

// addRecord validates and applies one flow record given as raw bytes (its
// length already checked against the sample). The fast path uses it for
// every record; the goflow2 path for the records goflow2 leaves raw.
func (a *flowAcc) addRecord(format uint32, rec []byte, st *sflowStats) error {
	if err := validateFlowRecord(format, rec); err != nil {
		return err
	}
	var s sampledIP
	switch format {
	case sfRawHeader:
		hlen := sfU32(rec[12:])
		a.setHeader(sfU32(rec[0:]), sfU32(rec[4:]), sfU32(rec[8:]), rec[16:16+hlen], st)
	case sfSampledIPv4:
		decodeSampledIPv4(rec, &s)
		a.setSampledIP(&a.ip4, &s, recSampledIPv4, st)
	case sfSampledIPv6:
		decodeSampledIPv6(rec, &s)
		a.setSampledIP(&a.ip6, &s, recSampledIPv6, st)
	case sfExtSwitch:
		a.setSwitch(sfU32(rec[0:]), st)
	case sfIPv4TunnelEgress:
		decodeSampledIPv4(rec, &s)
		a.setSampledIP(&a.tunEgress, &s, recTunnelEgress, st)
	case sfIPv4TunnelIngres:
		decodeSampledIPv4(rec, &s)
		a.setSampledIP(&a.tunIngress, &s, recTunnelIngress, st)
	case sfIPv6TunnelEgress:
		decodeSampledIPv6(rec, &s)
		a.setSampledIP(&a.tunEgress, &s, recTunnelEgress, st)
	case sfIPv6TunnelIngres:
		decodeSampledIPv6(rec, &s)
		a.setSampledIP(&a.tunIngress, &s, recTunnelIngress, st)
	case sfVNIEgress:
		a.setVNI(&a.hasVNIEgress, &a.vniEgress, sfU32(rec[0:]), recVNIEgress, st)
	case sfVNIIngress:
		a.setVNI(&a.hasVNIIngress, &a.vniIngress, sfU32(rec[0:]), recVNIIngress, st)
	default:
		st.skipped[skipFlowRecord]++
	}
	return nil
}

// validateFlowRecord checks that a flow record holds the fields its format
// needs. For the formats goflow2 decodes it is at least as strict as goflow2
// (so the fast path never accepts what goflow2 rejects); sampled_ethernet is
// checked with its XDR size (24: the MACs are padded to 8 bytes) where
// goflow2 reads 20 unpadded bytes.
func validateFlowRecord(format uint32, rec []byte) error {
	need := 0
	switch format {
	case sfRawHeader:
		if len(rec) < 16 {
			return fmt.Errorf("raw packet header: %d bytes: %w", len(rec), ErrMalformed)
		}
		if hlen := sfU32(rec[12:]); uint64(hlen) > uint64(len(rec)-16) {
			return fmt.Errorf("raw packet header: header_length %d in %d bytes: %w", hlen, len(rec)-16, ErrTruncated)
		}
		return nil
	case sfSampledEthernet:
		need = 24
	case sfSampledIPv4, sfIPv4TunnelEgress, sfIPv4TunnelIngres:
		need = sampledIPv4Len
	case sfSampledIPv6, sfIPv6TunnelEgress, sfIPv6TunnelIngres:
		need = sampledIPv6Len
	case sfExtSwitch:
		need = 16
	case sfVNIEgress, sfVNIIngress, sfEgressQueue:
		need = 4
	case sfExtRouter:
		return validateRouter(rec)
	case sfExtGateway:
		return validateGateway(rec)
	case sfExtACL: // number, string name, direction (goflow2: string without padding)
		if len(rec) < 8 || uint64(sfU32(rec[4:]))+12 > uint64(len(rec)) {
			return fmt.Errorf("extended_acl: %w", ErrMalformed)
		}
		return nil
	case sfExtFunction: // string symbol
		if len(rec) < 4 || uint64(sfU32(rec[0:]))+4 > uint64(len(rec)) {
			return fmt.Errorf("extended_function: %w", ErrMalformed)
		}
		return nil
	default:
		return nil
	}
	if len(rec) < need {
		return fmt.Errorf("flow record 0:%d: %d bytes, need %d: %w", format, len(rec), need, ErrMalformed)
	}
	return nil
}

// readAddr reads an sFlow address (type 1 = IPv4, 2 = IPv6) at rec[off:].
func readAddr(rec []byte, off int) (int, bool) {
	if len(rec) < off+4 {
		return 0, false
	}
	var n int
	switch sfU32(rec[off:]) {
	case 1:
		n = 4
	case 2:
		n = 16
	default:
		return 0, false
	}
	if len(rec) < off+4+n {
		return 0, false
	}
	return off + 4 + n, true
}

func validateRouter(rec []byte) error {
	off, ok := readAddr(rec, 0)
	if !ok || len(rec) < off+8 {
		return fmt.Errorf("extended_router: %w", ErrMalformed)
	}
	return nil
}

// validateGateway follows goflow2's reading of extended_gateway (one AS path
// segment, path and communities capped at 1000 entries) so that the fast path
// rejects whatever goflow2 rejects.
func validateGateway(rec []byte) error {
	bad := fmt.Errorf("extended_gateway: %w", ErrMalformed)
	off, ok := readAddr(rec, 0)
	if !ok || len(rec) < off+16 {
		return bad
	}
	dests := sfU32(rec[off+12:])
	off += 16
	if dests != 0 {
		if len(rec) < off+8 {
			return bad
		}
		n := sfU32(rec[off+4:])
		off += 8
		if n > 1000 || int(n) > len(rec)-off-4 || len(rec) < off+4*int(n) {
			return bad
		}
		off += 4 * int(n)
	}
	if len(rec) < off+4 {
		return bad
	}
	n := sfU32(rec[off:])
	off += 4
	if n > 1000 || int(n) > len(rec)-off-4 || len(rec) < off+4*int(n) {
		return bad
	}
	off += 4 * int(n)
	if len(rec) < off+4 {
		return bad
	}
	return nil
}

// emit fills r (already holding the per-sample fields) from the gathered
// records. It returns false when the sample carried nothing that describes a
// packet (no raw header of a known protocol, no sampled IPv4/IPv6).
//
//   - A raw header wins over sampled IPv4/IPv6. Bytes = frame_length -
//     stripped (OVS reports frame_length with the 4-byte FCS and stripped=4),
//     plus 14 when the header starts at IP.
//   - Sampled IPv4/IPv6 only: Bytes = IP length + 14.
//   - Extended switch gives VLAN when the header has no tag.
//   - Tunnel records (ingress preferred over egress) give OuterSrcIP/OuterDstIP
//     and, from the tunnel's UDP port, Tunnel, unless the header itself was a
//     VXLAN/Geneve packet; VNI records (ingress preferred) give VNI unless the
//     header did.
func (a *flowAcc) emit(r *Record) bool {
	switch {
	case a.hasHdr:
		var l3 uint64
		switch a.hdrProto {
		case hdrProtoEthernet:
			ParseHeader(a.hdr, r)
		case hdrProtoIPv4:
			parseIPHeader(a.hdr, etherTypeIPv4, r)
			l3 = 14
		case hdrProtoIPv6:
			parseIPHeader(a.hdr, etherTypeIPv6, r)
			l3 = 14
		}
		if a.frameLen > a.stripped {
			r.Bytes = uint64(a.frameLen-a.stripped) + l3
		}
	case a.ip4.ok:
		fillSampledIP(r, &a.ip4, etherTypeIPv4)
	case a.ip6.ok:
		fillSampledIP(r, &a.ip6, etherTypeIPv6)
	default:
		return false
	}
	if r.VLAN == 0 && a.hasSwitch && a.srcVLAN > 0 && a.srcVLAN < 4095 {
		r.VLAN = uint16(a.srcVLAN)
	}
	if r.Tunnel == TunnelNone {
		t := &a.tunIngress
		if !t.ok {
			t = &a.tunEgress
		}
		if t.ok {
			r.OuterSrcIP, r.OuterDstIP = t.src, t.dst
			if t.proto == protoUDP {
				r.Tunnel = tunnelOfPort(t.dport)
			}
		}
	}
	if r.VNI == 0 {
		if a.hasVNIIngress {
			r.VNI = a.vniIngress
		} else if a.hasVNIEgress {
			r.VNI = a.vniEgress
		}
	}
	return true
}

// tunnelOfPort names the tunnel from the UDP destination port of an OVS
// tunnel record. OVS 3.1 writes the tunnel's ports into these records
// byte-swapped (network-order values stored as host-order on little-endian
// hosts: 4789 arrives as 0xb512 = 46354; see
// decoder/testdata/sflow-ovs-vxlan-*.pcapng), so both orders are accepted.
func tunnelOfPort(p uint32) Tunnel {
	switch p {
	case portVXLAN, swap16(portVXLAN):
		return TunnelVXLAN
	case portGeneve, swap16(portGeneve):
		return TunnelGeneve
	}
	return TunnelNone
}

func swap16(v uint32) uint32 { return (v&0xff)<<8 | (v>>8)&0xff }

func fillSampledIP(r *Record, s *sampledIP, et uint16) {
	r.EtherType = et
	r.SrcIP, r.DstIP = s.src, s.dst
	r.Proto = uint8(s.proto)
	r.TOS = uint8(s.tos)
	r.Flags |= FlagL3
	r.Bytes = uint64(s.length) + 14
	switch s.proto {
	case protoTCP, protoUDP, protoSCTP:
		r.SrcPort, r.DstPort = uint16(s.sport), uint16(s.dport)
		r.Flags |= FlagL4
		if s.proto == protoTCP {
			r.TCPFlags = uint8(s.tcpFlags)
		}
	}
}

// startFlowRecord appends the Record of one flow sample with the fields every
// sFlow record shares.
func startFlowRecord(b *Batch, m *sflowMeta, rate, inIf, outIf uint32) *Record {
	r := b.AddRecord()
	r.Source = SourceSFlow
	r.Exporter = m.exporter
	r.Agent = m.agent
	r.SubAgent = m.subAgent
	r.Received = m.received
	r.SamplingRate = rate
	r.InIf, r.OutIf = inIf, outIf
	r.Packets = 1
	return r
}

// finishFlowRecord emits the accumulated records into the last Record of b,
// or removes it when the sample described no packet.
func finishFlowRecord(b *Batch, a *flowAcc, st *sflowStats) {
	if !a.emit(&b.Records[len(b.Records)-1]) {
		b.Records = b.Records[:len(b.Records)-1]
		st.skipped[skipNoPacketRecord]++
	}
}

func startCounters(b *Batch, m *sflowMeta, seq, srcType, srcIndex uint32) *Counters {
	c := b.AddCounters()
	c.Exporter = m.exporter
	c.Agent = m.agent
	c.SubAgent = m.subAgent
	c.Received = m.received
	c.Uptime = m.uptime
	c.SampleSeq = seq
	c.SourceID = srcType<<24 | srcIndex&0x00ffffff
	if srcType == 0 {
		c.IfIndex = srcIndex
	}
	return c
}

// ifCounters is the generic interface counter record (0:1), in the order of
// the wire format.
type ifCounters struct {
	index, typ             uint32
	speed                  uint64
	direction, status      uint32
	inOctets               uint64
	inUcast, inMcast       uint32
	inBcast, inDiscard     uint32
	inErrors, inUnknown    uint32
	outOctets              uint64
	outUcast, outMcast     uint32
	outBcast, outDiscard   uint32
	outErrors, promiscuous uint32
}

func (c *Counters) setIf(v *ifCounters) {
	c.HasIf = true
	c.IfIndex = v.index
	c.IfType = v.typ
	c.IfSpeed = v.speed
	c.IfStatus = v.status
	c.InOctets = v.inOctets
	c.InUcast = uint64(v.inUcast)
	c.InMcast = uint64(v.inMcast)
	c.InBcast = uint64(v.inBcast)
	c.InDiscard = uint64(v.inDiscard)
	c.InErrors = uint64(v.inErrors)
	c.InUnknown = uint64(v.inUnknown)
	c.OutOctets = v.outOctets
	c.OutUcast = uint64(v.outUcast)
	c.OutMcast = uint64(v.outMcast)
	c.OutBcast = uint64(v.outBcast)
	c.OutDiscard = uint64(v.outDiscard)
	c.OutErrors = uint64(v.outErrors)
}

// counterSeen tracks which counter records one sample carried (first wins).
type counterSeen uint8

const (
	seenIf counterSeen = 1 << iota
	seenEth
	seenOFPort
	seenPortName
)

func (s *counterSeen) first(bit counterSeen, st *sflowStats) bool {
	if *s&bit != 0 {
		st.skipped[skipDuplicateRecord]++
		return false
	}
	*s |= bit
	return true
}

// addCounterRecord validates and applies one counter record given as raw
// bytes. goflow2 decodes 0:1 and 0:2 itself; everything else comes here raw
// on both paths.
func addCounterRecord(c *Counters, seen *counterSeen, format uint32, rec []byte, st *sflowStats) error {
	switch format {
	case sfIfCounters:
		if len(rec) < ifCountersLen {
			return fmt.Errorf("if_counters: %d bytes, need %d: %w", len(rec), ifCountersLen, ErrMalformed)
		}
		if !seen.first(seenIf, st) {
			return nil
		}
		st.records[recIfCounters]++
		v := ifCounters{
			index: sfU32(rec[0:]), typ: sfU32(rec[4:]), speed: sfU64(rec[8:]),
			direction: sfU32(rec[16:]), status: sfU32(rec[20:]), inOctets: sfU64(rec[24:]),
			inUcast: sfU32(rec[32:]), inMcast: sfU32(rec[36:]), inBcast: sfU32(rec[40:]),
			inDiscard: sfU32(rec[44:]), inErrors: sfU32(rec[48:]), inUnknown: sfU32(rec[52:]),
			outOctets: sfU64(rec[56:]), outUcast: sfU32(rec[64:]), outMcast: sfU32(rec[68:]),
			outBcast: sfU32(rec[72:]), outDiscard: sfU32(rec[76:]), outErrors: sfU32(rec[80:]),
			promiscuous: sfU32(rec[84:]),
		}
		c.setIf(&v)
	case sfEthCounters:
		if len(rec) < ethCountersLen {
			return fmt.Errorf("ethernet_counters: %d bytes, need %d: %w", len(rec), ethCountersLen, ErrMalformed)
		}
		if seen.first(seenEth, st) {
			st.records[recEthCounters]++
		}
	case sfOFPort:
		if len(rec) < 12 {
			return fmt.Errorf("openflow port 0:1004: %d bytes, need 12: %w", len(rec), ErrMalformed)
		}
		if !seen.first(seenOFPort, st) {
			return nil
		}
		st.records[recOFPort]++
		c.HasOFPort = true
		c.DatapathID = sfU64(rec[0:])
		c.OFPort = sfU32(rec[8:])
	case sfPortName:
		if len(rec) < 4 {
			return fmt.Errorf("port name 0:1005: %d bytes: %w", len(rec), ErrMalformed)
		}
		n := sfU32(rec[0:])
		if uint64(n) > uint64(len(rec)-4) {
			return fmt.Errorf("port name 0:1005: length %d in %d bytes: %w", n, len(rec)-4, ErrTruncated)
		}
		if !seen.first(seenPortName, st) {
			return nil
		}
		st.records[recPortName]++
		c.PortNameLen = uint8(copy(c.PortName[:], rec[4:4+n]))
	default:
		st.skipped[skipCounterRecord]++
	}
	return nil
}

// decodeFast decodes an sFlow v5 datagram straight from data into b without
// allocating (errors excepted). It is stricter than goflow2: every length
// must fit, sample and record lengths must be multiples of 4, announced
// sample and record counts must be present.
func (d *sflowDecoder) decodeFast(from netip.AddrPort, data []byte, received int64, b *Batch, st *sflowStats) error {
	b.Header.Source = SourceSFlow
	b.Header.Exporter = from
	p := data
	if len(p) < 8 {
		return fmt.Errorf("datagram header: %d bytes: %w", len(p), ErrTruncated)
	}
	if v := sfU32(p); v != 5 {
		return fmt.Errorf("version %d: %w", v, ErrBadVersion)
	}
	var m sflowMeta
	m.exporter = from.Addr()
	m.received = received
	switch t := sfU32(p[4:]); t {
	case 1:
		if len(p) < 12 {
			return fmt.Errorf("agent address: %w", ErrTruncated)
		}
		m.agent = netip.AddrFrom4([4]byte(p[8:12]))
		p = p[12:]
	case 2:
		if len(p) < 24 {
			return fmt.Errorf("agent address: %w", ErrTruncated)
		}
		m.agent = netip.AddrFrom16([16]byte(p[8:24]))
		p = p[24:]
	default:
		return fmt.Errorf("agent address type %d: %w", t, ErrBadAddress)
	}
	if len(p) < 16 {
		return fmt.Errorf("datagram header: %w", ErrTruncated)
	}
	m.subAgent = sfU32(p[0:])
	n := sfU32(p[12:])
	b.Header.Version = 5
	b.Header.Agent = m.agent
	b.Header.SubAgent = m.subAgent
	b.Header.Sequence = sfU32(p[4:])
	b.Header.Uptime = sfU32(p[8:])
	m.uptime = b.Header.Uptime
	p = p[16:]
	if n > uint32(d.cfg.MaxSamples) {
		return fmt.Errorf("%d samples (max %d): %w", n, d.cfg.MaxSamples, ErrTooManySamples)
	}
	b.Header.Samples = int(n)
	for i := 0; i < int(n); i++ {
		if len(p) < 8 {
			return fmt.Errorf("sample %d of %d: header: %w", i, n, ErrTruncated)
		}
		format, slen := sfU32(p), sfU32(p[4:])
		p = p[8:]
		if uint64(slen) > uint64(len(p)) {
			return fmt.Errorf("sample %d (format %d): length %d, %d bytes left: %w", i, format, slen, len(p), ErrTruncated)
		}
		if slen%4 != 0 {
			return fmt.Errorf("sample %d (format %d): length %d: %w", i, format, slen, ErrBadLength)
		}
		body := p[:slen]
		p = p[slen:]
		var err error
		switch format {
		case sflowFlowSample, sflowExpandedFlowSample:
			err = d.fastFlowSample(format == sflowExpandedFlowSample, body, &m, b, st)
		case sflowCounterSample, sflowExpandedCounterSample:
			err = d.fastCounterSample(format == sflowExpandedCounterSample, body, &m, b, st)
		case sflowDropSample:
			err = d.fastDropSample(body, st)
		default:
			err = ErrUnknownSampleFormat
		}
		if err != nil {
			return fmt.Errorf("sample %d (format %d:%d): %w", i, format>>12, format&0xfff, err)
		}
	}
	return nil
}

// nextRecord splits the next record off a sample body.
func nextRecord(body []byte) (format uint32, rec, rest []byte, err error) {
	if len(body) < 8 {
		return 0, nil, nil, fmt.Errorf("record header: %w", ErrTruncated)
	}
	format, rlen := sfU32(body), sfU32(body[4:])
	body = body[8:]
	if uint64(rlen) > uint64(len(body)) {
		return format, nil, nil, fmt.Errorf("record 0:%d: length %d, %d bytes left: %w", format, rlen, len(body), ErrTruncated)
	}
	if rlen%4 != 0 {
		return format, nil, nil, fmt.Errorf("record 0:%d: length %d: %w", format, rlen, ErrBadLength)
	}
	return format, body[:rlen], body[rlen:], nil
}

func (d *sflowDecoder) fastFlowSample(expanded bool, body []byte, m *sflowMeta, b *Batch, st *sflowStats) error {
	var rate, inIf, outIf, n uint32
	if expanded {
		st.samples[sampleExpandedFlow]++
		// sequence, source type, source index, rate, pool, drops,
		// input format, input value, output format, output value, count
		if len(body) < 44 {
			return fmt.Errorf("expanded flow sample: %d bytes: %w", len(body), ErrTruncated)
		}
		rate = sfU32(body[12:])
		inIf = ifIndexExpanded(sfU32(body[24:]), sfU32(body[28:]))
		outIf = ifIndexExpanded(sfU32(body[32:]), sfU32(body[36:]))
		n = sfU32(body[40:])
		body = body[44:]
	} else {
		st.samples[sampleFlow]++
		// sequence, source id, rate, pool, drops, input, output, count
		if len(body) < 32 {
			return fmt.Errorf("flow sample: %d bytes: %w", len(body), ErrTruncated)
		}
		rate = sfU32(body[8:])
		inIf = ifIndexCompact(sfU32(body[20:]))
		outIf = ifIndexCompact(sfU32(body[24:]))
		n = sfU32(body[28:])
		body = body[32:]
	}
	if n > uint32(d.cfg.MaxRecords) {
		return fmt.Errorf("%d records (max %d): %w", n, d.cfg.MaxRecords, ErrTooManyRecords)
	}
	var a flowAcc
	for j := 0; j < int(n); j++ {
		format, rec, rest, err := nextRecord(body)
		if err != nil {
			return fmt.Errorf("record %d: %w", j, err)
		}
		body = rest
		if err := a.addRecord(format, rec, st); err != nil {
			return fmt.Errorf("record %d: %w", j, err)
		}
	}
	startFlowRecord(b, m, rate, inIf, outIf)
	finishFlowRecord(b, &a, st)
	return nil
}

func (d *sflowDecoder) fastCounterSample(expanded bool, body []byte, m *sflowMeta, b *Batch, st *sflowStats) error {
	var srcType, srcIndex, n, seq uint32
	if len(body) >= 4 {
		seq = sfU32(body)
	}
	if expanded {
		st.samples[sampleExpandedCounter]++
		if len(body) < 16 {
			return fmt.Errorf("expanded counter sample: %d bytes: %w", len(body), ErrTruncated)
		}
		srcType, srcIndex, n = sfU32(body[4:]), sfU32(body[8:]), sfU32(body[12:])
		body = body[16:]
	} else {
		st.samples[sampleCounter]++
		if len(body) < 12 {
			return fmt.Errorf("counter sample: %d bytes: %w", len(body), ErrTruncated)
		}
		id := sfU32(body[4:])
		srcType, srcIndex, n = id>>24, id&0x00ffffff, sfU32(body[8:])
		body = body[12:]
	}
	if n > uint32(d.cfg.MaxRecords) {
		return fmt.Errorf("%d records (max %d): %w", n, d.cfg.MaxRecords, ErrTooManyRecords)
	}
	c := startCounters(b, m, seq, srcType, srcIndex)
	var seen counterSeen
	hs := hostSample{b: b, m: m, srcType: srcType, srcIndex: srcIndex} // sflow_host.go
	for j := 0; j < int(n); j++ {
		format, rec, rest, err := nextRecord(body)
		if err == nil {
			err = hs.counterRecord(c, &seen, format, rec, st)
		}
		if err != nil {
			hs.drop()
			dropLastCounters(b)
			return fmt.Errorf("record %d: %w", j, err)
		}
		body = rest
	}
	return nil
}

// dropLastCounters removes the Counters of a sample that failed part-way.
func dropLastCounters(b *Batch) { b.Counters = b.Counters[:len(b.Counters)-1] }

// fastDropSample validates a drop sample (sequence, source type, source
// index, drops, input, output, reason, count, records) and skips it.
func (d *sflowDecoder) fastDropSample(body []byte, st *sflowStats) error {
	st.samples[sampleDrop]++
	if len(body) < 32 {
		return fmt.Errorf("drop sample: %d bytes: %w", len(body), ErrTruncated)
	}
	n := sfU32(body[28:])
	body = body[32:]
	if n > uint32(d.cfg.MaxRecords) {
		return fmt.Errorf("%d records (max %d): %w", n, d.cfg.MaxRecords, ErrTooManyRecords)
	}
	for j := 0; j < int(n); j++ {
		format, rec, rest, err := nextRecord(body)
		if err != nil {
			return fmt.Errorf("record %d: %w", j, err)
		}
		body = rest
		if err := validateFlowRecord(format, rec); err != nil {
			return fmt.Errorf("record %d: %w", j, err)
		}
	}
	st.skipped[skipDropSample]++
	return nil
}
