package store

import (
	"context"
	"fmt"
	"time"

	"github.com/vmflow/vmflow/aggregate"
)

// Tiered answers a range from the in-memory store where memory covers it
// and from History (e.g. InfluxDB) before that.
//
// Memory is read first, as one snapshot: mem = Recent.Windows(from, to].
// Memory covers time completely from the start of its oldest window b (it
// only ever evicts its oldest windows). When from >= b nothing older is
// needed and History is not asked (the common "last few minutes" query
// costs no InfluxDB round trip). Otherwise the boundary is the start of the
// oldest window of the snapshot (which then is memory's oldest window: it
// was read under the same lock, so an eviction racing with the query cannot
// open a gap), or min(to, b) when memory holds nothing in the range; History answers
// (from, boundary] and memory the rest. Every memory window ends after the
// boundary and every History window kept ends at or before it, so no window
// is returned twice and none is missing. A History window ending after the
// boundary (e.g. one straddling it, from a previous run with a different
// window alignment) is dropped: memory is authoritative after the boundary.
type Tiered struct {
	Recent  *Memory
	History Reader // may be nil: no history before memory's coverage
}

var (
	_ Reader  = Tiered{}
	_ Querier = Tiered{}
)

// covered tells whether memory alone answers (from, to]: there is no
// history, memory covers time from before from, or the history holds no
// pair row between from and memory's oldest window (history.go).
func (t Tiered) covered(ctx context.Context, from time.Time) bool {
	if t.History == nil {
		return true
	}
	b := t.Recent.Oldest()
	return (!b.IsZero() && !from.Before(b)) || t.historyEmpty(ctx, from, b)
}

// TopPairs answers from memory when memory covers the range, else
// ErrNotCovered (the caller merges windows itself).
func (t Tiered) TopPairs(ctx context.Context, q PairQuery) (*PairResult, error) {
	if t.Recent == nil || !t.covered(ctx, q.From) {
		return nil, ErrNotCovered
	}
	return t.Recent.TopPairs(ctx, q)
}

// Windows returns the windows ending in (from, to], oldest first.
func (t Tiered) Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	return t.WindowsWhere(ctx, from, to, nil)
}

// WindowsWhere is Windows holding only the pairs keep selects (nil: all).
func (t Tiered) WindowsWhere(ctx context.Context, from, to time.Time, keep Match) ([]*aggregate.Window, error) {
	if !to.After(from) {
		return nil, nil
	}
	if t.Recent == nil {
		if t.History == nil {
			return nil, nil
		}
		ws, err := t.History.Windows(ctx, from, to)
		return filterWindows(ws, keep), err
	}
	recent, err := t.Recent.WindowsWhere(ctx, from, to, keep)
	if err != nil {
		return nil, fmt.Errorf("memory windows: %w", err)
	}
	if t.History == nil {
		return recent, nil
	}
	// Oldest is read after the snapshot: it can only have moved forward
	// (evictions), so from >= b implies memory covered from at read time.
	b := t.Recent.Oldest()
	if !b.IsZero() && !from.Before(b) {
		return recent, nil
	}
	boundary := to
	if len(recent) > 0 {
		boundary = recent[0].Start
	} else if !b.IsZero() && b.Before(to) {
		// Memory's oldest window starts in the range but ends after it.
		boundary = b
	}
	if !boundary.After(from) || t.historyEmpty(ctx, from, boundary) {
		return recent, nil
	}
	hist, err := t.History.Windows(ctx, from, boundary)
	if err != nil {
		return nil, fmt.Errorf("history windows: %w", err)
	}
	out := make([]*aggregate.Window, 0, len(hist)+len(recent))
	for _, w := range hist {
		if w == nil || !w.End.After(from) || w.End.After(boundary) {
			continue
		}
		out = append(out, w)
	}
	return append(filterWindows(out, keep), recent...), nil
}

// filterWindows keeps the pairs keep selects (in copies of the windows).
func filterWindows(ws []*aggregate.Window, keep Match) []*aggregate.Window {
	if keep == nil {
		return ws
	}
	out := make([]*aggregate.Window, len(ws))
	for i, w := range ws {
		c := &aggregate.Window{Start: w.Start, End: w.End, Ports: w.Ports}
		for j := range w.Pairs {
			p := &w.Pairs[j]
			if keep(&p.Key, &p.Src, &p.Dst) {
				c.Pairs = append(c.Pairs, *p)
			}
		}
		out[i] = c
	}
	return out
}
