package aggregate

import (
	"math"

	"github.com/vmflow/vmflow/decoder"
)

// Connection health without a probe (see README "Connection health from
// OVS"): a pair's SYNs against the answers on the reverse pair of the same
// window and export protocol, SYN-ACKs (accepted) and RSTs (refused).
// The window close (merge) fills Stats.SYNACKIn and RSTIn (fillAnswers); they add
// up across windows like every other count.

// fillAnswers sets each pair's SYNACKIn/RSTIn from its reverse pair,
// looked up in the merged shard's own index (no extra map): only pairs
// with SYNs look up. Flow records (IPFIX, NetFlow v9) carry the OR of
// their packets' flags, so the server's side of an accepted connection
// (SYN+ACK, then ACKs) counts as a SYN flow like the client's: for them
// the reverse pair's SYN flows are answers too.
func fillAnswers(sh *shard) {
	for i := range sh.slots {
		sl := &sh.slots[i]
		if sl.st.SYN <= 0 {
			continue
		}
		rev := PairKey{Src: sl.key.Dst, Dst: sl.key.Src, Source: sl.key.Source}
		if j, ok := sh.find(&rev); ok {
			r := &sh.slots[j].st
			sl.st.SYNACKIn = r.SYNACK
			if sl.key.Source != decoder.SourceSFlow {
				sl.st.SYNACKIn += r.SYN
			}
			sl.st.RSTIn = r.RST
		}
	}
}

// ConnHealth is a pair's estimated connection failure: the share of its
// SYNs (scaled estimates) not answered by a SYN-ACK on the reverse pair,
// and the share answered by a RST (refused), each with a 95% interval.
type ConnHealth struct {
	SYN, SYNACK, RST float64 // estimates: SYNs sent, SYN-ACKs and RSTs received
	// Sampled counts behind the estimates (estimate × sampled/estimated
	// packets of the pair and of its reverse).
	SampledSYN, SampledSYNACK, SampledRST float64
	FailureRatio                          float64
	FailureCI95                           [2]float64
	RefusedRatio                          float64
	RefusedCI95                           [2]float64
}

// Health returns the pair's connection health, or false without SYNs.
//
// The interval: with 1-in-N packet sampling the sampled SYNs s and SYN-ACKs
// a are independent (≈ Poisson); given a+s, a is binomial with p =
// A/(A+S), the true answers A over answers plus SYNs S. The Wilson score
// interval of p from (a, a+s) maps monotonically to the answered ratio
// A/S = p/(1−p), and failure = 1 − A/S (clamped to [0, 1]). With
// unsampled data (IPFIX 1-in-1, sFlow 1-in-1) the counts are exact and the
// interval is that of the failure probability given this many attempts.
// revRate is the reverse pair's sampled/estimated packet ratio (1/N; 0:
// take the pair's own).
func (s *Stats) Health(revRate float64) (ConnHealth, bool) {
	if s.SYN <= 0 {
		return ConnHealth{}, false
	}
	rate := 1.0
	if s.Packets > 0 && s.SampledPackets > 0 {
		rate = float64(s.SampledPackets) / s.Packets
	}
	if revRate <= 0 {
		revRate = rate
	}
	h := ConnHealth{SYN: s.SYN, SYNACK: s.SYNACKIn, RST: s.RSTIn,
		SampledSYN: s.SYN * rate, SampledSYNACK: s.SYNACKIn * revRate, SampledRST: s.RSTIn * revRate}
	h.FailureRatio = clamp01(1 - s.SYNACKIn/s.SYN)
	h.RefusedRatio = clamp01(s.RSTIn / s.SYN)
	// failure = 1 − answered ratio: decreasing in p.
	lo, hi := ratioCI(h.SampledSYNACK, h.SampledSYN)
	h.FailureCI95 = [2]float64{clamp01(1 - hi), clamp01(1 - lo)}
	lo, hi = ratioCI(h.SampledRST, h.SampledSYN)
	h.RefusedCI95 = [2]float64{clamp01(lo), clamp01(hi)}
	return h, true
}

// ratioCI is the 95% interval of A/S from sampled counts a and s (see
// Health): Wilson on p = a/(a+s), mapped through p/(1−p).
func ratioCI(a, s float64) (lo, hi float64) {
	pl, ph := Wilson(a, a+s)
	return odds(pl), odds(ph)
}

func odds(p float64) float64 {
	if p >= 1 {
		return math.Inf(1)
	}
	return p / (1 - p)
}

// Wilson returns the 95% Wilson score interval of a proportion k/n
// (k, n may be fractional estimates of counts; n <= 0 gives [0, 1]).
func Wilson(k, n float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	k = math.Min(math.Max(k, 0), n)
	p := k / n
	z2 := z95 * z95
	den := 1 + z2/n
	c := (p + z2/(2*n)) / den
	d := z95 * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / den
	return math.Max(0, c-d), math.Min(1, c+d)
}

func clamp01(v float64) float64 {
	switch {
	case math.IsNaN(v):
		return 0
	case v < 0:
		return 0
	case v > 1:
		return 1
	}
	return v
}
