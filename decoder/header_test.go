package decoder

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	ip1   = netip.MustParseAddr("10.0.0.1")
	ip2   = netip.MustParseAddr("10.0.0.2")
	ip61  = netip.MustParseAddr("fd00::1")
	ip62  = netip.MustParseAddr("fd00::2")
	vtep1 = netip.MustParseAddr("192.168.100.1")
	vtep2 = netip.MustParseAddr("192.168.100.2")
)

func parse(data []byte) Record {
	var r Record
	ParseHeader(data, &r)
	return r
}

func TestParseHeaderTCPv4(t *testing.T) {
	pkt := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false), hbTCP(40000, 443, 0x12))
	r := parse(pkt)
	want := Record{
		SrcMAC: hbMAC(1), DstMAC: hbMAC(2), EtherType: etherTypeIPv4,
		SrcIP: ip1, DstIP: ip2, Proto: protoTCP, TOS: 0xb8, TTL: 64,
		SrcPort: 40000, DstPort: 443, TCPFlags: 0x12,
		Flags: FlagL3 | FlagL4 | FlagHasTTL,
	}
	assert.Empty(t, cmp.Diff(want, r, cmpAddrs))
}

func TestParseHeaderIPv4Options(t *testing.T) {
	opts := []byte{1, 1, 1, 0} // NOP NOP NOP EOL: IHL 6
	pkt := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoUDP, ip1, ip2, 8, opts, 0, false), hbUDP(53, 5353, 0))
	r := parse(pkt)
	assert.Equal(t, uint16(53), r.SrcPort)
	assert.Equal(t, uint16(5353), r.DstPort)
	assert.Equal(t, FlagL3|FlagL4|FlagHasTTL, r.Flags)
}

func TestParseHeaderFragments(t *testing.T) {
	// First fragment (MF, offset 0): L4 present.
	first := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoUDP, ip1, ip2, 1480, nil, 0, true), hbUDP(1, 2, 1472))
	r := parse(first)
	assert.Equal(t, FlagL3|FlagL4|FlagHasTTL, r.Flags)
	assert.Equal(t, uint16(2), r.DstPort)
	// Later fragment: payload bytes must not be read as ports.
	later := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoUDP, ip1, ip2, 100, nil, 185, false), hbUDP(7, 8, 0))
	r = parse(later)
	assert.Equal(t, FlagL3|FlagHasTTL|FlagFragment, r.Flags)
	assert.Zero(t, r.SrcPort)
	assert.Equal(t, uint8(protoUDP), r.Proto)

	// IPv6 fragment header, non-first fragment.
	frag := []byte{protoTCP, 0, 0x00, 0x40, 0, 0, 0, 1} // offset 8 (x 8 bytes), M=0
	pkt := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv6), hbIPv6(44, ip61, ip62, 8+20), frag, hbTCP(1, 2, 0x10))
	r = parse(pkt)
	assert.Equal(t, FlagL3|FlagHasTTL|FlagFragment, r.Flags)
	assert.Equal(t, uint8(protoTCP), r.Proto)
	assert.Zero(t, r.DstPort)
}

func TestParseHeaderVLAN(t *testing.T) {
	// 802.1Q
	pkt := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeVLAN), hbVLAN(100, etherTypeIPv4), hbIPv4(protoICMP, ip1, ip2, 8, nil, 0, false), []byte{8, 0, 0, 0, 0, 1, 0, 1})
	r := parse(pkt)
	assert.Equal(t, uint16(100), r.VLAN)
	assert.Zero(t, r.OuterVLAN)
	assert.Equal(t, uint16(etherTypeIPv4), r.EtherType)
	assert.Equal(t, uint8(8), r.ICMPType)
	assert.Equal(t, FlagL3|FlagHasTTL, r.Flags, "ICMP sets no ports")
	// QinQ with each outer TPID.
	for _, tpid := range []uint16{etherTypeQinQ, etherTypeQinQ9, etherTypeVLAN} {
		pkt := sfbCat(hbEth(hbMAC(2), hbMAC(1), tpid), hbVLAN(300, etherTypeVLAN), hbVLAN(42, etherTypeIPv4), hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false), hbTCP(1, 22, 0x02))
		r := parse(pkt)
		assert.Equal(t, uint16(300), r.OuterVLAN, "tpid %#x", tpid)
		assert.Equal(t, uint16(42), r.VLAN)
		assert.Equal(t, uint16(22), r.DstPort)
		assert.Equal(t, uint8(0x02), r.TCPFlags)
	}
	// Too many tags: stops, not truncated, no L3.
	many := hbEth(hbMAC(2), hbMAC(1), etherTypeVLAN)
	for i := 0; i < 6; i++ {
		many = append(many, hbVLAN(uint16(i+1), etherTypeVLAN)...)
	}
	many = append(many, make([]byte, 40)...)
	r = parse(many)
	assert.Zero(t, r.Flags&(FlagL3|FlagTruncated))
}

