package aggregate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// recDecoder "decodes" every datagram into the records queued by the test.
type recDecoder struct{ next []*rb }

func (d *recDecoder) Decode(src decoder.Source, from netip.AddrPort, data []byte, received int64, b *decoder.Batch) error {
	b.Reset()
	for _, r := range d.next {
		*b.AddRecord() = r.Record
	}
	d.next = nil
	return nil
}

type learnClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *learnClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *learnClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type learnEnv struct {
	enr  *enrich.Enricher
	agg  *Aggregator
	h    collector.WorkerHandler
	dec  *recDecoder
	clk  *learnClock
	reg  *prometheus.Registry
	sink *fakeSink
}

// b1's address is a DHCP lease (libvirt), the others static.
func learnInventory() enrich.Snapshot {
	b1 := testVM("b1", "hvB", macB1, ipB1)
	b1.Interfaces[0].Addrs[0].Source = enrich.AddrLease
	return enrich.Snapshot{
		Source: "libvirt:test",
		Hosts: []enrich.Host{
			{Name: "hvA", Exporters: []netip.Addr{expA}},
			{Name: "hvB", Exporters: []netip.Addr{expB}},
		},
		VMs: []enrich.VM{testVM("a1", "hvA", macA1, ipA1), testVM("a2", "hvA", macA2, ipA2), b1},
	}
}

// newLearnEnv wires an Enricher with learning (interval 20 ms, injected
// clock) into the real Pipeline. start=false leaves the learner unserved.
func newLearnEnv(t *testing.T, start bool, mut func(*enrich.LearnConfig)) *learnEnv {
	t.Helper()
	cfg := enrich.DefaultConfig()
	cfg.Learn.Interval = 20 * time.Millisecond
	if mut != nil {
		mut(&cfg.Learn)
	}
	reg := prometheus.NewRegistry()
	enr, err := enrich.New(cfg, reg)
	require.NoError(t, err)
	clk := &learnClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	enr.SetClock(clk.now)
	enr.Publish(learnInventory())
	if start {
		require.NoError(t, enr.Start(context.Background()))
		t.Cleanup(enr.Stop)
	}
	a, sink, _ := newTestAgg(t, DefaultConfig(), enr)
	dec := &recDecoder{}
	p := NewPipeline(dec, enr, a, prometheus.NewRegistry())
	return &learnEnv{enr: enr, agg: a, h: p.NewWorker(), dec: dec, clk: clk, reg: reg, sink: sink}
}

func (e *learnEnv) send(t *testing.T, recs ...*rb) {
	t.Helper()
	e.dec.next = recs
	_, err := e.h.Handle(&collector.Datagram{Proto: collector.ProtoSFlow, Received: time.Now().UnixNano()})
	require.NoError(t, err)
}

// waitIndex waits (event driven, generous timeout) until cond holds for
// the current index.
func (e *learnEnv) waitIndex(t *testing.T, what string, cond func(*enrich.Index) bool) *enrich.Index {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		v := e.enr.Version()
		if x := e.enr.Index(); cond(x) {
			return x
		}
		require.NoError(t, e.enr.WaitVersion(ctx, v+1), "waiting for: %s", what)
	}
}

func addrOf(x *enrich.Index, mac [6]byte, ip netip.Addr) (enrich.Addr, bool) {
	p, ok := x.ByMAC(mac)
	if !ok {
		return enrich.Addr{}, false
	}
	for _, a := range p.Iface.Addrs {
		if a.IP == ip {
			return a, true
		}
	}
	return enrich.Addr{}, false
}

func metricValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := 0.0
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
			return v
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestLearnedAddressFromTrafficAttributesByIP(t *testing.T) {
	env := newLearnEnv(t, true, nil)
	ipNew := netip.MustParseAddr("10.0.0.99")
	ipNew6 := netip.MustParseAddr("2001:db8::99")
	macRouter := [6]byte{0x52, 0x54, 0, 0, 0xee, 1}

	before := env.enr.Index()
	_, ok := before.ByIP(0, ipNew)
	require.False(t, ok, "not known before the traffic")

	// a1 sends from an address the inventory does not list (a secondary IP).
	env.send(t, sample(expA, macA1, macB1, ipNew, ipB1), sample(expA, macA1, macB1, ipNew6, netip.MustParseAddr("2001:db8::b1")))
	x := env.waitIndex(t, "a1 has 10.0.0.99 and 2001:db8::99 learned", func(x *enrich.Index) bool {
		_, ok4 := addrOf(x, macA1, ipNew)
		_, ok6 := addrOf(x, macA1, ipNew6)
		return ok4 && ok6
	})
	a, _ := addrOf(x, macA1, ipNew)
	assert.Equal(t, enrich.AddrLearned, a.Source)
	assert.Equal(t, env.clk.now(), a.LastSeen)
	for _, ip := range []netip.Addr{ipNew, ipNew6} {
		p, ok := x.ByIP(0, ip)
		require.True(t, ok, "ByIP finds the VM by its learned address %s", ip)
		assert.Equal(t, "a1", p.VM.Name)
	}
	// What GET /api/v1/vms serialises.
	p, _ := x.ByMAC(macA1)
	js, err := json.Marshal(p.VM)
	require.NoError(t, err)
	assert.Contains(t, string(js), `{"ip":"10.0.0.99","source":"learned","last_seen":"2024-05-01T12:00:00Z"}`)
	assert.Contains(t, string(js), `{"ip":"10.0.0.1","source":"static"`)
	assert.Empty(t, x.Conflicts())

	// Traffic to the learned address behind a router (only the IP tells
	// the VM) is attributed to a1; steady traffic from it reports nothing.
	v := env.enr.Version()
	for i := 0; i < 100; i++ {
		env.send(t, sample(expA, macA1, macB1, ipNew, ipB1))
	}
	env.send(t, sample(expA, macRouter, macRouter, ipExt, ipNew).bytes(700))
	// A third new address is a sync point: reports are processed in order.
	ipNew3 := netip.MustParseAddr("10.0.0.98")
	env.send(t, sample(expA, macA1, macB1, ipNew3, ipB1))
	env.waitIndex(t, "10.0.0.98 learned", func(x *enrich.Index) bool { _, ok := x.ByIP(0, ipNew3); return ok })
	assert.Equal(t, 3.0, metricValue(t, env.reg, "vmflow_enrich_learn_reports_total"), "one report per new address, none for steady traffic")
	assert.Zero(t, metricValue(t, env.reg, "vmflow_enrich_learn_dropped_total"))
	assert.Greater(t, env.enr.Version(), v)

	w := env.agg.closeWindow(time.Now())
	pr := pairOf(w, ipExt.String(), "a1", decoder.SourceSFlow)
	require.NotNil(t, pr, "traffic to the learned IP is attributed to a1")
	assert.Equal(t, 700.0, pr.Stats.Bytes)
	pr = pairOf(w, "a1", "b1", decoder.SourceSFlow)
	require.NotNil(t, pr)
	assert.Equal(t, 100.0*103, pr.Stats.Bytes, "learning changes no count")
}

func TestLearnedAddressCollidingWithLeaseStaysUnindexed(t *testing.T) {
	env := newLearnEnv(t, true, nil)
	// a1 sends from b1's leased address (misconfigured or spoofing guest).
	env.send(t, sample(expA, macA1, macA2, ipB1, ipA2))
	x := env.waitIndex(t, "b1's address listed as learned on a1", func(x *enrich.Index) bool {
		a, ok := addrOf(x, macA1, ipB1)
		return ok && a.Source == enrich.AddrLearned
	})
	p, ok := x.ByIP(0, ipB1)
	require.True(t, ok)
	assert.Equal(t, "b1", p.VM.Name, "a learned IP never overrides a lease")
	require.Len(t, x.Conflicts(), 1)
	c := x.Conflicts()[0]
	assert.Equal(t, "ip", c.Kind)
	assert.Equal(t, ipB1.String(), c.Key)
	assert.Equal(t, []string{"a1", "b1"}, c.VMs)
	assert.Equal(t, "b1", c.Chose)
	assert.Contains(t, c.Reason, "b1 has it as a lease address; a1 only learned it from traffic")

	// Attribution of traffic to that IP from an unknown MAC stays with b1.
	env.send(t, sample(expB, macGW, macGW, ipExt, ipB1))
	w := env.agg.closeWindow(time.Now())
	assert.NotNil(t, pairOf(w, ipExt.String(), "b1", decoder.SourceSFlow))
	assert.Nil(t, pairOf(w, ipExt.String(), "a1", decoder.SourceSFlow))
}

func TestLearnedAddressExpires(t *testing.T) {
	env := newLearnEnv(t, true, func(c *enrich.LearnConfig) { c.Expiry = 10 * time.Minute })
	ipNew := netip.MustParseAddr("10.0.0.99")
	env.send(t, sample(expA, macA1, macB1, ipNew, ipB1))
	env.waitIndex(t, "learned", func(x *enrich.Index) bool { _, ok := x.ByIP(0, ipNew); return ok })

	env.clk.add(9 * time.Minute)
	env.send(t, sample(expA, macGW, macGW, ipExt, ipNew)) // traffic *to* it does not refresh it
	env.clk.add(2 * time.Minute)
	x := env.waitIndex(t, "expired", func(x *enrich.Index) bool { _, ok := x.ByIP(0, ipNew); return !ok })
	_, listed := addrOf(x, macA1, ipNew)
	assert.False(t, listed, "an expired address leaves the interface too")
	assert.Equal(t, 1.0, metricValue(t, env.reg, "vmflow_enrich_learn_expired_total"))
	assert.Zero(t, metricValue(t, env.reg, "vmflow_enrich_learned_addresses"))

	env.send(t, sample(expA, macGW, macGW, ipExt, ipNew).bytes(300))
	w := env.agg.closeWindow(time.Now())
	pr := pairOf(w, ipExt.String(), ipNew.String(), decoder.SourceSFlow)
	require.NotNil(t, pr, "after expiry the address is an unknown endpoint again")
	assert.Equal(t, 300.0, pr.Stats.Bytes)
}

