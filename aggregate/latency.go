package aggregate

import (
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// Latency and connection health per directed pair, from the vmflow probe's
// measurements (decoder.Measurement). They live on the pair of protocol
// decoder.SourceProbe (Stats.Lat), which never has traffic: Select joins
// them to the pair of the chosen export protocol.
//
// Where each quantity is measured:
//
//   - Handshake: SYN → SYN-ACK at the client's tap: the round trip through
//     the network and the server's stack (what the client waits for).
//   - Guest: SYN → SYN-ACK at the server's tap: the server guest's own
//     share (its kernel's time to answer).
//   - Network (derived, LatencyView): Handshake − Guest quantile by
//     quantile, when both ends' probes were seen.
//   - Echo: ICMP echo request → reply at the requester's tap.
//
// Counts come from the client's tap when it had a probe in the window,
// else from the server's tap (never both added: each end sees the same
// attempts).

// histGamma is the ratio of consecutive bucket bounds: values are kept
// with a relative error of at most (γ−1)/(γ+1) ≈ 1%.
const histGamma = 1.02

var histLogGamma = math.Log(histGamma)

// HistBucket counts the values v (µs) with ⌈log_γ v⌉ = I (I = -1 for 0).
type HistBucket struct {
	I int32
	C uint64
}

// Hist is an exactly mergeable log histogram of microsecond values:
// merging two histograms gives the histogram of the union of their values,
// so windows and store tiers merge exactly. Min and Max are exact.
type Hist struct {
	N        uint64
	Sum      float64 // µs
	Min, Max uint32
	B        []HistBucket // sorted by I
}

func histIndex(v uint32) int32 {
	if v == 0 {
		return -1
	}
	return int32(math.Ceil(math.Log(float64(v))/histLogGamma - 1e-9))
}

// Add counts one value (µs). No allocation once the value's bucket exists.
func (h *Hist) Add(v uint32) { h.addN(histIndex(v), 1, v, v, float64(v)) }

func (h *Hist) addN(i int32, c uint64, lo, hi uint32, sum float64) {
	if h.N == 0 || lo < h.Min {
		h.Min = lo
	}
	if hi > h.Max {
		h.Max = hi
	}
	h.N += c
	h.Sum += sum
	k, found := slices.BinarySearchFunc(h.B, i, func(b HistBucket, i int32) int { return int(b.I - i) })
	if found {
		h.B[k].C += c
		return
	}
	h.B = slices.Insert(h.B, k, HistBucket{I: i, C: c})
}

// Merge adds o's values into h.
func (h *Hist) Merge(o *Hist) {
	if o.N == 0 {
		return
	}
	if h.N == 0 || o.Min < h.Min {
		h.Min = o.Min
	}
	if o.Max > h.Max {
		h.Max = o.Max
	}
	h.N += o.N
	h.Sum += o.Sum
	for _, b := range o.B {
		k, found := slices.BinarySearchFunc(h.B, b.I, func(x HistBucket, i int32) int { return int(x.I - i) })
		if found {
			h.B[k].C += b.C
		} else {
			h.B = slices.Insert(h.B, k, b)
		}
	}
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) in µs: the value of rank
// ⌈q·N⌉, within 1% (the bucket's midpoint), clamped to [Min, Max].
func (h *Hist) Quantile(q float64) float64 {
	if h.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.N)))
	switch {
	case rank <= 1:
		return float64(h.Min)
	case rank >= h.N:
		return float64(h.Max)
	}
	var cum uint64
	for _, b := range h.B {
		cum += b.C
		if cum >= rank {
			v := 0.0
			if b.I >= 0 {
				v = 2 * math.Pow(histGamma, float64(b.I)) / (1 + histGamma)
			}
			return math.Min(math.Max(v, float64(h.Min)), float64(h.Max))
		}
	}
	return float64(h.Max)
}

// Mean in µs.
func (h *Hist) Mean() float64 {
	if h.N == 0 {
		return 0
	}
	return h.Sum / float64(h.N)
}

func (h *Hist) clone() Hist {
	c := *h
	c.B = slices.Clone(h.B)
	return c
}

