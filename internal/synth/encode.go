package synth

import "encoding/binary"

// Encoders of sFlow v5 (sflow.org/sflow_version_5.txt) and IPFIX (RFC 7011)
// as Open vSwitch sends them, writing in place into preallocated buffers.

var be = binary.BigEndian

func pad4(n int) int { return (n + 3) &^ 3 }

// sFlow datagram header with an IPv4 agent: version, address type, agent,
// sub-agent, sequence, uptime, sample count.
const sfHeaderLen = 28

func sfOpen(b []byte, agent [4]byte) []byte {
	b = b[:sfHeaderLen]
	be.PutUint32(b[0:], 5)
	be.PutUint32(b[4:], 1)
	copy(b[8:12], agent[:])
	be.PutUint32(b[12:], 0) // sub-agent: OVS sends 0
	return b
}

func sfClose(b []byte, seq, uptime, samples uint32) {
	be.PutUint32(b[16:], seq)
	be.PutUint32(b[20:], uptime)
	be.PutUint32(b[24:], samples)
}

// flowSampleLen is the size of a flow sample with an h-byte header: the
// sample header (8 + 32), the raw header record (8 + 16 + pad4(h)) and the
// extended switch record (8 + 16).
func flowSampleLen(h int) int { return 40 + 24 + pad4(h) + 24 }

// pkt is one packet to sample.
type pkt struct {
	srcMAC, dstMAC [6]byte
	srcIP, dstIP   [4]byte
	size           int // Ethernet frame bytes without FCS
	proto          uint8
	tos            uint8
	ttl            uint8
	flags          uint8 // TCP
	sport, dport   uint16
	icmpType       uint8
	icmpCode       uint8
	// ICMP errors quote the packet that caused them
	innerSrc, innerDst     [4]byte
	innerProto             uint8
	innerSport, innerDport uint16
}

// putFlowSample writes a compact flow sample (format 0:1) at b, which must
// hold flowSampleLen(min(p.size, hdrMax)) bytes, and returns its length.
func putFlowSample(b []byte, seq, sourceID, rate, pool, in, out uint32, p *pkt, hdrMax int) int {
	h := min(p.size, hdrMax)
	ph := pad4(h)
	n := flowSampleLen(h)
	be.PutUint32(b[0:], 1)
	be.PutUint32(b[4:], uint32(n-8))
	be.PutUint32(b[8:], seq)
	be.PutUint32(b[12:], sourceID)
	be.PutUint32(b[16:], rate)
	be.PutUint32(b[20:], pool)
	be.PutUint32(b[24:], 0) // drops
	be.PutUint32(b[28:], in)
	be.PutUint32(b[32:], out)
	be.PutUint32(b[36:], 2)
	// raw packet header (0:1)
	be.PutUint32(b[40:], 1)
	be.PutUint32(b[44:], uint32(16+ph))
	be.PutUint32(b[48:], 1) // ethernet
	be.PutUint32(b[52:], uint32(p.size+4))
	be.PutUint32(b[56:], 4) // the FCS, stripped
	be.PutUint32(b[60:], uint32(h))
	hdr := b[64 : 64+ph]
	putPacket(hdr[:h], p)
	clear(hdr[h:])
	// extended switch (0:1001): no VLANs
	x := b[64+ph:]
	be.PutUint32(x[0:], 1001)
	be.PutUint32(x[4:], 16)
	clear(x[8:24])
	return n
}

