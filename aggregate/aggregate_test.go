package aggregate

import (
	"context"
	"math/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

func TestCountEachPacketOnce(t *testing.T) {
	enr := testEnricher(t)
	type obs struct {
		at      netip.Addr
		counted bool
	}
	cases := []struct {
		name     string
		srcMAC   [6]byte
		dstMAC   [6]byte
		src, dst netip.Addr
		obs      []obs
		pair     [2]string
	}{
		{name: "VM to VM across hosts, sampled on both", srcMAC: macA1, dstMAC: macB1, src: ipA1, dst: ipB1,
			obs: []obs{{expA, true}, {expB, false}}, pair: [2]string{"a1", "b1"}},
		{name: "reply across hosts", srcMAC: macB1, dstMAC: macA1, src: ipB1, dst: ipA1,
			obs: []obs{{expB, true}, {expA, false}}, pair: [2]string{"b1", "a1"}},
		{name: "VM to VM on one host", srcMAC: macA1, dstMAC: macA2, src: ipA1, dst: ipA2,
			obs: []obs{{expA, true}}, pair: [2]string{"a1", "a2"}},
		{name: "external to VM, crossing hvA on the way in", srcMAC: macGW, dstMAC: macB1, src: ipExt, dst: ipB1,
			obs: []obs{{expA, false}, {expB, true}}, pair: [2]string{ipExt.String(), "b1"}},
		{name: "VM to external, leaving through hvA", srcMAC: macB1, dstMAC: macGW, src: ipB1, dst: ipExt,
			obs: []obs{{expB, true}, {expA, false}}, pair: [2]string{"b1", ipExt.String()}},
		{name: "VM on unobserved host to VM: counted at the destination", srcMAC: macC1, dstMAC: macB1, src: ipC1, dst: ipB1,
			obs: []obs{{expA, false}, {expB, true}}, pair: [2]string{"c1", "b1"}},
		{name: "external to external: every observation counts (limit)", srcMAC: macGW, dstMAC: macGW, src: ipExt, dst: ipExt2,
			obs: []obs{{expA, true}, {expB, true}}, pair: [2]string{ipExt.String(), ipExt2.String()}},
		{name: "unmapped exporter counts what it sees (limit)", srcMAC: macA1, dstMAC: macB1, src: ipA1, dst: ipB1,
			obs: []obs{{expBad, true}, {expA, true}, {expB, false}}, pair: [2]string{"a1", "b1"}},
		{name: "attribution by IP when the MAC is a router's", srcMAC: macGW, dstMAC: macGW, src: ipA1, dst: ipB1,
			obs: []obs{{expA, true}, {expB, false}}, pair: [2]string{"a1", "b1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := newTestAgg(t, DefaultConfig(), enr)
			w := a.NewWorker()
			want := 0
			for _, o := range tc.obs {
				w.Add(enr.Index(), &sample(o.at, tc.srcMAC, tc.dstMAC, tc.src, tc.dst).Record)
				if o.counted {
					want++
				}
			}
			win := a.closeWindow(time.Now())
			require.Len(t, win.Pairs, 1)
			p := pairOf(win, tc.pair[0], tc.pair[1], decoder.SourceSFlow)
			require.NotNil(t, p, "pair %v in %+v", tc.pair, win.Pairs)
			assert.Equal(t, uint64(want), p.Stats.Samples)
			assert.Equal(t, uint64(len(tc.obs)-want), a.Totals().Suppressed())
		})
	}

	t.Run("count=all counts every observation", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Count = CountAll
		a, _, _ := newTestAgg(t, cfg, enr)
		w := a.NewWorker()
		w.Add(enr.Index(), &sample(expA, macA1, macB1, ipA1, ipB1).Record)
		w.Add(enr.Index(), &sample(expB, macA1, macB1, ipA1, ipB1).Record)
		win := a.closeWindow(time.Now())
		assert.Equal(t, uint64(2), pairOf(win, "a1", "b1", decoder.SourceSFlow).Stats.Samples)
	})

	t.Run("IPFIX exporters told apart by observation domain", func(t *testing.T) {
		a, _, _ := newTestAgg(t, DefaultConfig(), enr)
		w := a.NewWorker()
		w.Add(enr.Index(), &sample(expLo, macB1, macA1, ipB1, ipA1).ipfix(expLo, 2).Record) // hvB: counted
		w.Add(enr.Index(), &sample(expLo, macA1, macB1, ipA1, ipB1).ipfix(expLo, 2).Record) // a1's packet at hvB: duplicate
		win := a.closeWindow(time.Now())
		assert.Equal(t, uint64(1), pairOf(win, "b1", "a1", decoder.SourceIPFIX).Stats.Samples)
		assert.Nil(t, pairOf(win, "a1", "b1", decoder.SourceIPFIX))
		assert.Equal(t, uint64(1), a.Totals().Suppressed())
	})
}

