package store

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

func tierCfg() MemoryConfig {
	return MemoryConfig{Retention: 30 * time.Minute, FullResolution: time.Minute, Tier1Step: time.Minute,
		Tier1Until: 5 * time.Minute, Tier2Step: 10 * time.Minute, MaxPairs: 1 << 20}
}

// statWin is window i (10 s from t0, aligned to every step) with pairs
// p = 0..n-1 of integer statistics that depend on i and p.
func statWin(i, n int) *aggregate.Window {
	w := win(i, 0)
	for p := 0; p < n; p++ {
		st := aggregate.Stats{Bytes: float64(100*i + p + 1), Packets: float64(i + 1), BytesVar: float64(7 * p), Samples: uint64(p + 1),
			Flows: 2, SampledBytes: uint64(i), TCPBytes: float64(p), SYN: 1, First: int64(i + 1), Last: int64(i + 2)}
		st.TopPorts[0] = aggregate.PortCount{Proto: 6, Port: uint16(80 + p%3), Bytes: float64(i + 1)}
		w.Pairs = append(w.Pairs, aggregate.Pair{
			Key: aggregate.PairKey{Src: aggregate.EndpointKey{IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(p)})},
				Dst: aggregate.EndpointKey{IP: netip.AddrFrom4([4]byte{10, 1, 0, 1})}, Source: decoder.SourceSFlow},
			Stats: st,
		})
	}
	return w
}