func TestParseHeaderIPv6ExtensionHeaders(t *testing.T) {
	hbh := []byte{60, 0, 1, 4, 0, 0, 0, 0}                          // hop-by-hop → dest opts, 8 bytes
	dst := []byte{43, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // dest opts → routing, 16 bytes
	rt := []byte{51, 0, 0, 0, 0, 0, 0, 0}                           // routing → AH, 8 bytes
	ah := []byte{44, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2}               // AH → fragment, (1+2)*4 = 12 bytes
	fr := []byte{protoUDP, 0, 0, 1, 0, 0, 0, 9}                     // first fragment (offset 0, M=1)
	l4 := hbUDP(546, 547, 0)
	ext := sfbCat(hbh, dst, rt, ah, fr)
	pkt := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv6), hbIPv6(0, ip61, ip62, len(ext)+len(l4)), ext, l4)
	r := parse(pkt)
	assert.Equal(t, ip61, r.SrcIP)
	assert.Equal(t, ip62, r.DstIP)
	assert.Equal(t, uint8(protoUDP), r.Proto)
	assert.Equal(t, uint16(546), r.SrcPort)
	assert.Equal(t, uint16(547), r.DstPort)
	assert.Equal(t, uint8(0xb8), r.TOS)
	assert.Equal(t, uint8(61), r.TTL)
	assert.Equal(t, FlagL3|FlagL4|FlagHasTTL, r.Flags)

	// ICMPv6 neighbour solicitation.
	pkt = sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv6), hbIPv6(protoICMPv6, ip61, ip62, 8), []byte{135, 0, 0, 0, 0, 0, 0, 0})
	r = parse(pkt)
	assert.Equal(t, uint8(135), r.ICMPType)
	assert.Equal(t, uint8(protoICMPv6), r.Proto)
}

func TestParseHeaderVXLAN(t *testing.T) {
	inner := sfbCat(hbEth(hbMAC(4), hbMAC(3), etherTypeIPv4), hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false), hbTCP(5000, 80, 0x18))
	outer := sfbCat(hbEth([6]byte{2, 0, 0, 0, 0, 0xb}, [6]byte{2, 0, 0, 0, 0, 0xa}, etherTypeVLAN), hbVLAN(7, etherTypeIPv4),
		hbIPv4(protoUDP, vtep1, vtep2, 8+8+len(inner), nil, 0, false), hbUDP(51000, portVXLAN, 8+len(inner)), hbVXLAN(5001), inner)
	r := parse(outer)
	want := Record{
		SrcMAC: hbMAC(3), DstMAC: hbMAC(4), EtherType: etherTypeIPv4,
		SrcIP: ip1, DstIP: ip2, Proto: protoTCP, TOS: 0xb8, TTL: 64,
		SrcPort: 5000, DstPort: 80, TCPFlags: 0x18,
		Flags:  FlagL3 | FlagL4 | FlagHasTTL,
		Tunnel: TunnelVXLAN, VNI: 5001,
		OuterSrcIP: vtep1, OuterDstIP: vtep2,
		OuterSrcMAC: [6]byte{2, 0, 0, 0, 0, 0xa}, OuterDstMAC: [6]byte{2, 0, 0, 0, 0, 0xb},
	}
	assert.Empty(t, cmp.Diff(want, r, cmpAddrs))

	// VXLAN port without the I flag: a plain UDP packet.
	noI := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoUDP, vtep1, vtep2, 16+len(inner), nil, 0, false), hbUDP(1, portVXLAN, 8+len(inner)), make([]byte, 8), inner)
	r = parse(noI)
	assert.Equal(t, TunnelNone, r.Tunnel)
	assert.Equal(t, vtep1, r.SrcIP)

	// Inner truncated inside the inner IPv4 header (a 128-byte sFlow header
	// cut): inner MACs kept, truncated flag, outer kept.
	cut := outer[:14+4+20+8+8+14+10]
	r = parse(cut)
	assert.Equal(t, TunnelVXLAN, r.Tunnel)
	assert.Equal(t, hbMAC(3), r.SrcMAC)
	assert.Equal(t, vtep1, r.OuterSrcIP)
	assert.False(t, r.SrcIP.IsValid())
	assert.Equal(t, FlagTruncated, r.Flags)
}

