package enrich

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Enricher merges the latest snapshot of every InventorySource into an
// Index, built off the hot path and swapped in atomically.
type Enricher struct {
	cfg     Config
	sources []InventorySource

	idx     atomic.Pointer[Index]
	version atomic.Uint64

	mu      sync.Mutex // guards snaps, changed
	snaps   map[string]Snapshot
	buildMu sync.Mutex // serialises rebuilds; guards reg
	reg     *registry
	changed chan struct{} // closed and replaced on every swap

	histMu  sync.RWMutex
	history map[VMID]*VM // latest known VM per id, also after it left

	kick    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	started []InventorySource

	// Learning from traffic (nil when enrich.learn.enabled is false).
	learner   *Learner
	learned   *learnStore
	learnDone chan struct{}
	now       func() time.Time

	m *enrichMetrics
}

type enrichMetrics struct {
	vms        prometheus.Gauge
	interfaces prometheus.Gauge
	hosts      prometheus.Gauge
	conflicts  *prometheus.GaugeVec
	rebuilds   prometheus.Counter
	snapshots  *prometheus.CounterVec
	rebuildDur prometheus.Histogram
}

// New returns an inert Enricher over the given sources, plus the static
// inventory source when cfg.Static.File is set. Metrics are registered on
// reg (nil: not registered).
func New(cfg Config, reg prometheus.Registerer, sources ...InventorySource) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Enricher{
		cfg:     cfg,
		snaps:   map[string]Snapshot{},
		reg:     newRegistry(),
		changed: make(chan struct{}),
		history: map[VMID]*VM{},
		kick:    make(chan struct{}, 1),
		now:     time.Now,
	}
	if cfg.Static.File != "" {
		e.sources = append(e.sources, NewStaticSource(cfg.Static.File, cfg.Static.Reload))
	}
	names := map[string]bool{}
	for _, s := range append(e.sources, sources...) {
		if s == nil {
			return nil, errors.New("enrich: nil inventory source")
		}
		if names[s.Name()] {
			return nil, fmt.Errorf("enrich: two inventory sources named %q", s.Name())
		}
		names[s.Name()] = true
	}
	e.sources = append(e.sources, sources...)
	e.idx.Store(&Index{})

	e.m = &enrichMetrics{
		vms:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmflow_enrich_vms", Help: "VMs in the current inventory index."}),
		interfaces: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmflow_enrich_interfaces", Help: "VM interfaces in the current inventory index."}),
		hosts:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmflow_enrich_hosts", Help: "Hypervisors in the current inventory index."}),
		conflicts:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmflow_enrich_conflicts", Help: "Inventory conflicts in the current index (two VMs claiming one MAC, IP per VNI, tap, or an exporter claimed by two hosts)."}, []string{"kind"}),
		rebuilds:   prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_enrich_rebuilds_total", Help: "Index rebuilds (atomic swaps)."}),
		snapshots:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_enrich_reloads_total", Help: "Snapshots published by inventory sources (reloads)."}, []string{"source"}),
		rebuildDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vmflow_enrich_rebuild_seconds", Help: "Time to merge sources into a new index.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
	}
	for _, k := range []string{"mac", "ip", "tap", "exporter"} {
		e.m.conflicts.WithLabelValues(k)
	}
	collectors := []prometheus.Collector{e.m.vms, e.m.interfaces, e.m.hosts, e.m.conflicts, e.m.rebuilds, e.m.snapshots, e.m.rebuildDur, &sourceCollector{e: e}}
	if lc := cfg.Learn; lc.Enabled {
		retry := 2 * lc.Interval
		if retry < 100*time.Millisecond {
			retry = 100 * time.Millisecond
		}
		e.learned = newLearnStore(lc)
		e.learner = &Learner{
			ch:        make(chan Observation, lc.Queue),
			dropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_enrich_learn_dropped_total", Help: "Source addresses the hot path could not hand to the learner because its queue (enrich.learn.queue) was full."}),
			linkLocal: lc.LinkLocal,
			retry:     int64(retry),
			refresh:   int64(lc.Expiry / 4),
		}
		collectors = append(collectors, e.learner.dropped)
		collectors = append(collectors, e.learned.collectors()...)
	}
	if reg != nil {
		for _, c := range collectors {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("enrich: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// sourceCollector exports per-source errors and state at scrape time.
type sourceCollector struct{ e *Enricher }

var (
	descSourceErrors = prometheus.NewDesc("vmflow_enrich_reload_errors_total", "Errors reported by an inventory source (failed reloads, connection errors).", []string{"source", "kind"}, nil)
	descSourceUp     = prometheus.NewDesc("vmflow_enrich_source_up", "1 when the inventory source's last sync succeeded (state loaded or connected).", []string{"source", "kind"}, nil)
	descSourceVMs    = prometheus.NewDesc("vmflow_enrich_source_vms", "VMs known to an inventory source.", []string{"source", "kind"}, nil)
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSourceErrors
	ch <- descSourceUp
	ch <- descSourceVMs
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.e.Sources() {
		up := 0.0
		if st.State == "loaded" || st.State == "connected" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descSourceErrors, prometheus.CounterValue, float64(st.Errors), st.Name, st.Kind)
		ch <- prometheus.MustNewConstMetric(descSourceUp, prometheus.GaugeValue, up, st.Name, st.Kind)
		ch <- prometheus.MustNewConstMetric(descSourceVMs, prometheus.GaugeValue, float64(st.VMs), st.Name, st.Kind)
	}
}

// Start starts every source and the merge loop. Sources that publish during
// their Start (the static file does) are in the Index when Start returns.
// A source whose Start fails stops the others and the error is returned.
func (e *Enricher) Start(ctx context.Context) error {
	if e.cancel != nil {
		return errors.New("enrich: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	for _, s := range e.sources {
		name := s.Name()
		if err := s.Start(ctx, func(snap Snapshot) { e.publish(name, snap) }); err != nil {
			e.Stop()
			return fmt.Errorf("enrich: start source %s: %w", name, err)
		}
		e.started = append(e.started, s)
	}
	select {
	case <-e.kick:
		e.rebuild()
	default:
	}
	e.done = make(chan struct{})
	go e.loop(ctx)
	if e.learner != nil {
		e.learnDone = make(chan struct{})
		go e.learnLoop(ctx)
	}
	return nil
}

// Stop stops the sources and the merge loop. The last Index stays readable.
func (e *Enricher) Stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	for i := len(e.started) - 1; i >= 0; i-- {
		e.started[i].Stop()
	}
	e.started = nil
	if e.done != nil {
		<-e.done
		e.done = nil
	}
	if e.learnDone != nil {
		<-e.learnDone
		e.learnDone = nil
	}
	e.cancel = nil
}

func (e *Enricher) loop(ctx context.Context) {
	defer close(e.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
			e.rebuild()
		}
	}
}

// learnLoop processes the learner's queue and, every enrich.learn.interval,
// expires old addresses and schedules a rebuild when the learned set
// changed.
func (e *Enricher) learnLoop(ctx context.Context) {
	defer close(e.learnDone)
	t := time.NewTicker(e.cfg.Learn.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-e.learner.ch:
			e.learned.observe(o, e.now())
		case <-t.C:
			now := e.now()
			e.learned.expire(now)
			if e.learned.needsRebuild(now) {
				select {
				case e.kick <- struct{}{}:
				default:
				}
			}
		}
	}
}

