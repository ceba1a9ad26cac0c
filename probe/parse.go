package probe

import (
	"encoding/binary"
	"net/netip"
)

// pkt is what the tracker needs of one frame the filter passed.
type pkt struct {
	ts       int64 // kernel receive/transmit time, unix ns
	toVM     bool  // sent out of the tap, to the VM (PACKET_OUTGOING)
	srcMAC   [6]byte
	dstMAC   [6]byte
	src, dst netip.Addr
	proto    uint8
	sport    uint16
	dport    uint16
	flags    uint8  // TCP flags
	seq, ack uint32 // TCP
	icmpType uint8
	icmpCode uint8
	echoID   uint16
	echoSeq  uint16
	plen     int // TCP payload bytes (from the IP length; -1 unknown)

	// the packet an ICMP error quotes (inner: its TCP/UDP ports, when present)
	inner              bool
	innerProto         uint8
	innerSrc, innerDst netip.Addr
	innerSport         uint16
	innerDport         uint16
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// parse decodes an Ethernet frame (one 802.1Q tag allowed) into p. It
// reports false for anything it cannot use (the filter should have kept
// those out; counted by the caller).
func parse(b []byte, p *pkt) bool {
	if len(b) < 14 {
		return false
	}
	copy(p.dstMAC[:], b[0:6])
	copy(p.srcMAC[:], b[6:12])
	et := binary.BigEndian.Uint16(b[12:])
	b = b[14:]
	if et == 0x8100 && len(b) >= 4 {
		et = binary.BigEndian.Uint16(b[2:])
		b = b[4:]
	}
	var l4 []byte
	iplen := -1 // L4 bytes by the IP header
	switch et {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl || binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
			return false
		}
		p.proto = b[9]
		p.src = netip.AddrFrom4([4]byte(b[12:16]))
		p.dst = netip.AddrFrom4([4]byte(b[16:20]))
		l4 = b[ihl:]
		iplen = int(binary.BigEndian.Uint16(b[2:])) - ihl
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return false
		}
		p.proto = b[6]
		p.src = netip.AddrFrom16([16]byte(b[8:24]))
		p.dst = netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40:]
		iplen = int(binary.BigEndian.Uint16(b[4:]))
	default:
		return false
	}
	switch p.proto {
	case 6:
		if len(l4) < 14 {
			return false
		}
		p.sport = binary.BigEndian.Uint16(l4)
		p.dport = binary.BigEndian.Uint16(l4[2:])
		p.seq = binary.BigEndian.Uint32(l4[4:])
		p.ack = binary.BigEndian.Uint32(l4[8:])
		p.flags = l4[13]
		p.plen = -1
		if doff := int(l4[12]>>4) * 4; iplen >= doff && doff >= 20 {
			p.plen = iplen - doff
		}
		// SYN/FIN/RST, or (dynamic filter) a segment of a handshake
		// whose final ACK is awaited
		return p.flags&(tcpSYN|tcpFIN|tcpRST|tcpACK) != 0
	case 1, 58:
		if len(l4) < 4 {
			return false
		}
		p.icmpType, p.icmpCode = l4[0], l4[1]
		if len(l4) >= 8 {
			p.echoID = binary.BigEndian.Uint16(l4[4:])
			p.echoSeq = binary.BigEndian.Uint16(l4[6:])
		}
		if isICMPError(p) && len(l4) >= 8 {
			parseQuoted(l4[8:], p)
		}
		return true
	}
	return false
}

// parseQuoted reads the IP header and first 4 bytes (ports) of the packet
// an ICMP error quotes (RFC 792 / RFC 4443).
func parseQuoted(b []byte, p *pkt) {
	switch {
	case p.proto == 1 && len(b) >= 20 && b[0]>>4 == 4:
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl+4 {
			return
		}
		p.innerProto = b[9]
		p.innerSrc = netip.AddrFrom4([4]byte(b[12:16]))
		p.innerDst = netip.AddrFrom4([4]byte(b[16:20]))
		b = b[ihl:]
	case p.proto == 58 && len(b) >= 44 && b[0]>>4 == 6:
		p.innerProto = b[6]
		p.innerSrc = netip.AddrFrom16([16]byte(b[8:24]))
		p.innerDst = netip.AddrFrom16([16]byte(b[24:40]))
		b = b[40:]
	default:
		return
	}
	p.inner = true
	p.innerSport = binary.BigEndian.Uint16(b)
	p.innerDport = binary.BigEndian.Uint16(b[2:])
}

// icmp classes
func isEchoRequest(p *pkt) bool {
	return (p.proto == 1 && p.icmpType == 8) || (p.proto == 58 && p.icmpType == 128)
}

func isEchoReply(p *pkt) bool {
	return (p.proto == 1 && p.icmpType == 0) || (p.proto == 58 && p.icmpType == 129)
}

func isICMPError(p *pkt) bool {
	if p.proto == 1 {
		return p.icmpType == 3 || p.icmpType == 11 || p.icmpType == 12
	}
	return p.proto == 58 && p.icmpType >= 1 && p.icmpType <= 4
}
