package influx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/collector"
)

// batch is encoded line protocol waiting to be sent.
type batch struct {
	data   []byte
	points int
}

type writerMetrics struct {
	pointsWritten   prometheus.Counter
	batchesWritten  prometheus.Counter
	writeErrors     *prometheus.CounterVec
	retries         prometheus.Counter
	rejectedPoints  prometheus.Counter
	spooledPoints   prometheus.Counter
	replayedPoints  prometheus.Counter
	spoolDropped    prometheus.Counter
	spoolCorrupt    prometheus.Counter
	droppedPoints   *prometheus.CounterVec
	queueOverflow   prometheus.Counter
	windows         prometheus.Counter
	encodedPoints   prometheus.Counter
	writeDuration   prometheus.Histogram
	spoolBytes      prometheus.GaugeFunc
	spoolPending    prometheus.GaugeFunc
	queueWindowsLen prometheus.GaugeFunc
	queueBatchesLen prometheus.GaugeFunc
	queueBytes      prometheus.GaugeFunc
}

// Writer is the InfluxDB sink: an aggregate.Sink that never blocks the
// aggregator for network I/O and never loses a window while InfluxDB is
// down (bounded by the spool size; drops are counted).
type Writer struct {
	cfg    Config
	m      writerMetrics
	client influxdb2.Client
	wapi   api.WriteAPIBlocking
	spool  *spool

	in      chan *aggregate.Window
	inBytes atomic.Int64 // estimated memory of the windows in in (influx.queue_bytes)

	// encoding state (encoder goroutine, overflow path, WriteExporters)
	encMu       sync.Mutex
	enc         *encoder
	mrg         *merger // influx.window > 0
	cur         []byte
	curPoints   int
	lastBatchSz int

	// send queue
	qMu      sync.Mutex
	mem      []batch
	memGen   uint64
	spooling bool // the spool holds pending batches: new ones go behind them
	kick     chan struct{}

	state     atomic.Int32 // 0 new, 1 running, 2 draining/stopped
	life      sync.RWMutex // Write/WriteExporters (read) vs. Drain's state change
	stopc     chan struct{}
	encDone   chan struct{}
	sendDone  chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	drainOnce sync.Once
	drainErr  error
	closeOnce sync.Once

	failStreak int // sender goroutine only
	lastErr    atomic.Pointer[string]
	lastWrite  atomic.Int64 // unix ns of last successful write
	written    atomic.Int64
	rejected   atomic.Int64
	dropped    atomic.Int64 // other than spool-full (spool I/O error, after stop)
	overflows  atomic.Int64

	// sleep waits d or until ctx is done (replaced in tests).
	sleep func(ctx context.Context, d time.Duration) error
}

var _ aggregate.Sink = (*Writer)(nil)

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewWriter validates cfg, opens (and scans) the spool directory and
// registers the metrics. It starts no goroutine and opens no connection.
func NewWriter(cfg Config, reg prometheus.Registerer) (*Writer, error) {
	cfg.Enabled = true
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg.Spool.Dir, cfg.Spool.MaxBytes, cfg.Spool.segmentBytes())
	if err != nil {
		return nil, fmt.Errorf("influx writer: %w", err)
	}
	if cfg.Instance == "" {
		cfg.Instance, _ = os.Hostname()
	}
	var rt http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if cfg.Gzip {
		rt = gzipTransport{base: rt}
	}
	opts := influxdb2.DefaultOptions().
		SetPrecision(time.Nanosecond). // window ends to the ns: see encoder.prepare

		SetHTTPClient(&http.Client{Timeout: cfg.Timeout, Transport: rt}).
		SetApplicationName("vmflow")
	client := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	w := &Writer{
		cfg:      cfg,
		client:   client,
		wapi:     client.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		spool:    sp,
		in:       make(chan *aggregate.Window, cfg.QueueWindows),
		enc:      newEncoderFor(cfg.PairFields == PairFieldsFull, cfg.InfoInterval),
		kick:     make(chan struct{}, 1),
		stopc:    make(chan struct{}),
		encDone:  make(chan struct{}),
		sendDone: make(chan struct{}),
		sleep:    sleepCtx,
	}
	w.enc.instance = cfg.Instance
	if cfg.Window > 0 {
		w.mrg = newMerger(cfg.Window)
	}
	w.spooling = sp.Pending()
	w.initMetrics(reg)
	return w, nil
}

