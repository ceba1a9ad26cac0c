package store

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/aggregate"
)

// Memory holds the recent closed windows in memory, oldest first. It is an
// aggregate.Sink (the aggregator writes to it) and a Reader (the API reads
// from it), and answers the pair routes' queries directly (TopPairs,
// WindowsWhere) without rebuilding windows.
//
// Windows are kept in tiers (see MemoryConfig): the aggregation windows for
// FullResolution, then merged into Tier1Step buckets up to Tier1Until,
// then Tier2Step buckets up to Retention. Each window is stored in compact
// columnar form (segment), its pairs numbered by a shared dictionary
// (dict); merging into the coarser tiers runs in a background goroutine
// started by Write, so a window close never waits for it.
//
// Bounds: windows whose End is more than Retention before the newest
// window's End are evicted, and so are the oldest windows while more than
// MaxWindows windows or MaxPairs pair rows are held (the newest window is
// always kept); dictionary entries no window holds any more are dropped by
// a compaction once they are half of the dictionary. Every eviction is
// counted.
//
// Memory: about 174 bytes per pair row (a pair in one window of any tier;
// BenchmarkMemoryHour200k measures it) plus about 330 bytes per distinct
// pair entry of the hour. At 200,000 active pairs the default tiers hold at
// most 12 + 9 + 6 windows of rows.
type Memory struct {
	cfg   MemoryConfig
	tiers []tierSpec

	wmu     sync.Mutex // serialises dictionary changes (Write, compaction)
	scratch []uint64   // Write's sort buffer (under wmu)
	// coldPerRow: cold bytes per row of the last window written (under
	// wmu; segtrim.go)
	coldPerRow float64

	mu      sync.RWMutex
	d       *dict
	segs    []*segment // sorted by end, oldest first; tiers descending
	rows    int
	rolling bool
	idle    sync.WaitGroup

	mWindows  prometheus.Gauge
	mPairs    prometheus.Gauge
	mBytes    prometheus.Gauge
	mEntries  prometheus.Gauge
	mOldest   prometheus.Gauge
	mWrites   prometheus.Counter
	mRejected prometheus.Counter
	mEvictW   *prometheus.CounterVec
	mEvictP   *prometheus.CounterVec
	mRollups  *prometheus.CounterVec
	mRollDur  prometheus.Histogram
	mCompact  prometheus.Counter
}

// tierSpec: windows of a tier are merged into step buckets (0: the
// aggregation windows themselves) and move on after until.
type tierSpec struct{ step, until time.Duration }

var (
	_ aggregate.Sink = (*Memory)(nil)
	_ Reader         = (*Memory)(nil)
	_ Querier        = (*Memory)(nil)
)

