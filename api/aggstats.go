package api

import (
	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// Thin wrappers over aggregate's helpers, so the output code reads the
// same for every statistic.

func mergeStats(s, o *aggregate.Stats) { s.Merge(o) }

func ci95Bytes(s *aggregate.Stats) [2]float64 {
	lo, hi := s.CI95Bytes()
	return [2]float64{lo, hi}
}

func ci95Packets(s *aggregate.Stats) [2]float64 {
	lo, hi := s.CI95Packets()
	return [2]float64{lo, hi}
}

// endpoints is a directed pair regardless of export protocol.
type endpoints struct{ src, dst aggregate.EndpointKey }

// selector visits the pairs of a window that aggregate.Select(pairs,
// source) would return, in the same order, without copying them (a range
// query may visit millions of pairs). A test checks it agrees with
// aggregate.Select.
type selector struct {
	source string
	want   decoder.Source
	best   map[endpoints]int // auto only; reused across windows
}

func newSelector(source string) *selector {
	s := &selector{source: source}
	switch source {
	case "sflow":
		s.want = decoder.SourceSFlow
	case "ipfix":
		s.want = decoder.SourceIPFIX
	case "netflow9":
		s.want = decoder.SourceNetFlow9
	default:
		s.best = map[endpoints]int{}
	}
	return s
}

// precision mirrors aggregate's ranking for "auto": IPFIX > NetFlow v9 > sFlow.
func precision(s decoder.Source) int {
	switch s {
	case decoder.SourceIPFIX:
		return 3
	case decoder.SourceNetFlow9:
		return 2
	case decoder.SourceSFlow:
		return 1
	}
	return 0
}

func (s *selector) each(w *aggregate.Window, fn func(p *aggregate.Pair)) {
	if s.best == nil {
		for i := range w.Pairs {
			if w.Pairs[i].Key.Source == s.want {
				fn(&w.Pairs[i])
			}
		}
		return
	}
	// Common case: one protocol in the window, nothing to choose.
	uniform := true
	for i := 1; i < len(w.Pairs) && uniform; i++ {
		uniform = w.Pairs[i].Key.Source == w.Pairs[0].Key.Source
	}
	if uniform {
		for i := range w.Pairs {
			fn(&w.Pairs[i])
		}
		return
	}
	clear(s.best)
	for i := range w.Pairs {
		k := endpoints{w.Pairs[i].Key.Src, w.Pairs[i].Key.Dst}
		if p := precision(w.Pairs[i].Key.Source); p > s.best[k] {
			s.best[k] = p
		}
	}
	for i := range w.Pairs {
		p := &w.Pairs[i]
		if precision(p.Key.Source) == s.best[endpoints{p.Key.Src, p.Key.Dst}] {
			fn(p)
		}
	}
}
