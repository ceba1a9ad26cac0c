package probe

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/vmflow/vmflow/decoder"
)

// frame builds an Ethernet/IPv4 (or IPv6) frame with a TCP or ICMP header.
func frame(v6 bool, proto uint8, flags uint8, icmpType uint8, payload int) []byte {
	b := make([]byte, 14)
	copy(b[0:6], []byte{0x52, 0x54, 0, 0, 0, 2})
	copy(b[6:12], []byte{0x52, 0x54, 0, 0, 0, 1})
	var l4 []byte
	switch proto {
	case 6:
		l4 = make([]byte, 20+payload)
		binary.BigEndian.PutUint16(l4, 40000)
		binary.BigEndian.PutUint16(l4[2:], 80)
		binary.BigEndian.PutUint32(l4[4:], 1000)
		l4[12] = 5 << 4
		l4[13] = flags
	default:
		l4 = make([]byte, 8+payload)
		l4[0] = icmpType
		binary.BigEndian.PutUint16(l4[4:], 7)
		binary.BigEndian.PutUint16(l4[6:], 1)
	}
	if v6 {
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6] = proto
		if proto == 1 {
			ip[6] = 58
		}
		ip[23], ip[39] = 1, 2
		b = append(b, ip...)
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		ip[9] = proto
		copy(ip[12:], []byte{10, 0, 0, 1})
		copy(ip[16:], []byte{10, 0, 0, 2})
		b = append(b, ip...)
	}
	return append(b, l4...)
}

func TestFilterPassesOnlyControlPackets(t *testing.T) {
	raw, err := Filter()
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		ins[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		f    []byte
		pass bool
	}{
		{"v4 SYN", frame(false, 6, tcpSYN, 0, 0), true},
		{"v4 SYN-ACK", frame(false, 6, tcpSYN|tcpACK, 0, 0), true},
		{"v4 FIN-ACK", frame(false, 6, tcpFIN|tcpACK, 0, 0), true},
		{"v4 RST", frame(false, 6, tcpRST, 0, 0), true},
		{"v4 pure ACK", frame(false, 6, tcpACK, 0, 0), false},
		{"v4 data", frame(false, 6, tcpACK|0x08, 0, 1400), false},
		{"v4 echo request", frame(false, 1, 0, 8, 56), true},
		{"v4 echo reply", frame(false, 1, 0, 0, 56), true},
		{"v4 unreachable", frame(false, 1, 0, 3, 28), true},
		{"v4 redirect", frame(false, 1, 0, 5, 28), false},
		{"v4 UDP", frame(false, 17, 0, 0, 100), false},
		{"v6 SYN", frame(true, 6, tcpSYN, 0, 0), true},
		{"v6 data", frame(true, 6, tcpACK, 0, 1000), false},
		{"v6 echo request", frame(true, 1, 0, 128, 56), true},
		{"v6 echo reply", frame(true, 1, 0, 129, 56), true},
		{"v6 unreachable", frame(true, 1, 0, 1, 56), true},
		{"v6 neighbour solicitation", frame(true, 1, 0, 135, 24), false},
		{"802.1Q v4 SYN", tagged(frame(false, 6, tcpSYN, 0, 0)), true},
		{"802.1Q v4 data", tagged(frame(false, 6, tcpACK, 0, 1400)), false},
		{"802.1Q v6 echo", tagged(frame(true, 1, 0, 128, 56)), true},
		{"802.1Q v6 data", tagged(frame(true, 6, tcpACK, 0, 1000)), false},
	}
	for _, c := range cases {
		n, err := vm.Run(c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (n > 0) != c.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", c.name, n, c.pass)
		}
		if n > snapLen {
			t.Errorf("%s: %d bytes passed, snap is %d", c.name, n, snapLen)
		}
	}
	// a non-first IPv4 fragment of a "SYN" never passes
	f := frame(false, 6, tcpSYN, 0, 0)
	binary.BigEndian.PutUint16(f[14+6:], 100)
	if n, _ := vm.Run(f); n != 0 {
		t.Errorf("non-first fragment passed")
	}
}

// tagged inserts an 802.1Q tag (VLAN 42) after the MAC addresses.
func tagged(f []byte) []byte {
	out := append([]byte(nil), f[:12]...)
	out = append(out, 0x81, 0x00, 0, 42)
	return append(out, f[12:]...)
}

type recorder struct{ evs []Event }

func (r *recorder) add(e *Event) { r.evs = append(r.evs, *e) }