func (w *Writer) initMetrics(reg prometheus.Registerer) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_influx_" + name, Help: help})
	}
	w.m = writerMetrics{
		pointsWritten:  c("points_written_total", "Points accepted by InfluxDB."),
		batchesWritten: c("batches_written_total", "Write requests accepted by InfluxDB."),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_influx_write_errors_total",
			Help: "Failed write requests, by HTTP status (0 = no answer)."}, []string{"status"}),
		retries:        c("write_retries_total", "Write requests retried."),
		rejectedPoints: c("rejected_points_total", "Points InfluxDB refused for good (400/422: parse error, field type conflict, beyond retention)."),
		spooledPoints:  c("spool_points_total", "Points written to the on-disk spool."),
		replayedPoints: c("spool_replayed_points_total", "Points replayed from the spool into InfluxDB."),
		spoolDropped:   c("spool_dropped_points_total", "Unsent points deleted because the spool was full (oldest first)."),
		spoolCorrupt:   c("spool_corrupt_records_total", "Torn or corrupt spool records skipped on open."),
		droppedPoints: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_influx_dropped_points_total",
			Help: "Points lost for other reasons (spool I/O error, written after Stop)."}, []string{"reason"}),
		queueOverflow: c("queue_overflow_windows_total", "Windows encoded in the caller because the window queue was full."),
		windows:       c("windows_total", "Windows received."),
		encodedPoints: c("encoded_points_total", "Points encoded."),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vmflow_influx_write_duration_seconds",
			Help: "Duration of one write request.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	w.m.spoolBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_influx_spool_bytes", Help: "Bytes in the spool."},
		func() float64 { return float64(w.spool.Stats().Bytes) })
	w.m.spoolPending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_influx_spool_pending_points", Help: "Unsent points in the spool."},
		func() float64 { return float64(w.spool.Stats().PendingPoints) })
	w.m.queueWindowsLen = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_influx_queue_windows", Help: "Windows waiting to be encoded."},
		func() float64 { return float64(len(w.in)) })
	w.m.queueBatchesLen = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_influx_queue_batches", Help: "Encoded batches waiting in memory."},
		func() float64 { w.qMu.Lock(); defer w.qMu.Unlock(); return float64(len(w.mem)) })
	w.m.queueBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_influx_queue_bytes", Help: "Estimated memory of the windows waiting to be encoded (bounded by influx.queue_bytes)."},
		func() float64 { return float64(w.inBytes.Load()) })
	if st := w.spool.Stats(); st.CorruptRecords > 0 {
		w.m.spoolCorrupt.Add(float64(st.CorruptRecords))
	}
	if reg != nil {
		reg.MustRegister(w.m.pointsWritten, w.m.batchesWritten, w.m.writeErrors, w.m.retries, w.m.rejectedPoints,
			w.m.spooledPoints, w.m.replayedPoints, w.m.spoolDropped, w.m.spoolCorrupt, w.m.droppedPoints,
			w.m.queueOverflow, w.m.windows, w.m.encodedPoints, w.m.writeDuration, w.m.spoolBytes, w.m.spoolPending,
			w.m.queueWindowsLen, w.m.queueBatchesLen, w.m.queueBytes)
	}
}

// Start starts the encoder and sender goroutines. Batches left in the spool
// by a previous run are replayed first. The writer runs until Drain or
// Stop, whatever happens to ctx: a cancelled ctx (a signal) must not stop
// it before the aggregator's last window reached it.
func (w *Writer) Start(ctx context.Context) error {
	if !w.state.CompareAndSwap(0, 1) {
		return errors.New("influx writer: already started")
	}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go w.encodeLoop()
	go w.sendLoop()
	return nil
}

var _ aggregate.Drainer = (*Writer)(nil)

// Drain is the writer's part of a clean stop (aggregate.Drainer): it stops
// taking windows (a later Write is counted in
// vmflow_influx_dropped_points_total{reason="stopped"}), encodes what is
// queued, sends what InfluxDB takes until ctx is done, and moves the rest
// to the on-disk spool, which the next Start replays. It returns an error
// only for points it could neither send nor spool. Safe to call more than
// once and concurrently (later calls wait for the first).
func (w *Writer) Drain(ctx context.Context) error {
	w.drainOnce.Do(func() { w.drain(ctx) })
	return w.drainErr
}

