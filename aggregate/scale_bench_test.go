package aggregate

import (
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// scaleCloud is 10,000 VMs on 500 hypervisors (each hypervisor its own
// sFlow agent) and the records of 200,000 directed pairs, each pair's
// records observed at the source's hypervisor.
func scaleCloud(b *testing.B) (*enrich.Enricher, []decoder.Record) {
	const nVM, nHost, nPairs = 10_000, 500, 200_000
	var vms []enrich.VM
	var hosts []enrich.Host
	agent := func(h int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, byte(h >> 8), byte(h)}) }
	for h := 0; h < nHost; h++ {
		hosts = append(hosts, enrich.Host{Name: fmt.Sprintf("hv-%03d", h), Exporters: []netip.Addr{agent(h)}})
	}
	mac := func(i int) [6]byte { return [6]byte{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)} }
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := 0; i < nVM; i++ {
		vms = append(vms, testVM(fmt.Sprintf("vm-%05d", i), fmt.Sprintf("hv-%03d", i%nHost), mac(i), ip(i)))
	}
	e, err := enrich.New(enrich.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	e.Publish(enrich.Snapshot{Source: "static", VMs: vms, Hosts: hosts})
	recs := make([]decoder.Record, nPairs)
	for p := range recs {
		s, k := p%nVM, p/nVM
		d := (s + 1 + k*499) % nVM
		recs[p] = decoder.Record{
			Source: decoder.SourceSFlow, Exporter: agent(s % nHost), Agent: agent(s % nHost), SamplingRate: 64,
			Bytes: 1514, Packets: 1, SrcMAC: mac(s), DstMAC: mac(d), SrcIP: ip(s), DstIP: ip(d),
			Proto: 6, SrcPort: uint16(30000 + p%20000), DstPort: 443, TCPFlags: 0x10,
			Flags: decoder.FlagL3 | decoder.FlagL4, Received: time.Now().UnixNano(),
		}
	}
	return e, recs
}

// BenchmarkWindowClose200k: closing a window of 200,000 active pairs seen
// by two workers (sFlow from every hypervisor is spread over the workers,
// so both shards hold every pair: the merge's worst case): shard swap,
// merge, exact flow count, endpoint resolution, sort — without sinks. The
// p99 over the iterations is reported too. A GC cycle runs between windows
// (untimed), as in vmflow, where the sinks allocate and
// runtime.memory_limit_mb keeps the heap near the live state: the last
// window's Pairs array is then recycled (pairbuf.go).
func BenchmarkWindowClose200k(b *testing.B) {
	benchWindowClose(b, func(p, w, nw int) bool { return true })
}

// BenchmarkWindowClose200kRouted: the same window with each exporter's
// records on one worker (IPFIX and NetFlow v9 route datagrams per
// exporter): every pair is in one shard only, half of them not in the
// base.
func BenchmarkWindowClose200kRouted(b *testing.B) {
	benchWindowClose(b, func(p, w, nw int) bool { return (p%10_000)%500%nw == w })
}

func benchWindowClose(b *testing.B, on func(p, w, nw int) bool) {
	enr, recs := scaleCloud(b)
	cfg := DefaultConfig()
	cfg.MaxPairs = 250_000
	a, err := New(cfg, enr, nil)
	if err != nil {
		b.Fatal(err)
	}
	ws := []*Worker{a.NewWorker(), a.NewWorker()}
	idx := enr.Index()
	fill := func() {
		for wi, w := range ws {
			for r := range recs {
				if on(r, wi, len(ws)) {
					w.Add(idx, &recs[r])
				}
			}
		}
		runtime.GC()
	}
	for range 2 { // warm up: every shard (open and spare) at its size
		fill()
		a.closeWindow(time.Now())
	}
	var durs []time.Duration
	var phases [nPhases]time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fill()
		b.StartTimer()
		t0 := time.Now()
		win := a.closeWindow(time.Now())
		durs = append(durs, time.Since(t0))
		for ph := phaseMerge; ph < phaseSinks; ph++ {
			phases[ph] += a.lastPhases[ph].Sub(a.lastPhases[ph-1])
		}
		if len(win.Pairs) != len(recs) {
			b.Fatalf("window has %d pairs, want %d", len(win.Pairs), len(recs))
		}
	}
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	b.ReportMetric(float64(durs[(len(durs)*99)/100].Microseconds())/1000, "p99-ms")
	for ph := phaseMerge; ph < phaseSinks; ph++ {
		b.ReportMetric(float64(phases[ph].Microseconds())/1000/float64(b.N), phaseNames[ph]+"-ms")
	}
}

// packKey orders keys exactly as pairKeyCmp where it decides, and leaves
// the rest (equal packs) to it.
func TestPackKeyOrder(t *testing.T) {
	ips := []netip.Addr{{}, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	vms := []enrich.VMID{0, 1, 2, 1<<28 - 2, 1 << 29, OverflowVM}
	var keys []PairKey
	for _, src := range []decoder.Source{decoder.SourceSFlow, decoder.SourceIPFIX} {
		for _, sv := range vms {
			for _, si := range ips {
				for _, dv := range vms {
					for _, di := range ips {
						if (sv == 0) == si.IsValid() && (dv == 0) == di.IsValid() {
							keys = append(keys, PairKey{Source: src, Src: EndpointKey{VM: sv, IP: si}, Dst: EndpointKey{VM: dv, IP: di}})
						}
					}
				}
			}
		}
	}
	for i := range keys {
		for j := range keys {
			a, b := &keys[i], &keys[j]
			want := pairKeyCmp(a, b)
			pa, pb := packKey(a), packKey(b)
			got := want
			if pa != pb {
				got = -1
				if pa > pb {
					got = 1
				}
			}
			if got != want {
				t.Fatalf("%+v vs %+v: packed order %d, pairKeyCmp %d", *a, *b, got, want)
			}
		}
	}
}