func TestLiveMigrationGrace(t *testing.T) {
	enr := testEnricher(t)
	m := testVM("m", "hvA", [6]byte{0x52, 0x54, 0, 0, 0xd, 1}, netip.MustParseAddr("10.0.0.31"))
	m.UUID = "dddddddd-0000-4000-8000-000000000001"
	base := []enrich.VM{testVM("b1", "hvB", macB1, ipB1)}
	hosts := []enrich.Host{{Name: "hvA", Exporters: []netip.Addr{expA}}, {Name: "hvB", Exporters: []netip.Addr{expB}}}
	enr.Publish(enrich.Snapshot{Source: "static", Hosts: hosts, VMs: append(base, m)})
	m.Host = "hvB"
	enr.Publish(enrich.Snapshot{Source: "static", Hosts: hosts, VMs: append(base, m)})
	p, ok := enr.Index().ByMAC(m.Interfaces[0].MAC)
	require.True(t, ok)
	require.Equal(t, "hvA", p.VM.PrevHost)
	moved := p.VM.MovedAt.UnixNano()

	a, _, _ := newTestAgg(t, DefaultConfig(), enr) // grace 10 s
	w := a.NewWorker()
	ext := netip.MustParseAddr("203.0.113.1")
	// Sent from the new host: counted.
	w.Add(enr.Index(), &sample(expB, m.Interfaces[0].MAC, macGW, m.Interfaces[0].Addrs[0].IP, ext).at(moved+int64(time.Second)).Record)
	// Sampled on the old host within the grace (late export): counted.
	w.Add(enr.Index(), &sample(expA, m.Interfaces[0].MAC, macGW, m.Interfaces[0].Addrs[0].IP, ext).at(moved+int64(2*time.Second)).Record)
	// On the old host after the grace: a duplicate observation.
	w.Add(enr.Index(), &sample(expA, m.Interfaces[0].MAC, macGW, m.Interfaces[0].Addrs[0].IP, ext).at(moved+int64(11*time.Second)).Record)
	win := a.closeWindow(time.Now())
	pp := pairOf(win, "m", ext.String(), decoder.SourceSFlow)
	require.NotNil(t, pp)
	assert.Equal(t, uint64(2), pp.Stats.Samples)
	assert.Equal(t, "hvB", pp.Src.Host)
	assert.Equal(t, uint64(1), a.Totals().Suppressed())

	cfg := DefaultConfig()
	cfg.MigrationGrace = 0
	a2, _, _ := newTestAgg(t, cfg, enr)
	w2 := a2.NewWorker()
	w2.Add(enr.Index(), &sample(expA, m.Interfaces[0].MAC, macGW, m.Interfaces[0].Addrs[0].IP, ext).at(moved+1).Record)
	a2.closeWindow(time.Now())
	assert.Equal(t, uint64(1), a2.Totals().Suppressed(), "grace 0: only the current host counts")
}

