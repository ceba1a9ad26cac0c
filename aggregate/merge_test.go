package aggregate

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// mergeCloud: 40 VMs on 4 observed hosts, and the records of 300 pairs
// (VM to VM, VM to outside, outside to VM; sFlow and IPFIX), each with
// 1–30 records over up to 4 destination ports of TCP and UDP (the top
// ports stay exact), a
// few flows, SYNs, SYN-ACKs and RSTs both ways, integral estimates (float
// sums are then exact in any order) and strictly increasing receive times
// (the last-seen addressing is the last record's).
func mergeCloud(t *testing.T, seed uint64) (*enrich.Enricher, []decoder.Record) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	var vms []enrich.VM
	var hosts []enrich.Host
	exp := func(h int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + h)}) }
	for h := 0; h < 4; h++ {
		hosts = append(hosts, enrich.Host{Name: fmt.Sprintf("hv%d", h), Exporters: []netip.Addr{exp(h)}})
	}
	mac := func(i int) [6]byte { return [6]byte{0x52, 0x54, 0, 9, 0, byte(i)} }
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}) }
	for i := 0; i < 40; i++ {
		vms = append(vms, testVM(fmt.Sprintf("m%02d", i), fmt.Sprintf("hv%d", i%4), mac(i), ip(i)))
	}
	e, err := enrich.New(enrich.DefaultConfig(), nil)
	require.NoError(t, err)
	e.Publish(enrich.Snapshot{Source: "static", VMs: vms, Hosts: hosts})

	type end struct {
		mac  [6]byte
		ip   netip.Addr
		host int
	}
	vmEnd := func(i int) end { return end{mac(i), ip(i), i % 4} }
	outEnd := func(i int) end {
		return end{[6]byte{0x52, 0x54, 0, 0, 0xff, 0xff}, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), -1}
	}
	now := time.Now().UnixNano()
	var recs []decoder.Record
	for p := 0; p < 300; p++ {
		var s, d end
		switch p % 5 {
		case 3:
			s, d = vmEnd(r.IntN(40)), outEnd(r.IntN(8))
		case 4:
			s, d = outEnd(r.IntN(8)), vmEnd(r.IntN(40))
		default:
			s, d = vmEnd(r.IntN(40)), vmEnd(r.IntN(40))
		}
		obs := s.host
		if obs < 0 {
			obs = d.host
		}
		src := decoder.SourceSFlow
		if p%7 == 0 {
			src = decoder.SourceIPFIX
		}
		rate := []uint32{1, 4, 64}[r.IntN(3)]
		nports, nflows := 1+r.IntN(4), 1+r.IntN(4) // ≤ 8 (proto, port): top ports exact
		for k := r.IntN(30); k >= 0; k-- {
			now += int64(1 + r.IntN(1000))
			rec := decoder.Record{
				Source: src, Exporter: exp(obs), Agent: exp(obs), SamplingRate: rate,
				Bytes: uint64(60 + r.IntN(1440)), Packets: uint64(1 + r.IntN(3)),
				SrcMAC: s.mac, DstMAC: d.mac, EtherType: 0x0800, SrcIP: s.ip, DstIP: d.ip,
				Proto: 6, SrcPort: uint16(40000 + r.IntN(nflows)), DstPort: uint16(80 + r.IntN(nports)),
				TCPFlags: []uint8{0x10, 0x02, 0x12, 0x04, 0x11}[r.IntN(5)],
				Flags:    decoder.FlagL3 | decoder.FlagL4, Received: now,
			}
			if src == decoder.SourceIPFIX {
				rec.ObsDomain = 1
			}
			if r.IntN(6) == 0 {
				rec.Proto, rec.TCPFlags = 17, 0
			}
			recs = append(recs, rec)
		}
	}
	return e, recs
}

// The merged window of records split over several workers, in every way
// (each record to any worker; each pair to one worker; pairs spread over
// the workers but the first), equals the window of one worker that saw
// them all: every field of every pair, the pairs' order, distinct flows
// and the sources' distinct destination ports.
func TestMergeExactAcrossShards(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		enr, recs := mergeCloud(t, seed)
		idx := enr.Index()
		one, _, _ := newTestAgg(t, DefaultConfig(), enr)
		w := one.NewWorker()
		for i := range recs {
			w.Add(idx, &recs[i])
		}
		want := one.closeWindow(time.Now())
		require.NotEmpty(t, want.Pairs)

		pairOfRec := func(i int) uint64 {
			k := recs[i]
			return uint64(k.SrcIP.As4()[3])<<16 | uint64(k.DstIP.As4()[3])<<8 | uint64(k.Source)
		}
		r := rand.New(rand.NewPCG(seed, 99))
		placements := map[string]func(i, n int) int{
			"any":          func(i, n int) int { return r.IntN(n) },
			"by-pair":      func(i, n int) int { return int(pairOfRec(i)*0x9E3779B97F4A7C15>>40) % n },
			"not-first":    func(i, n int) int { return 1 + int(pairOfRec(i)*0x9E3779B97F4A7C15>>40)%(n-1) },
			"pair-subsets": func(i, n int) int { return (int(pairOfRec(i)%3) + r.IntN(2)) % n },
		}
		for n := 2; n <= 4; n++ {
			for name, place := range placements {
				a, _, _ := newTestAgg(t, DefaultConfig(), enr)
				ws := make([]*Worker, n)
				for i := range ws {
					ws[i] = a.NewWorker()
				}
				for round := 0; round < 2; round++ { // the second round reuses the shards and buffers
					for i := range recs {
						ws[place(i, n)].Add(idx, &recs[i])
					}
					got := a.closeWindow(time.Now())
					require.Equal(t, want.Pairs, got.Pairs, "seed %d, %d workers, %s, round %d", seed, n, name, round)
					require.Equal(t, want.DstPorts, got.DstPorts, "seed %d, %d workers, %s", seed, n, name)
				}
			}
		}
	}
}
