package probe

import (
	"net/netip"
	"sync"

	"github.com/vmflow/vmflow/decoder"
)

// Event is one measurement, as exported (see decoder/probe_ies.go for the
// meaning of each field).
type Event struct {
	Time     int64 // unix ns: the first SYN / the request / the FIN, RST or error
	Kind     uint8 // decoder.ProbeEvent*
	Side     uint8 // decoder.ProbeSide*
	Outcome  uint8 // decoder.ProbeOutcome*
	Retries  uint8
	SrcMAC   [6]byte
	DstMAC   [6]byte
	Src, Dst netip.Addr // initiator, responder
	SPort    uint16
	DPort    uint16
	Proto    uint8
	IfIndex  uint32
	ICMPType uint8
	ICMPCode uint8
	RTT      uint32 // µs
	AckRTT   uint32 // µs, SYN-ACK → final ACK at the server's tap (0 not measured)
}

const (
	keyHandshake uint8 = 1
	keyClose     uint8 = 2
	keyEcho      uint8 = 3
)

// tkey identifies a pending handshake (a = client), a recently closed
// connection (a, b in canonical order) or an echo request (ap, bp = id, seq).
type tkey struct {
	a, b   netip.Addr
	ap, bp uint16
	kind   uint8
}

type entry struct {
	first, last int64 // first and latest SYN / the request
	deadline    int64
	retries     uint8
	side        uint8
	srcMAC      [6]byte
	dstMAC      [6]byte
	proto       uint8
	// awaiting the final ACK (server's tap, dynamic filter slot held):
	synack int64  // when the SYN-ACK left the VM (0: not yet)
	rtt    uint32 // SYN → SYN-ACK, µs
	ackNo  uint32 // the ACK number the final ACK carries (SYN-ACK seq + 1)
}

// closeLinger is how long a closed connection is remembered, so that the
// peer's FIN (or the RST after a FIN) is not counted as a second close.
const closeLinger int64 = 2e9

// tracker follows the handshakes and echo requests seen on one tap. It is
// fed by the tap's capture goroutine and swept by the probe's timer.
type tracker struct {
	mu      sync.Mutex
	ifIndex uint32
	max     int
	timeout int64
	table   map[tkey]entry
	emit    func(*Event)
	m       *metrics
	ev      Event // reused

	af      *ackFilter // nil: SYN-ACK → ACK not measured
	afDirty bool       // af changed since it was last attached
	afLast  int64      // when it was last attached (unix ns)
	// afKick arms a one-shot timer (attachGap) that attaches a change
	// deferred by the gap (the next burst or sweep may be far off); nil
	// in tests.
	afKick  func()
	afArmed bool
}

// attachGap is the shortest interval between two re-attachments of a
// tap's filter outside the sweep: each costs the kernel 50–180 µs (it
// checks and compiles the program), so a handshake storm at one tap costs
// at most ~1,000 of them per second.
const attachGap int64 = 1e6

func newTracker(ifIndex uint32, max int, timeout int64, emit func(*Event), m *metrics) *tracker {
	return &tracker{ifIndex: ifIndex, max: max, timeout: timeout, table: make(map[tkey]entry, max), emit: emit, m: m}
}

// syncFilter attaches the tap's current filter to fd when it changed
// (under the tracker's lock, so that attaches never reorder): by the
// capture goroutine when it has read all queued frames (at most every
// attachGap), and by the sweep (force). Until a freed slot is detached a
// few segments of its connection may pass (counted as final_acks "other").
func (t *tracker) syncFilter(fd int, now int64, force bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if force {
		t.afArmed = false
	}
	if t.af == nil || !t.afDirty {
		return
	}
	if !force && now-t.afLast < attachGap {
		if !t.afArmed && t.afKick != nil {
			t.afArmed = true
			t.afKick()
		}
		return
	}
	t.afDirty, t.afLast, t.afArmed = false, now, false
	t.m.filterUpdates.Inc()
	if err := attachFilter(fd, t.af.current()); err != nil {
		t.m.filterErrors.Inc()
	}
}

// sideOf: a packet leaving the VM (not toVM) was sent by the tap's VM.
func sideOf(initiatorFromVM bool) uint8 {
	if initiatorFromVM {
		return decoder.ProbeSideClient
	}
	return decoder.ProbeSideServer
}

func (t *tracker) insert(k tkey, e entry) bool {
	if _, ok := t.table[k]; !ok && len(t.table) >= t.max {
		t.m.overflow.Inc()
		return false
	}
	t.table[k] = e
	return true
}

// handle processes one packet.
func (t *tracker) handle(p *pkt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch p.proto {
	case 6:
		t.tcp(p)
	case 1, 58:
		t.icmp(p)
	}
}