// TestMemoryTiersMergeExactly: after 30 minutes of windows the store
// holds 10 s windows for the last minute, 1-minute buckets up to 5
// minutes and 10-minute buckets before, and every bucket's pairs are the
// exact merge of the windows it holds.
func TestMemoryTiersMergeExactly(t *testing.T) {
	m := NewMemory(tierCfg(), nil)
	const n = 180 // 30 minutes
	for i := 0; i < n; i++ {
		m.Write(statWin(i, 3))
	}
	m.WaitIdle()
	ws, err := m.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	require.NoError(t, err)
	var lens []time.Duration
	for _, w := range ws {
		lens = append(lens, w.End.Sub(w.Start))
	}
	newest := win(n-1, 0).End
	for k, w := range ws {
		age := newest.Sub(w.End)
		d := w.End.Sub(w.Start)
		switch {
		case age < time.Minute:
			assert.Equal(t, 10*time.Second, d, "window %d (age %s) at full resolution: %v", k, age, lens)
		case age < 5*time.Minute:
			assert.LessOrEqual(t, d, time.Minute, "window %d (age %s) in a 1-minute bucket: %v", k, age, lens)
		default:
			assert.LessOrEqual(t, d, 10*time.Minute, "window %d (age %s) in a 10-minute bucket: %v", k, age, lens)
		}
		// Exact merge: recompute from the raw windows it spans.
		require.Len(t, w.Pairs, 3)
		for _, p := range w.Pairs {
			var want aggregate.Stats
			first := true
			for i := 0; i < n; i++ {
				rw := statWin(i, 3)
				if !rw.End.After(w.Start) || rw.End.After(w.End) {
					continue
				}
				for _, rp := range rw.Pairs {
					if rp.Key == p.Key {
						if first {
							want, first = rp.Stats, false
						} else {
							want.Merge(&rp.Stats)
						}
					}
				}
			}
			want.SrcIP, want.DstIP, want.SrcMAC, want.DstMAC, want.VNI = netip.Addr{}, netip.Addr{}, [6]byte{}, [6]byte{}, 0
			assert.Equal(t, want, p.Stats, "window %s..%s pair %v", w.Start, w.End, p.Key.Src.IP)
		}
	}
	assert.Less(t, len(ws), 6+4+1+3+1, "tiers bound the windows held: %v", lens)
	assert.Greater(t, testutil.ToFloat64(m.mRollups.WithLabelValues("2")), 0.0)
	// The whole range still adds up to every window written.
	res, err := m.TopPairs(context.Background(), PairQuery{From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Auto: true, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, n, res.Windows)
	assert.Equal(t, 3, res.Total)
	for _, g := range res.Pairs {
		assert.Equal(t, n, g.Windows)
	}
	// A late window older than what was merged is refused and counted.
	before := testutil.ToFloat64(m.mRejected)
	m.Write(statWin(10, 1))
	assert.Equal(t, before+1, testutil.ToFloat64(m.mRejected))
}

// TestMemoryDictionaryCompacts: pairs that churn (each window new pairs)
// do not grow the dictionary beyond what the retained windows hold.
func TestMemoryDictionaryCompacts(t *testing.T) {
	m := NewMemory(MemoryConfig{Retention: time.Minute, MaxPairs: 1 << 22}, nil)
	for i := 0; i < 40; i++ {
		w := win(i, 0)
		for p := 0; p < 5000; p++ {
			w.Pairs = append(w.Pairs, aggregate.Pair{Key: aggregate.PairKey{
				Src: aggregate.EndpointKey{IP: netip.AddrFrom4([4]byte{10, byte(i), byte(p >> 8), byte(p)})},
				Dst: aggregate.EndpointKey{IP: netip.AddrFrom4([4]byte{10, 200, 0, 1})}}, Stats: aggregate.Stats{Bytes: 1}})
		}
		m.Write(w)
		m.WaitIdle()
	}
	m.mu.RLock()
	entries := len(m.d.entries)
	m.mu.RUnlock()
	assert.LessOrEqual(t, entries, 2*6*5000+5000, "dictionary bounded by the retained windows' pairs")
	assert.Greater(t, testutil.ToFloat64(m.mCompact), 0.0)
	// Still correct after renumbering.
	res, err := m.TopPairs(context.Background(), PairQuery{From: t0, To: t0.Add(time.Hour), Source: decoder.SourceUnknown, Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, 6*5000, res.Total)
	ws, _ := m.Windows(context.Background(), t0, t0.Add(time.Hour))
	require.Len(t, ws, 6)
	assert.Equal(t, byte(39), ws[5].Pairs[0].Key.Src.IP.As4()[1])
}

func TestColdRoundTrip(t *testing.T) {
	st := aggregate.Stats{Bytes: 1, Packets: 2, Samples: 3, Flows: 4, BytesVar: 5.5, SampledPackets: 9, UDPBytes: 1e12,
		RST: 0.25, DroppedBytes: 3, First: -7, Last: 1 << 62, SYNACKIn: 7, RSTIn: 0.5}
	st.TopPorts[0] = aggregate.PortCount{Proto: 17, Port: 53, Bytes: 9.5}
	st.TopPorts[1] = aggregate.PortCount{Proto: 6, Port: 0, Bytes: 1}
	s := newSegment(1, 0)
	s.appendRow(0, &st, 1)
	var got aggregate.Stats
	s.stats(0, &got)
	assert.Equal(t, st, got)
}

// TestMemoryPortsMergeExactly: the windows' port deltas survive the tiers,
// merged by port: every bucket's sums are those of its windows, and the
// whole range sums to the total.
func TestMemoryPortsMergeExactly(t *testing.T) {
	m := NewMemory(tierCfg(), nil)
	k := aggregate.PortKey{Agent: netip.MustParseAddr("192.0.2.1"), IfIndex: 7}
	const n = 180
	for i := 0; i < n; i++ {
		w := statWin(i, 1)
		w.Ports = []aggregate.PortStats{{Key: k, VM: "a1", Seconds: 10, Samples: 1, InOctets: uint64(1000 + i), InErrors: uint64(i % 2)}}
		if i%3 == 0 {
			w.Ports = append(w.Ports, aggregate.PortStats{Key: aggregate.PortKey{Agent: k.Agent, IfIndex: 8}, Seconds: 10, OutDiscards: 1})
		}
		m.Write(w)
	}
	m.WaitIdle()
	ws, err := m.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	require.NoError(t, err)
	require.Less(t, len(ws), n, "merged into buckets")
	var oct, errs, disc uint64
	var secs float64
	for _, w := range ws {
		var wsecs float64
		for _, p := range w.Ports {
			if p.Key == k {
				oct += p.InOctets
				errs += p.InErrors
				secs += p.Seconds
				wsecs = p.Seconds
				assert.Equal(t, "a1", p.VM)
			} else {
				disc += p.OutDiscards
			}
		}
		assert.InDelta(t, w.End.Sub(w.Start).Seconds(), wsecs, 1e-9, "a bucket covers its windows' time")
	}
	assert.Equal(t, uint64(n*1000+n*(n-1)/2), oct)
	assert.Equal(t, uint64(n/2), errs)
	assert.Equal(t, uint64(n/3), disc)
	assert.Equal(t, float64(n*10), secs)
}
