package influx

import (
	"time"

	"github.com/vmflow/vmflow/aggregate"
)

// merger sums aggregation windows into influx.window-long windows before
// they are encoded (Config.Window > 0). Bytes, packets, variances,
// samples, the protocol breakdown, flags and drops add exactly; flows add
// up to an upper bound (a 5-tuple seen in two windows counts twice); the
// top ports are re-ranked from each window's top ports (exact for ports
// that are in the top list of every window they appear in); first/last are
// the min/max; addresses and endpoints are the latest window's.
//
// State: one aggregate.Pair per pair seen in the open merged window (about
// 450 bytes plus its endpoint strings, which are shared with the windows),
// i.e. ~90 MB at 200,000 pairs; the buffers are reused.
type merger struct {
	every      time.Duration
	start, end time.Time
	idx        map[aggregate.PairKey]int32
	pairs      []aggregate.Pair
	ports      []aggregate.PortStats
	out        aggregate.Window
	open       bool
}

func newMerger(every time.Duration) *merger {
	return &merger{every: every, idx: make(map[aggregate.PairKey]int32)}
}

// slot is the end of the merged window that t falls in: windows ending in
// (k·every, (k+1)·every] share one.
func (m *merger) slot(t time.Time) time.Time {
	s := t.Truncate(m.every)
	if s.Equal(t) {
		return s
	}
	return s.Add(m.every)
}

// add merges w and calls emit for every merged window it completes: the
// open one when w belongs to a later slot, and the one w completes when it
// ends on a slot boundary. emit's window is valid only during the call.
func (m *merger) add(w *aggregate.Window, emit func(*aggregate.Window)) {
	if m.open && !m.slot(w.End).Equal(m.slot(m.end)) {
		m.flush(emit)
	}
	if !m.open {
		m.open = true
		m.start = w.Start
	}
	m.end = w.End
	m.ports = aggregate.MergePorts(m.ports, w.Ports)
	for i := range w.Pairs {
		p := &w.Pairs[i]
		j, ok := m.idx[p.Key]
		if !ok {
			m.idx[p.Key] = int32(len(m.pairs))
			m.pairs = append(m.pairs, *p)
			continue
		}
		q := &m.pairs[j]
		mergeStats(&q.Stats, &p.Stats)
		q.Stats.SampledBytes += p.Stats.SampledBytes
		q.Stats.SampledPackets += p.Stats.SampledPackets
		q.Src, q.Dst = p.Src, p.Dst
		if p.Stats.SrcIP.IsValid() {
			q.Stats.SrcIP = p.Stats.SrcIP
		}
		if p.Stats.DstIP.IsValid() {
			q.Stats.DstIP = p.Stats.DstIP
		}
		if p.Stats.SrcMAC != ([6]byte{}) {
			q.Stats.SrcMAC = p.Stats.SrcMAC
		}
		if p.Stats.DstMAC != ([6]byte{}) {
			q.Stats.DstMAC = p.Stats.DstMAC
		}
		if p.Stats.VNI != 0 {
			q.Stats.VNI = p.Stats.VNI
		}
	}
	if m.slot(w.End).Equal(w.End) {
		m.flush(emit)
	}
}

// flush emits the open merged window, if any (also a partial one: at a
// stop it ends at the last window's end, stamped there to the nanosecond).
func (m *merger) flush(emit func(*aggregate.Window)) {
	if !m.open {
		return
	}
	m.out = aggregate.Window{Start: m.start, End: m.end, Pairs: m.pairs, Ports: m.ports}
	m.ports = nil
	emit(&m.out)
	m.out = aggregate.Window{}
	clear(m.idx)
	clear(m.pairs) // drop the endpoint strings
	m.pairs = m.pairs[:0]
	m.open = false
}