func TestLearnQueueFullIsCounted(t *testing.T) {
	env := newLearnEnv(t, false, func(c *enrich.LearnConfig) { c.Queue = 2 }) // nobody drains it
	for i := 0; i < 5; i++ {
		env.send(t, sample(expA, macA1, macB1, netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), ipB1))
	}
	assert.Equal(t, 3.0, metricValue(t, env.reg, "vmflow_enrich_learn_dropped_total"))
	w := env.agg.closeWindow(time.Now())
	pr := pairOf(w, "a1", "b1", decoder.SourceSFlow)
	require.NotNil(t, pr, "dropping a report drops no traffic")
	assert.Equal(t, 500.0, pr.Stats.Bytes)
}

// learnRecords: 4,096 records between 400 VMs; a quarter sent from a
// learned address, a quarter from an address not (yet) in the index, half
// from inventory addresses.
func learnRecords(b testing.TB, learned bool, reg prometheus.Registerer) (*enrich.Enricher, []decoder.Record) {
	cfg := enrich.DefaultConfig()
	cfg.Learn.Queue = 16 // unserved: reports that get through are dropped
	var vms []enrich.VM
	for i := 0; i < 400; i++ {
		v := testVM(fmt.Sprintf("vm%d", i), "hv0", [6]byte{0x52, 0x54, 0, 1, byte(i >> 8), byte(i)}, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
		v.Interfaces[0].Addrs = append(v.Interfaces[0].Addrs, enrich.Addr{IP: netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), Source: enrich.AddrLearned})
		vms = append(vms, v)
	}
	if !learned {
		cfg.Learn.Enabled = false
	}
	e, err := enrich.New(cfg, reg)
	require.NoError(b, err)
	e.Publish(enrich.Snapshot{Source: "static", VMs: vms, Hosts: []enrich.Host{{Name: "hv0", Exporters: []netip.Addr{expA}}}})
	recs := make([]decoder.Record, 4096)
	now := time.Now().UnixNano()
	for i := range recs {
		s, d := &vms[(i*7)%400], &vms[(i*13+1)%400]
		src := s.Interfaces[0].Addrs[0].IP
		switch i % 4 {
		case 1:
			src = s.Interfaces[0].Addrs[1].IP // learned
		case 3:
			src = netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}) // new
		}
		recs[i] = decoder.Record{
			Source: decoder.SourceSFlow, Exporter: expA, Agent: expA, SamplingRate: 16,
			Bytes: 1514, Packets: 1, SrcMAC: s.Interfaces[0].MAC, DstMAC: d.Interfaces[0].MAC,
			SrcIP: src, DstIP: d.Interfaces[0].Addrs[0].IP,
			Proto: 6, SrcPort: uint16(30000 + i%2000), DstPort: 443, TCPFlags: 0x10,
			Flags: decoder.FlagL3 | decoder.FlagL4, Received: now,
		}
	}
	return e, recs
}

func TestWorkerAddWithLearningAllocatesNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	enr, recs := learnRecords(t, true, reg)
	require.NotNil(t, enr.Learner())
	a, err := New(DefaultConfig(), enr, nil)
	require.NoError(t, err)
	w := a.NewWorker()
	idx := enr.Index()
	for i := range recs {
		w.Add(idx, &recs[i])
	}
	dropped := metricValue(t, reg, "vmflow_enrich_learn_dropped_total")
	i := 0
	allocs := testing.AllocsPerRun(20000, func() {
		r := &recs[i&4095]
		r.Received += int64(time.Second) // new addresses are re-reported every 2 s
		w.Add(idx, r)
		i++
	})
	assert.Zero(t, allocs)
	require.NotNil(t, w.learn, "the worker picked up the learner")
	assert.Greater(t, metricValue(t, reg, "vmflow_enrich_learn_dropped_total"), dropped,
		"the measured loop went through Report (and the full queue)")
}

// BenchmarkWorkerAddLearning is BenchmarkWorkerAdd's work with address
// learning on, where a quarter of the records come from learned addresses
// and a quarter from addresses not in the index (rate-limited by the
// per-worker cache). BenchmarkWorkerAddLearningOff is the same records with
// learning off.
func BenchmarkWorkerAddLearning(b *testing.B)    { benchLearn(b, true) }
func BenchmarkWorkerAddLearningOff(b *testing.B) { benchLearn(b, false) }

func benchLearn(b *testing.B, on bool) {
	enr, recs := learnRecords(b, on, nil)
	a, err := New(DefaultConfig(), enr, nil)
	if err != nil {
		b.Fatal(err)
	}
	w := a.NewWorker()
	idx := enr.Index()
	for i := range recs {
		w.Add(idx, &recs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Add(idx, &recs[i&4095])
	}
}