func (w *Writer) drain(ctx context.Context) {
	lost0 := w.dropped.Load()
	defer func() {
		if n := w.dropped.Load() - lost0; n > 0 {
			w.drainErr = fmt.Errorf("influx writer: %d points lost while draining (see vmflow_influx_dropped_points_total)", n)
		}
	}()
	w.life.Lock()
	prev := w.state.Swap(2)
	w.life.Unlock()
	close(w.stopc)
	if prev == 0 { // never started: spool whatever was queued
		w.drainIn()
		w.flushMerged()
		w.flushBatch()
		w.spoolMem()
		return
	}
	<-w.encDone
	for ctx.Err() == nil {
		w.qMu.Lock()
		done := len(w.mem) == 0 || w.spooling
		w.qMu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	w.cancel()
	<-w.sendDone
	w.spoolMem()
}

// Stop drains the writer (within influx.timeout, unless Drain ran before)
// and closes the spool and the client. Safe to call more than once.
func (w *Writer) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	_ = w.Drain(ctx)
	cancel()
	w.closeOnce.Do(func() {
		_ = w.spool.Close()
		w.client.Close()
	})
}

// spoolMem moves the in-memory batches to the spool.
func (w *Writer) spoolMem() {
	w.qMu.Lock()
	defer w.qMu.Unlock()
	w.moveMemToSpoolLocked()
}

// Write enqueues a closed window. It never waits for InfluxDB: when the
// queue is full, the window is encoded here and its batches go to the spool.
func (w *Writer) Write(win *aggregate.Window) {
	if win == nil {
		return
	}
	w.life.RLock()
	defer w.life.RUnlock()
	if w.state.Load() == 2 {
		n := len(win.Pairs)
		w.dropped.Add(int64(n))
		w.m.droppedPoints.WithLabelValues("stopped").Add(float64(n))
		return
	}
	sz := windowBytes(win)
	if w.inBytes.Add(sz) > w.cfg.QueueBytes && len(w.in) > 0 {
		w.inBytes.Add(-sz)
		w.overflow(win)
		return
	}
	select {
	case w.in <- win:
	default:
		w.inBytes.Add(-sz)
		w.overflow(win)
	}
}

// windowBytes estimates the memory a queued window holds (its pairs; the
// endpoint strings are shared with the inventory).
func windowBytes(win *aggregate.Window) int64 {
	return int64(len(win.Pairs))*int64(unsafe.Sizeof(aggregate.Pair{})) + int64(unsafe.Sizeof(*win))
}

// dequeued accounts for a window taken from the queue.
func (w *Writer) dequeued(win *aggregate.Window) { w.inBytes.Add(-windowBytes(win)) }

// overflow encodes win in the caller (the queue is full by count or
// bytes): its batches go behind the memory queue or to the spool.
func (w *Writer) overflow(win *aggregate.Window) {
	w.overflows.Add(1)
	w.m.queueOverflow.Inc()
	w.encMu.Lock()
	w.encodeWindowLocked(win)
	w.encMu.Unlock()
}

// WriteExporters records the collector's per-exporter counters (cumulative)
// at ts. Call it periodically (e.g. every window).
func (w *Writer) WriteExporters(ts time.Time, rows []collector.ExporterStatus) {
	w.life.RLock()
	defer w.life.RUnlock()
	if len(rows) == 0 || w.state.Load() == 2 {
		return
	}
	w.encMu.Lock()
	defer w.encMu.Unlock()
	var n int
	w.cur, n = appendExporters(w.cur, ts, rows, w.cfg.Instance)
	w.addPointsLocked(n)
}

func (w *Writer) drainIn() {
	for {
		select {
		case win := <-w.in:
			w.dequeued(win)
			w.encMu.Lock()
			w.encodeWindowLocked(win)
			w.encMu.Unlock()
		default:
			return
		}
	}
}

