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
