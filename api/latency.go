package api

import (
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// The probe's latency pairs (decoder.SourceProbe, aggregate.Latency) join
// the pair of the selected export protocol: they add their latency, never
// traffic, and do not count as windows of the pair.

func isProbe(p *aggregate.Pair) bool { return p.Key.Source == decoder.SourceProbe }

// newLatencySelector is newSelector that also visits the probe's pairs
// (pairs, a pair and its series show their latency; the other routes are
// traffic only).
func newLatencySelector(source string) *selector {
	s := newSelector(source)
	s.latency = true
	return s
}

// addLatency handles a probe pair in acc.add (true: handled).
func addLatency(a *acc, p *aggregate.Pair, end time.Time) bool {
	if p.Key.Source != decoder.SourceProbe {
		return false
	}
	a.stats.MergeLatency(&p.Stats)
	if a.latest == nil {
		a.latest, a.last = p, end
	}
	return true
}

// withLatency is st with lat merged in (lat: accumulated before st's
// first traffic window).
func withLatency(st aggregate.Stats, lat *aggregate.Latency) aggregate.Stats {
	if lat != nil {
		st.MergeLatency(&aggregate.Stats{Lat: lat})
	}
	return st
}

// histOut summarises a latency histogram, microseconds.
type histOut struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

func histResult(h *aggregate.Hist) *histOut {
	if h.N == 0 {
		return nil
	}
	return &histOut{Count: h.N, Min: float64(h.Min), P50: h.Quantile(0.5), P95: h.Quantile(0.95),
		P99: h.Quantile(0.99), Max: float64(h.Max), Mean: h.Mean()}
}

// networkOut is the network part of the handshake (client side minus
// server side, quantile by quantile), microseconds.
type networkOut struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// latencyOut is a pair's latency and connection health from the probe.
type latencyOut struct {
	// HandshakeUS: SYN → SYN-ACK at the client's tap (network + server stack).
	HandshakeUS *histOut `json:"handshake_us,omitempty"`
	// GuestUS: SYN → SYN-ACK at the server's tap (the server guest's share).
	GuestUS *histOut `json:"guest_us,omitempty"`
	// NetworkUS: handshake − guest, when both ends' probes were seen.
	NetworkUS *networkOut `json:"network_us,omitempty"`
	// EchoUS: ICMP echo RTT at the requester's tap; EchoGuestUS at the responder's.
	EchoUS      *histOut `json:"echo_us,omitempty"`
	EchoGuestUS *histOut `json:"echo_guest_us,omitempty"`
	// AckUS: SYN-ACK → final ACK at the server's tap (the round trip back
	// to the client; needs a probe at the server's end only).
	AckUS *histOut `json:"ack_us,omitempty"`
	// MeasuredAt says whose tap the counts come from: client or server.
	MeasuredAt   string  `json:"measured_at"`
	Attempts     uint64  `json:"attempts"`
	Established  uint64  `json:"established"`
	Refused      uint64  `json:"refused"`
	TimedOut     uint64  `json:"timed_out"`
	Unreachable  uint64  `json:"unreachable"`
	SYNRetries   uint64  `json:"syn_retries"`
	FINClosed    uint64  `json:"fin_closed"`
	RSTClosed    uint64  `json:"rst_closed"`
	Echoes       uint64  `json:"echoes"`
	EchoLost     uint64  `json:"echo_lost"`
	ICMPErrors   uint64  `json:"icmp_errors"`
	FailureRatio float64 `json:"failure_ratio"`
}

func latencyResult(l *aggregate.Latency) *latencyOut {
	if l == nil {
		return nil
	}
	c := l.Counts()
	o := &latencyOut{
		HandshakeUS: histResult(&l.Handshake), GuestUS: histResult(&l.Guest),
		EchoUS: histResult(&l.Echo), EchoGuestUS: histResult(&l.EchoServer), AckUS: histResult(&l.Ack),
		MeasuredAt: "server",
		Attempts:   c.Attempts, Established: c.Established, Refused: c.Refused, TimedOut: c.TimedOut, Unreachable: c.Unreachable,
		SYNRetries: c.SYNRetries, FINClosed: c.FINClosed, RSTClosed: c.RSTClosed,
		Echoes: c.Echoes, EchoLost: c.EchoLost, ICMPErrors: c.ICMPErrors,
		FailureRatio: l.FailureRatio(),
	}
	if l.Client != (aggregate.ConnCounts{}) {
		o.MeasuredAt = "client"
	}
	if p50, ok := l.Network(0.5); ok {
		p95, _ := l.Network(0.95)
		p99, _ := l.Network(0.99)
		o.NetworkUS = &networkOut{P50: p50, P95: p95, P99: p99}
	}
	return o
}

// OpenAPI schemas of latencyOut (openapi.go).
func latencyHistSchema() obj {
	return object("A latency distribution, microseconds (log histogram: quantiles within 1%, min and max exact).", obj{
		"count": integer("values"), "min": num("smallest"), "p50": num("median"), "p95": num("95th percentile"),
		"p99": num("99th percentile"), "max": num("largest"), "mean": num("mean"),
	}, "count", "min", "p50", "p95", "p99", "max", "mean")
}

func latencySchema() obj {
	return object("The vmflow probe's measurements of the pair (absent without a probe; README \"Latency probe\").", obj{
		"handshake_us":  ref("LatencyHist"),
		"guest_us":      ref("LatencyHist"),
		"network_us":    object("handshake minus guest (both ends' probes seen), µs", obj{"p50": num("median"), "p95": num("95th percentile"), "p99": num("99th percentile")}, "p50", "p95", "p99"),
		"echo_us":       ref("LatencyHist"),
		"echo_guest_us": ref("LatencyHist"),
		"ack_us":        ref("LatencyHist"),
		"unreachable":   integer("answered by an ICMP error (unreachable, time exceeded)"),
		"measured_at":   str("whose tap the counts come from: `client` or `server`"),
		"attempts":      integer("TCP connection attempts (first SYNs)"),
		"established":   integer("answered by SYN-ACK"),
		"refused":       integer("answered by RST"),
		"timed_out":     integer("not answered within probe.handshake_timeout"),
		"syn_retries":   integer("SYN retransmissions"),
		"fin_closed":    integer("connections closed by FIN"),
		"rst_closed":    integer("connections closed by RST"),
		"echoes":        integer("ICMP echo requests"),
		"echo_lost":     integer("echo requests not answered"),
		"icmp_errors":   integer("ICMP errors seen at the tap"),
		"failure_ratio": num("(refused + timed_out + unreachable) / attempts"),
	}, "measured_at", "attempts", "established", "refused", "timed_out", "unreachable", "syn_retries", "fin_closed", "rst_closed",
		"echoes", "echo_lost", "icmp_errors", "failure_ratio")
}
