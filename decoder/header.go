package decoder

import (
	"encoding/binary"
	"net/netip"
)

// EtherTypes and protocol numbers the header parser knows.
const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100 // 802.1Q
	etherTypeQinQ  = 0x88a8 // 802.1ad
	etherTypeQinQ9 = 0x9100 // legacy QinQ
	etherTypeTEB   = 0x6558 // transparent Ethernet bridging (Geneve payload)

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132

	portVXLAN  = 4789
	portGeneve = 6081

	maxVLANTags   = 4 // more stacked tags than this: stop parsing (malformed)
	maxIPv6ExtHdr = 8 // more extension headers than this: stop parsing
)

// ParseHeader parses a sampled packet header that starts at the Ethernet
// destination MAC (sFlow header_protocol 1) into r. It never allocates and
// never reads outside data.
//
// r should be zeroed by the caller (Batch.AddRecord does that); ParseHeader
// sets the L2 fields (SrcMAC, DstMAC, VLAN, OuterVLAN, EtherType), the L3
// fields (SrcIP, DstIP, Proto, TOS, TTL; FlagL3, FlagHasTTL, FlagFragment) and
// the L4 fields (SrcPort, DstPort, TCPFlags, ICMPType, ICMPCode; FlagL4) it
// finds. A VXLAN (UDP destination port 4789) or Geneve (UDP 6081) packet is
// decapsulated once: the inner packet fills the fields above, the outer MACs
// and IPs go to OuterSrcMAC/OuterDstMAC/OuterSrcIP/OuterDstIP and Tunnel and
// VNI are set. When data ends before the parser is done, FlagTruncated is set
// and what was parsed is kept. Malformed headers (wrong IP version, too many
// VLAN tags or IPv6 extension headers) stop the parser without a flag.
func ParseHeader(data []byte, r *Record) {
	parseEthernet(data, r, true)
}

// parseIPHeader parses a sampled header that starts at the IP header
// (sFlow header_protocol 11 = IPv4, 12 = IPv6).
func parseIPHeader(data []byte, etherType uint16, r *Record) {
	r.EtherType = etherType
	parseL3(data, etherType, r, true)
}

func parseEthernet(data []byte, r *Record, tunnelOK bool) {
	if len(data) < 14 {
		r.Flags |= FlagTruncated
		return
	}
	copy(r.DstMAC[:], data[0:6])
	copy(r.SrcMAC[:], data[6:12])
	et := binary.BigEndian.Uint16(data[12:14])
	data = data[14:]
	for tags := 0; et == etherTypeVLAN || et == etherTypeQinQ || et == etherTypeQinQ9; tags++ {
		if tags == maxVLANTags {
			r.EtherType = et
			return
		}
		if len(data) < 4 {
			r.EtherType = et
			r.Flags |= FlagTruncated
			return
		}
		vid := binary.BigEndian.Uint16(data[0:2]) & 0x0fff
		if tags == 1 {
			r.OuterVLAN = r.VLAN
		}
		r.VLAN = vid
		et = binary.BigEndian.Uint16(data[2:4])
		data = data[4:]
	}
	r.EtherType = et
	parseL3(data, et, r, tunnelOK)
}

func parseL3(data []byte, et uint16, r *Record, tunnelOK bool) {
	switch et {
	case etherTypeIPv4:
		parseIPv4(data, r, tunnelOK)
	case etherTypeIPv6:
		parseIPv6(data, r, tunnelOK)
	}
}

func parseIPv4(data []byte, r *Record, tunnelOK bool) {
	if len(data) < 20 {
		r.Flags |= FlagTruncated
		return
	}
	if data[0]>>4 != 4 {
		return
	}
	ihl := int(data[0]&0x0f) * 4
	if ihl < 20 {
		return
	}
	r.TOS = data[1]
	r.TTL = data[8]
	r.Proto = data[9]
	r.SrcIP = netip.AddrFrom4([4]byte(data[12:16]))
	r.DstIP = netip.AddrFrom4([4]byte(data[16:20]))
	r.Flags |= FlagL3 | FlagHasTTL
	if binary.BigEndian.Uint16(data[6:8])&0x1fff != 0 {
		r.Flags |= FlagFragment // not the first fragment: no L4 header
		return
	}
	if len(data) < ihl {
		r.Flags |= FlagTruncated
		return
	}
	// Drop Ethernet padding after the IP packet, if the total length says so.
	if total := int(binary.BigEndian.Uint16(data[2:4])); total >= ihl && total < len(data) {
		data = data[:total]
	}
	parseL4(data[ihl:], r, tunnelOK)
}