// awaitAck parks an answered handshake seen at the server's tap until the
// client's final ACK, holding a filter slot; false (answer now) when the
// ACK cannot be timed here.
func (t *tracker) awaitAck(k *tkey, e *entry, p *pkt) bool {
	if t.af == nil || p.toVM || e.side != decoder.ProbeSideServer || !k.a.Is4() || !k.b.Is4() {
		return false
	}
	if !t.af.add(*k) {
		t.m.acks[ackNoSlot].Inc()
		return false
	}
	e.synack, e.rtt, e.ackNo = p.ts, usec(p.ts-e.last), p.seq+1
	e.deadline = p.ts + t.timeout
	t.table[*k] = *e
	t.afDirty = true
	return true
}

// ackDone reports a parked handshake: ack is the SYN-ACK → ACK time (0:
// the ACK was not seen).
func (t *tracker) ackDone(k *tkey, e *entry, ack uint32) {
	delete(t.table, *k)
	if t.af.remove(*k) {
		t.afDirty = true
	}
	if ack == 0 {
		t.m.acks[ackMissed].Inc()
	} else {
		t.m.acks[ackTimed].Inc()
	}
	t.handshake(k, e, decoder.ProbeOutcomeEstablished, e.rtt, ack)
}

// tcp processes a TCP segment.
func (t *tracker) tcp(p *pkt) {
	f := p.flags
	switch {
	case f&(tcpSYN|tcpFIN|tcpRST) == 0: // passed by a slot of the dynamic filter
		k := tkey{a: p.src, b: p.dst, ap: p.sport, bp: p.dport, kind: keyHandshake}
		e, ok := t.table[k]
		if !ok || e.synack == 0 {
			t.m.acks[ackOther].Inc()
			return
		}
		var ack uint32
		if p.plen == 0 && p.ack == e.ackNo {
			ack = max(usec(p.ts-e.synack), 1)
		} // else a data segment: the ACK came before the filter had its slot
		t.ackDone(&k, &e, ack)
	case f&tcpSYN != 0 && f&tcpACK == 0:
		k := tkey{a: p.src, b: p.dst, ap: p.sport, bp: p.dport, kind: keyHandshake}
		if e, ok := t.table[k]; ok {
			e.retries++
			if e.synack == 0 {
				e.last = p.ts
			}
			t.table[k] = e
			t.m.synRetries.Inc()
			return
		}
		t.insert(k, entry{first: p.ts, last: p.ts, deadline: p.ts + t.timeout, side: sideOf(!p.toVM),
			srcMAC: p.srcMAC, dstMAC: p.dstMAC, proto: 6})
	case f&tcpSYN != 0: // SYN-ACK
		k := tkey{a: p.dst, b: p.src, ap: p.dport, bp: p.sport, kind: keyHandshake}
		e, ok := t.table[k]
		if !ok {
			t.m.unmatched[0].Inc()
			return
		}
		if e.synack != 0 {
			return // a retransmitted SYN-ACK: still awaiting the ACK
		}
		if t.awaitAck(&k, &e, p) {
			return
		}
		delete(t.table, k)
		t.handshake(&k, &e, decoder.ProbeOutcomeEstablished, usec(p.ts-e.last), 0)
	case f&(tcpFIN|tcpRST) != 0 && t.af != nil && t.af.n > 0 && t.parkedEnd(p):
		// the client closed a handshake still awaiting its final ACK
		// here (it came before the slot): reported, then counted as a close
		t.tcp(p)
	case f&tcpRST != 0:
		k := tkey{a: p.dst, b: p.src, ap: p.dport, bp: p.sport, kind: keyHandshake}
		if e, ok := t.table[k]; ok {
			if e.synack != 0 { // the server aborts an answered handshake
				t.ackDone(&k, &e, 0)
				t.close(p, decoder.ProbeOutcomeRST)
				return
			}
			delete(t.table, k)
			t.handshake(&k, &e, decoder.ProbeOutcomeRefused, usec(p.ts-e.last), 0)
			return
		}
		t.close(p, decoder.ProbeOutcomeRST)
	case f&tcpFIN != 0:
		t.close(p, decoder.ProbeOutcomeFIN)
	}
}

// parkedEnd ends the parked handshake whose client sent p (FIN or RST):
// true if there was one.
func (t *tracker) parkedEnd(p *pkt) bool {
	k := tkey{a: p.src, b: p.dst, ap: p.sport, bp: p.dport, kind: keyHandshake}
	e, ok := t.table[k]
	if !ok || e.synack == 0 {
		return false
	}
	t.ackDone(&k, &e, 0)
	return true
}

func (t *tracker) handshake(k *tkey, e *entry, outcome uint8, rtt, ack uint32) {
	ev := &t.ev
	*ev = Event{Time: e.first, Kind: decoder.ProbeEventHandshake, Side: e.side, Outcome: outcome,
		Retries: e.retries, SrcMAC: e.srcMAC, DstMAC: e.dstMAC, Src: k.a, Dst: k.b, SPort: k.ap, DPort: k.bp,
		Proto: 6, IfIndex: t.ifIndex, RTT: rtt, AckRTT: ack}
	t.m.handshakes[outcome].Inc()
	t.emit(ev)
}