// NewMemory builds an empty memory store; its metrics are registered on reg
// (nil: not registered). An invalid cfg falls back to the defaults of the
// invalid fields; call cfg.Validate first to report errors.
func NewMemory(cfg MemoryConfig, reg prometheus.Registerer) *Memory {
	def := DefaultMemoryConfig()
	if cfg.Retention <= 0 {
		cfg.Retention = def.Retention
	}
	if cfg.MaxWindows < 0 {
		cfg.MaxWindows = def.MaxWindows
	}
	if cfg.MaxPairs < 1 {
		cfg.MaxPairs = def.MaxPairs
	}
	m := &Memory{
		cfg:   cfg,
		tiers: tiersOf(cfg),
		d:     newDict(1024),
		mWindows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_store_memory_windows",
			Help: "Windows held in the in-memory store (a merged window counts once).",
		}),
		mPairs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_store_memory_pairs",
			Help: "Pair rows held in the in-memory store, summed over all windows.",
		}),
		mBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_store_memory_bytes",
			Help: "Heap held by the in-memory store's windows (capacities; the dictionary is estimated at 330 bytes per entry).",
		}),
		mEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_store_memory_entries",
			Help: "Distinct pair entries (key and endpoints) in the in-memory store's dictionary.",
		}),
		mOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_store_memory_oldest_timestamp_seconds",
			Help: "Start of the oldest window held in memory (unix seconds; 0 when empty).",
		}),
		mWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_store_memory_writes_total",
			Help: "Windows written to the in-memory store.",
		}),
		mRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_store_memory_rejected_windows_total",
			Help: "Windows refused by the in-memory store (nil, zero end time, already older than the retention, or late: older than windows already merged into a coarser tier).",
		}),
		mEvictW: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_store_memory_evicted_windows_total",
			Help: "Windows evicted from the in-memory store, by reason (retention, max_windows, max_pairs).",
		}, []string{"reason"}),
		mEvictP: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_store_memory_evicted_pairs_total",
			Help: "Pair rows evicted from the in-memory store with their windows, by reason.",
		}, []string{"reason"}),
		mRollups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_store_memory_rollups_total",
			Help: "Windows moved into a coarser tier, by tier they moved to (1, 2).",
		}, []string{"tier"}),
		mRollDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vmflow_store_memory_rollup_seconds",
			Help:    "Time to merge a window into its coarser tier's bucket (background, off the window close).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
		mCompact: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_store_memory_compactions_total",
			Help: "Dictionary compactions (entries no window holds any more dropped).",
		}),
	}
	for _, r := range []string{reasonRetention, reasonMaxWindows, reasonMaxPairs} {
		m.mEvictW.WithLabelValues(r)
		m.mEvictP.WithLabelValues(r)
	}
	for t := 1; t < len(m.tiers); t++ {
		m.mRollups.WithLabelValues(tierLabel(t))
	}
	if reg != nil {
		reg.MustRegister(m.mWindows, m.mPairs, m.mBytes, m.mEntries, m.mOldest, m.mWrites, m.mRejected,
			m.mEvictW, m.mEvictP, m.mRollups, m.mRollDur, m.mCompact)
	}
	return m
}

func tierLabel(t int) string { return string(rune('0' + t)) }

// tiersOf lists the enabled tiers: full resolution, then each step > 0.
// The last tier keeps its windows up to Retention.
func tiersOf(c MemoryConfig) []tierSpec {
	ts := []tierSpec{{step: 0, until: c.FullResolution}}
	if c.Tier1Step > 0 {
		ts = append(ts, tierSpec{step: c.Tier1Step, until: c.Tier1Until})
	}
	if c.Tier2Step > 0 {
		ts = append(ts, tierSpec{step: c.Tier2Step})
	}
	ts[len(ts)-1].until = c.Retention
	return ts
}

const (
	reasonRetention  = "retention"
	reasonMaxWindows = "max_windows"
	reasonMaxPairs   = "max_pairs"
)

// insertAt is where a window ending at end goes (after every window ending
// at or before it), and whether that is allowed: a window may not land
// before a merged window.
func insertAt(segs []*segment, end time.Time) (int, bool) {
	i, _ := slices.BinarySearchFunc(segs, end, func(s *segment, t time.Time) int {
		if s.end.After(t) {
			return 1
		}
		return -1
	})
	return i, i == len(segs) || segs[i].tier == 0
}

// Write stores a closed window. It must not be modified afterwards.
// Windows normally arrive in order; a late one is inserted in place while
// the windows around it are still at full resolution.
func (m *Memory) Write(w *aggregate.Window) {
	if w == nil || w.End.IsZero() {
		m.mRejected.Inc()
		return
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if !m.acceptable(w.End) {
		m.mRejected.Inc()
		return
	}
	seg := m.encode(w)

	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := insertAt(m.segs, w.End)
	if !ok { // a rollup overtook it meanwhile
		m.mRejected.Inc()
		return
	}
	m.mWrites.Inc()
	m.segs = slices.Insert(m.segs, i, seg)
	m.rows += seg.rows()
	m.evictLocked()
	m.updateGaugesLocked()
	m.maybeRollLocked()
}

func (m *Memory) acceptable(end time.Time) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := len(m.segs)
	if n > 0 && !end.After(m.segs[n-1].end.Add(-m.cfg.Retention)) {
		return false // already beyond retention relative to what we hold
	}
	_, ok := insertAt(m.segs, end)
	return ok
}