func TestParseHeaderGeneve(t *testing.T) {
	inner := sfbCat(hbEth(hbMAC(6), hbMAC(5), etherTypeIPv6), hbIPv6(protoUDP, ip61, ip62, 8), hbUDP(123, 123, 0))
	opts := []byte{0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef} // one 4-byte option
	gen := hbGeneve(0xabcdef, etherTypeTEB, opts)
	outer := sfbCat(hbEth(hbMAC(0xb), hbMAC(0xa), etherTypeIPv6), hbIPv6(protoUDP, netip.MustParseAddr("2001:db8::a"), netip.MustParseAddr("2001:db8::b"), 8+len(gen)+len(inner)),
		hbUDP(40000, portGeneve, len(gen)+len(inner)), gen, inner)
	r := parse(outer)
	assert.Equal(t, TunnelGeneve, r.Tunnel)
	assert.Equal(t, uint32(0xabcdef), r.VNI)
	assert.Equal(t, hbMAC(5), r.SrcMAC)
	assert.Equal(t, hbMAC(0xa), r.OuterSrcMAC)
	assert.Equal(t, ip61, r.SrcIP)
	assert.Equal(t, netip.MustParseAddr("2001:db8::b"), r.OuterDstIP)
	assert.Equal(t, uint16(123), r.DstPort)
	assert.Equal(t, FlagL3|FlagL4|FlagHasTTL, r.Flags)

	// Geneve carrying IPv4 directly (protocol type 0x0800).
	gen4 := hbGeneve(9, etherTypeIPv4, nil)
	in4 := sfbCat(hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false), hbTCP(1, 2, 0x01))
	pkt := sfbCat(hbEth(hbMAC(0xb), hbMAC(0xa), etherTypeIPv4), hbIPv4(protoUDP, vtep1, vtep2, 8+len(gen4)+len(in4), nil, 0, false), hbUDP(1, portGeneve, len(gen4)+len(in4)), gen4, in4)
	r = parse(pkt)
	assert.Equal(t, TunnelGeneve, r.Tunnel)
	assert.Equal(t, uint32(9), r.VNI)
	assert.Equal(t, ip1, r.SrcIP)
	assert.Equal(t, vtep1, r.OuterSrcIP)
	assert.Equal(t, uint8(0x01), r.TCPFlags)
	assert.Equal(t, [6]byte{}, r.SrcMAC)

	// Options longer than the header: truncated.
	bad := hbGeneve(1, etherTypeTEB, nil)
	bad[0] = 0x3f // 252 bytes of options
	pkt = sfbCat(hbEth(hbMAC(0xb), hbMAC(0xa), etherTypeIPv4), hbIPv4(protoUDP, vtep1, vtep2, 16, nil, 0, false), hbUDP(1, portGeneve, 8), bad)
	r = parse(pkt)
	assert.Equal(t, TunnelGeneve, r.Tunnel)
	assert.NotZero(t, r.Flags&FlagTruncated)
}