// Learner returns the hot path's hand-off to address learning, nil when
// enrich.learn.enabled is false. Reports are processed while the Enricher
// runs (between Start and Stop); before Start they wait in the queue.
func (e *Enricher) Learner() *Learner { return e.learner }

// SetClock replaces the clock used for learned addresses' last-seen times
// and expiry (tests, simulations). Call it before Start.
func (e *Enricher) SetClock(now func() time.Time) {
	if now != nil {
		e.now = now
	}
}

// publish stores a source's latest snapshot and schedules a rebuild. The
// snapshot is keyed by Snapshot.Source (the source name when empty), so one
// InventorySource may publish several snapshots (one per daemon).
func (e *Enricher) publish(name string, snap Snapshot) {
	if snap.Source == "" {
		snap.Source = name
	}
	e.mu.Lock()
	e.snaps[snap.Source] = snap
	e.mu.Unlock()
	e.m.snapshots.WithLabelValues(snap.Source).Inc()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Publish feeds a snapshot directly (tests, or sources wired by hand). It
// rebuilds the Index synchronously before returning.
func (e *Enricher) Publish(snap Snapshot) {
	e.publish(snap.Source, snap)
	select {
	case <-e.kick:
	default:
	}
	e.rebuild()
}

// rebuild merges all current snapshots into a new Index and swaps it in.
func (e *Enricher) rebuild() {
	e.buildMu.Lock()
	defer e.buildMu.Unlock()
	start := time.Now()
	e.mu.Lock()
	snaps := make([]Snapshot, 0, len(e.snaps))
	for _, s := range e.snaps {
		snaps = append(snaps, s)
	}
	e.mu.Unlock()
	sort.Slice(snaps, func(a, b int) bool { return snaps[a].Source < snaps[b].Source })
	var learned map[[6]byte][]learnedAddr
	if e.learned != nil {
		learned = e.learned.export(e.now())
	}
	x := build(snaps, mergeInput{merge: e.cfg.Merge, reg: e.reg, last: e.lastKnown, now: start, learned: learned})

	e.histMu.Lock()
	for _, vm := range x.vms {
		e.history[vm.ID] = vm
	}
	e.histMu.Unlock()

	e.idx.Store(x)
	e.mu.Lock()
	e.version.Add(1)
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()

	vms, ifaces := x.Len()
	e.m.vms.Set(float64(vms))
	e.m.interfaces.Set(float64(ifaces))
	e.m.hosts.Set(float64(len(x.hosts)))
	counts := map[string]float64{"mac": 0, "ip": 0, "tap": 0, "exporter": 0}
	for _, c := range x.conflicts {
		counts[c.Kind]++
	}
	for k, v := range counts {
		e.m.conflicts.WithLabelValues(k).Set(v)
	}
	e.m.rebuilds.Inc()
	e.m.rebuildDur.Observe(time.Since(start).Seconds())
}

func (e *Enricher) lastKnown(id VMID) *VM {
	e.histMu.RLock()
	defer e.histMu.RUnlock()
	return e.history[id]
}

// Index returns the current index (never nil; empty before the first
// snapshot). Lock-free: one atomic load.
func (e *Enricher) Index() *Index { return e.idx.Load() }

// Describe returns the latest known VM for an id, also after the VM left
// the inventory (for resolving old windows); nil for an unknown id.
func (e *Enricher) Describe(id VMID) *VM {
	if id == 0 {
		return nil
	}
	if vm := e.idx.Load().byID[id]; vm != nil {
		return vm
	}
	return e.lastKnown(id)
}

// Sources returns every source's status, in configuration order.
func (e *Enricher) Sources() []SourceStatus {
	out := make([]SourceStatus, 0, len(e.sources))
	for _, s := range e.sources {
		out = append(out, s.Status())
	}
	return out
}

// Version is bumped on every index swap.
func (e *Enricher) Version() uint64 { return e.version.Load() }

// WaitVersion blocks until Version() >= v or ctx ends.
func (e *Enricher) WaitVersion(ctx context.Context, v uint64) error {
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		if e.version.Load() >= v {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
