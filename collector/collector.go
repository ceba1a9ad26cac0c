package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/internal/hashmix"
)

// Collector receives sFlow, IPFIX and NetFlow v9 datagrams on UDP and hands
// them to a Handler on worker goroutines.
type Collector struct {
	cfg       Config
	h         Handler
	allowed   atomic.Pointer[[]netip.Prefix] // swapped by SetAllowedExporters
	table     *exporterTable
	listeners []*listener

	mu       sync.Mutex
	started  bool
	stopped  bool
	done     chan struct{}
	stopOnce sync.Once
	bg       sync.WaitGroup
}

// ListenerStats are one listener's counters since Start.
type ListenerStats struct {
	Received           uint64 // datagrams read from the sockets
	Bytes              uint64
	Handled            uint64 // datagrams passed to the handler
	Samples            uint64 // Meta.Samples summed
	DroppedQueueFull   uint64
	DroppedDecodeError uint64 // handler returned an error (the datagram was handled)
	DroppedNotAllowed  uint64
	DroppedTruncated   uint64
	DroppedPanic       uint64
	SocketDrops        uint64 // kernel drops on our sockets (receive buffer full)
	ReadErrors         uint64
	Coalesced          uint64 // datagrams that arrived in UDP GRO buffers
	Queued             int    // datagrams queued or being handled now
}

// New returns an inert collector; Start binds the sockets. reg receives the
// collector's metrics (a private registry when nil).
func New(cfg Config, h Handler, reg prometheus.Registerer) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("collector: nil handler")
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	allowed, _ := parseAllowed(cfg.AllowedExporters)
	c := &Collector{
		cfg:   cfg,
		h:     h,
		table: newExporterTable(cfg.MaxExporters),
		done:  make(chan struct{}),
	}
	c.allowed.Store(&allowed)
	for _, x := range []struct {
		p  Protocol
		lc ListenerConfig
	}{{ProtoSFlow, cfg.SFlow}, {ProtoIPFIX, cfg.IPFIX}, {ProtoNetFlow9, cfg.NetFlow9}} {
		if x.lc.Listen == "" {
			continue
		}
		c.listeners = append(c.listeners, newListener(c, x.p, x.lc))
	}
	if err := c.register(reg); err != nil {
		return nil, fmt.Errorf("collector: register metrics: %w", err)
	}
	return c, nil
}

// Start binds every enabled listener and starts readers and workers. An
// address that cannot be bound is an error (and nothing stays bound).
// Cancelling ctx stops the collector like Stop.
func (c *Collector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.stopped {
		return errors.New("collector: Start called twice or after Stop")
	}
	for i, l := range c.listeners {
		if err := l.bind(ctx); err != nil {
			for _, m := range c.listeners[:i+1] {
				m.closeConns()
			}
			return fmt.Errorf("collector: listen %s on %q: %w", l.proto, l.cfg.Listen, err)
		}
	}
	for _, l := range c.listeners {
		l.start()
	}
	c.started = true
	c.bg.Add(1)
	go c.housekeeping()
	go func() {
		select {
		case <-ctx.Done():
			c.Stop()
		case <-c.done:
		}
	}()
	return nil
}

// Stop closes the sockets, lets the workers finish what is queued and
// returns when they are done. It is safe to call more than once.
func (c *Collector) Stop() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopped = true
		started := c.started
		c.mu.Unlock()
		close(c.done)
		if !started {
			return
		}
		c.bg.Wait()
		for _, l := range c.listeners {
			l.pollDrops()
			l.closeConns()
		}
		for _, l := range c.listeners {
			l.readers.Wait()
			l.closeQueues()
		}
		for _, l := range c.listeners {
			l.workers.Wait()
		}
	})
}

// Addrs returns the bound addresses of each listener (after Start).
func (c *Collector) Addrs() map[Protocol][]net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Protocol][]net.Addr, len(c.listeners))
	for _, l := range c.listeners {
		out[l.proto] = append([]net.Addr(nil), l.addrs...)
	}
	return out
}

