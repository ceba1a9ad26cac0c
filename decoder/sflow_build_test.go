package decoder

import (
	"encoding/binary"
	"net/netip"
)

// Builders for crafted sFlow v5 datagrams (tests only). Lengths are computed
// from the content; callers that want a malformed datagram patch bytes after.

func sfbXDR(vals ...uint32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.BigEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func sfbPad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func sfbCat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// sfDatagram builds a datagram with an IPv4 agent.
func sfbDatagram(agent netip.Addr, subAgent, seq, uptime uint32, samples ...[]byte) []byte {
	a := agent.As4()
	return sfbCat(sfbXDR(5, 1), a[:], sfbXDR(subAgent, seq, uptime, uint32(len(samples))), sfbCat(samples...))
}

// sfSample wraps a sample body with its format and length.
func sfbSample(format uint32, body []byte) []byte {
	return sfbCat(sfbXDR(format, uint32(len(body))), body)
}

// sfRecord wraps a record body (padded to 4) with its format and length.
func sfbRecord(format uint32, body []byte) []byte {
	body = sfbPad4(append([]byte(nil), body...))
	return sfbCat(sfbXDR(format, uint32(len(body))), body)
}

func sfbFlowSample(seq, sourceID, rate, pool, drops, in, out uint32, records ...[]byte) []byte {
	return sfbSample(sflowFlowSample, sfbCat(sfbXDR(seq, sourceID, rate, pool, drops, in, out, uint32(len(records))), sfbCat(records...)))
}

func sfbExpandedFlowSample(seq, srcType, srcIndex, rate, pool, drops, inFmt, inVal, outFmt, outVal uint32, records ...[]byte) []byte {
	return sfbSample(sflowExpandedFlowSample, sfbCat(sfbXDR(seq, srcType, srcIndex, rate, pool, drops, inFmt, inVal, outFmt, outVal, uint32(len(records))), sfbCat(records...)))
}

func sfbCounterSample(seq, sourceID uint32, records ...[]byte) []byte {
	return sfbSample(sflowCounterSample, sfbCat(sfbXDR(seq, sourceID, uint32(len(records))), sfbCat(records...)))
}

func sfbExpandedCounterSample(seq, srcType, srcIndex uint32, records ...[]byte) []byte {
	return sfbSample(sflowExpandedCounterSample, sfbCat(sfbXDR(seq, srcType, srcIndex, uint32(len(records))), sfbCat(records...)))
}

func sfbRawHeader(proto, frameLen, stripped uint32, hdr []byte) []byte {
	return sfbRecord(sfRawHeader, sfbCat(sfbXDR(proto, frameLen, stripped, uint32(len(hdr))), hdr))
}

func sfbSampledIPv4(format uint32, length, proto uint32, src, dst netip.Addr, sport, dport, flags, tos uint32) []byte {
	s, d := src.As4(), dst.As4()
	return sfbRecord(format, sfbCat(sfbXDR(length, proto), s[:], d[:], sfbXDR(sport, dport, flags, tos)))
}

func sfbSampledIPv6(format uint32, length, proto uint32, src, dst netip.Addr, sport, dport, flags, prio uint32) []byte {
	s, d := src.As16(), dst.As16()
	return sfbRecord(format, sfbCat(sfbXDR(length, proto), s[:], d[:], sfbXDR(sport, dport, flags, prio)))
}

func sfbIfCounters(index uint32, inOctets, outOctets uint64) []byte {
	body := sfbCat(sfbXDR(index, 6), sfbU64(10_000_000_000), sfbXDR(1, 3), sfbU64(inOctets),
		sfbXDR(11, 12, 13, 14, 15, 16), sfbU64(outOctets), sfbXDR(21, 22, 23, 24, 25, 0))
	return sfbRecord(sfIfCounters, body)
}

func sfbPortName(name string) []byte {
	return sfbRecord(sfPortName, sfbCat(sfbXDR(uint32(len(name))), []byte(name)))
}

func sfbOFPort(dpid uint64, port uint32) []byte {
	return sfbRecord(sfOFPort, sfbCat(sfbU64(dpid), sfbXDR(port)))
}

func sfbU64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// Ethernet/IP packet builders for header tests.

func hbMAC(last byte) [6]byte { return [6]byte{0x52, 0x54, 0x00, 0x00, 0x00, last} }

func hbEth(dst, src [6]byte, ethertype uint16) []byte {
	b := append(append(append([]byte{}, dst[:]...), src[:]...), 0, 0)
	binary.BigEndian.PutUint16(b[12:], ethertype)
	return b
}

// vlanTag is the 4 bytes after a VLAN TPID: PCP/DEI/VID, then the next EtherType.
func hbVLAN(vid uint16, next uint16) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, 0xe000|vid) // PCP 7 must not leak into the VID
	binary.BigEndian.PutUint16(b[2:], next)
	return b
}

func hbIPv4(proto uint8, src, dst netip.Addr, payloadLen int, opts []byte, fragOff uint16, mf bool) []byte {
	ihl := 20 + len(opts)
	b := make([]byte, 20)
	b[0] = 0x40 | byte(ihl/4)
	b[1] = 0xb8 // DSCP EF
	binary.BigEndian.PutUint16(b[2:], uint16(ihl+payloadLen))
	ff := fragOff & 0x1fff
	if mf {
		ff |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], ff)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, opts...)
}

func hbIPv6(next uint8, src, dst netip.Addr, payloadLen int) []byte {
	b := make([]byte, 40)
	b[0] = 0x60 | 0x0b // traffic class 0xb8 spans the nibbles
	b[1] = 0x80
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6] = next
	b[7] = 61
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return b
}

func hbTCP(sport, dport uint16, flags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = flags
	return b
}

func hbUDP(sport, dport uint16, payloadLen int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+payloadLen))
	return b
}

func hbVXLAN(vni uint32) []byte {
	b := make([]byte, 8)
	b[0] = 0x08
	binary.BigEndian.PutUint32(b[4:], vni<<8)
	return b
}

func hbGeneve(vni uint32, proto uint16, opts []byte) []byte {
	b := make([]byte, 8)
	b[0] = byte(len(opts) / 4)
	binary.BigEndian.PutUint16(b[2:], proto)
	binary.BigEndian.PutUint32(b[4:], vni<<8)
	return append(b, opts...)
}