// putPacket writes the first len(b) bytes of the frame p: Ethernet, IPv4
// (with its checksum), TCP/UDP/ICMP; payload bytes are zero.
func putPacket(b []byte, p *pkt) {
	var full [128]byte // header part, then cut to len(b)
	f := full[:]
	copy(f[0:6], p.dstMAC[:])
	copy(f[6:12], p.srcMAC[:])
	be.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	ip[1] = p.tos
	be.PutUint16(ip[2:], uint16(max(p.size-14, 20)))
	be.PutUint16(ip[4:], uint16(p.sport^p.dport)) // id
	be.PutUint16(ip[6:], 0x4000)                  // DF
	ip[8] = p.ttl
	ip[9] = p.proto
	copy(ip[12:16], p.srcIP[:])
	copy(ip[16:20], p.dstIP[:])
	be.PutUint16(ip[10:], ipChecksum(ip))
	l4 := f[34:]
	end := 34
	switch p.proto {
	case 6:
		be.PutUint16(l4[0:], p.sport)
		be.PutUint16(l4[2:], p.dport)
		be.PutUint32(l4[4:], uint32(p.sport)<<16|uint32(p.dport))
		if p.flags&0x10 != 0 {
			be.PutUint32(l4[8:], 1)
		}
		l4[12] = 5 << 4
		l4[13] = p.flags
		be.PutUint16(l4[14:], 64240)
		end += 20
	case 17:
		be.PutUint16(l4[0:], p.sport)
		be.PutUint16(l4[2:], p.dport)
		be.PutUint16(l4[4:], uint16(max(p.size-34, 8)))
		end += 8
	case 1:
		l4[0], l4[1] = p.icmpType, p.icmpCode
		// the quoted IPv4 header and 8 bytes of its UDP/TCP header
		q := l4[8:28]
		q[0] = 0x45
		be.PutUint16(q[2:], 28)
		q[8] = 64
		q[9] = p.innerProto
		copy(q[12:16], p.innerSrc[:])
		copy(q[16:20], p.innerDst[:])
		be.PutUint16(q[10:], ipChecksum(q))
		be.PutUint16(l4[28:], p.innerSport)
		be.PutUint16(l4[30:], p.innerDport)
		be.PutUint16(l4[32:], 8)
		end += 36
	}
	n := copy(b, f[:min(end, len(f))])
	clear(b[n:])
}

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i == 10 {
			continue
		}
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// portCounters is one VM port's counters.
type portCounters struct {
	ifIndex                uint32
	inOctets, outOctets    uint64
	inPkts, outPkts        uint64
	inDiscards, inErrors   uint32
	outDiscards, outErrors uint32
	dpid                   uint64
	ofPort                 uint32
	name                   string
}

func counterSampleLen(name string) int { return 20 + 96 + 60 + 20 + 12 + pad4(len(name)) }

// putCounterSample writes a counter sample (0:2) with generic interface
// (0:1), Ethernet (0:2), OVS OpenFlow port (0:1004) and port name (0:1005)
// records, like OVS's per-port polling.
func putCounterSample(b []byte, seq uint32, c *portCounters) int {
	n := counterSampleLen(c.name)
	be.PutUint32(b[0:], 2)
	be.PutUint32(b[4:], uint32(n-8))
	be.PutUint32(b[8:], seq)
	be.PutUint32(b[12:], c.ifIndex)
	be.PutUint32(b[16:], 4)
	g := b[20:]
	be.PutUint32(g[0:], 1)
	be.PutUint32(g[4:], 88)
	g = g[8:96]
	be.PutUint32(g[0:], c.ifIndex)
	be.PutUint32(g[4:], 6) // ethernetCsmacd
	be.PutUint64(g[8:], 10_000_000_000)
	be.PutUint32(g[16:], 1) // full duplex
	be.PutUint32(g[20:], 3) // admin up, oper up
	be.PutUint64(g[24:], c.inOctets)
	be.PutUint32(g[32:], uint32(c.inPkts))
	be.PutUint32(g[36:], 0)
	be.PutUint32(g[40:], uint32(c.inPkts/5000)) // a little broadcast (ARP)
	be.PutUint32(g[44:], c.inDiscards)
	be.PutUint32(g[48:], c.inErrors)
	be.PutUint32(g[52:], 0)
	be.PutUint64(g[56:], c.outOctets)
	be.PutUint32(g[64:], uint32(c.outPkts))
	be.PutUint32(g[68:], 0)
	be.PutUint32(g[72:], uint32(c.outPkts/5000))
	be.PutUint32(g[76:], c.outDiscards)
	be.PutUint32(g[80:], c.outErrors)
	be.PutUint32(g[84:], 0)
	e := b[116:]
	be.PutUint32(e[0:], 2)
	be.PutUint32(e[4:], 52)
	clear(e[8:60])
	be.PutUint32(e[8+4:], c.inErrors/2) // dot3StatsFCSErrors
	o := b[176:]
	be.PutUint32(o[0:], 1004)
	be.PutUint32(o[4:], 12)
	be.PutUint64(o[8:], c.dpid)
	be.PutUint32(o[16:], c.ofPort)
	pn := b[196:]
	be.PutUint32(pn[0:], 1005)
	be.PutUint32(pn[4:], uint32(4+pad4(len(c.name))))
	be.PutUint32(pn[8:], uint32(len(c.name)))
	k := copy(pn[12:], c.name)
	clear(pn[12+k : 12+pad4(len(c.name))])
	return n
}

// IPFIX.