func TestScalingVarianceAndCI(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w := a.NewWorker()
	idx := enr.Index()
	// Two 1-in-16 samples of 100 and 200 bytes.
	w.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).rate(16).bytes(100).Record)
	w.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).rate(16).bytes(200).Record)
	// A sample with no rate: counted as 1-in-1.
	w.Add(idx, &sample(expA, macA2, macA1, ipA2, ipA1).rate(0).bytes(60).Record)
	// An IPFIX flow record, 1-in-1: 10 packets, 15000 bytes, no variance.
	w.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).ipfix(expA, 0).rate(1).bytes(15000).pkts(10).Record)
	win := a.closeWindow(time.Now())

	s := pairOf(win, "a1", "a2", decoder.SourceSFlow).Stats
	assert.Equal(t, 4800.0, s.Bytes)          // 16·100 + 16·200
	assert.Equal(t, 32.0, s.Packets)          // 16·1 + 16·1
	assert.Equal(t, 12_000_000.0, s.BytesVar) // 16·15·100² + 16·15·200²
	assert.Equal(t, 480.0, s.PacketsVar)      // 2 · 16·15·1²
	assert.Equal(t, uint64(300), s.SampledBytes)
	assert.Equal(t, uint64(2), s.Samples)
	lo, hi := s.CI95Bytes()
	assert.Equal(t, 300.0, lo, "lower end clamped at the observed bytes") // 4800 − 1.96·3464.1 < 300
	assert.InDelta(t, 4800+1.96*3464.1016, hi, 0.01)
	plo, phi := s.CI95Packets()
	assert.Equal(t, 2.0, plo, "32 − 1.96·21.9 clamped at the 2 observed packets")
	assert.InDelta(t, 32+1.96*21.9089, phi, 0.01)

	r := pairOf(win, "a2", "a1", decoder.SourceSFlow).Stats
	assert.Equal(t, 60.0, r.Bytes)
	assert.Equal(t, 0.0, r.BytesVar)
	assert.Equal(t, uint64(1), a.Totals().RateMissing())

	f := pairOf(win, "a1", "a2", decoder.SourceIPFIX).Stats
	assert.Equal(t, 15000.0, f.Bytes)
	assert.Equal(t, 10.0, f.Packets)
	lo, hi = f.CI95Bytes()
	assert.Equal(t, [2]float64{15000, 15000}, [2]float64{lo, hi})
}

// TestCICoverage simulates 1-in-16 packet sampling of a known stream many
// times and checks that the 95% interval covers the truth in about 95% of
// the runs.
func TestCICoverage(t *testing.T) {
	const (
		runs    = 400
		packets = 3000
		n       = 16
	)
	rng := rand.New(rand.NewSource(42))
	sizes := make([]uint64, packets)
	var truth float64
	for i := range sizes {
		// A mix of MTU frames, small ACKs and mid-sized packets.
		switch i % 5 {
		case 0, 1, 2:
			sizes[i] = 1514
		case 3:
			sizes[i] = 66
		default:
			sizes[i] = uint64(100 + rng.Intn(900))
		}
		truth += float64(sizes[i])
	}
	var covered, coveredPkts int
	for run := 0; run < runs; run++ {
		var s Stats
		for _, b := range sizes {
			if rng.Intn(n) != 0 {
				continue
			}
			r := decoder.Record{Bytes: b, Packets: 1, SamplingRate: n, Flags: decoder.FlagL3, Proto: 6}
			s.add(&r, n)
		}
		lo, hi := s.CI95Bytes()
		if lo <= truth && truth <= hi {
			covered++
		}
		plo, phi := s.CI95Packets()
		if plo <= packets && packets <= phi {
			coveredPkts++
		}
	}
	rate := float64(covered) / runs
	t.Logf("bytes coverage %.3f, packets coverage %.3f", rate, float64(coveredPkts)/runs)
	assert.GreaterOrEqual(t, rate, 0.90)
	assert.LessOrEqual(t, rate, 0.99)
	assert.GreaterOrEqual(t, float64(coveredPkts)/runs, 0.90)
	assert.LessOrEqual(t, float64(coveredPkts)/runs, 0.99)
}