// Exporters returns every known exporter, sorted by protocol, address,
// agent, sub-agent and observation domain.
func (c *Collector) Exporters() []ExporterStatus { return c.table.snapshot() }

// Stats returns each enabled listener's counters.
func (c *Collector) Stats() map[Protocol]ListenerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Protocol]ListenerStats, len(c.listeners))
	for _, l := range c.listeners {
		l.pollDrops()
		out[l.proto] = l.stats()
	}
	return out
}

func (c *Collector) allowedFrom(a netip.Addr) bool {
	allowed := *c.allowed.Load()
	if len(allowed) == 0 {
		return true
	}
	for _, p := range allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (c *Collector) housekeeping() {
	defer c.bg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			for _, l := range c.listeners {
				l.pollDrops()
			}
			c.table.expire(now.Add(-c.cfg.ExporterTimeout).UnixNano())
		}
	}
}

// listener is one protocol's sockets, readers, queue and workers.
type listener struct {
	c     *Collector
	proto Protocol
	cfg   ListenerConfig

	conns    []*net.UDPConn
	mreaders []*mmsgReader
	addrs    []net.Addr
	pool     *slotPool
	// q is the queue every worker takes from (sFlow: any worker may
	// handle any datagram). wq, for the template protocols, is one queue
	// per worker: an exporter's datagrams always go to the same worker,
	// in arrival order, so that a template is installed before the data
	// that follows it is decoded (and sequence numbers are seen in order).
	q  chan chunk
	wq []chan chunk
	// inline: the readers handle what they read (Inline, and for the
	// template protocols the steering program attached)
	inline bool
	// closing: the sockets are being closed, the readers return
	closing atomic.Bool

	dropsMu   sync.Mutex
	rcs       []syscall.RawConn
	lastDrops []uint32

	ctr counters

	readers, workers sync.WaitGroup
}

func newListener(c *Collector, p Protocol, lc ListenerConfig) *listener {
	l := &listener{c: c, proto: p, cfg: lc, pool: newSlotPool(lc.QueueSize)}
	if n := lc.workers(); p.templated() && n > 1 {
		// Each channel holds QueueSize chunks, so a send never blocks.
		l.wq = make([]chan chunk, n)
		for i := range l.wq {
			l.wq[i] = make(chan chunk, lc.QueueSize)
		}
	} else {
		l.q = make(chan chunk, lc.QueueSize)
	}
	return l
}

// closeQueues ends the workers once they have handled what is queued.
func (l *listener) closeQueues() {
	if l.q != nil {
		close(l.q)
	}
	for _, q := range l.wq {
		close(q)
	}
}

func (l *listener) bind(ctx context.Context) error {
	addr := l.cfg.Listen
	l.conns, l.mreaders, l.addrs = nil, nil, nil
	l.dropsMu.Lock()
	l.rcs, l.lastDrops = nil, nil
	l.dropsMu.Unlock()
	for i := 0; i < l.cfg.Sockets; i++ {
		conn, got, err := listenUDP(ctx, addr, l.cfg.ReadBuffer)
		if err != nil {
			return err
		}
		l.conns = append(l.conns, conn)
		l.addrs = append(l.addrs, conn.LocalAddr())
		l.ctr.rcvbuf.Store(int64(got))
		if i == 0 {
			// later sockets join the port the first one got (":0")
			host, _, _ := net.SplitHostPort(addr)
			addr = net.JoinHostPort(host, strconv.Itoa(conn.LocalAddr().(*net.UDPAddr).Port))
		}
		r, err := newMMsgReader(conn, l.cfg.Batch, l.cfg.MaxDatagram, l.cfg.GRO)
		if err != nil {
			return err
		}
		l.mreaders = append(l.mreaders, r)
		if i == 0 && l.cfg.Inline {
			// every datagram of an exporter address on one socket,
			// so that the socket's reader sees them in order
			l.inline = !l.proto.templated() || l.cfg.Sockets == 1 || steerByAddress(conn, l.cfg.Sockets) == nil
		}
		d, _ := socketDrops(r.rc)
		l.dropsMu.Lock()
		l.rcs = append(l.rcs, r.rc)
		l.lastDrops = append(l.lastDrops, d)
		l.dropsMu.Unlock()
	}
	return nil
}

