package aggregate

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// Aggregator owns the windows: workers add into their shards, the window
// ticker merges them and emits one *Window to every sink.
type Aggregator struct {
	cfg Config
	enr *enrich.Enricher
	now func() time.Time

	mu       sync.Mutex // guards workers, sinks, winStart
	workers  []*Worker
	sinks    []Sink
	winStart time.Time

	closeMu sync.Mutex  // serialises window closes; guards the merge buffers
	remaps  [][]int32   // per further shard: its slots' base slots
	span    []shardSpan // per base slot: the first and last shard holding it
	order   []orderKey
	ports   dstPorts
	pairs   pairBufs     // recycled Window.Pairs arrays
	res     [2]*resolver // one per fill goroutine, kept across windows
	phase   [nPhases]time.Time
	// lastPhases are the phase ends of the last close (benchmarks)
	lastPhases [nPhases]time.Time

	cancel context.CancelFunc
	done   chan struct{}

	swports *portTable // switch port counters and their per-window deltas (ports.go)

	windows     prometheus.Counter
	windowPairs prometheus.Gauge
	closeDur    prometheus.Histogram
	phaseDur    [nPhases]prometheus.Observer
	sinkWrites  prometheus.Counter
}

// New returns an inert Aggregator. enr resolves VM ids in closed windows
// (nil: VM endpoints are shown by id only). Metrics go to reg (nil: none).
func New(cfg Config, enr *enrich.Enricher, reg prometheus.Registerer, sinks ...Sink) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Aggregator{
		cfg:     cfg,
		enr:     enr,
		now:     time.Now,
		sinks:   append([]Sink(nil), sinks...),
		windows: prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_aggregate_windows_total", Help: "Windows closed and emitted to the sinks."}),
		windowPairs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_aggregate_window_pairs", Help: "Pairs in the last closed window."}),
		closeDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vmflow_aggregate_window_close_seconds", Help: "Time to merge shards, resolve endpoints and write a window to the sinks.",
			Buckets: closeBuckets}),
		sinkWrites: prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_aggregate_sink_writes_total", Help: "Windows written to sinks (windows × sinks)."}),
		swports:    newPortTable(cfg.MaxPorts, cfg.PortExpiry, cfg.Window),
	}
	phases := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vmflow_aggregate_window_close_phase_seconds", Help: "Time of each phase of a window close: merge (shards into one), sort, fill (pairs copied, endpoints resolved), sinks.",
		Buckets: closeBuckets}, []string{"phase"})
	for ph := phaseMerge; ph < nPhases; ph++ {
		a.phaseDur[ph] = phases.WithLabelValues(phaseNames[ph])
	}
	for _, s := range sinks {
		if s == nil {
			return nil, errors.New("aggregate: nil sink")
		}
	}
	if reg != nil {
		sketch := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_aggregate_dst_port_sketch_bytes",
			Help: "Memory of the per-VM distinct-destination-port HyperLogLog sketches (VMs with more than 64 ports in a window)."},
			func() float64 { return float64(a.ports.bytes.Load()) })
		for _, c := range append([]prometheus.Collector{a.windows, a.windowPairs, a.closeDur, phases, a.sinkWrites, sketch, &workerCollector{a: a}}, a.swports.collectors()...) {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("aggregate: register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// AddCounters takes decoded sFlow counter samples for the per-window port
// deltas (Window.Ports). Safe for concurrent use; the Pipeline calls it.
func (a *Aggregator) AddCounters(cs []decoder.Counters) { a.swports.add(cs) }

func (a *Aggregator) index() *enrich.Index {
	if a.enr == nil {
		return nil
	}
	return a.enr.Index()
}

// Config returns the configuration.
func (a *Aggregator) Config() Config { return a.cfg }

// AddSink adds a sink for the windows closed from now on.
func (a *Aggregator) AddSink(s Sink) {
	if s == nil {
		return
	}
	a.mu.Lock()
	a.sinks = append(a.sinks, s)
	a.mu.Unlock()
}

// NewWorker returns a worker for one collector goroutine.
func (a *Aggregator) NewWorker() *Worker {
	w := &Worker{
		a:          a,
		cur:        newShard(),
		spare:      newShard(),
		preferIP:   a.cfg.Prefer == PreferIP,
		countAll:   a.cfg.Count == CountAll,
		maxPairs:   a.cfg.MaxPairs,
		graceNanos: int64(a.cfg.MigrationGrace),
	}
	a.mu.Lock()
	a.workers = append(a.workers, w)
	a.mu.Unlock()
	return w
}

// Start opens the first window and starts the ticker that closes windows
// at wall-clock multiples of the window size, also when no traffic comes.
func (a *Aggregator) Start(ctx context.Context) error {
	if a.cancel != nil {
		return errors.New("aggregate: already started")
	}
	a.mu.Lock()
	a.winStart = a.now()
	a.mu.Unlock()
	// The ticker stops on Stop only, never on ctx: a cancelled ctx (a
	// signal) must not end the window before Stop flushes it.
	ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	a.done = make(chan struct{})
	go a.loop(ctx)
	return nil
}

func (a *Aggregator) loop(ctx context.Context) {
	defer close(a.done)
	for {
		next := a.now().Truncate(a.cfg.Window).Add(a.cfg.Window)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			a.closeWindow(next)
		}
	}
}

// Stop stops the ticker and flushes the open window (ending now).
func (a *Aggregator) Stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel = nil
	a.closeWindow(a.now())
}