func (w *Writer) encodeLoop() {
	defer close(w.encDone)
	flush := time.NewTicker(w.cfg.FlushInterval)
	defer flush.Stop()
	var selfC <-chan time.Time
	if w.cfg.SelfInterval > 0 {
		t := time.NewTicker(w.cfg.SelfInterval)
		defer t.Stop()
		selfC = t.C
	}
	for {
		select {
		case win := <-w.in:
			w.dequeued(win)
			w.encMu.Lock()
			w.encodeWindowLocked(win)
			w.encMu.Unlock()
		case <-flush.C:
			w.flushBatch()
		case now := <-selfC:
			w.writeSelf(now)
		case <-w.stopc:
			w.drainIn()
			w.flushMerged()
			w.flushBatch()
			return
		}
	}
}

func (w *Writer) flushMerged() {
	w.encMu.Lock()
	defer w.encMu.Unlock()
	w.flushMergedLocked()
}

func (w *Writer) flushBatch() {
	w.encMu.Lock()
	defer w.encMu.Unlock()
	w.submitLocked()
}

func (w *Writer) encodeWindowLocked(win *aggregate.Window) {
	w.m.windows.Inc()
	if w.mrg != nil {
		w.mrg.add(win, w.emitLocked)
		return
	}
	w.emitLocked(win)
}

// flushMergedLocked encodes the open merged window (influx.window), also
// when partial (at a stop).
func (w *Writer) flushMergedLocked() {
	if w.mrg != nil {
		w.mrg.flush(w.emitLocked)
	}
}

// emitLocked encodes one window's points into the current batch.
func (w *Writer) emitLocked(win *aggregate.Window) {
	e := w.enc
	e.prepare(win)
	for i := range e.pairs {
		w.cur = e.appendPair(w.cur, i)
		w.addPointsLocked(1)
	}
	for i := range e.vms {
		w.cur = e.appendVM(w.cur, i)
		w.addPointsLocked(1)
	}
	for i := range e.infos {
		w.cur = e.appendInfo(w.cur, i)
		w.addPointsLocked(1)
	}
	for i := range win.Ports { // vm_port (ports.go)
		w.cur = e.appendPort(w.cur, &win.Ports[i])
		w.addPointsLocked(1)
	}
}

func (w *Writer) addPointsLocked(n int) {
	w.curPoints += n
	w.m.encodedPoints.Add(float64(n))
	if w.curPoints >= w.cfg.BatchSize {
		w.submitLocked()
	}
}

// submitLocked hands the current batch to the send queue (encMu held).
func (w *Writer) submitLocked() {
	if w.curPoints == 0 {
		return
	}
	b := batch{data: w.cur, points: w.curPoints}
	w.lastBatchSz = len(w.cur)
	w.cur = make([]byte, 0, w.lastBatchSz+w.lastBatchSz/8)
	w.curPoints = 0
	w.submit(b)
}

// submit queues b in memory, or in the spool when the spool already holds
// older batches (order) or the memory queue is full.
func (w *Writer) submit(b batch) {
	w.qMu.Lock()
	defer w.qMu.Unlock()
	if !w.spooling && len(w.mem) < w.cfg.QueueBatches {
		w.mem = append(w.mem, b)
		select {
		case w.kick <- struct{}{}:
		default:
		}
		return
	}
	w.moveMemToSpoolLocked()
	w.spoolAppendLocked(b)
}

// moveMemToSpoolLocked appends the memory queue to the spool, in order. The
// batch being sent (mem[0]) moves too: if its write succeeds anyway, the
// replay rewrites the same points, which InfluxDB overwrites (idempotent).
func (w *Writer) moveMemToSpoolLocked() {
	if len(w.mem) == 0 {
		return
	}
	for _, b := range w.mem {
		w.spoolAppendLocked(b)
	}
	w.mem = w.mem[:0]
	w.memGen++
}

func (w *Writer) spoolAppendLocked(b batch) {
	dropped, err := w.spool.Append(b.data, b.points)
	if dropped > 0 {
		w.m.spoolDropped.Add(float64(dropped))
	}
	if err != nil {
		w.dropped.Add(int64(b.points))
		w.m.droppedPoints.WithLabelValues("spool_error").Add(float64(b.points))
		w.setErr(fmt.Errorf("influx spool: %w", err))
		return
	}
	w.m.spooledPoints.Add(float64(b.points))
	w.spooling = true
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *Writer) setErr(err error) {
	if err == nil {
		w.lastErr.Store(nil)
		return
	}
	s := err.Error()
	w.lastErr.Store(&s)
}

