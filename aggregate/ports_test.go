package aggregate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// portEnricher is testEnricher plus taps: a1 is vnet1 on hvA.
func portEnricher(t testing.TB) *enrich.Enricher {
	t.Helper()
	e, err := enrich.New(enrich.DefaultConfig(), nil)
	require.NoError(t, err)
	vm := testVM("a1", "hvA", macA1, ipA1)
	vm.UUID = "uuid-a1"
	vm.Interfaces[0].Tap = "vnet1"
	e.Publish(enrich.Snapshot{Source: "static",
		Hosts: []enrich.Host{{Name: "hvA", Exporters: []netip.Addr{expA}}},
		VMs:   []enrich.VM{vm}})
	return e
}

// cs is one counter sample of port ifIndex 7 on agent expA.
type cs struct {
	at              time.Duration // since t0
	uptime, seq     uint32
	inOct, outOct   uint64
	inPk, outPk     uint64
	inErr, inDisc   uint64
	outErr, outDisc uint64
	name            string
	speed           uint64
}

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func (c cs) counters() decoder.Counters {
	d := decoder.Counters{
		Exporter: expA, Agent: expA, Received: t0.Add(c.at).UnixNano(),
		Uptime: c.uptime, SampleSeq: c.seq, IfIndex: 7, HasIf: true, IfSpeed: c.speed, IfStatus: 3,
		InOctets: c.inOct, OutOctets: c.outOct, InUcast: c.inPk, OutUcast: c.outPk,
		InErrors: c.inErr, InDiscard: c.inDisc, OutErrors: c.outErr, OutDiscard: c.outDisc,
	}
	d.PortNameLen = uint8(copy(d.PortName[:], c.name))
	return d
}

func feed(a *Aggregator, samples ...cs) {
	for _, s := range samples {
		c := []decoder.Counters{s.counters()}
		a.AddCounters(c)
	}
}

func onlyPort(t *testing.T, w *Window) PortStats {
	t.Helper()
	require.Len(t, w.Ports, 1)
	return w.Ports[0]
}