// Drain calls Drain(ctx) on every sink that implements Drainer, in sink
// order, after Stop wrote the last window (see Drainer). It returns the
// sinks' errors joined; every sink is drained even when one fails or ctx
// is done (each then persists what it can and returns quickly).
func (a *Aggregator) Drain(ctx context.Context) error {
	a.mu.Lock()
	sinks := append([]Sink(nil), a.sinks...)
	a.mu.Unlock()
	var errs []error
	for _, s := range sinks {
		if d, ok := s.(Drainer); ok {
			if err := d.Drain(ctx); err != nil {
				errs = append(errs, fmt.Errorf("aggregate: drain %T: %w", s, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Flush closes the open window now (End = now), emits it to the sinks and
// returns it; the next window starts now. For tests and shutdown paths;
// the ticker keeps its wall-clock alignment.
func (a *Aggregator) Flush() *Window { return a.closeWindow(a.now()) }

// merge builds the window from the workers' shards: the first shard is
// the base, each other shard's pairs are looked up in (or added to) it,
// and its distinct flows counted into the base's flow set, so the base's
// own pairs and flows are never re-hashed. Then endpoints are resolved
// and the pairs written once, in output order (bytes descending, then
// key), from a sorted index rather than by sorting the 700-byte pairs.
func (a *Aggregator) merge(start, end time.Time, shards []*shard) *Window {
	win := &Window{Start: start, End: end}
	if len(shards) == 0 {
		return win
	}
	base := shards[0]
	a.mergePairs(base, shards[1:])
	a.mergeFlows(base, shards[1:])
	// base.flowList now holds every distinct flow of the window.
	win.DstPorts = a.ports.count(base)
	fillAnswers(base) // health.go
	a.phase[phaseMerge] = time.Now()
	slots := base.slots
	order := a.order[:0]
	for i := range slots {
		order = append(order, orderKey{bytes: slots[i].st.Bytes, pk: packKey(&slots[i].key), i: int32(i)})
	}
	slices.SortFunc(order, func(x, y orderKey) int {
		if x.bytes != y.bytes {
			if x.bytes > y.bytes {
				return -1
			}
			return 1
		}
		if x.pk != y.pk {
			if x.pk < y.pk {
				return -1
			}
			return 1
		}
		return pairKeyCmp(&slots[x.i].key, &slots[y.i].key)
	})
	a.order = order
	a.phase[phaseSort] = time.Now()
	win.Pairs = a.pairs.get(len(slots))
	for i := range a.res {
		if a.res[i] == nil {
			a.res[i] = newResolver(a.enr)
		}
		a.res[i].begin()
	}
	fill := func(res *resolver, from, to int) {
		for k := from; k < to; k++ {
			sl := &slots[order[k].i]
			p := &win.Pairs[k]
			p.Key = sl.key
			p.Stats = sl.st
			sortPorts(trimPorts(p.Stats.TopPorts[:]))
			p.Src = res.endpoint(sl.key.Src, sl.st.SrcIP, sl.st.SrcMAC)
			p.Dst = res.endpoint(sl.key.Dst, sl.st.DstIP, sl.st.DstMAC)
		}
	}
	// Copying ~700 bytes per pair in output order is memory-bound: on
	// large windows, two goroutines (each its own resolver) halve it.
	if n := len(order); n >= parallelFillMin && runtime.GOMAXPROCS(0) > 1 {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			fill(a.res[1], n/2, n)
		}()
		fill(a.res[0], 0, n/2)
		wg.Wait()
	} else {
		fill(a.res[0], 0, len(order))
	}
	a.phase[phaseFill] = time.Now()
	return win
}

// closeWindow ends the open window at end, merges the workers' shards and
// writes the window to every sink.
func (a *Aggregator) closeWindow(end time.Time) *Window {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	t0 := time.Now()

	a.mu.Lock()
	start := a.winStart
	if start.IsZero() || !end.After(start) {
		if start.IsZero() {
			start = end.Add(-a.cfg.Window)
		} else {
			end = start // clock went back: emit an empty-length window
		}
	}
	a.winStart = end
	workers := append([]*Worker(nil), a.workers...)
	sinks := append([]Sink(nil), a.sinks...)
	a.mu.Unlock()

	// Swap every worker's shard for its clean spare.
	shards := make([]*shard, len(workers))
	for i, w := range workers {
		w.mu.Lock()
		shards[i] = w.cur
		w.cur = w.spare
		w.spare = nil
		w.mu.Unlock()
	}

	a.phase[phaseStart] = t0
	win := a.merge(start, end, shards)
	win.Ports = a.swports.close(end, a.index())

	// Give the shards back, cleared.
	for i, w := range workers {
		shards[i].reset()
		w.mu.Lock()
		w.spare = shards[i]
		w.mu.Unlock()
	}

	for _, s := range sinks {
		s.Write(win)
		a.sinkWrites.Inc()
	}
	a.phase[phaseSinks] = time.Now()
	if a.phase[phaseFill].IsZero() { // no shard: nothing merged
		a.phase[phaseMerge], a.phase[phaseSort], a.phase[phaseFill] = t0, t0, t0
	}
	for ph := phaseMerge; ph < nPhases; ph++ {
		a.phaseDur[ph].Observe(a.phase[ph].Sub(a.phase[ph-1]).Seconds())
	}
	a.lastPhases = a.phase
	a.phase = [nPhases]time.Time{}
	a.windows.Inc()
	a.windowPairs.Set(float64(len(win.Pairs)))
	a.closeDur.Observe(time.Since(t0).Seconds())
	return win
}

func trimPorts(p []PortCount) []PortCount {
	n := 0
	for n < len(p) && p[n].Bytes > 0 {
		n++
	}
	return p[:n]
}

// orderKey sorts a window's pairs without touching the slots: bytes
// descending, then the key (pk, a packed prefix of it, decides most ties
// without reading the slot).
type orderKey struct {
	bytes float64
	pk    uint64
	i     int32
}

// closeBuckets resolve the 200 ms window-close target (issue 12).
var closeBuckets = []float64{.0001, .0005, .001, .005, .01, .025, .05, .075, .1, .125, .15, .175, .2, .25, .3, .4, .5, .75, 1, 2, 5}

// parallelFillMin is the window size from which merge fills the pairs
// with two goroutines.
const parallelFillMin = 20_000

// packKey packs the leading part of pairKeyCmp's order into 64 bits:
// source (8 bits), source VM (28 bits), destination VM (28 bits, only when
// the source is a VM below 2^28-1: otherwise the source IP or the full
// source id comes first). Ids beyond 28 bits saturate. Keys with equal packs are ordered by pairKeyCmp, so the
// order is exactly pairKeyCmp's.
func packKey(k *PairKey) uint64 {
	const max28 = 1<<28 - 1
	sat := func(v enrich.VMID) uint64 { return min(uint64(v), max28) }
	pk := uint64(k.Source)<<56 | sat(k.Src.VM)<<28
	if k.Src.VM != 0 && uint64(k.Src.VM) < max28 { // a saturated source decides nothing beyond
		pk |= sat(k.Dst.VM)
	}
	return pk
}

// Phases of a window close, timed into vmflow_aggregate_window_close_phase_seconds.
const (
	phaseStart = iota
	phaseMerge // shards merged into the base (pairs and exact flow sets)
	phaseSort  // output order
	phaseFill  // pairs copied, endpoints resolved
	phaseSinks // written to every sink
	nPhases
)

var phaseNames = [nPhases]string{"", "merge", "sort", "fill", "sinks"}

// pairKeyCmp orders keys as pairKeyLess does (-1, 0, 1).
func pairKeyCmp(a, b *PairKey) int {
	if a.Source != b.Source {
		if a.Source < b.Source {
			return -1
		}
		return 1
	}
	if c := endpointCmp(a.Src, b.Src); c != 0 {
		return c
	}
	return endpointCmp(a.Dst, b.Dst)
}

func pairKeyLess(a, b *PairKey) bool {
	if a.Source != b.Source {
		return a.Source < b.Source
	}
	if c := endpointCmp(a.Src, b.Src); c != 0 {
		return c < 0
	}
	return endpointCmp(a.Dst, b.Dst) < 0
}

func endpointCmp(a, b EndpointKey) int {
	if a.VM != b.VM {
		if a.VM < b.VM {
			return -1
		}
		return 1
	}
	return a.IP.Compare(b.IP)
}

// workerCollector exports the workers' hot-path counters at scrape time.
type workerCollector struct{ a *Aggregator }

var (
	descRecords     = prometheus.NewDesc("vmflow_aggregate_records_total", "Records counted into pairs, by export protocol.", []string{"source"}, nil)
	descSuppressed  = prometheus.NewDesc("vmflow_aggregate_suppressed_total", "Records not counted, by reason (duplicate_observation: the packet is counted at another observation point).", []string{"reason"}, nil)
	descRateMissing = prometheus.NewDesc("vmflow_aggregate_sampling_rate_missing_total", "Records without a sampling rate (counted as 1-in-1).", nil, nil)
	descOverflow    = prometheus.NewDesc("vmflow_aggregate_overflow_records_total", "Records of new pairs beyond aggregate.max_pairs, summed into the overflow pair.", nil, nil)
	descNonIP       = prometheus.NewDesc("vmflow_aggregate_non_ip_records_total", "Record endpoints with neither a known MAC nor an IP address (the non-IP endpoint).", nil, nil)
	descUnmapped    = prometheus.NewDesc("vmflow_aggregate_unmapped_exporter_records_total", "Records whose exporter identity maps to no inventory host (counted at every observation).", nil, nil)
	descUnknown     = prometheus.NewDesc("vmflow_aggregate_unknown_endpoints_total", "Record endpoints that are no known VM (keyed by IP), by side.", []string{"side"}, nil)
	descWorkers     = prometheus.NewDesc("vmflow_aggregate_workers", "Aggregation workers (one per collector worker).", nil, nil)
)

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descSuppressed, descRateMissing, descOverflow, descNonIP, descUnmapped, descUnknown, descWorkers} {
		ch <- d
	}
	ch <- descMeasurements // latency.go
}

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.a.Totals()
	c.a.mu.Lock()
	nw := len(c.a.workers)
	c.a.mu.Unlock()
	for _, s := range []decoder.Source{decoder.SourceSFlow, decoder.SourceIPFIX, decoder.SourceNetFlow9, decoder.SourceUnknown} {
		ch <- prometheus.MustNewConstMetric(descRecords, prometheus.CounterValue, float64(t.records[s]), s.String())
	}
	ch <- prometheus.MustNewConstMetric(descSuppressed, prometheus.CounterValue, float64(t.suppressed), "duplicate_observation")
	ch <- prometheus.MustNewConstMetric(descRateMissing, prometheus.CounterValue, float64(t.rateMissing))
	ch <- prometheus.MustNewConstMetric(descOverflow, prometheus.CounterValue, float64(t.overflow))
	ch <- prometheus.MustNewConstMetric(descNonIP, prometheus.CounterValue, float64(t.nonIP))
	ch <- prometheus.MustNewConstMetric(descUnmapped, prometheus.CounterValue, float64(t.unmappedExporter))
	ch <- prometheus.MustNewConstMetric(descUnknown, prometheus.CounterValue, float64(t.unknownSrc), "src")
	ch <- prometheus.MustNewConstMetric(descUnknown, prometheus.CounterValue, float64(t.unknownDst), "dst")
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(nw))
	ch <- prometheus.MustNewConstMetric(descMeasurements, prometheus.CounterValue, float64(t.measurements))
}

// Totals sums the workers' counters.
func (a *Aggregator) Totals() Counters {
	a.mu.Lock()
	workers := append([]*Worker(nil), a.workers...)
	a.mu.Unlock()
	var t counters
	for _, w := range workers {
		w.mu.Lock()
		c := w.cnt
		w.mu.Unlock()
		for i := range t.records {
			t.records[i] += c.records[i]
		}
		t.suppressed += c.suppressed
		t.rateMissing += c.rateMissing
		t.overflow += c.overflow
		t.nonIP += c.nonIP
		t.unmappedExporter += c.unmappedExporter
		t.unknownSrc += c.unknownSrc
		t.unknownDst += c.unknownDst
		t.measurements += c.measurements
	}
	return Counters{counters: t}
}

// Counters is a snapshot of the aggregator's hot-path counters.
type Counters struct{ counters }

// Records is the number of records counted into pairs for a protocol.
func (c Counters) Records(s decoder.Source) uint64 { return c.records[s&3] }

// Suppressed is the number of duplicate observations not counted.
func (c Counters) Suppressed() uint64 { return c.suppressed }

// RateMissing is the number of records without a sampling rate.
func (c Counters) RateMissing() uint64 { return c.rateMissing }

// Overflow is the number of records summed into the overflow pair.
func (c Counters) Overflow() uint64 { return c.overflow }

// NonIP is the number of endpoints with neither known MAC nor IP.
func (c Counters) NonIP() uint64 { return c.nonIP }

// UnmappedExporter is the number of records from exporters mapped to no host.
func (c Counters) UnmappedExporter() uint64 { return c.unmappedExporter }
