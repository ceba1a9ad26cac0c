package decoder

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// capturedDatagram is one UDP payload read from a capture file.
type capturedDatagram struct {
	From     netip.AddrPort // UDP source address and port
	To       netip.AddrPort // UDP destination address and port
	Received int64          // capture timestamp, unix nanoseconds
	Payload  []byte         // UDP payload (a private copy)
}

// readCaptureUDP returns every UDP payload sent to dstPort in the pcapng file
// at path, in capture order. It handles Ethernet, Linux cooked (SLL),
// raw IP and loopback (null) link types, IPv4 and IPv6 without extension
// headers, and skips IP fragments. It fails the test when the file cannot be
// read.
func readCaptureUDP(t testing.TB, path string, dstPort uint16) []capturedDatagram {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open capture %s: %v", path, err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("read capture %s: %v", path, err)
	}
	var out []capturedDatagram
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read capture %s: packet %d: %v", path, len(out), err)
		}
		lt := r.LinkType()
		if ci.InterfaceIndex >= 0 && ci.InterfaceIndex < r.NInterfaces() {
			if intf, err := r.Interface(ci.InterfaceIndex); err == nil {
				lt = intf.LinkType
			}
		}
		ip, ok := captureL3(lt, data)
		if !ok {
			continue
		}
		d, ok := captureUDP(ip)
		if !ok || d.To.Port() != dstPort {
			continue
		}
		d.Received = ci.Timestamp.UnixNano()
		d.Payload = append([]byte(nil), d.Payload...)
		out = append(out, d)
	}
	return out
}

// captureL3 strips the link-layer header and returns the IP packet.
func captureL3(lt layers.LinkType, data []byte) ([]byte, bool) {
	switch lt {
	case layers.LinkTypeEthernet:
		if len(data) < 14 {
			return nil, false
		}
		et := binary.BigEndian.Uint16(data[12:14])
		data = data[14:]
		for et == 0x8100 || et == 0x88a8 {
			if len(data) < 4 {
				return nil, false
			}
			et = binary.BigEndian.Uint16(data[2:4])
			data = data[4:]
		}
		if et != 0x0800 && et != 0x86dd {
			return nil, false
		}
		return data, true
	case layers.LinkTypeLinuxSLL:
		if len(data) < 16 {
			return nil, false
		}
		return data[16:], true
	case layers.LinkTypeRaw, 12, 14: // raw IP (12 and 14 are platform aliases)
		return data, true
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(data) < 4 {
			return nil, false
		}
		return data[4:], true
	}
	return nil, false
}

// captureUDP parses an IPv4/IPv6 packet carrying UDP.
func captureUDP(ip []byte) (capturedDatagram, bool) {
	var d capturedDatagram
	if len(ip) < 1 {
		return d, false
	}
	var src, dst netip.Addr
	var udp []byte
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 {
			return d, false
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if ihl < 20 || len(ip) < ihl || ip[9] != 17 {
			return d, false
		}
		if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 { // MF or offset: fragment
			return d, false
		}
		if total >= ihl && total <= len(ip) {
			ip = ip[:total]
		}
		src = netip.AddrFrom4([4]byte(ip[12:16]))
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
		udp = ip[ihl:]
	case 6:
		if len(ip) < 40 || ip[6] != 17 {
			return d, false
		}
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		src = netip.AddrFrom16([16]byte(ip[8:24]))
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
		udp = ip[40:]
		if plen <= len(udp) {
			udp = udp[:plen]
		}
	default:
		return d, false
	}
	if len(udp) < 8 {
		return d, false
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	payload := udp[8:]
	if ulen >= 8 && ulen-8 <= len(payload) {
		payload = payload[:ulen-8]
	}
	d.From = netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:2]))
	d.To = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:4]))
	d.Payload = payload
	return d, true
}

func TestReadCaptureUDP(t *testing.T) {
	sf := readCaptureUDP(t, "../testdata/ovs-lab-1/ovs-sflow16.pcapng", 6343)
	if len(sf) == 0 {
		t.Fatal("no sFlow datagrams read from the capture")
	}
	for i, d := range sf {
		if len(d.Payload) < 28 || binary.BigEndian.Uint32(d.Payload[:4]) != 5 {
			t.Fatalf("datagram %d: not sFlow v5 (len %d)", i, len(d.Payload))
		}
		if !d.From.Addr().IsLoopback() || d.Received == 0 {
			t.Fatalf("datagram %d: from %v at %d", i, d.From, d.Received)
		}
	}
	ipfix := readCaptureUDP(t, "../testdata/ovs-lab-1/ovs-ipfix1.pcapng", 4739)
	if len(ipfix) == 0 {
		t.Fatal("no IPFIX datagrams read from the capture")
	}
	for i, d := range ipfix {
		if len(d.Payload) < 16 || binary.BigEndian.Uint16(d.Payload[:2]) != 10 {
			t.Fatalf("IPFIX datagram %d: bad version", i)
		}
		if int(binary.BigEndian.Uint16(d.Payload[2:4])) != len(d.Payload) {
			t.Fatalf("IPFIX datagram %d: message length %d != payload %d", i, binary.BigEndian.Uint16(d.Payload[2:4]), len(d.Payload))
		}
	}
}