func parseIPv6(data []byte, r *Record, tunnelOK bool) {
	if len(data) < 40 {
		r.Flags |= FlagTruncated
		return
	}
	if data[0]>>4 != 6 {
		return
	}
	r.TOS = uint8(binary.BigEndian.Uint16(data[0:2]) >> 4)
	r.TTL = data[7]
	r.SrcIP = netip.AddrFrom16([16]byte(data[8:24]))
	r.DstIP = netip.AddrFrom16([16]byte(data[24:40]))
	r.Flags |= FlagL3 | FlagHasTTL
	next := data[6]
	if plen := int(binary.BigEndian.Uint16(data[4:6])); plen > 0 && 40+plen < len(data) {
		data = data[:40+plen] // drop Ethernet padding (0 = jumbogram: keep all)
	}
	data = data[40:]
	for i := 0; ; i++ {
		r.Proto = next
		var hlen int
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(data) < 2 {
				r.Flags |= FlagTruncated
				return
			}
			hlen = (int(data[1]) + 1) * 8
		case 44: // fragment
			if len(data) < 8 {
				r.Flags |= FlagTruncated
				return
			}
			if binary.BigEndian.Uint16(data[2:4])>>3 != 0 {
				r.Proto = data[0]
				r.Flags |= FlagFragment
				return
			}
			hlen = 8
		case 51: // authentication header
			if len(data) < 2 {
				r.Flags |= FlagTruncated
				return
			}
			hlen = (int(data[1]) + 2) * 4
		default:
			parseL4(data, r, tunnelOK)
			return
		}
		if i == maxIPv6ExtHdr {
			return
		}
		if len(data) < hlen {
			r.Flags |= FlagTruncated
			return
		}
		next = data[0]
		data = data[hlen:]
	}
}

func parseL4(data []byte, r *Record, tunnelOK bool) {
	switch r.Proto {
	case protoTCP:
		if len(data) < 4 {
			r.Flags |= FlagTruncated
			return
		}
		r.SrcPort = binary.BigEndian.Uint16(data[0:2])
		r.DstPort = binary.BigEndian.Uint16(data[2:4])
		r.Flags |= FlagL4
		// The data offset is the high nibble of byte 12, the flags byte 13.
		if len(data) < 14 {
			r.Flags |= FlagTruncated
			return
		}
		r.TCPFlags = data[13]
	case protoUDP:
		if len(data) < 4 {
			r.Flags |= FlagTruncated
			return
		}
		r.SrcPort = binary.BigEndian.Uint16(data[0:2])
		r.DstPort = binary.BigEndian.Uint16(data[2:4])
		r.Flags |= FlagL4
		if len(data) < 8 {
			r.Flags |= FlagTruncated
			return
		}
		if tunnelOK {
			switch r.DstPort {
			case portVXLAN:
				parseVXLAN(data[8:], r)
			case portGeneve:
				parseGeneve(data[8:], r)
			}
		}
	case protoSCTP:
		if len(data) < 4 {
			r.Flags |= FlagTruncated
			return
		}
		r.SrcPort = binary.BigEndian.Uint16(data[0:2])
		r.DstPort = binary.BigEndian.Uint16(data[2:4])
		r.Flags |= FlagL4
	case protoICMP, protoICMPv6:
		if len(data) < 2 {
			r.Flags |= FlagTruncated
			return
		}
		r.ICMPType = data[0]
		r.ICMPCode = data[1]
	}
}

// parseVXLAN decapsulates a VXLAN payload (RFC 7348): 8-byte header with the
// I flag set, then an Ethernet frame. Without the I flag the packet stays a
// plain UDP packet.
func parseVXLAN(data []byte, r *Record) {
	if len(data) < 8 {
		r.Flags |= FlagTruncated
		return
	}
	if data[0]&0x08 == 0 {
		return
	}
	vni := binary.BigEndian.Uint32(data[4:8]) >> 8
	startInner(r, TunnelVXLAN, vni)
	parseEthernet(data[8:], r, false)
}

// parseGeneve decapsulates a Geneve payload (RFC 8926): 8-byte header,
// options (length in 4-byte words), then the inner packet whose type is the
// header's protocol type (Ethernet, IPv4 or IPv6).
func parseGeneve(data []byte, r *Record) {
	if len(data) < 8 {
		r.Flags |= FlagTruncated
		return
	}
	if data[0]>>6 != 0 { // version 0 only
		return
	}
	optLen := int(data[0]&0x3f) * 4
	pt := binary.BigEndian.Uint16(data[2:4])
	if pt != etherTypeTEB && pt != etherTypeIPv4 && pt != etherTypeIPv6 {
		return
	}
	vni := binary.BigEndian.Uint32(data[4:8]) >> 8
	startInner(r, TunnelGeneve, vni)
	if len(data) < 8+optLen {
		r.Flags |= FlagTruncated
		return
	}
	inner := data[8+optLen:]
	if pt == etherTypeTEB {
		parseEthernet(inner, r, false)
		return
	}
	r.EtherType = pt
	parseL3(inner, pt, r, false)
}

// startInner moves the outer addresses to Outer* and clears the fields the
// inner packet fills.
func startInner(r *Record, t Tunnel, vni uint32) {
	r.Tunnel = t
	r.VNI = vni
	r.OuterSrcMAC, r.OuterDstMAC = r.SrcMAC, r.DstMAC
	r.OuterSrcIP, r.OuterDstIP = r.SrcIP, r.DstIP
	r.SrcMAC, r.DstMAC = [6]byte{}, [6]byte{}
	r.VLAN, r.OuterVLAN, r.EtherType = 0, 0, 0
	r.SrcIP, r.DstIP = netip.Addr{}, netip.Addr{}
	r.Proto, r.TOS, r.TTL = 0, 0, 0
	r.SrcPort, r.DstPort = 0, 0
	r.TCPFlags, r.ICMPType, r.ICMPCode = 0, 0, 0
	r.Flags &^= FlagL3 | FlagL4 | FlagFragment | FlagHasTTL
}