func TestBreakdownFlagsICMPAndTopPorts(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w := a.NewWorker()
	idx := enr.Index()
	add := func(r *rb) { w.Add(idx, &r.rate(2).Record) }
	add(sample(expA, macA1, macA2, ipA1, ipA2).tcp(0x02).ports(1000, 80))  // SYN
	add(sample(expA, macA1, macA2, ipA1, ipA2).tcp(0x12).ports(1000, 80))  // SYN+ACK
	add(sample(expA, macA1, macA2, ipA1, ipA2).tcp(0x14).ports(1000, 80))  // RST+ACK
	add(sample(expA, macA1, macA2, ipA1, ipA2).tcp(0x11).ports(1000, 443)) // FIN+ACK
	add(sample(expA, macA1, macA2, ipA1, ipA2).proto(17).ports(5000, 53))  // UDP
	add(sample(expA, macA1, macA2, ipA1, ipA2).icmp(1, 3))                 // unreachable
	add(sample(expA, macA1, macA2, ipA1, ipA2).icmp(1, 8))                 // echo: no error
	add(sample(expA, macA1, macA2, ipA1, ipA2).icmp(58, 1))                // v6 unreachable
	add(sample(expA, macA1, macA2, ipA1, ipA2).icmp(58, 128))              // v6 echo
	r := sample(expA, macA1, macA2, ipA1, ipA2)
	r.Flags, r.EtherType = 0, 0x0806 // ARP
	add(r)
	// A flow record with SYN|ACK over 5 packets counts as one SYN.
	add(sample(expA, macA1, macA2, ipA1, ipA2).ipfix(expA, 0).tcp(0x1a).pkts(5).ports(1001, 80))
	win := a.closeWindow(time.Now())

	s := pairOf(win, "a1", "a2", decoder.SourceSFlow).Stats
	assert.Equal(t, 8.0, s.TCPPackets)
	assert.Equal(t, 800.0, s.TCPBytes)
	assert.Equal(t, 2.0, s.UDPPackets)
	assert.Equal(t, 8.0, s.ICMPPackets)
	assert.Equal(t, 2.0, s.OtherPackets)
	assert.Equal(t, 2.0, s.SYN)
	assert.Equal(t, 2.0, s.SYNACK)
	assert.Equal(t, 2.0, s.RST)
	assert.Equal(t, 2.0, s.FIN)
	assert.Equal(t, 4.0, s.ICMPErrors)
	assert.Equal(t, []PortCount{{6, 80, 600}, {6, 443, 200}, {17, 53, 200}}, s.TopPorts[:3])
	assert.Equal(t, PortCount{}, s.TopPorts[3])

	f := pairOf(win, "a1", "a2", decoder.SourceIPFIX).Stats
	assert.Equal(t, 2.0, f.SYN)
	assert.Equal(t, 0.0, f.SYNACK)
	assert.Equal(t, 10.0, f.TCPPackets)
}

func TestTopPortsSpaceSavingAndMerge(t *testing.T) {
	var s Stats
	for p := uint16(1); p <= 10; p++ {
		s.addPort(6, p, float64(p)*10) // 10..100
	}
	// Space-saving keeps TopPortsN entries; the two smallest arrivals
	// beyond capacity replaced the minimum and inherited its count.
	n := 0
	for _, e := range s.TopPorts {
		if e.Bytes > 0 {
			n++
		}
	}
	assert.Equal(t, TopPortsN, n)

	a := Stats{TopPorts: [TopPortsN]PortCount{{6, 80, 100}, {6, 22, 5}}}
	b := Stats{TopPorts: [TopPortsN]PortCount{{6, 443, 50}, {6, 80, 10}, {17, 53, 7}}}
	a.Merge(&b)
	assert.Equal(t, []PortCount{{6, 80, 110}, {6, 443, 50}, {17, 53, 7}, {6, 22, 5}}, a.TopPorts[:4])
}

func TestStatsMerge(t *testing.T) {
	a := Stats{Bytes: 10, Packets: 1, BytesVar: 3, Samples: 1, Flows: 2, SampledBytes: 5, First: 100, Last: 200, SrcIP: ipA1}
	b := Stats{Bytes: 20, Packets: 2, BytesVar: 4, Samples: 2, Flows: 1, SampledBytes: 7, First: 50, Last: 300, SrcIP: ipA2, TCPBytes: 9}
	a.Merge(&b)
	assert.Equal(t, Stats{Bytes: 30, Packets: 3, BytesVar: 7, Samples: 3, Flows: 3, SampledBytes: 12, First: 50, Last: 300, SrcIP: ipA2, TCPBytes: 9}, a)
	var z Stats
	z.Merge(&a)
	assert.Equal(t, a, z, "merging into empty stats copies")
}

