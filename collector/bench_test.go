package collector

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vmflow/vmflow/collector/blast"
)

// sflowCounter is the handler of the benchmarks: it reads the sFlow header
// (agent, sequence, uptime, sample count) and nothing else.
type sflowCounter struct{}

func (sflowCounter) NewWorker() WorkerHandler { return sflowCounter{} }

func (sflowCounter) Handle(d *Datagram) (Meta, error) {
	h, ok := blast.ParseSFlowHeader(d.Data)
	if !ok {
		return Meta{}, errNotSFlow
	}
	return Meta{Version: 5, Agent: h.Agent, SubAgent: h.SubAgent, SeqKind: SeqDatagrams,
		Sequence: h.Sequence, Uptime: h.Uptime, Records: 1, Samples: int(h.Samples)}, nil
}

type benchError string

func (e benchError) Error() string { return string(e) }

const errNotSFlow = benchError("not an sFlow v5 datagram")

// sflowCapture finds the OVS sFlow capture.
func sflowCapture(tb testing.TB) string {
	const p = "../testdata/ovs-lab-1/ovs-sflow16.pcapng" // committed with the repository
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("the OVS capture is part of the repository: %v", err)
	}
	return p
}

// memSource is a received batch held in memory, for benchmarking the path
// from the reader's batch through the queue to the workers without sockets.
type memSource struct {
	data [][]byte
	from netip.AddrPort
}

func (m *memSource) datagram(i int) ([]byte, netip.AddrPort, bool) { return m.data[i], m.from, false }

// queuePath drives deliver -> queue -> workers -> handler -> exporter state
// without sockets: real OVS datagrams, 64 per batch as recvmmsg would return
// them, with sFlow sequence numbers rewritten to one gap-free stream.
type queuePath struct {
	c     *Collector
	l     *listener
	src   *memSource
	hdrs  []blast.SFlowHeader
	sc    *scratch
	local netip.AddrPort
	seq   uint32
	// the reader waits while more than this many datagrams are queued:
	// the path is measured, not the drop policy, so nothing may be
	// dropped for a full queue however slow the workers are (a loaded
	// machine)
	maxQueued int
}

const queuePathBatch = 64

func newQueuePath(tb testing.TB, cfg Config, h Handler) *queuePath {
	tb.Helper()
	payloads, err := blast.LoadPcap(sflowCapture(tb), 6343)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := New(cfg, h, nil)
	if err != nil {
		tb.Fatal(err)
	}
	l := c.listeners[0]
	// Give every slot its buffer now: the reader waits for room in the
	// queue, so the warm-up may never reach the slots at the bottom of the
	// free list, and their first use in the timed loop would allocate.
	largest := payloads[0]
	for _, p := range payloads {
		if len(p) > len(largest) {
			largest = p
		}
	}
	for s := l.pool.free; s != nil; s = s.next {
		s.fill(ProtoSFlow, netip.AddrPort{}, netip.AddrPort{}, largest, 0)
		s.release()
	}
	l.start()
	q := &queuePath{
		c: c, l: l,
		src:   &memSource{from: netip.MustParseAddrPort("127.0.0.1:40000")},
		local: netip.MustParseAddrPort("127.0.0.1:6343"),
		sc:    l.newScratch(queuePathBatch),
		// room for a whole batch above the threshold
		maxQueued: cfg.SFlow.QueueSize - queuePathBatch,
	}
	if q.maxQueued < 0 {
		tb.Fatalf("queue size %d is smaller than a batch", cfg.SFlow.QueueSize)
	}
	for i := 0; i < queuePathBatch; i++ {
		p := append([]byte(nil), payloads[i%len(payloads)]...)
		h, _ := blast.ParseSFlowHeader(p)
		q.src.data = append(q.src.data, p)
		q.hdrs = append(q.hdrs, h)
	}
	return q
}

// push delivers k datagrams (k <= 64) after waiting for room in the queue.
func (q *queuePath) push(k int) {
	for q.l.pool.inUse() > q.maxQueued {
		time.Sleep(10 * time.Microsecond)
	}
	for j := 0; j < k; j++ {
		q.seq++
		binary.BigEndian.PutUint32(q.src.data[j][q.hdrs[j].SeqOffset:], q.seq)
		binary.BigEndian.PutUint32(q.src.data[j][q.hdrs[j].SeqOffset+4:], q.seq/100) // uptime ms
	}
	q.l.deliver(q.src, k, q.local, time.Now().UnixNano(), q.sc)
}