// next returns what to send next: a memory batch (fromSpool false) or the
// oldest spooled record.
func (w *Writer) next() (b batch, gen uint64, rec spoolRecord, fromSpool, ok bool) {
	w.qMu.Lock()
	defer w.qMu.Unlock()
	if w.spooling {
		r, ok, err := w.spool.Peek()
		if err != nil {
			w.setErr(err)
			return b, 0, rec, false, false
		}
		if ok {
			return batch{data: r.data, points: r.points}, 0, r, true, true
		}
		w.spooling = false
	}
	if len(w.mem) > 0 {
		return w.mem[0], w.memGen, rec, false, true
	}
	return b, 0, rec, false, false
}

func (w *Writer) sendLoop() {
	defer close(w.sendDone)
	ctx := w.ctx
	for {
		if ctx.Err() != nil {
			return
		}
		b, gen, rec, fromSpool, ok := w.next()
		if !ok {
			select {
			case <-w.kick:
			case <-ctx.Done():
				return
			}
			continue
		}
		if fromSpool {
			err := w.send(ctx, b.data, b.points, 0)
			if err == nil || errors.Is(err, errRejected) {
				if aerr := w.spool.Ack(rec); aerr != nil {
					w.setErr(aerr)
				}
				if err == nil {
					w.m.replayedPoints.Add(float64(b.points))
				}
				w.failStreak = 0
				continue
			}
			if w.waitHealthy(ctx) != nil {
				return
			}
			continue
		}
		err := w.send(ctx, b.data, b.points, w.cfg.MaxRetries)
		w.qMu.Lock()
		if gen == w.memGen && len(w.mem) > 0 {
			if err == nil || errors.Is(err, errRejected) {
				w.mem[0] = batch{}
				w.mem = w.mem[1:]
			} else {
				w.moveMemToSpoolLocked()
			}
		}
		w.qMu.Unlock()
		if err != nil && !errors.Is(err, errRejected) {
			if w.waitHealthy(ctx) != nil {
				return
			}
		}
	}
}

// waitHealthy backs off (growing with consecutive failures) and then waits
// until InfluxDB answers /ping.
func (w *Writer) waitHealthy(ctx context.Context) error {
	for {
		if err := w.sleep(ctx, w.backoff(w.failStreak)); err != nil {
			return err
		}
		w.failStreak++
		pctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
		ok, err := w.client.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ok && err == nil {
			return nil
		}
		if err != nil {
			w.setErr(fmt.Errorf("influx ping: %w", err))
		}
	}
}

// backoff is RetryMin·2^attempt capped at RetryMax, with ±20% jitter.
func (w *Writer) backoff(attempt int) time.Duration {
	d := w.cfg.RetryMin
	for i := 0; i < attempt && d < w.cfg.RetryMax; i++ {
		d *= 2
	}
	if d > w.cfg.RetryMax {
		d = w.cfg.RetryMax
	}
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	if j > w.cfg.RetryMax {
		j = w.cfg.RetryMax
	}
	return j
}

// errRejected marks points InfluxDB refused for good; they are counted and
// not retried.
var errRejected = errors.New("rejected by InfluxDB")

var partialDropped = regexp.MustCompile(`dropped=(\d+)`)

// maxRetryAfter caps a server's Retry-After.
const maxRetryAfter = 10 * time.Minute