func (l *listener) start() {
	if l.inline {
		for i, r := range l.mreaders {
			local := l.conns[i].LocalAddr().(*net.UDPAddr).AddrPort()
			wh := l.c.h.NewWorker()
			l.readers.Add(1)
			go l.readLoop(r, local, wh)
		}
		return
	}
	for i := range l.cfg.workers() {
		wh := l.c.h.NewWorker()
		l.workers.Add(1)
		q := l.q
		if l.wq != nil {
			q = l.wq[i]
		}
		go l.workLoop(wh, q)
	}
	for i, r := range l.mreaders {
		local := l.conns[i].LocalAddr().(*net.UDPAddr).AddrPort()
		l.readers.Add(1)
		go l.readLoop(r, local, nil)
	}
}

func (l *listener) closeConns() {
	l.closing.Store(true)
	for _, c := range l.conns {
		_ = c.Close()
	}
}

// pollDrops adds the kernel's new socket drops to the counter.
func (l *listener) pollDrops() {
	l.dropsMu.Lock()
	defer l.dropsMu.Unlock()
	for i, rc := range l.rcs {
		d, ok := socketDrops(rc)
		if !ok {
			continue
		}
		l.ctr.socketDrops.Add(uint64(d - l.lastDrops[i]))
		l.lastDrops[i] = d
	}
}

// chunkMax is the most datagrams queued as one chunk (one channel send,
// handled by one worker).
const chunkMax = 64

// batchSource is what a reader hands to deliver: n datagrams.
type batchSource interface {
	datagram(i int) (data []byte, from netip.AddrPort, truncated bool)
}

type accepted struct {
	i    int
	from netip.AddrPort
}

// scratch is a reader's reusable state for deliver.
type scratch struct {
	acc []accepted
	// per worker queue (template protocols): the chunk being built
	heads, tails []*slot
	counts       []int
	// inline: the datagram being handled (a local would escape to the
	// heap through the handler interface)
	d Datagram
}

func (l *listener) newScratch(batch int) *scratch {
	return &scratch{
		acc:    make([]accepted, batch),
		heads:  make([]*slot, len(l.wq)),
		tails:  make([]*slot, len(l.wq)),
		counts: make([]int, len(l.wq)),
	}
}

// readLoop reads batches from one socket and queues them for the workers,
// or with wh (inline) handles them itself.
func (l *listener) readLoop(r *mmsgReader, local netip.AddrPort, wh WorkerHandler) {
	defer l.readers.Done()
	sc := l.newScratch(len(r.segs))
	var cache *exporterCache
	if wh != nil {
		cache = newExporterCache(l.c.table)
	}
	handle := func(n int) bool {
		if r.coalesced > 0 {
			l.ctr.coalesced.Add(uint64(r.coalesced))
		}
		if wh != nil {
			l.handleInline(r, n, local, time.Now().UnixNano(), sc, wh, cache)
		} else {
			l.deliver(r, n, local, time.Now().UnixNano(), sc)
		}
		return !l.closing.Load()
	}
	for {
		err := r.each(handle)
		if l.closing.Load() {
			return
		}
		if err != nil {
			if isClosed(err) {
				return
			}
			l.ctr.readErrors.Add(1)
			time.Sleep(time.Millisecond) // never spin on a persistent error
		}
	}
}