func testTracker(t *testing.T, max int) (*tracker, *recorder) {
	t.Helper()
	p := &Probe{}
	m, err := newMetrics(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	return newTracker(7, max, 5e9, r.add, m), r
}

var (
	cli = netip.MustParseAddr("10.0.0.1")
	srv = netip.MustParseAddr("10.0.0.2")
)

func tcpPkt(ts int64, fromCli bool, toVM bool, flags uint8) *pkt {
	p := &pkt{ts: ts, toVM: toVM, proto: 6, flags: flags, src: cli, dst: srv, sport: 40000, dport: 80}
	if !fromCli {
		p.src, p.dst, p.sport, p.dport = srv, cli, 80, 40000
	}
	return p
}

func TestTrackerClientSide(t *testing.T) {
	tr, r := testTracker(t, 16)
	// the client VM is behind the tap: its SYN leaves the VM (toVM=false)
	tr.handle(tcpPkt(1_000_000, true, false, tcpSYN))
	tr.handle(tcpPkt(1_000_000+1e9, true, false, tcpSYN)) // retransmission
	tr.handle(tcpPkt(1_000_000+1e9+250_000, false, true, tcpSYN|tcpACK))
	if len(r.evs) != 1 {
		t.Fatalf("events %+v", r.evs)
	}
	e := r.evs[0]
	if e.Kind != decoder.ProbeEventHandshake || e.Outcome != decoder.ProbeOutcomeEstablished || e.Side != decoder.ProbeSideClient ||
		e.RTT != 250 || e.Retries != 1 || e.Src != cli || e.Dst != srv || e.DPort != 80 || e.Time != 1_000_000 || e.IfIndex != 7 {
		t.Errorf("event %+v", e)
	}
	// close: FIN from the client, FIN from the server → one close
	tr.handle(tcpPkt(5e9, true, false, tcpFIN|tcpACK))
	tr.handle(tcpPkt(5e9+1000, false, true, tcpFIN|tcpACK))
	if len(r.evs) != 2 || r.evs[1].Kind != decoder.ProbeEventClose || r.evs[1].Outcome != decoder.ProbeOutcomeFIN ||
		r.evs[1].Src != cli || r.evs[1].Side != decoder.ProbeSideClient {
		t.Fatalf("close events %+v", r.evs)
	}
	if tr.pending() != 1 { // the linger entry
		t.Errorf("pending %d", tr.pending())
	}
	tr.sweep(10e9)
	if tr.pending() != 0 || len(r.evs) != 2 {
		t.Errorf("after sweep: pending %d events %d", tr.pending(), len(r.evs))
	}
}

func TestTrackerServerSideRefusedTimeout(t *testing.T) {
	tr, r := testTracker(t, 16)
	// server tap: the SYN goes to the VM (toVM), the RST comes from it
	tr.handle(tcpPkt(100, true, true, tcpSYN))
	tr.handle(tcpPkt(100+40_000, false, false, tcpRST|tcpACK))
	// a SYN never answered
	p := tcpPkt(200, true, true, tcpSYN)
	p.sport = 40001
	tr.handle(p)
	tr.sweep(200 + 4e9)
	if len(r.evs) != 1 {
		t.Fatalf("timed out too early: %+v", r.evs)
	}
	tr.sweep(200 + 5e9)
	if len(r.evs) != 2 {
		t.Fatalf("events %+v", r.evs)
	}
	if e := r.evs[0]; e.Outcome != decoder.ProbeOutcomeRefused || e.Side != decoder.ProbeSideServer || e.RTT != 40 {
		t.Errorf("refused %+v", e)
	}
	if e := r.evs[1]; e.Outcome != decoder.ProbeOutcomeTimedOut || e.RTT != 0 || e.SPort != 40001 {
		t.Errorf("timeout %+v", e)
	}
}

func TestTrackerBounded(t *testing.T) {
	tr, r := testTracker(t, 16)
	for i := 0; i < 100; i++ {
		p := tcpPkt(int64(i), true, false, tcpSYN)
		p.sport = uint16(30000 + i)
		tr.handle(p)
	}
	if tr.pending() != 16 {
		t.Errorf("pending %d, want 16", tr.pending())
	}
	tr.sweep(1e12)
	if len(r.evs) != 16 {
		t.Errorf("timeouts %d", len(r.evs))
	}
}

func TestTrackerEcho(t *testing.T) {
	tr, r := testTracker(t, 16)
	req := &pkt{ts: 1000, proto: 1, icmpType: 8, src: cli, dst: srv, echoID: 9, echoSeq: 3}
	rep := &pkt{ts: 1000 + 123_456, toVM: true, proto: 1, icmpType: 0, src: srv, dst: cli, echoID: 9, echoSeq: 3}
	tr.handle(req)
	tr.handle(rep)
	if len(r.evs) != 1 || r.evs[0].Kind != decoder.ProbeEventEcho || r.evs[0].RTT != 123 || r.evs[0].Side != decoder.ProbeSideClient {
		t.Fatalf("%+v", r.evs)
	}
}

func TestParse(t *testing.T) {
	var p pkt
	if !parse(frame(false, 6, tcpSYN, 0, 0), &p) || p.src != cli || p.dport != 80 || p.flags != tcpSYN || p.seq != 1000 {
		t.Errorf("v4 %+v", p)
	}
	p = pkt{}
	if !parse(frame(true, 1, 0, 128, 8), &p) || p.proto != 58 || p.echoID != 7 || !p.src.Is6() {
		t.Errorf("v6 %+v", p)
	}
	p = pkt{}
	if !parse(tagged(frame(false, 6, tcpSYN|tcpACK, 0, 0)), &p) || p.src != cli || p.flags != tcpSYN|tcpACK {
		t.Errorf("802.1Q %+v", p)
	}
	for n := 0; n < 60; n++ {
		f := frame(false, 6, tcpSYN, 0, 0)
		if n < len(f) {
			parse(f[:n], &pkt{}) // never panics
		}
	}
}