func TestPortDeltasAndResolution(t *testing.T) {
	a, _, reg := newTestAgg(t, DefaultConfig(), portEnricher(t))
	feed(a,
		cs{at: 0, uptime: 1000, seq: 1, inOct: 1000, outOct: 5000, inPk: 10, outPk: 50, name: "vnet1", speed: 10e9},
		cs{at: 2 * time.Second, uptime: 3000, seq: 2, inOct: 3000, outOct: 6000, inPk: 30, outPk: 60, inErr: 1, outDisc: 4, name: "vnet1", speed: 10e9},
		cs{at: 4 * time.Second, uptime: 5000, seq: 3, inOct: 5000, outOct: 7000, inPk: 50, outPk: 70, inErr: 3, outDisc: 4, name: "vnet1", speed: 10e9},
	)
	w := a.closeWindow(t0.Add(5 * time.Second))
	p := onlyPort(t, w)
	assert.Equal(t, PortKey{Agent: expA, IfIndex: 7}, p.Key)
	assert.Equal(t, "vnet1", p.Name)
	assert.Equal(t, "hvA", p.Host)
	assert.Equal(t, "a1", p.VM)
	assert.Equal(t, "uuid-a1", p.UUID)
	assert.Equal(t, uint32(2), p.Samples, "the first sample is the baseline")
	assert.Equal(t, 4.0, p.Seconds)
	assert.Equal(t, uint64(4000), p.InOctets)
	assert.Equal(t, uint64(2000), p.OutOctets)
	assert.Equal(t, uint64(40), p.InPackets)
	assert.Equal(t, uint64(20), p.OutPackets)
	assert.Equal(t, uint64(3), p.InErrors)
	assert.Equal(t, uint64(4), p.OutDiscards)
	assert.Equal(t, 1000.0, p.Rate(p.InOctets))
	assert.InDelta(t, 8000/10e9, p.Utilisation(p.InOctets), 1e-15)

	// The next window: no sample, no entry; then one sample gives the
	// delta since the last one of the previous window.
	assert.Empty(t, a.closeWindow(t0.Add(10*time.Second)).Ports)
	feed(a, cs{at: 12 * time.Second, uptime: 13000, seq: 4, inOct: 13000, outOct: 7000, inPk: 130, outPk: 70, inErr: 3, outDisc: 4, name: "vnet1"})
	p = onlyPort(t, a.closeWindow(t0.Add(15*time.Second)))
	assert.Equal(t, 8.0, p.Seconds)
	assert.Equal(t, uint64(8000), p.InOctets)
	assert.Equal(t, 1000.0, p.Rate(p.InOctets), "a missed poll does not make a spike or a dip")
	assert.Equal(t, -1.0, p.Utilisation(p.InOctets), "speed unknown")
	n, err := testutil.GatherAndCount(reg, "vmflow_aggregate_ports")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func TestPortCounterWrap32(t *testing.T) {
	a, _, _ := newTestAgg(t, DefaultConfig(), nil)
	feed(a,
		cs{at: 0, uptime: 1000, seq: 1, inOct: 1 << 40, inPk: 0xffffff00, inErr: 0xfffffff0},
		cs{at: time.Second, uptime: 2000, seq: 2, inOct: 1<<40 + 1500, inPk: 0x10, inErr: 0x5},
	)
	p := onlyPort(t, a.closeWindow(t0.Add(2*time.Second)))
	assert.Equal(t, uint64(0x110), p.InPackets, "wrapped: modulo 2^32")
	assert.Equal(t, uint64(0x15), p.InErrors)
	assert.Equal(t, uint64(1500), p.InOctets)
	assert.Equal(t, uint32(0), p.Resets)
	assert.Equal(t, 2.0, testutil.ToFloat64(a.swports.mWraps))
}

func TestPortRestartsNoSpike(t *testing.T) {
	a, _, _ := newTestAgg(t, DefaultConfig(), nil)
	// Agent restart: uptime and sequence go back, counters restart near 0.
	feed(a,
		cs{at: 0, uptime: 500000, seq: 100, inOct: 9e9, inPk: 9e6},
		cs{at: time.Second, uptime: 501000, seq: 101, inOct: 9e9 + 100, inPk: 9e6 + 1},
		cs{at: 2 * time.Second, uptime: 300, seq: 1, inOct: 200, inPk: 2},
		cs{at: 3 * time.Second, uptime: 1300, seq: 2, inOct: 300, inPk: 3},
	)
	p := onlyPort(t, a.closeWindow(t0.Add(4*time.Second)))
	assert.Equal(t, uint32(1), p.Resets)
	assert.Equal(t, uint64(200), p.InOctets, "100 before, 100 after the restart; the restart itself counts nothing")
	assert.Equal(t, uint64(2), p.InPackets)
	assert.Equal(t, 2.0, p.Seconds)
	assert.Equal(t, 1.0, testutil.ToFloat64(a.swports.mResets.WithLabelValues("uptime")))

	// Port reset: the agent keeps running, the port's counters restart
	// (port deleted and re-added under the same ifIndex).
	feed(a,
		cs{at: 5 * time.Second, uptime: 3300, seq: 3, inOct: 400, inPk: 4},
		cs{at: 6 * time.Second, uptime: 4300, seq: 4, inOct: 50, inPk: 1},
		cs{at: 7 * time.Second, uptime: 5300, seq: 5, inOct: 80, inPk: 2},
	)
	p = onlyPort(t, a.closeWindow(t0.Add(8*time.Second)))
	assert.Equal(t, uint32(1), p.Resets)
	assert.Equal(t, uint64(100+30), p.InOctets)
	assert.Equal(t, 1.0, testutil.ToFloat64(a.swports.mResets.WithLabelValues("counter")))

	// Sequence restart alone (a port reset on an agent that renumbers).
	feed(a, cs{at: 9 * time.Second, uptime: 7300, seq: 1, inOct: 90, inPk: 3})
	p = onlyPort(t, a.closeWindow(t0.Add(10*time.Second)))
	assert.Equal(t, uint32(1), p.Resets)
	assert.Zero(t, p.InOctets)

	// Uptime wrapping at 2^32 ms is no restart.
	feed(a,
		cs{at: 11 * time.Second, uptime: 0xffffff00, seq: 2, inOct: 100, inPk: 4},
		cs{at: 12 * time.Second, uptime: 0x2e8, seq: 3, inOct: 200, inPk: 5},
	)
	p = onlyPort(t, a.closeWindow(t0.Add(13*time.Second)))
	assert.Equal(t, uint64(110), p.InOctets, "90→100 (sample seq 2) and 100→200")
	assert.Equal(t, uint32(0), p.Resets)
}

func TestPortDuplicatesUnknownAndBounds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPorts = 1
	cfg.PortExpiry = 30 * time.Second
	a, _, _ := newTestAgg(t, cfg, nil)
	s1 := cs{at: 0, uptime: 1000, seq: 1, inOct: 100, outOct: unknown64, inPk: 1, inDisc: unknown32}
	s2 := cs{at: time.Second, uptime: 2000, seq: 2, inOct: 200, outOct: unknown64, inPk: 2, inDisc: unknown32}
	feed(a, s1, s2, s2, s1) // the same sample twice (two collectors), then a stale one
	other := s1.counters()
	other.IfIndex = 8
	a.AddCounters([]decoder.Counters{other})
	p := onlyPort(t, a.closeWindow(t0.Add(2*time.Second)))
	assert.Equal(t, uint64(100), p.InOctets)
	assert.Zero(t, p.OutOctets, "unknown (all ones) counts nothing")
	assert.Zero(t, p.InDiscards)
	assert.Equal(t, 2.0, testutil.ToFloat64(a.swports.mIgnored))
	assert.Equal(t, 1.0, testutil.ToFloat64(a.swports.mDropped), "max_ports")

	// Expiry: a port silent for port_expiry (3 windows) is forgotten.
	for i := 1; i <= 4; i++ {
		a.closeWindow(t0.Add(time.Duration(2+10*i) * time.Second))
	}
	a.swports.mu.Lock()
	n := len(a.swports.m)
	a.swports.mu.Unlock()
	assert.Zero(t, n)
}

