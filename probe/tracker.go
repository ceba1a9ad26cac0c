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
}

func newTracker(ifIndex uint32, max int, timeout int64, emit func(*Event), m *metrics) *tracker {
	return &tracker{ifIndex: ifIndex, max: max, timeout: timeout, table: make(map[tkey]entry, max), emit: emit, m: m}
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

func (t *tracker) tcp(p *pkt) {
	f := p.flags
	switch {
	case f&tcpSYN != 0 && f&tcpACK == 0:
		k := tkey{a: p.src, b: p.dst, ap: p.sport, bp: p.dport, kind: keyHandshake}
		if e, ok := t.table[k]; ok {
			e.retries++
			e.last = p.ts
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
		delete(t.table, k)
		t.handshake(&k, &e, decoder.ProbeOutcomeEstablished, p.ts)
	case f&tcpRST != 0:
		k := tkey{a: p.dst, b: p.src, ap: p.dport, bp: p.sport, kind: keyHandshake}
		if e, ok := t.table[k]; ok {
			delete(t.table, k)
			t.handshake(&k, &e, decoder.ProbeOutcomeRefused, p.ts)
			return
		}
		t.close(p, decoder.ProbeOutcomeRST)
	case f&tcpFIN != 0:
		t.close(p, decoder.ProbeOutcomeFIN)
	}
}

func (t *tracker) handshake(k *tkey, e *entry, outcome uint8, now int64) {
	ev := &t.ev
	*ev = Event{Time: e.first, Kind: decoder.ProbeEventHandshake, Side: e.side, Outcome: outcome,
		Retries: e.retries, SrcMAC: e.srcMAC, DstMAC: e.dstMAC, Src: k.a, Dst: k.b, SPort: k.ap, DPort: k.bp,
		Proto: 6, IfIndex: t.ifIndex}
	if outcome != decoder.ProbeOutcomeTimedOut {
		ev.RTT = usec(now - e.last)
	}
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
			t.handshake(&k, &e, decoder.ProbeOutcomeTimedOut, now)
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
