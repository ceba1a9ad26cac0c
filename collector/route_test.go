package collector

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// orderHandler records, per exporter address, the counters carried in the
// first 4 bytes of its datagrams, in the order the workers handled them, and
// which worker handled each exporter.
type orderHandler struct {
	mu      sync.Mutex
	seen    map[netip.Addr][]uint32
	workers map[netip.Addr]map[int]bool
	next    atomic.Int32
}

type orderWorker struct {
	h  *orderHandler
	id int
}

func (h *orderHandler) NewWorker() WorkerHandler {
	return &orderWorker{h: h, id: int(h.next.Add(1))}
}

func (w *orderWorker) Handle(d *Datagram) (Meta, error) {
	a := d.From.Addr()
	w.h.mu.Lock()
	w.h.seen[a] = append(w.h.seen[a], binary.BigEndian.Uint32(d.Data))
	if w.h.workers[a] == nil {
		w.h.workers[a] = map[int]bool{}
	}
	w.h.workers[a][w.id] = true
	w.h.mu.Unlock()
	return Meta{}, nil
}

// multiSource is a received batch from several exporters.
type multiSource struct {
	data [][]byte
	from []netip.AddrPort
}

func (m *multiSource) datagram(i int) ([]byte, netip.AddrPort, bool) {
	return m.data[i], m.from[i], false
}

// IPFIX and NetFlow v9 datagrams of one exporter are handled by one worker
// in arrival order (templates before the data that uses them), while the
// exporters spread over the workers.
func TestTemplatedProtocolsKeepExporterOrder(t *testing.T) {
	for _, p := range []Protocol{ProtoIPFIX, ProtoNetFlow9} {
		t.Run(p.String(), func(t *testing.T) {
			cfg := DefaultConfig()
			lc := DefaultListenerConfig("127.0.0.1:0")
			lc.Workers, lc.QueueSize = 4, 1<<14
			cfg.SFlow.Listen, cfg.IPFIX.Listen, cfg.NetFlow9.Listen = "", "", ""
			if p == ProtoIPFIX {
				cfg.IPFIX = lc
			} else {
				cfg.NetFlow9 = lc
			}
			h := &orderHandler{seen: map[netip.Addr][]uint32{}, workers: map[netip.Addr]map[int]bool{}}
			c, err := New(cfg, h, nil)
			require.NoError(t, err)
			l := c.listeners[0]
			require.Len(t, l.wq, 4, "one queue per worker")
			l.start()

			const exporters, batches, perBatch = 16, 200, 64
			src := &multiSource{}
			for i := 0; i < perBatch; i++ {
				src.data = append(src.data, make([]byte, 4))
				src.from = append(src.from, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i % exporters)}), 4739))
			}
			sc := l.newScratch(perBatch)
			local := netip.MustParseAddrPort("127.0.0.1:4739")
			seq := map[netip.Addr]uint32{}
			for b := 0; b < batches; b++ {
				for i := range src.data {
					a := src.from[i].Addr()
					seq[a]++
					binary.BigEndian.PutUint32(src.data[i], seq[a])
				}
				for l.pool.inUse() > lc.QueueSize-perBatch {
					time.Sleep(10 * time.Microsecond)
				}
				l.deliver(src, perBatch, local, 0, sc)
			}
			l.closeQueues()
			l.workers.Wait()

			st := l.stats()
			require.Equal(t, uint64(batches*perBatch), st.Handled, "%+v", st)
			used := map[int]bool{}
			for a, got := range h.seen {
				require.Len(t, got, int(seq[a]), "%s", a)
				for i, v := range got {
					if !assert.Equal(t, uint32(i+1), v, "exporter %s: datagram %d handled out of order", a, i) {
						break
					}
				}
				assert.Len(t, h.workers[a], 1, "exporter %s handled by several workers", a)
				for w := range h.workers[a] {
					used[w] = true
				}
			}
			assert.Greater(t, len(used), 1, "16 exporters all on one worker")
		})
	}
}

// routedPath is an IPFIX listener with 4 workers fed batches of 64
// datagrams from 8 exporters, without sockets.
type routedPath struct {
	l     *listener
	src   *multiSource
	sc    *scratch
	local netip.AddrPort
	max   int
}

func newRoutedPath(tb testing.TB) *routedPath {
	cfg := DefaultConfig()
	lc := DefaultListenerConfig("127.0.0.1:0")
	lc.Workers, lc.QueueSize = 4, 1<<12
	cfg.SFlow.Listen, cfg.NetFlow9.Listen = "", ""
	cfg.IPFIX = lc
	c, err := New(cfg, nopHandler{}, nil)
	require.NoError(tb, err)
	l := c.listeners[0]
	// every slot gets its buffer now (see newQueuePath)
	for s := l.pool.free; s != nil; s = s.next {
		s.fill(ProtoIPFIX, netip.AddrPort{}, netip.AddrPort{}, make([]byte, 100), 0)
		s.release()
	}
	l.start()
	p := &routedPath{l: l, src: &multiSource{}, local: netip.MustParseAddrPort("127.0.0.1:4739"), max: lc.QueueSize - 64}
	for i := 0; i < 64; i++ {
		p.src.data = append(p.src.data, make([]byte, 100))
		p.src.from = append(p.src.from, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 8)}), 4739))
	}
	p.sc = l.newScratch(64)
	for i := 0; i < 16; i++ { // warm up exporter state
		p.push()
	}
	return p
}

func (p *routedPath) push() {
	for p.l.pool.inUse() > p.max {
		time.Sleep(10 * time.Microsecond)
	}
	p.l.deliver(p.src, 64, p.local, 0, p.sc)
}

func (p *routedPath) stop() {
	p.l.closeQueues()
	p.l.workers.Wait()
}

// Routing datagrams to their exporter's worker allocates nothing.
func TestRouteAllocatesNothing(t *testing.T) {
	p := newRoutedPath(t)
	defer p.stop()
	assert.Zero(t, testing.AllocsPerRun(200, p.push))
}

type nopHandler struct{}

func (nopHandler) NewWorker() WorkerHandler       { return nopHandler{} }
func (nopHandler) Handle(*Datagram) (Meta, error) { return Meta{}, nil }

// BenchmarkRoutedQueuePath: deliver -> per-exporter worker queues ->
// workers -> exporter state, for the template protocols. One op is one
// batch of 64 datagrams.
func BenchmarkRoutedQueuePath(b *testing.B) {
	p := newRoutedPath(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.push()
	}
	p.stop()
}