func TestMergePorts(t *testing.T) {
	k1, k2 := PortKey{Agent: expA, IfIndex: 1}, PortKey{Agent: expA, IfIndex: 2}
	a := []PortStats{{Key: k1, Seconds: 10, InOctets: 100, IfSpeed: 1e9, VM: "x"}}
	b := []PortStats{{Key: k1, Seconds: 10, InOctets: 300, InErrors: 2}, {Key: k2, Seconds: 5, OutOctets: 7}}
	m := MergePorts(a, b)
	require.Len(t, m, 2)
	assert.Equal(t, PortStats{Key: k1, Seconds: 20, InOctets: 400, InErrors: 2, IfSpeed: 1e9, VM: "x"}, m[0])
	assert.Equal(t, 20.0, m[0].Rate(m[0].InOctets))
	assert.Equal(t, uint64(100), a[0].InOctets, "inputs untouched")
}

// BenchmarkPortAdd is the steady-state cost of one counter sample of a
// known port: 0 allocations.
func BenchmarkPortAdd(b *testing.B) {
	a, _, _ := newTestAgg(b, DefaultConfig(), nil)
	batch := make([]decoder.Counters, 16)
	for i := range batch {
		batch[i] = cs{uptime: 1, seq: 1, inOct: 1, name: "vnet1"}.counters()
		batch[i].IfIndex = uint32(i)
	}
	a.AddCounters(batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			batch[j].Received += int64(time.Second)
			batch[j].Uptime += 1000
			batch[j].SampleSeq++
			batch[j].InOctets += 1500
		}
		a.AddCounters(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/sample")
}

// TestPortByIfIndex: an agent that sends no port names: ports are
// attributed from flow samples entering through their ifIndex with a VM's
// MAC, only when that VM runs on the agent's host (the uplink, where a VM
// of another host enters, stays unattributed).
func TestPortByIfIndex(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	fd := &fakeDecoder{}
	p := NewPipeline(fd, enr, a, nil)
	h := p.NewWorker()
	ctr := func(ifIndex uint32, at time.Duration, oct uint64) decoder.Counters {
		return decoder.Counters{Agent: expA, Exporter: expA, IfIndex: ifIndex, HasIf: true, SampleSeq: uint32(at / time.Second),
			Uptime: uint32(at / time.Millisecond), Received: t0.Add(at).UnixNano(), InOctets: oct}
	}
	send := func(at time.Duration, oct uint64, withFlows bool) {
		fd.ctrs = []decoder.Counters{ctr(7, at, oct), ctr(9, at, oct)}
		fd.records = nil
		if withFlows {
			r1 := sample(expA, macA1, macA2, ipA1, ipA2).Record
			r1.InIf = 7
			r2 := sample(expA, macB1, macA2, ipB1, ipA2).Record
			r2.InIf = 9
			fd.records = []decoder.Record{r1, r2}
		}
		_, err := h.Handle(&collector.Datagram{Proto: collector.ProtoSFlow})
		require.NoError(t, err)
	}
	send(0, 100, true)
	send(time.Second, 200, true)
	w := a.closeWindow(t0.Add(2 * time.Second))
	require.Len(t, w.Ports, 2)
	assert.Empty(t, w.Ports[0].VM, "nothing learned before the first close")
	send(3*time.Second, 300, true) // learning is on now
	send(4*time.Second, 400, false)
	w = a.closeWindow(t0.Add(5 * time.Second))
	require.Len(t, w.Ports, 2)
	assert.Equal(t, uint32(7), w.Ports[0].Key.IfIndex)
	assert.Equal(t, "a1", w.Ports[0].VM, "a1's MAC entered through ifIndex 7 on its own host")
	assert.Equal(t, "hvA", w.Ports[0].Host)
	assert.Equal(t, uint32(9), w.Ports[1].Key.IfIndex)
	assert.Empty(t, w.Ports[1].VM, "b1 runs on hvB: ifIndex 9 is hvA's uplink, not b1's port")
	assert.Equal(t, int32(1), a.swports.unnamed.Load(), "the uplink stays to be learned ...")
	for i := 0; i < learnGiveUp; i++ {
		send(time.Duration(6+i)*time.Second, uint64(500+i), true)
	}
	a.closeWindow(t0.Add(time.Hour))
	assert.Equal(t, int32(0), a.swports.unnamed.Load(), "... until given up")
}