// deliver filters a received batch, copies it into free slots and queues it
// as one chunk; what does not fit is dropped newest first.
func (l *listener) deliver(src batchSource, n int, local netip.AddrPort, now int64, sc *scratch) {
	m, bytes, truncated, notAllowed := l.accept(src, n, sc)
	// Slots first, so that the drops are counted before the datagrams
	// show as received (a reader of Stats never sees one without the
	// other's effect), and received before any of them can be handled.
	var ch chunk
	if m > 0 {
		ch = l.pool.take(m)
		if ch.n < m {
			l.ctr.queueFull.Add(uint64(m - ch.n)) // the newest
		}
	}
	l.countReceived(n, bytes, truncated, notAllowed)
	if ch.n == 0 {
		return
	}
	acc := sc.acc
	base := l.ctr.arrival.Add(uint64(ch.n)) - uint64(ch.n)
	s := ch.head
	for j := 0; j < ch.n; j++ {
		data, _, _ := src.datagram(acc[j].i)
		s.fill(l.proto, acc[j].from, local, data, now)
		s.arrival = base + uint64(j)
		s = s.next
	}
	if l.wq != nil {
		l.route(ch, sc)
		return
	}
	// Queue chunks of at most chunkMax datagrams, so that a large read
	// (UDP GRO can return thousands of datagrams at once) spreads over
	// the workers.
	for ch.n > 0 {
		part := chunk{head: ch.head, n: min(ch.n, chunkMax)}
		t := part.head
		for k := 1; k < part.n; k++ {
			t = t.next
		}
		part.tail = t
		ch.head, ch.n = t.next, ch.n-part.n
		t.next = nil
		select {
		case l.q <- part:
		default: // cannot happen: the channel holds QueueSize chunks
			l.pool.put(part)
			l.ctr.queueFull.Add(uint64(part.n))
		}
	}
}

// accept filters a received batch: the datagrams to handle go to sc.acc.
func (l *listener) accept(src batchSource, n int, sc *scratch) (m int, bytes, truncated, notAllowed uint64) {
	acc := sc.acc
	for i := 0; i < n; i++ {
		data, from, trunc := src.datagram(i)
		bytes += uint64(len(data))
		if trunc {
			truncated++
			continue
		}
		if !l.c.allowedFrom(from.Addr()) {
			notAllowed++
			continue
		}
		acc[m] = accepted{i, from}
		m++
	}
	return m, bytes, truncated, notAllowed
}

func (l *listener) countReceived(n int, bytes, truncated, notAllowed uint64) {
	if truncated > 0 {
		l.ctr.truncated.Add(truncated)
	}
	if notAllowed > 0 {
		l.ctr.notAllowed.Add(notAllowed)
	}
	l.ctr.bytes.Add(bytes)
	l.ctr.received.Add(uint64(n))
}

// handleInline handles a received batch on the reader (Inline): the
// datagrams are handled in arrival order straight from the receive
// buffers.
func (l *listener) handleInline(src batchSource, n int, local netip.AddrPort, now int64, sc *scratch, wh WorkerHandler, cache *exporterCache) {
	m, bytes, truncated, notAllowed := l.accept(src, n, sc)
	l.countReceived(n, bytes, truncated, notAllowed)
	if m == 0 {
		return
	}
	base := l.ctr.arrival.Add(uint64(m)) - uint64(m)
	cache.sweep()
	var t tally
	for j := 0; j < m; j++ {
		data, from, _ := src.datagram(sc.acc[j].i)
		sc.d = Datagram{Proto: l.proto, From: from, Local: local, Data: data, Received: now}
		t.handle(wh, cache, &sc.d, base+uint64(j))
	}
	sc.d.Data = nil
	flush(wh)
	cache.flush()
	l.ctr.handled.Add(uint64(m))
	t.count(l)
}

// tally counts what the handler made of a run of datagrams.
type tally struct{ samples, decodeErrs, panics uint64 }

func (t *tally) handle(wh WorkerHandler, cache *exporterCache, d *Datagram, arrival uint64) {
	meta, err, panicked := safeHandle(wh, d)
	switch {
	case panicked:
		t.panics++
	case err != nil:
		t.decodeErrs++
	default:
		t.samples += uint64(max(meta.Samples, 0))
	}
	cache.record(d, &meta, err != nil, arrival)
}

