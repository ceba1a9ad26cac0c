package store

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// TestScanAccumulate: Accumulate's sums (per group, per target, per
// protocol) equal what visiting the rows with Each and decoding their
// statistics gives, with auto choosing per pair between two protocols.
func TestScanAccumulate(t *testing.T) {
	m := NewMemory(DefaultMemoryConfig(), nil)
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for w := 0; w < 4; w++ {
		win := &aggregate.Window{Start: t0.Add(time.Duration(w) * 10 * time.Second), End: t0.Add(time.Duration(w+1) * 10 * time.Second)}
		for p := 0; p < 300; p++ {
			st := aggregate.Stats{Bytes: float64(r.IntN(5000)), Packets: float64(r.IntN(50)), Flows: uint64(r.IntN(4))}
			switch r.IntN(4) {
			case 0:
				st.TCPBytes, st.TCPPackets = st.Bytes, st.Packets
			case 1:
				st.UDPBytes, st.ICMPPackets = st.Bytes/2, st.Packets
			case 2:
				st.OtherBytes, st.BytesVar, st.SYN = st.Bytes, 3, 1
			}
			src := decoder.SourceSFlow
			if p%3 == 0 && w%2 == 0 {
				src = decoder.SourceIPFIX
			}
			win.Pairs = append(win.Pairs, aggregate.Pair{
				Key: aggregate.PairKey{Src: aggregate.EndpointKey{VM: enrich.VMID(p%40 + 1)}, Dst: aggregate.EndpointKey{VM: enrich.VMID(p%17 + 50)}, Source: src},
				Src: aggregate.Endpoint{VM: "s" + string(rune('a'+p%40))}, Dst: aggregate.Endpoint{VM: "d" + string(rune('a'+p%17))}, Stats: st})
		}
		m.Write(win)
	}
	ctx := context.Background()
	sc, err := m.Scan(ctx, ScanQuery{From: t0, To: t0.Add(time.Minute), Auto: true})
	require.NoError(t, err)
	require.Equal(t, 4, sc.Segments())
	nG, nE := sc.Groups(), sc.Entries()
	a := Acc{GroupBytes: make([]float64, nG), GroupPackets: make([]float64, nG), GroupFlows: make([]uint64, nG),
		GroupLatest: make([]uint32, nG), GroupSeg: make([]int32, nG), A: make([]int32, nE), ABytes: make([]float64, sc.Endpoints()),
		Proto: &[4][2]float64{}, Skip: make([]bool, nE)}
	for e := 0; e < nE; e++ {
		_, src, _ := sc.Entry(uint32(e))
		a.A[e] = int32(sc.s.d.entSrc[e])
		a.Skip[e] = src.VM == "sb"
	}
	wantG := make([]float64, nG)
	wantA := make([]float64, sc.Endpoints())
	var wantP [4][2]float64
	var rows int
	var st aggregate.Stats
	for i := 0; i < sc.Segments(); i++ {
		require.NoError(t, sc.Accumulate(ctx, i, &a))
		require.NoError(t, sc.Each(ctx, i, func(r *Row) {
			if a.Skip[r.Entry] {
				return
			}
			rows++
			wantG[r.Group] += r.Bytes
			wantA[r.Src] += r.Bytes
			sc.Stats(i, r.Index, &st)
			for k, x := range [4][2]float64{{st.TCPBytes, st.TCPPackets}, {st.UDPBytes, st.UDPPackets}, {st.ICMPBytes, st.ICMPPackets}, {st.OtherBytes, st.OtherPackets}} {
				wantP[k][0] += x[0]
				wantP[k][1] += x[1]
			}
		}))
	}
	require.Greater(t, rows, 500)
	require.Equal(t, rows, a.Rows)
	require.Equal(t, wantG, a.GroupBytes)
	require.Equal(t, wantA, a.ABytes)
	require.Equal(t, wantP, *a.Proto)
	for g := 0; g < nG; g++ {
		s, d := sc.GroupEndpoints(uint32(g))
		if a.GroupLatest[g] != 0 {
			e := a.GroupLatest[g] - 1
			require.Equal(t, s, sc.s.d.entSrc[e])
			require.Equal(t, d, sc.s.d.entDst[e])
		}
	}
}

// TestScanProtoTotal: the protocol split from the segments' precomputed
// totals is bit-identical to splitting the counted rows one by one (non
// integer values: the summation order shows), for one protocol and auto,
// with pairs seen over both protocols, in windows and merged buckets.
func TestScanProtoTotal(t *testing.T) {
	cfg := DefaultMemoryConfig()
	cfg.FullResolution, cfg.Tier1Step, cfg.Tier1Until, cfg.Tier2Step = 30*time.Second, 30*time.Second, time.Hour, 0
	m := NewMemory(cfg, nil)
	r := rand.New(rand.NewPCG(3, 4))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for w := 0; w < 12; w++ {
		win := &aggregate.Window{Start: t0.Add(time.Duration(w) * 10 * time.Second), End: t0.Add(time.Duration(w+1) * 10 * time.Second)}
		for p := 0; p < 200; p++ {
			x := r.Float64() * 1e4
			st := aggregate.Stats{Bytes: x, Packets: x / 700, TCPBytes: x * 0.7, TCPPackets: x / 1000, UDPBytes: x * 0.3 / 3, OtherPackets: r.Float64()}
			src := decoder.SourceSFlow
			if p < 150 && w >= 6 && p%4 == 0 { // IPFIX too from window 6 on
				src = decoder.SourceIPFIX
			}
			win.Pairs = append(win.Pairs, aggregate.Pair{
				Key: aggregate.PairKey{Src: aggregate.EndpointKey{VM: enrich.VMID(p%40 + 1)}, Dst: aggregate.EndpointKey{VM: enrich.VMID(p/40 + 50)}, Source: src},
				Src: aggregate.Endpoint{VM: "s"}, Dst: aggregate.Endpoint{VM: "d"}, Stats: st})
		}
		m.Write(win)
	}
	ctx := context.Background()
	for _, q := range []ScanQuery{{Auto: true}, {Source: decoder.SourceSFlow}, {Source: decoder.SourceIPFIX}} {
		q.From, q.To = t0, t0.Add(time.Hour)
		sc, err := m.Scan(ctx, q)
		require.NoError(t, err)
		require.Greater(t, sc.Segments(), 4)
		var st aggregate.Stats
		for i := 0; i < sc.Segments(); i++ {
			a := Acc{Proto: &[4][2]float64{}}
			require.NoError(t, sc.Accumulate(ctx, i, &a))
			var want [4][2]float64
			require.NoError(t, sc.Each(ctx, i, func(r *Row) {
				sc.Stats(i, r.Index, &st)
				for k, x := range [4][2]float64{{st.TCPBytes, st.TCPPackets}, {st.UDPBytes, st.UDPPackets}, {st.ICMPBytes, st.ICMPPackets}, {st.OtherBytes, st.OtherPackets}} {
					if x[0] != 0 {
						want[k][0] += x[0]
					}
					if x[1] != 0 {
						want[k][1] += x[1]
					}
				}
			}))
			require.Equal(t, want, *a.Proto, "%+v segment %d", q, i)
		}
	}
}