func TestParseHeaderTruncation(t *testing.T) {
	full := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false), hbTCP(40000, 443, 0x12))
	for n := 0; n <= len(full); n++ {
		r := parse(full[:n])
		truncated := r.Flags&FlagTruncated != 0
		switch {
		case n < 14:
			assert.True(t, truncated, "n=%d", n)
			assert.Equal(t, [6]byte{}, r.SrcMAC)
		case n < 34:
			assert.True(t, truncated, "n=%d", n)
			assert.Equal(t, hbMAC(1), r.SrcMAC, "n=%d", n)
			assert.Zero(t, r.Flags&FlagL3, "n=%d", n)
		case n < 38:
			assert.True(t, truncated, "n=%d", n)
			assert.Equal(t, ip2, r.DstIP, "n=%d", n)
			assert.Zero(t, r.Flags&FlagL4, "n=%d", n)
		case n < 48:
			assert.True(t, truncated, "n=%d", n)
			assert.Equal(t, uint16(443), r.DstPort, "n=%d", n)
			assert.Zero(t, r.TCPFlags, "n=%d", n)
		default:
			assert.False(t, truncated, "n=%d", n)
			assert.Equal(t, uint8(0x12), r.TCPFlags, "n=%d", n)
		}
	}
}

func TestParseHeaderMalformed(t *testing.T) {
	// IPv4 EtherType with a version-6 header: no L3, not truncated.
	pkt := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv6(protoTCP, ip61, ip62, 0))
	r := parse(pkt)
	assert.Zero(t, r.Flags)
	// IHL below 5.
	ip := hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false)
	ip[0] = 0x43
	r = parse(sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), ip, hbTCP(1, 2, 3)))
	assert.Zero(t, r.Flags)
	// IHL beyond the data: addresses kept, truncated.
	ip = hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false)
	ip[0] = 0x4f
	r = parse(sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), ip, hbTCP(1, 2, 3)))
	assert.Equal(t, FlagL3|FlagHasTTL|FlagTruncated, r.Flags)
	// ARP: only L2.
	r = parse(sfbCat(hbEth([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, hbMAC(1), 0x0806), make([]byte, 28)))
	assert.Equal(t, uint16(0x0806), r.EtherType)
	assert.Zero(t, r.Flags)
	// Ethernet padding after a short IPv4 packet is not read as L4.
	ip = hbIPv4(253, ip1, ip2, 0, nil, 0, false) // experimental protocol, no payload
	r = parse(sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), ip, make([]byte, 26)))
	assert.Equal(t, FlagL3|FlagHasTTL, r.Flags)
}

// TestParseHeaderAgainstGopacket checks every header of the real capture
// against gopacket's decoding.
func TestParseHeaderAgainstGopacket(t *testing.T) {
	hdrs := captureHeaders(t)
	require.NotEmpty(t, hdrs)
	for i, h := range hdrs {
		r := parse(h)
		pkt := gopacket.NewPacket(h, layers.LayerTypeEthernet, gopacket.Default)
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		assert.Equal(t, [6]byte(eth.SrcMAC), r.SrcMAC, "header %d", i)
		assert.Equal(t, [6]byte(eth.DstMAC), r.DstMAC, "header %d", i)
		if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			assert.Equal(t, netip.AddrFrom4([4]byte(ip4.SrcIP.To4())), r.SrcIP, "header %d", i)
			assert.Equal(t, netip.AddrFrom4([4]byte(ip4.DstIP.To4())), r.DstIP, "header %d", i)
			assert.Equal(t, uint8(ip4.Protocol), r.Proto)
			assert.Equal(t, ip4.TTL, r.TTL)
		} else {
			assert.Zero(t, r.Flags&FlagL3, "header %d", i)
		}
		if tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			assert.Equal(t, uint16(tcp.SrcPort), r.SrcPort)
			assert.Equal(t, uint16(tcp.DstPort), r.DstPort)
			assert.Equal(t, tcp.SYN, r.TCPFlags&0x02 != 0, "header %d", i)
			assert.Equal(t, tcp.ACK, r.TCPFlags&0x10 != 0, "header %d", i)
			assert.Equal(t, tcp.FIN, r.TCPFlags&0x01 != 0, "header %d", i)
			assert.Equal(t, tcp.PSH, r.TCPFlags&0x08 != 0, "header %d", i)
		}
		if udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			assert.Equal(t, uint16(udp.SrcPort), r.SrcPort)
			assert.Equal(t, uint16(udp.DstPort), r.DstPort)
		}
		if icmp, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			assert.Equal(t, icmp.TypeCode.Type(), r.ICMPType)
			assert.Equal(t, icmp.TypeCode.Code(), r.ICMPCode)
		}
	}
}