// ConnCounts are a pair's connection outcomes seen at one end's tap.
type ConnCounts struct {
	Attempts    uint64 // TCP connection attempts (first SYNs)
	Established uint64 // answered by SYN-ACK
	Refused     uint64 // answered by RST
	TimedOut    uint64 // not answered within the probe's timeout
	Unreachable uint64 // answered by an ICMP error (unreachable, time exceeded, ...)
	SYNRetries  uint64 // SYN retransmissions
	FINClosed   uint64 // connections closed by FIN
	RSTClosed   uint64 // connections closed (or aborted) by RST
	Echoes      uint64 // ICMP echo requests
	EchoLost    uint64 // unanswered
	ICMPErrors  uint64 // ICMP errors seen at the tap
}

func (c *ConnCounts) add(o *ConnCounts) {
	c.Attempts += o.Attempts
	c.Established += o.Established
	c.Refused += o.Refused
	c.TimedOut += o.TimedOut
	c.Unreachable += o.Unreachable
	c.SYNRetries += o.SYNRetries
	c.FINClosed += o.FINClosed
	c.RSTClosed += o.RSTClosed
	c.Echoes += o.Echoes
	c.EchoLost += o.EchoLost
	c.ICMPErrors += o.ICMPErrors
}

func (c *ConnCounts) any() bool { return *c != ConnCounts{} }

// Latency is a pair's probe measurements in a window (or merged windows).
type Latency struct {
	Client, Server ConnCounts // by the tap that saw them
	Handshake      Hist       // SYN → SYN-ACK at the client's tap
	Guest          Hist       // SYN → SYN-ACK at the server's tap
	Echo           Hist       // echo RTT at the requester's tap
	EchoServer     Hist       // echo RTT at the responder's tap (its guest's share)
	// Ack is SYN-ACK → final ACK at the server's tap: the round trip from
	// the server's hypervisor back to the client and its guest's answer
	// (needs a probe at the server's end only).
	Ack Hist
}

// Merge adds o into l (exact).
func (l *Latency) Merge(o *Latency) {
	l.Client.add(&o.Client)
	l.Server.add(&o.Server)
	l.Handshake.Merge(&o.Handshake)
	l.Guest.Merge(&o.Guest)
	l.Echo.Merge(&o.Echo)
	l.EchoServer.Merge(&o.EchoServer)
	l.Ack.Merge(&o.Ack)
}

// Clone is a deep copy.
func (l *Latency) Clone() *Latency {
	c := *l
	c.Handshake, c.Guest, c.Echo, c.EchoServer = l.Handshake.clone(), l.Guest.clone(), l.Echo.clone(), l.EchoServer.clone()
	c.Ack = l.Ack.clone()
	return &c
}

// Counts returns the client tap's counts when it saw anything, else the
// server tap's.
func (l *Latency) Counts() ConnCounts {
	if l.Client.any() {
		return l.Client
	}
	return l.Server
}

// FailureRatio is (refused + timed out + unreachable) / attempts (0 without attempts).
func (l *Latency) FailureRatio() float64 {
	c := l.Counts()
	if c.Attempts == 0 {
		return 0
	}
	return float64(c.Refused+c.TimedOut+c.Unreachable) / float64(c.Attempts)
}

// Network is the network part at quantile q (µs): client-side handshake
// minus server-side (guest) time, when both ends were seen (ok false else).
func (l *Latency) Network(q float64) (float64, bool) {
	if l.Handshake.N == 0 || l.Guest.N == 0 {
		return 0, false
	}
	return math.Max(0, l.Handshake.Quantile(q)-l.Guest.Quantile(q)), true
}