func (t *tally) count(l *listener) {
	l.ctr.samples.Add(t.samples)
	if t.decodeErrs > 0 {
		l.ctr.decodeErrors.Add(t.decodeErrs)
	}
	if t.panics > 0 {
		l.ctr.panics.Add(t.panics)
	}
}

// route queues each datagram of ch on its exporter's worker queue, in
// order, in chunks of at most chunkMax.
func (l *listener) route(ch chunk, sc *scratch) {
	n := uint64(len(l.wq))
	s := ch.head
	for s != nil {
		next := s.next
		s.next = nil
		w := exporterHash(s.d.From.Addr()) % n
		if sc.heads[w] == nil {
			sc.heads[w] = s
		} else {
			sc.tails[w].next = s
		}
		sc.tails[w] = s
		sc.counts[w]++
		if sc.counts[w] == chunkMax {
			l.send(int(w), sc)
		}
		s = next
	}
	for w := range sc.heads {
		if sc.counts[w] > 0 {
			l.send(w, sc)
		}
	}
}

func (l *listener) send(w int, sc *scratch) {
	part := chunk{head: sc.heads[w], tail: sc.tails[w], n: sc.counts[w]}
	sc.heads[w], sc.tails[w], sc.counts[w] = nil, nil, 0
	select {
	case l.wq[w] <- part:
	default: // cannot happen: each channel holds QueueSize chunks
		l.pool.put(part)
		l.ctr.queueFull.Add(uint64(part.n))
	}
}

// exporterHash spreads exporter addresses over the workers.
func exporterHash(a netip.Addr) uint64 {
	b := a.As16()
	return hashmix.Mix64(binary.LittleEndian.Uint64(b[:8]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[8:]), 32))
}

func (l *listener) workLoop(wh WorkerHandler, q <-chan chunk) {
	defer l.workers.Done()
	cache := newExporterCache(l.c.table)
	for ch := range q {
		l.process(wh, cache, ch)
	}
}

func (l *listener) process(wh WorkerHandler, cache *exporterCache, ch chunk) {
	cache.sweep()
	var t tally
	s := ch.head
	for i := 0; i < ch.n; i++ {
		t.handle(wh, cache, &s.d, s.arrival)
		s.release()
		s = s.next
	}
	l.pool.put(ch)
	flush(wh)
	cache.flush()
	l.ctr.handled.Add(uint64(ch.n))
	t.count(l)
}

// flush ends a run of datagrams for a handler that keeps work for it.
func flush(wh WorkerHandler) {
	if f, ok := wh.(BatchFlusher); ok {
		f.Flush()
	}
}

var errHandlerPanic = errors.New("handler panic")

func safeHandle(wh WorkerHandler, d *Datagram) (m Meta, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			m, err, panicked = Meta{}, errHandlerPanic, true
		}
	}()
	m, err = wh.Handle(d)
	return m, err, false
}

func (l *listener) stats() ListenerStats {
	// Worker counters before reader counters: Handled <= Received.
	st := ListenerStats{
		Handled:            l.ctr.handled.Load(),
		Samples:            l.ctr.samples.Load(),
		DroppedDecodeError: l.ctr.decodeErrors.Load(),
		DroppedQueueFull:   l.ctr.queueFull.Load(),
		DroppedNotAllowed:  l.ctr.notAllowed.Load(),
		DroppedTruncated:   l.ctr.truncated.Load(),
		DroppedPanic:       l.ctr.panics.Load(),
		SocketDrops:        l.ctr.socketDrops.Load(),
		ReadErrors:         l.ctr.readErrors.Load(),
		Coalesced:          l.ctr.coalesced.Load(),
	}
	st.Bytes = l.ctr.bytes.Load()
	st.Received = l.ctr.received.Load()
	st.Queued = l.pool.inUse()
	return st
}