func TestFlowsDistinctAcrossWorkers(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w1, w2 := a.NewWorker(), a.NewWorker()
	idx := enr.Index()
	for i := 0; i < 5; i++ { // 5 distinct 5-tuples, each seen 3 times on w1 and 2 on w2
		for k := 0; k < 3; k++ {
			w1.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).ports(uint16(1000+i), 80).Record)
		}
		for k := 0; k < 2; k++ {
			w2.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).ports(uint16(1000+i), 80).Record)
		}
	}
	w2.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).ports(2000, 80).Record)          // only on w2
	w2.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).proto(6).ports(1000, 80).Record) // same ports, TCP
	win := a.closeWindow(time.Now())
	s := pairOf(win, "a1", "a2", decoder.SourceSFlow).Stats
	assert.Equal(t, uint64(27), s.Samples)
	assert.Equal(t, uint64(7), s.Flows)
}

func TestWindowsMergeWorkersAndEmit(t *testing.T) {
	enr := testEnricher(t)
	cfg := DefaultConfig()
	cfg.Window = time.Second
	a, sink, reg := newTestAgg(t, cfg, enr)
	sink2 := &fakeSink{}
	a.AddSink(sink2)
	w1, w2 := a.NewWorker(), a.NewWorker()
	idx := enr.Index()

	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.winStart = start
	w1.Add(idx, &sample(expA, macA1, macB1, ipA1, ipB1).rate(4).Record)
	w2.Add(idx, &sample(expA, macA1, macB1, ipA1, ipB1).rate(4).Record)
	w2.Add(idx, &sample(expB, macB1, macA1, ipB1, ipA1).rate(4).Record)
	w1.Add(idx, &sample(expA, macA1, macGW, ipA1, netip.MustParseAddr("203.0.113.9")).Record)
	win := a.closeWindow(start.Add(time.Second))

	require.Equal(t, []*Window{win}, sink.all())
	require.Equal(t, []*Window{win}, sink2.all(), "every sink gets the window")
	assert.Equal(t, start, win.Start)
	assert.Equal(t, start.Add(time.Second), win.End)
	require.Len(t, win.Pairs, 3)
	p := win.Pairs[0] // sorted by bytes
	assert.Equal(t, Endpoint{VM: "a1", Host: "hvA", Tenant: "t1", IP: "10.0.0.1", MAC: "52:54:00:00:0a:01"}, p.Src)
	assert.Equal(t, Endpoint{VM: "b1", Host: "hvB", Tenant: "t1", IP: "10.0.0.11", MAC: "52:54:00:00:0b:01"}, p.Dst)
	assert.Equal(t, 800.0, p.Stats.Bytes)
	assert.Equal(t, uint64(2), p.Stats.Samples)
	ext := pairOf(win, "a1", "203.0.113.9", decoder.SourceSFlow)
	require.NotNil(t, ext)
	assert.Equal(t, Endpoint{IP: "203.0.113.9", MAC: "52:54:00:00:ff:ff"}, ext.Dst, "non-VM endpoint keyed and shown by IP")

	// The next window starts empty, and is emitted even without traffic.
	win2 := a.closeWindow(start.Add(2 * time.Second))
	assert.Empty(t, win2.Pairs)
	assert.Equal(t, start.Add(time.Second), win2.Start)
	assert.Len(t, sink.all(), 2)
	assert.Equal(t, 2.0, testutil.ToFloat64(a.windows))

	n, err := testutil.GatherAndCount(reg, "vmflow_aggregate_records_total")
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.Equal(t, uint64(4), a.Totals().Records(decoder.SourceSFlow))
}