// add counts one measurement.
func (l *Latency) add(m *decoder.Measurement) {
	c := &l.Client
	client := m.Side == decoder.ProbeSideClient
	if !client {
		c = &l.Server
	}
	switch m.Event {
	case decoder.ProbeEventHandshake:
		c.Attempts++
		c.SYNRetries += uint64(m.Retries)
		switch m.Outcome {
		case decoder.ProbeOutcomeEstablished:
			c.Established++
			if client {
				l.Handshake.Add(m.RTT)
			} else {
				l.Guest.Add(m.RTT)
				if m.AckRTT != 0 {
					l.Ack.Add(m.AckRTT)
				}
			}
		case decoder.ProbeOutcomeRefused:
			c.Refused++
		case decoder.ProbeOutcomeTimedOut:
			c.TimedOut++
		case decoder.ProbeOutcomeUnreachable:
			c.Unreachable++
		}
	case decoder.ProbeEventClose:
		if m.Outcome == decoder.ProbeOutcomeRST {
			c.RSTClosed++
		} else {
			c.FINClosed++
		}
	case decoder.ProbeEventEcho:
		c.Echoes++
		if m.Outcome != decoder.ProbeOutcomeEstablished {
			c.EchoLost++
		} else if client {
			l.Echo.Add(m.RTT)
		} else {
			l.EchoServer.Add(m.RTT)
		}
	case decoder.ProbeEventICMPError:
		c.ICMPErrors++
	}
}

// AddMeasurements adds a datagram's probe measurements under one lock:
// each goes to the directed pair initiator → responder of protocol
// decoder.SourceProbe. They never touch traffic statistics.
func (w *Worker) AddMeasurements(idx *enrich.Index, ms []decoder.Measurement) {
	w.mu.Lock()
	for i := range ms {
		w.addMeasurement(idx, &ms[i])
	}
	w.mu.Unlock()
}

func (w *Worker) addMeasurement(idx *enrich.Index, m *decoder.Measurement) {
	srcKey, _ := w.endpoint(idx, m.SrcMAC, m.SrcIP, 0)
	dstKey, _ := w.endpoint(idx, m.DstMAC, m.DstIP, 0)
	w.cnt.measurements++
	key := PairKey{Src: srcKey, Dst: dstKey, Source: decoder.SourceProbe}
	st := &w.cur.slots[w.slot(&key)].st
	if st.Lat == nil {
		st.Lat = &Latency{}
	}
	st.Lat.add(m)
	if m.SrcIP.IsValid() {
		st.SrcIP, st.DstIP = m.SrcIP, m.DstIP
	}
	if m.SrcMAC != ([6]byte{}) || m.DstMAC != ([6]byte{}) {
		st.SrcMAC, st.DstMAC = m.SrcMAC, m.DstMAC
	}
	if st.First == 0 || (m.Received != 0 && m.Received < st.First) {
		st.First = m.Received
	}
	if m.Received > st.Last {
		st.Last = m.Received
	}
}

// MergeLatency merges only o's latency into s (copy on write).
func (s *Stats) MergeLatency(o *Stats) { s.mergeLat(o) }

// mergeLat merges o's latency into s, copy on write: s.Lat may be shared
// with a closed (immutable) window, so it is replaced, never modified.
func (s *Stats) mergeLat(o *Stats) {
	if o.Lat == nil {
		return
	}
	if s.Lat == nil {
		s.Lat = o.Lat.Clone()
		return
	}
	n := s.Lat.Clone()
	n.Merge(o.Lat)
	s.Lat = n
}

// JoinLatency adds to each pair of out the latency of the probe pair with
// the same endpoints in probe (keyed by ends), and returns the probe pairs
// that found no traffic pair (latency of pairs with no traffic seen).
func joinLatency(out []Pair, probe []Pair) []Pair {
	if len(probe) == 0 {
		return out
	}
	type ends struct{ src, dst EndpointKey }
	at := make(map[ends]int, len(out))
	for i := range out {
		at[ends{out[i].Key.Src, out[i].Key.Dst}] = i
	}
	for _, p := range probe {
		if i, ok := at[ends{p.Key.Src, p.Key.Dst}]; ok {
			out[i].Stats.mergeLat(&p.Stats)
			continue
		}
		out = append(out, p)
	}
	return out
}

var descMeasurements = prometheus.NewDesc("vmflow_aggregate_measurements_total",
	"vmflow probe measurements added to pairs' latency (never traffic).", nil, nil)

// Measurements is the number of probe measurements added to pairs.
func (c Counters) Measurements() uint64 { return c.measurements }
