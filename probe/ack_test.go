package probe

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vmflow/vmflow/decoder"
)

func runFilter(t *testing.T, raw []bpf.RawInstruction, f []byte) int {
	t.Helper()
	ins := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		ins[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	n, err := vm.Run(f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAckFilterSlots: the dynamic filter passes segments without
// SYN/FIN/RST only for the 4-tuples in its slots, and still everything the
// static filter passes; with no slot in use it is the static filter.
func TestAckFilterSlots(t *testing.T) {
	static, err := Filter()
	if err != nil {
		t.Fatal(err)
	}
	af, err := newAckFilter(static, MaxAckSlots)
	if err != nil {
		t.Fatal(err)
	}
	ack := frame(false, 6, tcpACK, 0, 0) // 10.0.0.1:40000 → 10.0.0.2:80
	data := frame(false, 6, tcpACK, 0, 1400)
	other := frame(false, 6, tcpACK, 0, 0)
	binary.BigEndian.PutUint16(other[14+20:], 40001)
	k := tkey{a: cli, b: srv, ap: 40000, bp: 80, kind: keyHandshake}
	if len(af.current()) != len(static) || runFilter(t, af.current(), ack) != 0 {
		t.Fatal("no slot used: not the static filter")
	}
	for i := range MaxAckSlots - 1 { // fill all but one slot with other tuples
		if !af.add(tkey{a: srv, b: cli, ap: uint16(1000 + i), bp: 22}) {
			t.Fatal("slot refused")
		}
	}
	if !af.add(k) || af.add(tkey{a: cli, b: srv, ap: 1, bp: 2}) {
		t.Fatal("last slot: want taken, then full")
	}
	prog := af.current()
	for _, c := range []struct {
		name string
		f    []byte
		pass bool
	}{
		{"slot's ACK", ack, true},
		{"slot's data", data, true},
		{"other tuple's ACK", other, false},
		{"tagged ACK", tagged(ack), false},
		{"v6 ACK", frame(true, 6, tcpACK, 0, 0), false},
		{"SYN", frame(false, 6, tcpSYN, 0, 0), true},
		{"echo", frame(false, 1, 0, 8, 56), true},
		{"UDP", frame(false, 17, 0, 0, 100), false},
	} {
		if n := runFilter(t, prog, c.f); (n > 0) != c.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", c.name, n, c.pass)
		}
	}
	if !af.remove(k) || runFilter(t, af.current(), ack) != 0 {
		t.Error("removed slot still passes")
	}
}

// TestTrackerFinalAck: at the server's tap the SYN-ACK → ACK time is
// measured with the dynamic filter's slot; a data segment first (the ACK
// came before the slot) or no ACK at all is "missed", a full slot table
// "no_slot", and all of them are still established handshakes.
func TestTrackerFinalAck(t *testing.T) {
	tr, r := testTracker(t, 64)
	static, _ := Filter()
	var err error
	if tr.af, err = newAckFilter(static, 2); err != nil {
		t.Fatal(err)
	}
	syn := func(ts int64, sport uint16) {
		p := tcpPkt(ts, true, true, tcpSYN) // to the server VM
		p.sport, p.seq = sport, 5000
		tr.handle(p)
	}
	synack := func(ts int64, sport uint16) {
		p := tcpPkt(ts, false, false, tcpSYN|tcpACK) // from it
		p.dport, p.seq, p.ack = sport, 9000, 5001
		tr.handle(p)
	}
	ackp := func(ts int64, sport uint16, plen int) {
		p := tcpPkt(ts, true, true, tcpACK)
		p.sport, p.seq, p.ack, p.plen = sport, 5001, 9001, plen
		tr.handle(p)
	}
	syn(1000, 1)
	synack(1000+30_000, 1)
	if len(r.evs) != 0 || tr.af.n != 1 {
		t.Fatalf("SYN-ACK reported before its ACK: %+v, slots %d", r.evs, tr.af.n)
	}
	ackp(1000+30_000+2_500_000, 1, 0)
	if len(r.evs) != 1 || r.evs[0].Outcome != decoder.ProbeOutcomeEstablished || r.evs[0].RTT != 30 ||
		r.evs[0].AckRTT != 2500 || r.evs[0].Side != decoder.ProbeSideServer || tr.af.n != 0 {
		t.Fatalf("timed ACK: %+v slots %d", r.evs, tr.af.n)
	}
	// missed: the first segment of the tuple carries data
	syn(2000, 2)
	synack(3000, 2)
	ackp(9000, 2, 100)
	// two parked, the third finds no slot and is reported at once
	syn(4000, 3)
	synack(5000, 3)
	syn(4000, 4)
	synack(5000, 4)
	syn(4000, 5)
	synack(6000, 5)
	if len(r.evs) != 3 || r.evs[1].AckRTT != 0 || r.evs[2].SPort != 5 || r.evs[2].AckRTT != 0 || r.evs[2].RTT != 2 {
		t.Fatalf("missed / no slot: %+v", r.evs)
	}
	// a parked one whose ACK never comes expires as established, not timed out
	tr.sweep(5000 + 5e9)
	if len(r.evs) != 5 || tr.af.n != 0 || tr.pending() != 0 {
		t.Fatalf("expiry: %+v slots %d pending %d", r.evs, tr.af.n, tr.pending())
	}
	for _, e := range r.evs {
		if e.Outcome != decoder.ProbeOutcomeEstablished {
			t.Errorf("not established: %+v", e)
		}
	}
	got := [4]float64{}
	for i := range got {
		got[i] = testutil.ToFloat64(tr.m.acks[i])
	}
	if got != [4]float64{1, 3, 1, 0} {
		t.Errorf("final acks timed/missed/no_slot/other = %v, want [1 3 1 0]", got)
	}
	// the client closes before its ACK was seen: reported (missed), and a close
	syn(7000, 6)
	synack(8000, 6)
	fin := tcpPkt(9000, true, true, tcpFIN|tcpACK)
	fin.sport = 6
	tr.handle(fin)
	if len(r.evs) != 7 || r.evs[5].SPort != 6 || r.evs[5].Kind != decoder.ProbeEventHandshake ||
		r.evs[6].Kind != decoder.ProbeEventClose || tr.af.n != 0 {
		t.Fatalf("FIN of a parked handshake: %+v slots %d", r.evs[5:], tr.af.n)
	}
	r.evs = r.evs[:5]
	// at the client's tap nothing is parked
	syn2 := tcpPkt(1, true, false, tcpSYN)
	tr.handle(syn2)
	tr.handle(tcpPkt(2001, false, true, tcpSYN|tcpACK))
	if len(r.evs) != 6 || r.evs[5].Side != decoder.ProbeSideClient || tr.af.n != 0 {
		t.Errorf("client side: %+v", r.evs)
	}
}

// icmpUnreach builds a port unreachable from the server's host to the
// client, quoting the client's SYN 10.0.0.1:40000 → 10.0.0.2:80.
func icmpUnreach() []byte {
	syn := frame(false, 6, tcpSYN, 0, 0)[14:] // IP + TCP
	f := frame(false, 1, 0, 3, 0)
	f = append(f, syn[:28]...)
	ip := f[14:]
	copy(ip[12:], []byte{10, 0, 0, 2})
	copy(ip[16:], []byte{10, 0, 0, 1})
	ip[14+20+1-14] = 3 // code: port unreachable
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	return f
}

func TestTrackerUnreachable(t *testing.T) {
	var p pkt
	if !parse(icmpUnreach(), &p) || !p.inner || p.innerProto != 6 || p.innerSrc != cli || p.innerDst != srv ||
		p.innerSport != 40000 || p.innerDport != 80 {
		t.Fatalf("quoted SYN not parsed: %+v", p)
	}
	tr, r := testTracker(t, 16)
	tr.handle(tcpPkt(1000, true, false, tcpSYN))
	p.ts, p.toVM = 1000+700_000, true
	tr.handle(&p)
	if len(r.evs) != 2 || r.evs[0].Kind != decoder.ProbeEventHandshake || r.evs[0].Outcome != decoder.ProbeOutcomeUnreachable ||
		r.evs[0].RTT != 700 || r.evs[1].Kind != decoder.ProbeEventICMPError || tr.pending() != 0 {
		t.Fatalf("events %+v pending %d", r.evs, tr.pending())
	}
	// an ICMP error quoting no pending SYN is only an ICMP error
	q := p
	q.innerSport = 1
	tr.handle(&q)
	if len(r.evs) != 3 || r.evs[2].Kind != decoder.ProbeEventICMPError {
		t.Fatalf("events %+v", r.evs)
	}
}

// FuzzParse: any frame the filter could pass (truncated to the snap
// length or not) parses without panicking, and what parses feeds the
// tracker (with the dynamic filter) without panicking either.
func FuzzParse(f *testing.F) {
	f.Add(frame(false, 6, tcpSYN, 0, 0))
	f.Add(frame(false, 6, tcpACK, 0, 0))
	f.Add(frame(true, 6, tcpSYN|tcpACK, 0, 0))
	f.Add(icmpUnreach())
	f.Add(tagged(frame(true, 1, 0, 1, 48)))
	tr, _ := fuzzTracker(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p pkt
		if parse(b, &p) {
			tr.handle(&p)
		}
		tr.sweep(1 << 62)
	})
}

func fuzzTracker(f *testing.F) (*tracker, *recorder) {
	m, err := newMetrics(nil, &Probe{})
	if err != nil {
		f.Fatal(err)
	}
	r := &recorder{}
	tr := newTracker(1, 64, 5e9, func(e *Event) {}, m)
	static, _ := Filter()
	tr.af, _ = newAckFilter(static, 4)
	return tr, r
}

// TestFilterReattachGap: re-attachments outside the sweep are at least
// attachGap apart; a change that comes sooner arms the timer once, and the
// timer's (forced) sync attaches it.
func TestFilterReattachGap(t *testing.T) {
	tr, _ := testTracker(t, 16)
	static, _ := Filter()
	tr.af, _ = newAckFilter(static, 4)
	kicks := 0
	tr.afKick = func() { kicks++ }
	updates := func() float64 { return testutil.ToFloat64(tr.m.filterUpdates) }
	tr.af.add(tkey{a: cli, b: srv, ap: 1, bp: 2})
	tr.afDirty = true
	tr.syncFilter(-1, 10e9, false)
	tr.af.add(tkey{a: cli, b: srv, ap: 3, bp: 4})
	tr.afDirty = true
	tr.syncFilter(-1, 10e9+attachGap/2, false)
	tr.syncFilter(-1, 10e9+attachGap/2+1, false)
	if updates() != 1 || kicks != 1 || !tr.afDirty {
		t.Fatalf("within the gap: updates %v kicks %d dirty %v", updates(), kicks, tr.afDirty)
	}
	tr.syncFilter(-1, 10e9+attachGap/2+2, true) // the timer
	if updates() != 2 || tr.afDirty || tr.afArmed {
		t.Fatalf("timer: updates %v dirty %v armed %v", updates(), tr.afDirty, tr.afArmed)
	}
}
