package api

import "github.com/vmflow/vmflow/aggregate"

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

// selectPairs keeps one window's pairs seen through source (see
// aggregate.Select: "auto" = per directed pair the most precise protocol
// present, ipfix > netflow9 > sflow).
func selectPairs(pairs []aggregate.Pair, source string) []aggregate.Pair {
	return aggregate.Select(pairs, source)
}
