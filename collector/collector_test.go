package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector/blast"
)

// sflowDatagram builds a minimal sFlow v5 header (IPv4 agent) with the
// given sample count and no samples.
func sflowDatagram(agent [4]byte, sub, seq, uptime, samples uint32) []byte {
	b := make([]byte, 0, 28)
	b = binary.BigEndian.AppendUint32(b, 5)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = append(b, agent[:]...)
	b = binary.BigEndian.AppendUint32(b, sub)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, uptime)
	b = binary.BigEndian.AppendUint32(b, samples)
	return b
}

// fakeHandler reads the sFlow header into Meta, fails on anything else,
// panics on "panic" and blocks while gate is set.
type fakeHandler struct {
	mu    sync.Mutex
	got   []Datagram // copies
	n     atomic.Int64
	gate  chan struct{}
	block atomic.Bool
}

func (h *fakeHandler) NewWorker() WorkerHandler { return h }

func (h *fakeHandler) Handle(d *Datagram) (Meta, error) {
	if h.block.Load() {
		<-h.gate
	}
	defer h.n.Add(1)
	cp := *d
	cp.Data = append([]byte(nil), d.Data...)
	h.mu.Lock()
	h.got = append(h.got, cp)
	h.mu.Unlock()
	if string(d.Data) == "panic" {
		panic("boom")
	}
	sh, ok := blast.ParseSFlowHeader(d.Data)
	if !ok {
		return Meta{}, errors.New("not sflow")
	}
	return Meta{Version: 5, Agent: sh.Agent, SubAgent: sh.SubAgent, SeqKind: SeqDatagrams,
		Sequence: sh.Sequence, Uptime: sh.Uptime, Records: 1, Samples: int(sh.Samples)}, nil
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.SFlow.Listen = "127.0.0.1:0"
	cfg.SFlow.ReadBuffer = 1 << 20
	cfg.IPFIX.Listen = ""
	cfg.NetFlow9.Listen = ""
	return cfg
}

func startCollector(t *testing.T, cfg Config, h Handler) (*Collector, *prometheus.Registry, netip.AddrPort) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, h, reg)
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(c.Stop)
	addrs := c.Addrs()[ProtoSFlow]
	require.NotEmpty(t, addrs)
	return c, reg, addrs[0].(*net.UDPAddr).AddrPort()
}

func send(t *testing.T, from string, to netip.AddrPort, payloads ...[]byte) {
	t.Helper()
	laddr, err := net.ResolveUDPAddr("udp", from)
	require.NoError(t, err)
	conn, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(to))
	require.NoError(t, err)
	defer conn.Close()
	for _, p := range payloads {
		_, err := conn.Write(p)
		require.NoError(t, err)
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s %v not found", name, labels)
	return 0
}

func TestDatagramsReachHandler(t *testing.T) {
	h := &fakeHandler{}
	c, reg, addr := startCollector(t, testConfig(), h)

	var payloads [][]byte
	var samples uint32
	for i := uint32(1); i <= 100; i++ {
		payloads = append(payloads, sflowDatagram([4]byte{10, 1, 2, 3}, 7, i, 1000+i, i%7))
		samples += i % 7
	}
	send(t, "127.0.0.1:0", addr, payloads...)
	require.Eventually(t, func() bool { return h.n.Load() == 100 }, 10*time.Second, 5*time.Millisecond)

	h.mu.Lock()
	seen := map[string]bool{}
	for _, d := range h.got {
		assert.Equal(t, ProtoSFlow, d.Proto)
		assert.Equal(t, netip.MustParseAddr("127.0.0.1"), d.From.Addr())
		assert.Equal(t, addr.Port(), d.Local.Port())
		assert.NotZero(t, d.Received)
		seen[string(d.Data)] = true
	}
	h.mu.Unlock()
	for _, p := range payloads {
		assert.True(t, seen[string(p)], "payload delivered intact")
	}

	st := c.Stats()[ProtoSFlow]
	assert.Equal(t, uint64(100), st.Received)
	assert.Equal(t, uint64(100), st.Handled)
	assert.Equal(t, uint64(samples), st.Samples)
	assert.Equal(t, uint64(100*28), st.Bytes)
	assert.Equal(t, 100.0, metricValue(t, reg, "vmflow_collector_datagrams_total", map[string]string{"protocol": "sflow"}))
	assert.Equal(t, float64(samples), metricValue(t, reg, "vmflow_collector_samples_total", map[string]string{"protocol": "sflow"}))

	ex := c.Exporters()
	require.Len(t, ex, 1)
	assert.Equal(t, "sflow", ex[0].Protocol)
	assert.Equal(t, "10.1.2.3", ex[0].Agent)
	assert.Equal(t, uint32(7), ex[0].SubAgent)
	assert.True(t, strings.HasPrefix(ex[0].Address, "127.0.0.1:"))
	assert.Equal(t, uint64(100), ex[0].Datagrams)
	assert.Equal(t, uint64(samples), ex[0].Samples)
	assert.Equal(t, uint64(0), ex[0].LostDatagrams)
	assert.Equal(t, uint32(100), ex[0].LastSequence)
	assert.False(t, ex[0].FirstSeen.After(ex[0].LastSeen))
}

