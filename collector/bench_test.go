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
	for _, p := range []string{"../testdata/ovs-lab-1/ovs-sflow16.pcapng", "/work/main/testdata/ovs-lab-1/ovs-sflow16.pcapng", "/work/shared/testdata/ovs-lab-1/ovs-sflow16.pcapng"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("VMFLOW_INTEGRATION") == "1" {
		tb.Fatal("ovs-sflow16.pcapng not found in testdata/ovs-lab-1")
	}
	tb.Skip("ovs-sflow16.pcapng not found")
	return ""
}

// memSource is a received batch held in memory, for benchmarking the path
// from the reader's batch through the queue to the workers without sockets.
type memSource struct {
	data [][]byte
	from netip.AddrPort
}

func (m *memSource) datagram(i int) ([]byte, netip.AddrPort, bool) { return m.data[i], m.from, false }

// BenchmarkQueueWorkerPath pushes real OVS datagrams, 64 per batch as
// recvmmsg would return them, through deliver -> queue -> workers -> handler
// -> exporter state. One op is one datagram; allocs/op must be 0.
func BenchmarkQueueWorkerPath(b *testing.B) {
	payloads, err := blast.LoadPcap(sflowCapture(b), 6343)
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	c, err := New(cfg, sflowCounter{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	l := c.listeners[0]
	l.start()
	const batch = 64
	src := &memSource{from: netip.MustParseAddrPort("127.0.0.1:40000")}
	var hdrs []blast.SFlowHeader
	for i := 0; i < batch; i++ {
		p := append([]byte(nil), payloads[i%len(payloads)]...)
		h, _ := blast.ParseSFlowHeader(p)
		src.data = append(src.data, p)
		hdrs = append(hdrs, h)
	}
	acc := make([]accepted, batch)
	local := netip.MustParseAddrPort("127.0.0.1:6343")
	seq := uint32(0)
	// warm up: slot buffers, exporter state, worker caches
	for i := 0; i < 2*cfg.SFlow.QueueSize/batch; i++ {
		for j := range src.data {
			seq++
			binary.BigEndian.PutUint32(src.data[j][hdrs[j].SeqOffset:], seq)
			binary.BigEndian.PutUint32(src.data[j][hdrs[j].SeqOffset+4:], seq/100) // uptime ms
		}
		l.deliver(src, batch, local, time.Now().UnixNano(), acc)
	}
	for l.ctr.handled.Load()+l.ctr.queueFull.Load() < l.ctr.received.Load() {
		time.Sleep(time.Millisecond)
	}
	start := l.stats()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += batch {
		k := min(batch, b.N-n)
		for j := 0; j < k; j++ {
			seq++
			binary.BigEndian.PutUint32(src.data[j][hdrs[j].SeqOffset:], seq)
			binary.BigEndian.PutUint32(src.data[j][hdrs[j].SeqOffset+4:], seq/100) // uptime ms
		}
		l.deliver(src, k, local, time.Now().UnixNano(), acc)
		// keep the queue from overflowing: this measures the path, not
		// the drop policy
		for l.pool.inUse() > cfg.SFlow.QueueSize/2 {
			time.Sleep(10 * time.Microsecond)
		}
	}
	for l.ctr.handled.Load()+l.ctr.queueFull.Load() < l.ctr.received.Load() {
		time.Sleep(10 * time.Microsecond)
	}
	b.StopTimer()
	end := l.stats()
	close(l.q)
	l.workers.Wait()
	handled := float64(end.Handled - start.Handled)
	b.ReportMetric(float64(end.Samples-start.Samples)/handled, "samples/dgram")
	b.ReportMetric(float64(end.DroppedQueueFull-start.DroppedQueueFull), "dropped")
	ex := c.Exporters()
	if len(ex) != 1 || ex[0].LostDatagrams != 0 {
		b.Fatalf("exporter state: %+v", ex)
	}
}