func TestTickerClosesAlignedWindowsAndStopFlushes(t *testing.T) {
	enr := testEnricher(t)
	cfg := DefaultConfig()
	cfg.Window = time.Second
	a, sink, _ := newTestAgg(t, cfg, enr)
	w := a.NewWorker()
	require.NoError(t, a.Start(context.Background()))
	require.Error(t, a.Start(context.Background()))
	w.Add(enr.Index(), &sample(expA, macA1, macA2, ipA1, ipA2).Record)
	require.Eventually(t, func() bool { return len(sink.all()) >= 2 }, 5*time.Second, 10*time.Millisecond)
	w.Add(enr.Index(), &sample(expA, macA2, macA1, ipA2, ipA1).Record)
	a.Stop()
	wins := sink.all()
	for i, win := range wins {
		if i > 0 {
			assert.Equal(t, wins[i-1].End, win.Start, "windows are contiguous")
		}
		if i < len(wins)-1 {
			assert.Equal(t, win.End, win.End.Truncate(time.Second), "closed at a wall-clock multiple")
		}
	}
	total := uint64(0)
	for _, win := range wins {
		for _, p := range win.Pairs {
			total += p.Stats.Samples
		}
	}
	assert.Equal(t, uint64(2), total, "nothing lost across windows; Stop flushed the open one")
}

func TestMaxPairsOverflow(t *testing.T) {
	enr := testEnricher(t)
	cfg := DefaultConfig()
	cfg.MaxPairs = 3
	a, _, _ := newTestAgg(t, cfg, enr)
	w := a.NewWorker()
	idx := enr.Index()
	for i := 0; i < 10; i++ {
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		w.Add(idx, &sample(expA, macA1, macGW, ipA1, dst).Record)
	}
	win := a.closeWindow(time.Now())
	require.Len(t, win.Pairs, 4, "3 pairs + the overflow pair")
	ov := pairOf(win, "(overflow)", "(overflow)", decoder.SourceSFlow)
	require.NotNil(t, ov)
	assert.Equal(t, uint64(7), ov.Stats.Samples)
	assert.Equal(t, uint64(7), a.Totals().Overflow())
	var total float64
	for _, p := range win.Pairs {
		total += p.Stats.Bytes
	}
	assert.Equal(t, 1000.0, total, "no bytes lost to the bound")
}

func TestNonIPEndpoint(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w := a.NewWorker()
	r := sample(expA, [6]byte{0x02, 0, 0, 0, 0, 9}, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netip.Addr{}, netip.Addr{})
	r.Flags, r.EtherType = 0, 0x0806
	w.Add(enr.Index(), &r.Record)
	r2 := sample(expA, macA1, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netip.Addr{}, netip.Addr{})
	r2.Flags = 0
	w.Add(enr.Index(), &r2.Record)
	win := a.closeWindow(time.Now())
	p := pairOf(win, "", "", decoder.SourceSFlow)
	require.NotNil(t, p)
	assert.Equal(t, "02:00:00:00:00:09", p.Src.MAC)
	assert.Equal(t, uint64(0), p.Stats.Flows)
	assert.NotNil(t, pairOf(win, "a1", "", decoder.SourceSFlow), "a known MAC needs no IP")
	assert.Equal(t, uint64(3), a.Totals().NonIP())
}

func TestPreferIP(t *testing.T) {
	enr := testEnricher(t)
	cfg := DefaultConfig()
	cfg.Prefer = PreferIP
	a, _, _ := newTestAgg(t, cfg, enr)
	w := a.NewWorker()
	// a2 routes a packet from b1's address: by IP it is b1's.
	w.Add(enr.Index(), &sample(expB, macA2, macA1, ipB1, ipA1).Record)
	win := a.closeWindow(time.Now())
	assert.NotNil(t, pairOf(win, "b1", "a1", decoder.SourceSFlow))
}

