package api

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// rawStore holds windows as written and is no store.Querier: the API
// merges them the slow way, the reference for the fast path.
type rawStore []*aggregate.Window

func (r rawStore) Windows(_ context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	var out []*aggregate.Window
	for _, w := range r {
		if w.End.After(from) && !w.End.After(to) {
			out = append(out, w)
		}
	}
	return out, nil
}

// hidden hides a store's Querier side.
type hidden struct{ store.Reader }

// randomWindows: n 10 s windows from T of traffic among 12 VMs and 3
// external addresses, sFlow and IPFIX, with integer statistics (so every
// sum is exact in any order) and at most 8 ports per pair (so merged top
// ports are exact too).
func randomWindows(n int, seed uint64) []*aggregate.Window {
	rng := rand.New(rand.NewPCG(seed, 1))
	type end struct {
		key aggregate.EndpointKey
		ep  aggregate.Endpoint
	}
	var ends []end
	for i := 1; i <= 12; i++ {
		ends = append(ends, end{aggregate.EndpointKey{VM: enrich.VMID(i)}, aggregate.Endpoint{
			VM: fmt.Sprintf("vm-%02d", i), UUID: fmt.Sprintf("uuid-%02d", i), Host: fmt.Sprintf("hv%d", i%3), Tenant: []string{"acme", "other"}[i%2]}})
	}
	for i := 1; i <= 3; i++ {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		ends = append(ends, end{aggregate.EndpointKey{IP: ip}, aggregate.Endpoint{IP: ip.String()}})
	}
	var ws []*aggregate.Window
	for i := 0; i < n; i++ {
		w := &aggregate.Window{Start: T.Add(time.Duration(i) * 10 * time.Second), End: T.Add(time.Duration(i+1) * 10 * time.Second)}
		seen := map[aggregate.PairKey]bool{}
		for k := 0; k < 25; k++ {
			s, d := ends[rng.IntN(len(ends))], ends[rng.IntN(len(ends))]
			src := []decoder.Source{decoder.SourceSFlow, decoder.SourceSFlow, decoder.SourceIPFIX}[rng.IntN(3)]
			key := aggregate.PairKey{Src: s.key, Dst: d.key, Source: src}
			if seen[key] {
				continue
			}
			seen[key] = true
			b := float64(rng.IntN(20)*1000 + 100)
			st := aggregate.Stats{Bytes: b, Packets: float64(rng.IntN(50) + 1), BytesVar: float64(rng.IntN(1000)) * 1e4,
				Samples: uint64(rng.IntN(30) + 1), Flows: uint64(rng.IntN(4) + 1), SampledBytes: uint64(b / 10), SampledPackets: 3,
				TCPBytes: b, TCPPackets: 7, SYN: float64(rng.IntN(3)), First: int64(i + 1), Last: int64(i + 2)}
			for p := 0; p < rng.IntN(4); p++ {
				st.TopPorts[p] = aggregate.PortCount{Proto: 6, Port: uint16(8000 + (int(s.key.VM)+p)%8), Bytes: float64(100 * (p + 1))}
			}
			w.Pairs = append(w.Pairs, aggregate.Pair{Key: key, Src: s.ep, Dst: d.ep, Stats: st})
		}
		ws = append(ws, w)
	}
	return ws
}

func serve(t *testing.T, st store.Reader, now time.Time) *testEnv {
	t.Helper()
	srv, err := New(DefaultConfig(), Deps{Store: st, WindowSize: 10 * time.Second, Now: func() time.Time { return now }})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &testEnv{srv: srv, ts: ts}
}

func getBody(t *testing.T, e *testEnv, path string) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	code := e.get(t, path, &out)
	return code, out
}

// TestFastPathEqualsMerge: the memory store's fast path (tiers merged into
// 1- and 5-minute buckets, TopPairs, WindowsWhere) answers exactly what
// merging the raw windows answers, for every sort, source, filter and
// range aligned to the tiers' buckets.
func TestFastPathEqualsMerge(t *testing.T) {
	ws := randomWindows(90, 7) // 15 minutes
	mem := store.NewMemory(store.MemoryConfig{Retention: time.Hour, FullResolution: time.Minute, Tier1Step: time.Minute,
		Tier1Until: 4 * time.Minute, Tier2Step: 5 * time.Minute, MaxPairs: 1 << 20}, nil)
	for _, w := range ws {
		mem.Write(w)
	}
	mem.WaitIdle()
	nw, _ := mem.Len()
	require.Less(t, nw, 30, "windows were merged into coarser tiers")
	now := ws[len(ws)-1].End
	fast, slow, slowMem := serve(t, mem, now), serve(t, rawStore(ws), now), serve(t, hidden{mem}, now)
	var paths []string
	for _, since := range []string{"1m", "5m", "10m", "15m", "1h"} {
		for _, sort := range []string{"bytes", "packets", "flows", "samples", "bps", "pps"} {
			for _, src := range []string{"auto", "sflow", "ipfix"} {
				paths = append(paths, fmt.Sprintf("/api/v1/pairs?since=%s&sort=%s&source=%s&limit=7", since, sort, src))
			}
		}
		for _, f := range []string{"vm=vm-03", "tenant=other", "host=hv1", "vm=vm-05&host=hv2"} {
			paths = append(paths, fmt.Sprintf("/api/v1/pairs?since=%s&%s&limit=1000", since, f))
		}
		paths = append(paths,
			"/api/v1/pairs/vm-01/vm-02/series?since="+since+"&step=5m",
			"/api/v1/pairs/vm-04/198.51.100.2/series?since="+since+"&step=5m",
			"/api/v1/vms/vm-07/series?since="+since+"&step=5m&source=sflow",
		)
	}
	for _, p := range paths {
		cf, bf := getBody(t, fast, p)
		cs, bs := getBody(t, slow, p)
		require.Equal(t, cs, cf, p)
		require.Equal(t, bs, bf, p)
	}
	// Per-window series (no step): one point per stored window, the same
	// as merging the memory store's windows the slow way.
	for _, p := range []string{"/api/v1/pairs/vm-01/vm-02/series?since=1h", "/api/v1/vms/vm-07/series?since=1h"} {
		cf, bf := getBody(t, fast, p)
		cs, bs := getBody(t, slowMem, p)
		require.Equal(t, cs, cf, p)
		require.Equal(t, bs, bf, p)
	}
}