func TestAddrsSocketsShareEphemeralPort(t *testing.T) {
	cfg := testConfig()
	cfg.SFlow.Sockets = 3
	cfg.IPFIX.Listen = "127.0.0.1:0"
	c, _, _ := startCollector(t, cfg, &fakeHandler{})
	addrs := c.Addrs()
	require.Len(t, addrs[ProtoSFlow], 3)
	require.Len(t, addrs[ProtoIPFIX], 2)
	p := addrs[ProtoSFlow][0].(*net.UDPAddr).Port
	assert.NotZero(t, p)
	for _, a := range addrs[ProtoSFlow] {
		assert.Equal(t, p, a.(*net.UDPAddr).Port)
	}
	assert.NotEqual(t, p, addrs[ProtoIPFIX][0].(*net.UDPAddr).Port)
	assert.NotContains(t, addrs, ProtoNetFlow9)
}

func TestQueueFullDropsNewest(t *testing.T) {
	cfg := testConfig()
	cfg.SFlow.Sockets = 1
	cfg.SFlow.Workers = 1
	cfg.SFlow.QueueSize = 4
	h := &fakeHandler{gate: make(chan struct{})}
	h.block.Store(true)
	c, reg, addr := startCollector(t, cfg, h)

	var payloads [][]byte
	for i := uint32(1); i <= 50; i++ {
		payloads = append(payloads, sflowDatagram([4]byte{10, 0, 0, 1}, 0, i, i, 1))
	}
	send(t, "127.0.0.1:0", addr, payloads...)
	require.Eventually(t, func() bool { return c.Stats()[ProtoSFlow].Received == 50 }, 10*time.Second, 5*time.Millisecond)
	st := c.Stats()[ProtoSFlow]
	assert.Equal(t, uint64(46), st.DroppedQueueFull, "only queue_size datagrams fit while the handler blocks")
	assert.Equal(t, 4, st.Queued)
	assert.Equal(t, 46.0, metricValue(t, reg, "vmflow_collector_dropped_total", map[string]string{"protocol": "sflow", "reason": "queue_full"}))

	h.block.Store(false)
	close(h.gate)
	require.Eventually(t, func() bool { return h.n.Load() == 4 }, 10*time.Second, 5*time.Millisecond)
	// the oldest were kept, the newest dropped
	h.mu.Lock()
	for _, d := range h.got {
		sh, ok := blast.ParseSFlowHeader(d.Data)
		require.True(t, ok)
		assert.LessOrEqual(t, sh.Sequence, uint32(4))
	}
	h.mu.Unlock()
	// and the queue works again
	send(t, "127.0.0.1:0", addr, sflowDatagram([4]byte{10, 0, 0, 1}, 0, 51, 51, 1))
	require.Eventually(t, func() bool { return h.n.Load() == 5 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, uint64(46), c.Stats()[ProtoSFlow].DroppedQueueFull)
}

func TestNotAllowedExporters(t *testing.T) {
	cfg := testConfig()
	cfg.AllowedExporters = []string{"192.0.2.0/24", "127.0.0.1"}
	h := &fakeHandler{}
	c, reg, addr := startCollector(t, cfg, h)

	send(t, "127.0.0.2:0", addr, sflowDatagram([4]byte{1, 1, 1, 1}, 0, 1, 1, 1), sflowDatagram([4]byte{1, 1, 1, 1}, 0, 2, 2, 1))
	send(t, "127.0.0.1:0", addr, sflowDatagram([4]byte{2, 2, 2, 2}, 0, 1, 1, 1))
	require.Eventually(t, func() bool {
		st := c.Stats()[ProtoSFlow]
		return st.Received == 3 && st.Handled == 1
	}, 10*time.Second, 5*time.Millisecond)
	st := c.Stats()[ProtoSFlow]
	assert.Equal(t, uint64(2), st.DroppedNotAllowed)
	assert.Equal(t, 2.0, metricValue(t, reg, "vmflow_collector_dropped_total", map[string]string{"protocol": "sflow", "reason": "not_allowed"}))
	ex := c.Exporters()
	require.Len(t, ex, 1)
	assert.Equal(t, "2.2.2.2", ex[0].Agent)
}

func TestSequenceLossThroughSockets(t *testing.T) {
	cfg := testConfig()
	// One worker: handling order is arrival order, so the figures are
	// exact. (With several workers a datagram overtaken in the pool before
	// the exporter's first handled datagram is taken for a duplicate: loss
	// can be undercounted at start, never overcounted.)
	cfg.SFlow.Sockets, cfg.SFlow.Workers = 1, 1
	h := &fakeHandler{}
	c, reg, addr := startCollector(t, cfg, h)

	agent := [4]byte{10, 9, 9, 9}
	var p [][]byte
	for i := uint32(1); i <= 10; i++ {
		p = append(p, sflowDatagram(agent, 1, i, 10000+i, 2))
	}
	// 11..13 missing, 12 comes late
	for i := uint32(14); i <= 20; i++ {
		p = append(p, sflowDatagram(agent, 1, i, 10000+i, 2))
	}
	p = append(p, sflowDatagram(agent, 1, 12, 10012, 2))
	// a datagram the handler cannot decode
	p = append(p, []byte("garbage"))
	send(t, "127.0.0.1:0", addr, p...)
	require.Eventually(t, func() bool { return h.n.Load() == int64(len(p)) }, 10*time.Second, 5*time.Millisecond)
	// the agent restarts: sequence and uptime start again
	send(t, "127.0.0.1:0", addr, sflowDatagram(agent, 1, 1, 5, 2), sflowDatagram(agent, 1, 2, 1005, 2))
	require.Eventually(t, func() bool { return h.n.Load() == int64(len(p)+2) }, 10*time.Second, 5*time.Millisecond)

	var sf *ExporterStatus
	ex := c.Exporters()
	for i := range ex {
		if ex[i].Agent == "10.9.9.9" {
			sf = &ex[i]
		}
	}
	require.NotNil(t, sf)
	assert.Equal(t, uint64(2), sf.LostDatagrams, "11 and 13 lost, 12 late")
	assert.Equal(t, uint64(1), sf.Reordered)
	assert.Equal(t, uint64(1), sf.Restarts)
	assert.Equal(t, uint64(20), sf.Datagrams)
	assert.Equal(t, uint32(2), sf.LastSequence)
	assert.Equal(t, 2.0, metricValue(t, reg, "vmflow_collector_lost_datagrams", map[string]string{"protocol": "sflow"}))

	// the undecodable datagram is an exporter of its own (no agent known)
	// with a decode error, and counted
	assert.Equal(t, uint64(1), c.Stats()[ProtoSFlow].DroppedDecodeError)
	assert.Equal(t, 1.0, metricValue(t, reg, "vmflow_collector_dropped_total", map[string]string{"protocol": "sflow", "reason": "decode_error"}))
	var errs uint64
	for _, e := range ex {
		errs += e.DecodeErrors
	}
	assert.Equal(t, uint64(1), errs)
}

func TestHandlerPanicIsCounted(t *testing.T) {
	h := &fakeHandler{}
	c, reg, addr := startCollector(t, testConfig(), h)
	send(t, "127.0.0.1:0", addr, []byte("panic"), sflowDatagram([4]byte{1, 2, 3, 4}, 0, 1, 1, 3))
	require.Eventually(t, func() bool { return c.Stats()[ProtoSFlow].Handled == 2 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, uint64(1), c.Stats()[ProtoSFlow].DroppedPanic)
	assert.Equal(t, uint64(3), c.Stats()[ProtoSFlow].Samples)
	assert.Equal(t, 1.0, metricValue(t, reg, "vmflow_collector_dropped_total", map[string]string{"protocol": "sflow", "reason": "handler_panic"}))
}

func TestExporterExpiry(t *testing.T) {
	h := &fakeHandler{}
	c, reg, addr := startCollector(t, testConfig(), h)
	send(t, "127.0.0.1:0", addr, sflowDatagram([4]byte{1, 2, 3, 4}, 0, 1, 1, 1), sflowDatagram([4]byte{1, 2, 3, 4}, 0, 5, 2, 1))
	require.Eventually(t, func() bool { return h.n.Load() == 2 }, 10*time.Second, 5*time.Millisecond)
	require.Len(t, c.Exporters(), 1)
	assert.Equal(t, uint64(3), c.Exporters()[0].LostDatagrams)

	assert.Equal(t, 1, c.table.expire(time.Now().Add(time.Hour).UnixNano()))
	assert.Empty(t, c.Exporters())
	// the loss of the expired exporter stays in the gauge
	assert.Equal(t, 3.0, metricValue(t, reg, "vmflow_collector_lost_datagrams", map[string]string{"protocol": "sflow"}))

	// the exporter comes back: fresh state, not the workers' stale copy
	send(t, "127.0.0.1:0", addr, sflowDatagram([4]byte{1, 2, 3, 4}, 0, 6, 3, 1))
	require.Eventually(t, func() bool { return h.n.Load() == 3 }, 10*time.Second, 5*time.Millisecond)
	ex := c.Exporters()
	require.Len(t, ex, 1)
	assert.Equal(t, uint64(1), ex[0].Datagrams)
	assert.Equal(t, uint64(0), ex[0].LostDatagrams)
}

func TestMaxExporters(t *testing.T) {
	cfg := testConfig()
	cfg.MaxExporters = 1
	h := &fakeHandler{}
	c, _, addr := startCollector(t, cfg, h)
	send(t, "127.0.0.1:0", addr, sflowDatagram([4]byte{1, 1, 1, 1}, 0, 1, 1, 1), sflowDatagram([4]byte{2, 2, 2, 2}, 0, 1, 1, 1))
	require.Eventually(t, func() bool { return h.n.Load() == 2 }, 10*time.Second, 5*time.Millisecond)
	assert.Len(t, c.Exporters(), 1)
	assert.Equal(t, uint64(1), c.table.untracked.Load())
	assert.Equal(t, uint64(2), c.Stats()[ProtoSFlow].Handled, "untracked exporters are still handled")
}

func TestStopPromptIdempotent(t *testing.T) {
	h := &fakeHandler{}
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.IPFIX.Listen = "127.0.0.1:0"
	c, err := New(cfg, h, reg)
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	addr := c.Addrs()[ProtoSFlow][0].(*net.UDPAddr).AddrPort()
	send(t, "127.0.0.1:0", addr, sflowDatagram([4]byte{1, 1, 1, 1}, 0, 1, 1, 1))
	require.Eventually(t, func() bool { return h.n.Load() == 1 }, 10*time.Second, 5*time.Millisecond)

	done := make(chan struct{})
	go func() {
		c.Stop()
		c.Stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop hung")
	}
	// the sockets are closed: the port can be bound without SO_REUSEPORT
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	require.NoError(t, err)
	pc.Close()
	assert.Error(t, c.Start(context.Background()), "no restart after Stop")
}

func TestStopBeforeStartAndContextCancel(t *testing.T) {
	c, err := New(testConfig(), &fakeHandler{}, nil)
	require.NoError(t, err)
	c.Stop()
	c.Stop()

	c2, err := New(testConfig(), &fakeHandler{}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, c2.Start(ctx))
	addr := c2.Addrs()[ProtoSFlow][0].(*net.UDPAddr).AddrPort()
	cancel()
	require.Eventually(t, func() bool {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return false
		}
		pc.Close()
		return true
	}, 10*time.Second, 10*time.Millisecond, "cancelling the context stops the collector")
	c2.Stop()
}

func TestStartUnbindable(t *testing.T) {
	// a port held by a socket without SO_REUSEPORT cannot be joined
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer pc.Close()
	cfg := testConfig()
	cfg.IPFIX.Listen = "127.0.0.1:0"
	cfg.SFlow.Listen = pc.LocalAddr().String()
	c, err := New(cfg, &fakeHandler{}, nil)
	require.NoError(t, err)
	err = c.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sflow")
	c.Stop()

	cfg = testConfig()
	cfg.SFlow.Listen = "192.0.2.1:0" // not a local address
	c, err = New(cfg, &fakeHandler{}, nil)
	require.NoError(t, err)
	require.Error(t, c.Start(context.Background()))
}

func TestNewRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := New(testConfig(), &fakeHandler{}, reg)
	require.NoError(t, err)
	_, err = New(testConfig(), &fakeHandler{}, reg)
	assert.Error(t, err, "a second collector on the same registry is an error, not a panic")
	_, err = New(testConfig(), nil, nil)
	assert.Error(t, err)
}