// send writes one batch, retrying transient failures up to retries times.
// It returns nil, an error wrapping errRejected, or the last transient error.
func (w *Writer) send(ctx context.Context, data []byte, points, retries int) error {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		// data is not modified while the request runs: no copy.
		err := w.wapi.WriteRecord(ctx, unsafe.String(unsafe.SliceData(data), len(data)))
		w.m.writeDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			w.m.pointsWritten.Add(float64(points))
			w.m.batchesWritten.Inc()
			w.written.Add(int64(points))
			w.lastWrite.Store(time.Now().UnixNano())
			w.setErr(nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		status := 0
		var retryAfter time.Duration
		var he *ihttp.Error
		if errors.As(err, &he) {
			status = he.StatusCode
			if he.RetryAfter > 0 {
				retryAfter = time.Duration(he.RetryAfter) * time.Second
			}
		}
		w.m.writeErrors.WithLabelValues(strconv.Itoa(status)).Inc()
		w.setErr(fmt.Errorf("influx write: status %d: %w", status, err))
		switch {
		case status == 413 && points > 1:
			// too large: split at a line boundary and send both halves
			mid := len(data) / 2
			if i := bytes.IndexByte(data[mid:], '\n'); i >= 0 && mid+i+1 < len(data) {
				mid += i + 1
				n1 := bytes.Count(data[:mid], []byte{'\n'})
				if err := w.send(ctx, data[:mid], n1, retries); err != nil && !errors.Is(err, errRejected) {
					return err
				}
				return w.send(ctx, data[mid:], points-n1, retries)
			}
		case status == 400 || status == 413 || status == 422:
			n := points
			if he != nil {
				if m := partialDropped.FindStringSubmatch(he.Message); m != nil {
					if v, e := strconv.Atoi(m[1]); e == nil && v <= points {
						n = v
					}
				}
			}
			w.m.rejectedPoints.Add(float64(n))
			w.rejected.Add(int64(n))
			if n < points {
				w.m.pointsWritten.Add(float64(points - n))
				w.written.Add(int64(points - n))
			}
			return fmt.Errorf("influx write: %w: %d points: %v", errRejected, n, err)
		}
		if attempt >= retries {
			return fmt.Errorf("influx write: %w", err)
		}
		w.m.retries.Inc()
		d := w.backoff(attempt)
		if retryAfter > 0 && (status == 429 || status == 503) {
			d = min(retryAfter, maxRetryAfter)
		}
		if err := w.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// writeSelf records the writer's own counters in the vmflow measurement.
func (w *Writer) writeSelf(now time.Time) {
	st := w.spool.Stats()
	w.encMu.Lock()
	defer w.encMu.Unlock()
	b := append(w.cur, MeasurementSelf...)
	b = appendTag(b, "instance", w.cfg.Instance)
	f := fieldWriter{b: b, first: true}
	f.int("points_written", w.written.Load())
	f.int("rejected_points", w.rejected.Load())
	f.int("dropped_points", w.dropped.Load())
	f.int("spool_bytes", st.Bytes)
	f.int("spool_pending_points", st.PendingPoints)
	f.int("spool_dropped_points", st.DroppedPoints)
	f.int("queue_windows", int64(len(w.in)))
	f.int("queue_overflows", w.overflows.Load())
	b = append(f.b, ' ')
	b = strconv.AppendInt(b, now.Unix()*1e9, 10) // whole seconds
	w.cur = append(b, '\n')
	w.addPointsLocked(1)
}

// Health reports the writer's state for GET /api/v1/health: status is "ok",
// or "degraded" while batches wait in the spool, after the last write
// failed, or once points were dropped.
func (w *Writer) Health() map[string]any {
	st := w.spool.Stats()
	w.qMu.Lock()
	memBatches := len(w.mem)
	spooling := w.spooling
	w.qMu.Unlock()
	status := "ok"
	var lastErr string
	if p := w.lastErr.Load(); p != nil {
		lastErr = *p
		status = "degraded"
	}
	if spooling || st.PendingRecords > 0 || st.DroppedPoints > 0 || w.dropped.Load() > 0 {
		status = "degraded"
	}
	h := map[string]any{
		"status":                status,
		"url":                   w.cfg.URL,
		"bucket":                w.cfg.Bucket,
		"queue_windows":         len(w.in),
		"queue_bytes":           w.inBytes.Load(),
		"queue_batches":         memBatches,
		"spool_bytes":           st.Bytes,
		"spool_pending_points":  st.PendingPoints,
		"spool_dropped_points":  st.DroppedPoints,
		"spool_corrupt_records": st.CorruptRecords,
		"dropped_points":        w.dropped.Load(),
		"rejected_points":       w.rejected.Load(),
		"points_written":        w.written.Load(),
	}
	if lastErr != "" {
		h["last_error"] = lastErr
	}
	if t := w.lastWrite.Load(); t != 0 {
		h["last_write"] = time.Unix(0, t).UTC()
	}
	return h
}