// encode builds the window's segment (under wmu: it adds entries).
func (m *Memory) encode(w *aggregate.Window) *segment {
	d := m.d
	ids := m.scratch[:0]
	for i := range w.Pairs {
		ids = append(ids, uint64(d.intern(&w.Pairs[i]))<<32|uint64(i))
	}
	slices.Sort(ids)
	m.scratch = ids
	seg := newSegment(len(ids), m.coldHint(len(ids)))
	seg.start, seg.end, seg.nwin = w.Start, w.End, 1
	seg.ports = w.Ports
	end := w.End.UnixNano()
	var st aggregate.Stats
	for k := 0; k < len(ids); {
		id := uint32(ids[k] >> 32)
		st = w.Pairs[uint32(ids[k])].Stats
		k++
		for k < len(ids) && uint32(ids[k]>>32) == id { // the same pair twice in one window
			st.Merge(&w.Pairs[uint32(ids[k])].Stats)
			k++
		}
		seg.appendRow(id, &st, 1)
		seg.sources |= 1 << (d.entSource[id] & 7)
		if end > d.lastEnd[id] {
			d.lastEnd[id] = end
		}
	}
	if n := seg.rows(); n > 0 {
		m.coldPerRow = float64(len(seg.cold)) / float64(n)
	}
	seg.trim()
	return seg
}

// evictLocked drops the oldest windows past retention or the caps.
func (m *Memory) evictLocked() {
	newest := m.segs[len(m.segs)-1].end
	cutoff := newest.Add(-m.cfg.Retention)
	drop := 0
	for drop < len(m.segs)-1 {
		s := m.segs[drop]
		var reason string
		switch {
		case !s.end.After(cutoff):
			reason = reasonRetention
		case m.cfg.MaxWindows > 0 && len(m.segs)-drop > m.cfg.MaxWindows:
			reason = reasonMaxWindows
		case m.rows > m.cfg.MaxPairs:
			reason = reasonMaxPairs
		default:
		}
		if reason == "" {
			break
		}
		m.mEvictW.WithLabelValues(reason).Inc()
		m.mEvictP.WithLabelValues(reason).Add(float64(s.rows()))
		m.rows -= s.rows()
		m.segs[drop] = nil
		drop++
	}
	if drop > 0 {
		m.segs = slices.Delete(m.segs, 0, drop)
	}
}

func (m *Memory) updateGaugesLocked() {
	m.mWindows.Set(float64(len(m.segs)))
	m.mPairs.Set(float64(m.rows))
	b := 0
	for _, s := range m.segs {
		b += s.bytesUsed()
	}
	m.mBytes.Set(float64(b + 330*len(m.d.entries)))
	m.mEntries.Set(float64(len(m.d.entries)))
	if len(m.segs) > 0 {
		m.mOldest.Set(float64(m.segs[0].start.Unix()))
	} else {
		m.mOldest.Set(0)
	}
}

// Oldest returns the Start of the oldest window held, the point from which
// memory covers time completely; zero when empty.
func (m *Memory) Oldest() time.Time {
	if m == nil {
		return time.Time{}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.segs) == 0 {
		return time.Time{}
	}
	return m.segs[0].start
}

// Len returns the number of windows (merged ones counting once) and pair
// rows held.
func (m *Memory) Len() (windows, pairs int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.segs), m.rows
}

// WaitIdle waits until no background merge is running (tests, benchmarks).
func (m *Memory) WaitIdle() { m.idle.Wait() }
