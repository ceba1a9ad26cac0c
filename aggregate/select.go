package aggregate

import "github.com/vmflow/vmflow/decoder"

// Source selections for readers (API "source" parameter).
const (
	SelectAuto     = "auto"
	SelectSFlow    = "sflow"
	SelectIPFIX    = "ipfix"
	SelectNetFlow9 = "netflow9"
)

// ValidSelect reports whether s is a valid Select source ("" means auto).
func ValidSelect(s string) bool {
	switch s {
	case "", SelectAuto, SelectSFlow, SelectIPFIX, SelectNetFlow9:
		return true
	}
	return false
}

// Precision ranks export protocols for "auto": IPFIX (exact flow counts,
// usually 1-in-1) over NetFlow v9 over sFlow (packet samples).
func Precision(s decoder.Source) int {
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

// Select returns the pairs of a time range (the pairs of all its windows
// together) seen through one export protocol: "sflow", "ipfix", "netflow9",
// or "auto"/"" = for each directed pair the most precise protocol present
// anywhere in the range (ipfix > netflow9 > sflow), for all of the range.
// Choosing per window instead would count a flow's first window twice: OVS
// exports a flow's IPFIX record only after its cache's active timeout, so
// that window has the sFlow samples and the IPFIX record lands in a later
// one. Order is kept. An unknown source selects nothing.
//
// The probe's latency pairs (decoder.SourceProbe, Stats.Lat only) are
// joined to the selected pair with the same endpoints, or appended on
// their own when no traffic pair has those endpoints.
func Select(pairs []Pair, source string) []Pair {
	if !ValidSelect(source) {
		return nil
	}
	traffic, probe := splitProbe(pairs)
	return joinLatency(selectTraffic(traffic, source), probe)
}

// splitProbe separates the probe's latency pairs (no copy when none).
func splitProbe(pairs []Pair) (traffic, probe []Pair) {
	n := 0
	for i := range pairs {
		if pairs[i].Key.Source == decoder.SourceProbe {
			n++
		}
	}
	if n == 0 {
		return pairs, nil
	}
	traffic = make([]Pair, 0, len(pairs)-n)
	probe = make([]Pair, 0, n)
	for i := range pairs {
		if pairs[i].Key.Source == decoder.SourceProbe {
			probe = append(probe, pairs[i])
		} else {
			traffic = append(traffic, pairs[i])
		}
	}
	return traffic, probe
}

func selectTraffic(pairs []Pair, source string) []Pair {
	var want decoder.Source
	switch source {
	case SelectSFlow:
		want = decoder.SourceSFlow
	case SelectIPFIX:
		want = decoder.SourceIPFIX
	case SelectNetFlow9:
		want = decoder.SourceNetFlow9
	case "", SelectAuto:
		type ends struct{ src, dst EndpointKey }
		best := make(map[ends]int, len(pairs))
		for i := range pairs {
			k := ends{pairs[i].Key.Src, pairs[i].Key.Dst}
			if p := Precision(pairs[i].Key.Source); p > best[k] {
				best[k] = p
			}
		}
		out := make([]Pair, 0, len(best))
		for i := range pairs {
			k := ends{pairs[i].Key.Src, pairs[i].Key.Dst}
			if Precision(pairs[i].Key.Source) == best[k] {
				out = append(out, pairs[i])
			}
		}
		return out
	default:
		return nil
	}
	out := make([]Pair, 0, len(pairs))
	for i := range pairs {
		if pairs[i].Key.Source == want {
			out = append(out, pairs[i])
		}
	}
	return out
}
