package store

import "github.com/vmflow/vmflow/aggregate"

// MergeSamePairs merges, in place, the pairs of w that are one pair reported
// more than once: the same pair key and the same endpoint VM names and
// hosts, e.g. one pair written by two collector instances into the same
// InfluxDB, or fetched from two collectors' APIs. Their statistics add
// (aggregate.Stats.Merge: sums and variances add, flows stay an upper
// bound). Under the count-once rule each record is counted by one
// collector only (the one receiving the source VM's hypervisor), so a pair
// normally comes from one instance; a pair can come from several when a VM
// moved between collectors' hypervisors during the window, or for traffic
// between non-VM endpoints (rule 3 of aggregate's "Count each packet once").
func MergeSamePairs(w *aggregate.Window) {
	if w == nil || len(w.Pairs) < 2 {
		return
	}
	type ident struct {
		k                aggregate.PairKey
		src, dst, sh, dh string
	}
	idx := make(map[ident]int, len(w.Pairs))
	out := w.Pairs[:0]
	for i := range w.Pairs {
		p := w.Pairs[i]
		id := ident{p.Key, p.Src.VM, p.Dst.VM, p.Src.Host, p.Dst.Host}
		if j, ok := idx[id]; ok {
			out[j].Stats.Merge(&p.Stats)
			continue
		}
		idx[id] = len(out)
		out = append(out, p)
	}
	clear(w.Pairs[len(out):])
	w.Pairs = out
}
