package store

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/aggregate"
)

// Memory holds the recent closed windows in memory, oldest first. It is an
// aggregate.Sink (the aggregator writes to it) and a Reader (the API reads
// from it). Windows are immutable and shared, never copied.
//
// Bounds: windows whose End is more than Retention before the newest
// window's End are evicted, and so are the oldest windows while more than
// MaxWindows windows or MaxPairs pairs are held (the newest window is always
// kept). Every eviction is counted.
type Memory struct {
	cfg MemoryConfig

	mu      sync.RWMutex
	windows []*aggregate.Window // sorted by End, oldest first
	pairs   int                 // total pairs held

	mWindows  prometheus.Gauge
	mPairs    prometheus.Gauge
	mOldest   prometheus.Gauge
	mWrites   prometheus.Counter
	mRejected prometheus.Counter
	mEvictW   *prometheus.CounterVec
	mEvictP   *prometheus.CounterVec
}

var (
	_ aggregate.Sink = (*Memory)(nil)
	_ Reader         = (*Memory)(nil)
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
		cfg: cfg,
		mWindows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_store_memory_windows",
			Help: "Closed windows held in the in-memory store.",
		}),
		mPairs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_store_memory_pairs",
			Help: "Pairs held in the in-memory store, summed over all windows.",
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
			Help: "Windows refused by the in-memory store (nil, zero end time, or already older than the retention).",
		}),
		mEvictW: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_store_memory_evicted_windows_total",
			Help: "Windows evicted from the in-memory store, by reason (retention, max_windows, max_pairs).",
		}, []string{"reason"}),
		mEvictP: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_store_memory_evicted_pairs_total",
			Help: "Pairs evicted from the in-memory store with their windows, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonRetention, reasonMaxWindows, reasonMaxPairs} {
		m.mEvictW.WithLabelValues(r)
		m.mEvictP.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.mWindows, m.mPairs, m.mOldest, m.mWrites, m.mRejected, m.mEvictW, m.mEvictP)
	}
	return m
}

const (
	reasonRetention  = "retention"
	reasonMaxWindows = "max_windows"
	reasonMaxPairs   = "max_pairs"
)

// Write stores a closed window. It must not be modified afterwards.
// Windows normally arrive in order; a late one is inserted in place.
func (m *Memory) Write(w *aggregate.Window) {
	if w == nil || w.End.IsZero() {
		m.mRejected.Inc()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.windows)
	if n > 0 && !w.End.After(m.windows[n-1].End.Add(-m.cfg.Retention)) {
		// Already beyond retention relative to what we hold.
		m.mRejected.Inc()
		return
	}
	m.mWrites.Inc()
	// Insert after every window with End <= w.End (stable for equal ends).
	i := sort.Search(n, func(i int) bool { return m.windows[i].End.After(w.End) })
	m.windows = append(m.windows, nil)
	copy(m.windows[i+1:], m.windows[i:])
	m.windows[i] = w
	m.pairs += len(w.Pairs)
	m.evictLocked()
	m.updateGaugesLocked()
}

// evictLocked drops the oldest windows past retention or the caps.
func (m *Memory) evictLocked() {
	newest := m.windows[len(m.windows)-1].End
	cutoff := newest.Add(-m.cfg.Retention)
	drop := 0
	for drop < len(m.windows)-1 {
		w := m.windows[drop]
		var reason string
		switch {
		case !w.End.After(cutoff):
			reason = reasonRetention
		case m.cfg.MaxWindows > 0 && len(m.windows)-drop > m.cfg.MaxWindows:
			reason = reasonMaxWindows
		case m.pairs > m.cfg.MaxPairs:
			reason = reasonMaxPairs
		default:
		}
		if reason == "" {
			break
		}
		m.mEvictW.WithLabelValues(reason).Inc()
		m.mEvictP.WithLabelValues(reason).Add(float64(len(w.Pairs)))
		m.pairs -= len(w.Pairs)
		m.windows[drop] = nil // let the GC reclaim it
		drop++
	}
	if drop > 0 {
		m.windows = m.windows[drop:]
		// Compact once the dead prefix dominates, so the backing array
		// does not grow without bound.
		if cap(m.windows) > 64 && len(m.windows) < cap(m.windows)/4 {
			m.windows = append([]*aggregate.Window(nil), m.windows...)
		}
	}
}

func (m *Memory) updateGaugesLocked() {
	m.mWindows.Set(float64(len(m.windows)))
	m.mPairs.Set(float64(m.pairs))
	if len(m.windows) > 0 {
		m.mOldest.Set(float64(m.windows[0].Start.Unix()))
	} else {
		m.mOldest.Set(0)
	}
}

// Windows returns the windows whose End is in (from, to], oldest first.
// The returned slice is the caller's; the windows are shared and must not
// be modified.
func (m *Memory) Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	lo := sort.Search(len(m.windows), func(i int) bool { return m.windows[i].End.After(from) })
	hi := sort.Search(len(m.windows), func(i int) bool { return m.windows[i].End.After(to) })
	if hi <= lo {
		return nil, nil
	}
	out := make([]*aggregate.Window, hi-lo)
	copy(out, m.windows[lo:hi])
	return out, nil
}

// Oldest returns the Start of the oldest window held, the point from which
// memory covers time completely; zero when empty.
func (m *Memory) Oldest() time.Time {
	if m == nil {
		return time.Time{}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.windows) == 0 {
		return time.Time{}
	}
	return m.windows[0].Start
}

// Len returns the number of windows and pairs held.
func (m *Memory) Len() (windows, pairs int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.windows), m.pairs
}
