package api

import (
	"context"
	"errors"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/store"
)

// The pair routes' fast path: when the store is a store.Querier (the
// memory store, or store.Tiered over a range memory covers), /pairs asks
// it for the top pairs directly (it accumulates in flat arrays over its
// compact windows and decodes only the returned pairs' rows), and the
// series routes ask it for only the matching pairs' windows. Otherwise, or
// when Tiered answers store.ErrNotCovered (the range reaches into
// InfluxDB history), the handlers merge whole windows as before.

func pairQuery(from, to time.Time, source, sortKey string, limit int, f filter) store.PairQuery {
	q := store.PairQuery{From: from, To: to, Limit: limit}
	q.Source, q.Auto = sourceOf(source)
	switch sortKey {
	case "packets", "pps":
		q.Sort = store.SortPackets
	case "flows":
		q.Sort = store.SortFlows
	case "samples":
		q.Sort = store.SortSamples
	default:
		q.Sort = store.SortBytes
	}
	if f != (filter{}) {
		q.Match = func(_ *aggregate.PairKey, src, dst *aggregate.Endpoint) bool { return f.matchEndpoints(src, dst) }
	}
	return q
}

// fastPairs fills out from a Querier; ok=false when the store has no fast
// path for the range.
func (s *Server) fastPairs(ctx context.Context, out *pairsOut, q store.PairQuery) (ok bool, err error) {
	qr, is := s.deps.Store.(store.Querier)
	if !is {
		return false, nil
	}
	res, err := qr.TopPairs(ctx, q)
	if errors.Is(err, store.ErrNotCovered) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	out.Windows, out.TotalPairs = res.Windows, res.Total
	var covered time.Duration
	if res.Windows > 0 {
		cf, ct := res.CoveredFrom, res.CoveredTo
		out.CoveredFrom, out.CoveredTo = &cf, &ct
		covered = ct.Sub(cf)
	}
	for i := range res.Pairs {
		g := &res.Pairs[i]
		a := acc{latest: &g.Latest, stats: g.Stats, sources: g.Sources, windows: g.Windows}
		out.Pairs = append(out.Pairs, pairResult(&a, covered))
	}
	return true, nil
}

// windowsWhere reads the range's windows, only the pairs keep selects when
// the store can filter (the handlers still check every pair they visit).
func (s *Server) windowsWhere(ctx context.Context, from, to time.Time, keep store.Match) ([]*aggregate.Window, error) {
	if qr, ok := s.deps.Store.(store.Querier); ok {
		return qr.WindowsWhere(ctx, from, to, keep)
	}
	return s.deps.Store.Windows(ctx, from, to)
}
