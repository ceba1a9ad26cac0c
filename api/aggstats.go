package api

import (
	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/store"
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

// endpointID is store.EndpointID (see there for why a VM endpoint is its
// name and UUID, not its process-local id).
type endpointID = store.EndpointID

// idOf is the canonical identity (used once per distinct pair).
func idOf(e *aggregate.Endpoint, k aggregate.EndpointKey) endpointID { return store.IDOf(e, k) }

// visitID is the identity used per visited pair: the key itself when it
// is set (cheap to hash), the name only for an unresolved key. Within one
// window (one tier) it tells pairs apart exactly like idOf; pairs of
// different tiers are then merged by idOf (see mergeByID).
func visitID(e *aggregate.Endpoint, k aggregate.EndpointKey) endpointID {
	if k.VM != 0 || k.IP.IsValid() {
		return endpointID{VM: k.VM, IP: k.IP}
	}
	return endpointID{Name: e.VM, UUID: e.UUID}
}

// endpoints is a directed pair regardless of export protocol.
type endpoints struct{ src, dst endpointID }

func visitKey(p *aggregate.Pair) endpoints {
	return endpoints{visitID(&p.Src, p.Key.Src), visitID(&p.Dst, p.Key.Dst)}
}

func canonicalKey(p *aggregate.Pair) endpoints {
	return endpoints{idOf(&p.Src, p.Key.Src), idOf(&p.Dst, p.Key.Dst)}
}

// mergeByID merges the accumulators of one pair seen under different keys
// (memory's VM ids, history's names) into one per canonical identity.
func mergeByID(accs map[endpoints]*acc) map[endpoints]*acc {
	out := make(map[endpoints]*acc, len(accs))
	for _, a := range accs {
		k := canonicalKey(a.latest)
		if b := out[k]; b != nil {
			b.merge(a)
			continue
		}
		out[k] = a
	}
	return out
}

// selector visits the pairs of a range of windows that
// aggregate.Select(all the range's pairs, source) would return, in the same
// order, without copying them (a range query may visit millions of pairs).
// A test checks it agrees with aggregate.Select.
//
// "auto" chooses per directed pair over the whole range, not per window:
// IPFIX reports a flow only when OVS's cache exports it (the active
// timeout, 10 s or more, after the traffic), so the first window of a flow
// often holds sFlow samples and no IPFIX record yet; choosing per window
// would count that traffic twice (sFlow now, IPFIX a window later).
type selector struct {
	source  string
	want    decoder.Source
	best    map[endpoints]int // auto only
	uniform bool              // auto: one protocol in the whole range
	latency bool              // also visit the probe's pairs (latency.go)
}

func newSelector(source string) *selector {
	s := &selector{source: source}
	if want, auto := sourceOf(source); auto {
		s.best = map[endpoints]int{}
	} else {
		s.want = want
	}
	return s
}

// sourceOf maps ?source= to a protocol, or auto.
func sourceOf(source string) (want decoder.Source, auto bool) {
	switch source {
	case "sflow":
		return decoder.SourceSFlow, false
	case "ipfix":
		return decoder.SourceIPFIX, false
	case "netflow9":
		return decoder.SourceNetFlow9, false
	}
	return decoder.SourceUnknown, true
}

// precision mirrors aggregate's ranking for "auto": IPFIX > NetFlow v9 > sFlow.
func precision(s decoder.Source) int { return aggregate.Precision(s) }

// prepare reads the range (every window each will be called with) and, for
// "auto", picks each pair's protocol. It must be called before each.
func (s *selector) prepare(ws []*aggregate.Window) {
	if s.best == nil {
		return
	}
	clear(s.best)
	// Common case: one protocol in the range, nothing to choose.
	s.uniform = true
	var first *aggregate.Pair
	for _, w := range ws {
		for i := range w.Pairs {
			if isProbe(&w.Pairs[i]) {
				continue
			}
			if first == nil {
				first = &w.Pairs[i]
			} else if w.Pairs[i].Key.Source != first.Key.Source {
				s.uniform = false
			}
		}
	}
	if s.uniform {
		return
	}
	for _, w := range ws {
		for i := range w.Pairs {
			if isProbe(&w.Pairs[i]) {
				continue
			}
			k := visitKey(&w.Pairs[i])
			if p := precision(w.Pairs[i].Key.Source); p > s.best[k] {
				s.best[k] = p
			}
		}
	}
}

func (s *selector) each(w *aggregate.Window, fn func(p *aggregate.Pair)) {
	if s.best == nil {
		for i := range w.Pairs {
			if k := w.Pairs[i].Key.Source; k == s.want || (s.latency && k == decoder.SourceProbe) {
				fn(&w.Pairs[i])
			}
		}
		return
	}
	for i := range w.Pairs {
		p := &w.Pairs[i]
		if isProbe(p) {
			if s.latency {
				fn(p)
			}
			continue
		}
		if s.uniform || precision(p.Key.Source) == s.best[visitKey(p)] {
			fn(p)
		}
	}
}