func usec(ns int64) uint32 {
	if ns <= 0 {
		return 0
	}
	us := (ns + 500) / 1000
	if us > 0xffffffff {
		return 0xffffffff
	}
	return uint32(us)
}

// close reports the first FIN or RST of a connection. The client is taken
// to be the side with the higher port (the ephemeral one): the probe does
// not keep established connections.
func (t *tracker) close(p *pkt, outcome uint8) {
	k := tkey{a: p.src, b: p.dst, ap: p.sport, bp: p.dport, kind: keyClose}
	if k.b.Less(k.a) || (k.a == k.b && k.bp < k.ap) {
		k.a, k.b, k.ap, k.bp = k.b, k.a, k.bp, k.ap
	}
	if _, ok := t.table[k]; ok {
		return
	}
	if !t.insert(k, entry{first: p.ts, deadline: p.ts + closeLinger}) {
		return
	}
	ev := &t.ev
	*ev = Event{Time: p.ts, Kind: decoder.ProbeEventClose, Outcome: outcome, Proto: 6, IfIndex: t.ifIndex,
		Src: p.src, Dst: p.dst, SPort: p.sport, DPort: p.dport, SrcMAC: p.srcMAC, DstMAC: p.dstMAC}
	fromVM := !p.toVM
	if p.sport < p.dport { // the sender is the server
		ev.Src, ev.Dst, ev.SPort, ev.DPort = p.dst, p.src, p.dport, p.sport
		ev.SrcMAC, ev.DstMAC = p.dstMAC, p.srcMAC
		fromVM = !fromVM
	}
	ev.Side = sideOf(fromVM)
	t.m.closes[outcome].Inc()
	t.emit(ev)
}

func (t *tracker) icmp(p *pkt) {
	switch {
	case isEchoRequest(p):
		k := tkey{a: p.src, b: p.dst, ap: p.echoID, bp: p.echoSeq, kind: keyEcho}
		if _, ok := t.table[k]; ok {
			return // duplicate request
		}
		t.insert(k, entry{first: p.ts, last: p.ts, deadline: p.ts + t.timeout, side: sideOf(!p.toVM),
			srcMAC: p.srcMAC, dstMAC: p.dstMAC, proto: p.proto})
	case isEchoReply(p):
		k := tkey{a: p.dst, b: p.src, ap: p.echoID, bp: p.echoSeq, kind: keyEcho}
		e, ok := t.table[k]
		if !ok {
			t.m.unmatched[1].Inc()
			return
		}
		delete(t.table, k)
		t.echo(&k, &e, decoder.ProbeOutcomeEstablished, p.ts)
	case isICMPError(p):
		if p.inner && p.innerProto == 6 { // it answers a pending SYN: the attempt failed
			k := tkey{a: p.innerSrc, b: p.innerDst, ap: p.innerSport, bp: p.innerDport, kind: keyHandshake}
			if e, ok := t.table[k]; ok && e.synack == 0 {
				delete(t.table, k)
				t.handshake(&k, &e, decoder.ProbeOutcomeUnreachable, usec(p.ts-e.last), 0)
			}
		}
		ev := &t.ev
		*ev = Event{Time: p.ts, Kind: decoder.ProbeEventICMPError, Side: sideOf(!p.toVM), Proto: p.proto,
			IfIndex: t.ifIndex, Src: p.src, Dst: p.dst, SrcMAC: p.srcMAC, DstMAC: p.dstMAC,
			ICMPType: p.icmpType, ICMPCode: p.icmpCode}
		t.m.icmpErrors.Inc()
		t.emit(ev)
	}
}

func (t *tracker) echo(k *tkey, e *entry, outcome uint8, now int64) {
	ev := &t.ev
	*ev = Event{Time: e.first, Kind: decoder.ProbeEventEcho, Side: e.side, Outcome: outcome,
		SrcMAC: e.srcMAC, DstMAC: e.dstMAC, Src: k.a, Dst: k.b, Proto: e.proto, IfIndex: t.ifIndex}
	if outcome == decoder.ProbeOutcomeEstablished {
		ev.RTT = usec(now - e.first)
	}
	t.m.echoes[outcome].Inc()
	t.emit(ev)
}

// sweep expires entries whose deadline is before now: pending handshakes
// become timed-out attempts, echo requests lost ones.
func (t *tracker) sweep(now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.table {
		if e.deadline > now {
			continue
		}
		delete(t.table, k)
		switch k.kind {
		case keyHandshake:
			if e.synack != 0 {
				t.ackDone(&k, &e, 0)
				continue
			}
			t.handshake(&k, &e, decoder.ProbeOutcomeTimedOut, 0, 0)
		case keyEcho:
			t.echo(&k, &e, decoder.ProbeOutcomeTimedOut, now)
		}
	}
}

func (t *tracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.table)
}