// captureHeaders returns the sampled headers of the real capture.
func captureHeaders(t testing.TB) [][]byte {
	var out [][]byte
	for _, d := range readCaptureUDP(t, sflowCapture, 6343) {
		var p sflow.Packet
		if err := sflow.DecodeMessageVersion(bytes.NewBuffer(d.Payload), &p); err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Samples {
			if fs, ok := s.(sflow.FlowSample); ok {
				for _, r := range fs.Records {
					if h, ok := r.Data.(sflow.SampledHeader); ok {
						out = append(out, h.HeaderData[:h.OriginalLength])
					}
				}
			}
		}
	}
	return out
}

func FuzzParseHeader(f *testing.F) {
	for _, h := range captureHeaders(f)[:50] {
		f.Add(h)
	}
	inner := sfbCat(hbEth(hbMAC(4), hbMAC(3), etherTypeVLAN), hbVLAN(5, etherTypeIPv6), hbIPv6(0, ip61, ip62, 16), []byte{protoTCP, 0, 0, 0, 0, 0, 0, 0}, hbTCP(1, 2, 3))
	f.Add(sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoUDP, vtep1, vtep2, 16+len(inner), nil, 0, false), hbUDP(1, portVXLAN, 8+len(inner)), hbVXLAN(1), inner))
	gen := hbGeneve(2, etherTypeTEB, []byte{0, 0, 0, 1, 0, 0, 0, 0})
	f.Add(sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeQinQ), hbVLAN(1, etherTypeVLAN), hbVLAN(2, etherTypeIPv4), hbIPv4(protoUDP, vtep1, vtep2, 8+len(gen)+len(inner), nil, 0, false), hbUDP(1, portGeneve, len(gen)+len(inner)), gen, inner))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Guard bytes around the input: the parser must not read them
		// (Go's bounds checks would panic first; the copy also checks that
		// ParseHeader leaves the input untouched).
		in := append([]byte(nil), data...)
		var r Record
		ParseHeader(in, &r)
		if !bytes.Equal(in, data) {
			t.Fatal("ParseHeader modified its input")
		}
		if r.Flags&FlagL4 != 0 && r.Flags&FlagL3 == 0 {
			t.Fatalf("L4 without L3: %+v", r)
		}
		if r.Flags&FlagL3 != 0 && !r.SrcIP.IsValid() {
			t.Fatalf("L3 flag without addresses: %+v", r)
		}
		if r.Tunnel == TunnelNone && (r.OuterSrcIP.IsValid() || r.VNI != 0) {
			t.Fatalf("outer fields without a tunnel: %+v", r)
		}
		if r.Tunnel != TunnelNone && !r.OuterSrcIP.IsValid() {
			t.Fatalf("tunnel without outer IP: %+v", r)
		}
		if r.VNI >= 1<<24 {
			t.Fatalf("VNI over 24 bits: %d", r.VNI)
		}
		var r2 Record
		ParseHeader(in, &r2)
		if r != r2 {
			t.Fatal("ParseHeader is not deterministic")
		}
	})
}

func BenchmarkParseHeader(b *testing.B) {
	hdrs := captureHeaders(b)
	var r Record
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r = Record{}
		ParseHeader(hdrs[i%len(hdrs)], &r)
	}
	b.StopTimer()
	if r.Flags&FlagL3 == 0 && r.EtherType == etherTypeIPv4 {
		b.Fatal("parse failed")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/sample")
}

// BenchmarkParseHeaderVXLAN parses a 128-byte-cut VXLAN frame.
func BenchmarkParseHeaderVXLAN(b *testing.B) {
	inner := sfbCat(hbEth(hbMAC(4), hbMAC(3), etherTypeIPv4), hbIPv4(protoTCP, ip1, ip2, 1400, nil, 0, false), hbTCP(5000, 80, 0x18), make([]byte, 100))
	pkt := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoUDP, vtep1, vtep2, 16+len(inner), nil, 0, false), hbUDP(1, portVXLAN, 8+len(inner)), hbVXLAN(7), inner)[:128]
	var r Record
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r = Record{}
		ParseHeader(pkt, &r)
	}
	if r.Tunnel != TunnelVXLAN {
		b.Fatal("no tunnel")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/sample")
}
