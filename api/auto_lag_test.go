package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/store"
)

// A bridge exports both sFlow and IPFIX. A flow starts late in window 0:
// sFlow samples it at once, but OVS exports its IPFIX record only after the
// cache's active timeout, so the record lands in window 1 (with the rest of
// the flow). ?source=auto must report the flow once (the IPFIX view), not
// sFlow's window 0 plus IPFIX's window 1 — neither in the totals nor in the
// series.
func TestAutoDoesNotCountIPFIXLagTwice(t *testing.T) {
	pair := func(src decoder.Source, bytes float64) aggregate.Pair {
		return aggregate.Pair{Key: aggregate.PairKey{Src: web1.key(), Dst: db1.key(), Source: src},
			Src: web1.endpoint(), Dst: db1.endpoint(),
			Stats: aggregate.Stats{Bytes: bytes, Packets: bytes / 1000, Samples: 1}}
	}
	ws := []*aggregate.Window{
		{Start: T, End: T.Add(10 * time.Second), Pairs: []aggregate.Pair{
			pair(decoder.SourceSFlow, 4000), // the flow's first 4 kB, sampled by sFlow only
		}},
		{Start: T.Add(10 * time.Second), End: T.Add(20 * time.Second), Pairs: []aggregate.Pair{
			pair(decoder.SourceSFlow, 6000),
			pair(decoder.SourceIPFIX, 10000), // the whole flow: 4 kB of window 0 + 6 kB
		}},
	}
	e := newEnv(t, func(d *Deps, _ *Config) {
		mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
		for _, w := range ws {
			mem.Write(w)
		}
		d.Store, d.Recent = mem, mem
	})
	var r jPairs
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m", &r))
	require.Len(t, r.Pairs, 1)
	near(t, 10000, r.Pairs[0].Bytes, "auto: the IPFIX view, once")
	var s jSeries
	require.Equal(t, 200, e.get(t, "/api/v1/pairs/web-1/db-1/series?since=1m", &s))
	sum := 0.0
	for _, p := range s.Points {
		sum += p.Bytes
	}
	near(t, 10000, sum, "auto series: the IPFIX view, once")
	// Each protocol alone still shows its own view.
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&source=sflow", &r))
	near(t, 10000, r.Pairs[0].Bytes, "sflow view")
}