// drain waits until everything delivered was handled (or dropped).
func (q *queuePath) drain() {
	for q.l.ctr.handled.Load()+q.l.ctr.queueFull.Load() < q.l.ctr.received.Load() {
		time.Sleep(10 * time.Microsecond)
	}
}

// stop ends the workers.
func (q *queuePath) stop() {
	q.l.closeQueues()
	q.l.workers.Wait()
}

// check fails unless every datagram pushed was handled, none dropped, and
// the exporter state shows one gap-free stream: any loss would be the
// tracker's error.
func (q *queuePath) check(tb testing.TB) {
	tb.Helper()
	st := q.l.stats()
	if st.DroppedQueueFull != 0 || st.Handled != uint64(q.seq) {
		tb.Fatalf("pushed %d datagrams: %+v", q.seq, st)
	}
	ex := q.c.Exporters()
	if len(ex) != 1 || ex[0].LostDatagrams != 0 || ex[0].Reordered != 0 || ex[0].Restarts != 0 ||
		ex[0].Datagrams != uint64(q.seq) || ex[0].LastSequence != q.seq {
		tb.Fatalf("exporter state after %d datagrams: %+v", q.seq, ex)
	}
}

// BenchmarkQueueWorkerPath pushes real OVS datagrams through deliver ->
// queue -> workers -> handler -> exporter state. One op is one datagram;
// allocs/op must be 0.
func BenchmarkQueueWorkerPath(b *testing.B) {
	cfg := testConfig()
	q := newQueuePath(b, cfg, sflowCounter{})
	// warm up: slot buffers, exporter state, worker caches
	for i := 0; i < 2*cfg.SFlow.QueueSize/queuePathBatch; i++ {
		q.push(queuePathBatch)
	}
	q.drain()
	start := q.l.stats()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += queuePathBatch {
		q.push(min(queuePathBatch, b.N-n))
	}
	q.drain()
	b.StopTimer()
	end := q.l.stats()
	q.stop()
	handled := float64(end.Handled - start.Handled)
	b.ReportMetric(float64(end.Samples-start.Samples)/handled, "samples/dgram")
	q.check(b)
}

// slowCounter is sflowCounter on a machine so loaded that each datagram
// takes a while.
type slowCounter struct{ sflowCounter }

func (slowCounter) NewWorker() WorkerHandler { return slowCounter{} }

func (s slowCounter) Handle(d *Datagram) (Meta, error) {
	time.Sleep(20 * time.Microsecond)
	return s.sflowCounter.Handle(d)
}

// TestQueuePathSlowWorkers is the regression test of the benchmark's
// driver: the warm-up used to deliver twice the queue size without waiting,
// so with workers slower than the reader (a loaded machine) the queue
// overflowed and the benchmark failed on the sequence loss of the dropped
// datagrams. However slow the workers, the driver must lose nothing.
func TestQueuePathSlowWorkers(t *testing.T) {
	cfg := testConfig()
	cfg.SFlow.QueueSize = 256
	q := newQueuePath(t, cfg, slowCounter{})
	for i := 0; i < 4*cfg.SFlow.QueueSize/queuePathBatch; i++ {
		q.push(queuePathBatch)
	}
	q.push(5)
	q.drain()
	q.stop()
	q.check(t)
}

// BenchmarkInlinePath is the inline listener's path (collector.*.inline):
// a received batch handled on the reader, then the exporter state. One op
// is one datagram; allocs/op must be 0.
func BenchmarkInlinePath(b *testing.B) {
	cfg := testConfig()
	cfg.SFlow.Inline = true
	q := newQueuePath(b, cfg, sflowCounter{})
	q.stop() // the workers of newQueuePath are not used
	wh := sflowCounter{}.NewWorker()
	cache := newExporterCache(q.c.table)
	push := func(k int) {
		for j := 0; j < k; j++ {
			q.seq++
			binary.BigEndian.PutUint32(q.src.data[j][q.hdrs[j].SeqOffset:], q.seq)
			binary.BigEndian.PutUint32(q.src.data[j][q.hdrs[j].SeqOffset+4:], q.seq/100)
		}
		q.l.handleInline(q.src, k, q.local, time.Now().UnixNano(), q.sc, wh, cache)
	}
	push(queuePathBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += queuePathBatch {
		push(min(queuePathBatch, b.N-n))
	}
	b.StopTimer()
	q.check(b)
}