func TestSelect(t *testing.T) {
	k := func(src, dst enrich.VMID, s decoder.Source) Pair {
		return Pair{Key: PairKey{Src: EndpointKey{VM: src}, Dst: EndpointKey{VM: dst}, Source: s}}
	}
	pairs := []Pair{
		k(1, 2, decoder.SourceSFlow), k(1, 2, decoder.SourceIPFIX),
		k(2, 1, decoder.SourceSFlow),
		k(3, 4, decoder.SourceNetFlow9), k(3, 4, decoder.SourceSFlow),
		k(5, 6, decoder.SourceIPFIX), k(5, 6, decoder.SourceNetFlow9),
	}
	assert.Equal(t, []Pair{pairs[1], pairs[2], pairs[3], pairs[5]}, Select(pairs, "auto"))
	assert.Equal(t, Select(pairs, "auto"), Select(pairs, ""))
	assert.Equal(t, []Pair{pairs[0], pairs[2], pairs[4]}, Select(pairs, "sflow"))
	assert.Equal(t, []Pair{pairs[1], pairs[5]}, Select(pairs, "ipfix"))
	assert.Equal(t, []Pair{pairs[3], pairs[6]}, Select(pairs, "netflow9"))
	assert.Nil(t, Select(pairs, "bogus"))
	assert.False(t, ValidSelect("bogus"))
	assert.True(t, ValidSelect("auto"))
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	for key, mut := range map[string]func(*Config){
		"aggregate.window":          func(c *Config) { c.Window = 0 },
		"aggregate.max_pairs":       func(c *Config) { c.MaxPairs = 0 },
		"aggregate.count":           func(c *Config) { c.Count = "first" },
		"aggregate.prefer":          func(c *Config) { c.Prefer = "arp" },
		"aggregate.migration_grace": func(c *Config) { c.MigrationGrace = -1 },
		"aggregate.max_ports":       func(c *Config) { c.MaxPorts = 0 },
		"aggregate.port_expiry":     func(c *Config) { c.PortExpiry = 0 },
	} {
		c := DefaultConfig()
		mut(&c)
		assert.ErrorContains(t, c.Validate(), key)
		_, err := New(c, nil, nil)
		assert.Error(t, err)
	}
}

func TestDepartedVMStillResolved(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w := a.NewWorker()
	w.Add(enr.Index(), &sample(expA, macA1, macA2, ipA1, ipA2).Record)
	// a1 leaves the inventory before the window closes.
	enr.Publish(enrich.Snapshot{Source: "static", VMs: []enrich.VM{testVM("a2", "hvA", macA2, ipA2)}})
	win := a.closeWindow(time.Now())
	require.Len(t, win.Pairs, 1)
	assert.Equal(t, "a1", win.Pairs[0].Src.VM)
	assert.Equal(t, "hvA", win.Pairs[0].Src.Host)
}

func TestConcurrentAddAndClose(t *testing.T) {
	enr := testEnricher(t)
	a, sink, _ := newTestAgg(t, DefaultConfig(), enr)
	const perWorker = 20000
	done := make(chan struct{})
	for g := 0; g < 3; g++ {
		w := a.NewWorker()
		go func(g int) {
			defer func() { done <- struct{}{} }()
			idx := enr.Index()
			for i := 0; i < perWorker; i++ {
				w.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).ports(uint16(i%100), uint16(g)).Record)
			}
		}(g)
	}
	finished := 0
	for finished < 3 {
		select {
		case <-done:
			finished++
		default:
			a.closeWindow(time.Now())
		}
	}
	a.closeWindow(time.Now())
	var total uint64
	for _, win := range sink.all() {
		for _, p := range win.Pairs {
			total += p.Stats.Samples
		}
	}
	assert.Equal(t, uint64(3*perWorker), total, "no record lost or doubled across window swaps")
}

// Three workers: a flow seen by the second and third worker (not the
// first) counts once; the middle shard's flows are added to the base set.
func TestFlowsDistinctAcrossThreeWorkers(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w1, w2, w3 := a.NewWorker(), a.NewWorker(), a.NewWorker()
	idx := enr.Index()
	add := func(w *Worker, port uint16) {
		w.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).ports(port, 80).Record)
	}
	add(w1, 1000)
	add(w2, 1000) // also on w1
	add(w2, 2000)
	add(w3, 2000) // also on w2 only
	add(w3, 3000)
	add(w3, 1000) // on all three
	win := a.closeWindow(time.Now())
	assert.Equal(t, uint64(3), pairOf(win, "a1", "a2", decoder.SourceSFlow).Stats.Flows)
}
