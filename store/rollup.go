package store

import (
	"slices"
	"time"
)

// rollJob moves seg into tier, merged with prev (the newest window of that
// tier, when it is the same bucket) or on its own.
type rollJob struct {
	prev, seg *segment
	tier      int
}

// StepEnd rounds t up to a multiple of step since the Unix epoch: the
// label of the bucket (a, a+step] that holds a window ending at t.
func StepEnd(t time.Time, step time.Duration) time.Time {
	ns, st := t.UnixNano(), int64(step)
	r := ns % st
	if r < 0 {
		r += st
	}
	if r != 0 {
		ns += st - r
	}
	return time.Unix(0, ns).UTC()
}

// nextJobLocked finds the oldest window due to move to a coarser tier.
func (m *Memory) nextJobLocked() (rollJob, bool) {
	n := len(m.segs)
	if n < 2 || len(m.tiers) < 2 {
		return rollJob{}, false
	}
	newest := m.segs[n-1].end
	for i, s := range m.segs[:n-1] {
		if s.tier >= len(m.tiers)-1 || s.end.After(newest.Add(-m.tiers[s.tier].until)) {
			continue
		}
		j := rollJob{seg: s, tier: s.tier + 1}
		step := m.tiers[j.tier].step
		if i > 0 {
			if p := m.segs[i-1]; p.tier == j.tier && StepEnd(p.end, step).Equal(StepEnd(s.end, step)) {
				j.prev = p
			}
		}
		return j, true
	}
	return rollJob{}, false
}

// maybeRollLocked starts the background merger when a window is due.
func (m *Memory) maybeRollLocked() {
	if m.rolling {
		return
	}
	// Compaction is due for sure when entries outnumber twice the rows
	// (every live entry has a row); maybeCompact counts exactly.
	compact := len(m.d.entries) > 1<<16 && len(m.d.entries) > 2*m.rows
	if _, ok := m.nextJobLocked(); !ok && !compact {
		return
	}
	m.rolling = true
	m.idle.Add(1)
	go m.roll()
}

// roll merges due windows one at a time until none is due, then compacts
// the dictionary if it is mostly dead. Merging reads immutable segments
// without locks; only the swap takes the lock.
func (m *Memory) roll() {
	defer m.idle.Done()
	compacted := false
	for {
		m.mu.Lock()
		j, ok := m.nextJobLocked()
		if !ok {
			if !compacted { // while still the only merger
				m.mu.Unlock()
				m.maybeCompact()
				compacted = true
				continue
			}
			m.rolling = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()

		t0 := time.Now()
		var out *segment
		if j.prev == nil {
			c := *j.seg
			c.tier = j.tier
			out = &c
		} else {
			out = mergeSegments(j.prev, j.seg, j.tier)
			out.trim()
		}
		m.mu.Lock()
		m.publishLocked(j, out)
		m.updateGaugesLocked()
		m.mu.Unlock()
		m.mRollDur.Observe(time.Since(t0).Seconds())
		m.mRollups.WithLabelValues(tierLabel(j.tier)).Inc()
	}
}

// publishLocked swaps the job's inputs for out, unless an eviction took
// one of them meanwhile (then the job is dropped and found again if still
// due).
func (m *Memory) publishLocked(j rollJob, out *segment) {
	k := -1
	for i, s := range m.segs {
		if s == j.seg {
			k = i
			break
		}
	}
	if k < 0 {
		return
	}
	if j.prev == nil {
		m.segs[k] = out
		return
	}
	if k == 0 || m.segs[k-1] != j.prev {
		return
	}
	m.rows += out.rows() - j.prev.rows() - j.seg.rows()
	m.segs[k-1] = out
	m.segs = slices.Delete(m.segs, k, k+1)
}

// maybeCompact drops dictionary entries no window holds any more once
// they outnumber the live ones (and there are more than 65,536 entries).
// Write waits meanwhile (it holds wmu); entry ids keep their order, so
// every segment only has its entry column renumbered.
func (m *Memory) maybeCompact() {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.RLock()
	d := m.d
	if len(d.entries) <= 1<<16 || len(m.segs) == 0 {
		m.mu.RUnlock()
		return
	}
	oldest := m.segs[0].end.UnixNano()
	segs := append([]*segment(nil), m.segs...)
	m.mu.RUnlock()
	live := 0
	for _, e := range d.lastEnd {
		if e >= oldest {
			live++
		}
	}
	if live*2 > len(d.entries) {
		return
	}
	nd, remap := d.compact(oldest)
	ns := make([]*segment, len(segs))
	for i, s := range segs {
		c := *s
		c.ents = make([]uint32, len(s.ents))
		for r, e := range s.ents {
			c.ents[r] = uint32(remap[e])
		}
		ns[i] = &c
	}
	// Nothing changed the segments meanwhile: Write holds wmu to add one,
	// and merges and their evictions run on this goroutine.
	m.mu.Lock()
	m.d, m.segs = nd, ns
	m.updateGaugesLocked()
	m.mu.Unlock()
	m.mCompact.Inc()
}