const (
	ipfixHeaderLen = 16
	tmplL4         = 1024 // IPv4 with ports (TCP, UDP)
	tmplICMP       = 1025 // IPv4 ICMP
)

// ipfixField is an information element and its length.
type ipfixField struct{ ie, length uint16 }

// The templates: the fields OVS exports for IPv4 flows (observation point,
// direction, MACs, EtherType, interfaces, addresses, protocol, ToS, TTL,
// ports or ICMP type/code, TCP flags, start/end as microseconds before the
// export, end reason, packet and octet deltas).
var (
	tmplL4Fields = []ipfixField{{138, 4}, {61, 1}, {56, 6}, {80, 6}, {256, 2}, {10, 4}, {14, 4},
		{8, 4}, {12, 4}, {4, 1}, {5, 1}, {192, 1}, {7, 2}, {11, 2}, {6, 2},
		{158, 4}, {159, 4}, {136, 1}, {2, 8}, {352, 8}, {1, 8}}
	tmplICMPFields = []ipfixField{{138, 4}, {61, 1}, {56, 6}, {80, 6}, {256, 2}, {10, 4}, {14, 4},
		{8, 4}, {12, 4}, {4, 1}, {5, 1}, {192, 1}, {32, 2},
		{158, 4}, {159, 4}, {136, 1}, {2, 8}, {352, 8}, {1, 8}}
)

func recordLen(fs []ipfixField) int {
	n := 0
	for _, f := range fs {
		n += int(f.length)
	}
	return n
}

var (
	recLenL4   = recordLen(tmplL4Fields)
	recLenICMP = recordLen(tmplICMPFields)
)

func ipfixOpen(b []byte) []byte { return b[:ipfixHeaderLen] }

func ipfixClose(b []byte, exportTime, seq, domain uint32) {
	be.PutUint16(b[0:], 10)
	be.PutUint16(b[2:], uint16(len(b)))
	be.PutUint32(b[4:], exportTime)
	be.PutUint32(b[8:], seq)
	be.PutUint32(b[12:], domain)
}

// appendTemplateSet appends the template set (id 2) with both templates.
func appendTemplateSet(b []byte) []byte {
	start := len(b)
	b = be.AppendUint16(b, 2)
	b = be.AppendUint16(b, 0)
	for _, t := range []struct {
		id uint16
		fs []ipfixField
	}{{tmplL4, tmplL4Fields}, {tmplICMP, tmplICMPFields}} {
		b = be.AppendUint16(b, t.id)
		b = be.AppendUint16(b, uint16(len(t.fs)))
		for _, f := range t.fs {
			b = be.AppendUint16(b, f.ie)
			b = be.AppendUint16(b, f.length)
		}
	}
	be.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// flowRec is one IPFIX flow record.
type flowRec struct {
	obsPoint       uint32
	srcMAC, dstMAC [6]byte
	in, out        uint32
	srcIP, dstIP   [4]byte
	proto          uint8
	ttl            uint8
	sport, dport   uint16
	icmpTypeCode   uint16
	tcpFlags       uint8
	startUs, endUs uint32 // before the export time
	endReason      uint8
	packets        uint64
	l2Octets       uint64
}

// putFlowRecord writes r with the template for its protocol at b and
// returns the length written.
func putFlowRecord(b []byte, r *flowRec) int {
	be.PutUint32(b[0:], r.obsPoint)
	b[4] = 0 // ingress
	copy(b[5:11], r.srcMAC[:])
	copy(b[11:17], r.dstMAC[:])
	be.PutUint16(b[17:], 0x0800)
	be.PutUint32(b[19:], r.in)
	be.PutUint32(b[23:], r.out)
	copy(b[27:31], r.srcIP[:])
	copy(b[31:35], r.dstIP[:])
	b[35] = r.proto
	b[36] = 0
	b[37] = r.ttl
	o := 38
	if r.proto == 1 {
		be.PutUint16(b[o:], r.icmpTypeCode)
		o += 2
	} else {
		be.PutUint16(b[o:], r.sport)
		be.PutUint16(b[o+2:], r.dport)
		be.PutUint16(b[o+4:], uint16(r.tcpFlags))
		o += 6
	}
	be.PutUint32(b[o:], r.startUs)
	be.PutUint32(b[o+4:], r.endUs)
	b[o+8] = r.endReason
	be.PutUint64(b[o+9:], r.packets)
	be.PutUint64(b[o+17:], r.l2Octets)
	be.PutUint64(b[o+25:], r.l2Octets-14*r.packets) // octetDeltaCount: IP bytes
	return o + 33
}