func TestIPv6Listener(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		if os.Getenv("VMFLOW_INTEGRATION") == "1" {
			t.Fatal("no IPv6 loopback:", err)
		}
		t.Skip("no IPv6 loopback:", err)
	}
	probe.Close()
	cfg := testConfig()
	cfg.SFlow.Listen = "[::1]:0"
	h := &fakeHandler{}
	c, _, addr := startCollector(t, cfg, h)
	send(t, "[::1]:0", addr, sflowDatagram([4]byte{1, 2, 3, 4}, 0, 1, 1, 2))
	require.Eventually(t, func() bool { return h.n.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	h.mu.Lock()
	assert.Equal(t, netip.IPv6Loopback(), h.got[0].From.Addr())
	h.mu.Unlock()
	ex := c.Exporters()
	require.Len(t, ex, 1)
	assert.Equal(t, "1.2.3.4", ex[0].Agent)
	assert.True(t, strings.HasPrefix(ex[0].Address, "[::1]:"))
}

func TestStartRetryAfterBindFailure(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	cfg := testConfig()
	cfg.SFlow.Listen = pc.LocalAddr().String()
	h := &fakeHandler{}
	c, err := New(cfg, h, nil)
	require.NoError(t, err)
	require.Error(t, c.Start(context.Background()))
	pc.Close()
	require.NoError(t, c.Start(context.Background()), "the port is free now")
	defer c.Stop()
	assert.Len(t, c.Addrs()[ProtoSFlow], cfg.SFlow.Sockets)
	send(t, "127.0.0.1:0", c.Addrs()[ProtoSFlow][0].(*net.UDPAddr).AddrPort(), sflowDatagram([4]byte{1, 2, 3, 4}, 0, 1, 1, 2))
	require.Eventually(t, func() bool { return h.n.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
}

// TestConcurrentReads reads stats, exporters and metrics and expires
// exporters while datagrams flow (run with -race).
func TestConcurrentReads(t *testing.T) {
	h := &fakeHandler{}
	c, reg, addr := startCollector(t, testConfig(), h)
	const per = 500
	var wg sync.WaitGroup
	for s := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p [][]byte
			for i := uint32(1); i <= per; i++ {
				p = append(p, sflowDatagram([4]byte{10, 0, 0, byte(s)}, uint32(s), i, i, 1))
			}
			send(t, "127.0.0.1:0", addr, p...)
		}()
	}
	stop := make(chan struct{})
	readers := sync.WaitGroup{}
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = c.Stats()
			_ = c.Exporters()
			_, _ = reg.Gather()
			c.table.expire(time.Now().Add(-time.Millisecond).UnixNano())
		}
	}()
	wg.Wait()
	require.Eventually(t, func() bool {
		st := c.Stats()[ProtoSFlow]
		return st.Handled+st.DroppedQueueFull+st.SocketDrops >= 3*per
	}, 10*time.Second, 5*time.Millisecond)
	close(stop)
	readers.Wait()
	st := c.Stats()[ProtoSFlow]
	assert.Equal(t, uint64(3*per), st.Received+st.SocketDrops)
	assert.Equal(t, st.Received, st.Handled+st.DroppedQueueFull)
}
