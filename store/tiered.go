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
// The boundary b is Recent.Oldest(), the start of the oldest window in
// memory. History answers (from, min(to, b)] and memory (max(from, b), to];
// since a window ends after it starts, every window memory holds ends after
// b, and any History window ending after b is dropped, so no window is
// returned twice. A History window straddling b (from a previous run with
// different alignment) is dropped too: memory is authoritative after b.
type Tiered struct {
	Recent  *Memory
	History Reader // may be nil: no history before memory's coverage
}

var _ Reader = Tiered{}

// Windows returns the windows ending in (from, to], oldest first.
func (t Tiered) Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	if !to.After(from) {
		return nil, nil
	}
	if t.Recent == nil {
		if t.History == nil {
			return nil, nil
		}
		return t.History.Windows(ctx, from, to)
	}
	b := t.Recent.Oldest()
	var out []*aggregate.Window
	if t.History != nil && (b.IsZero() || from.Before(b)) {
		hto := to
		if !b.IsZero() && b.Before(hto) {
			hto = b
		}
		hist, err := t.History.Windows(ctx, from, hto)
		if err != nil {
			return nil, fmt.Errorf("history windows: %w", err)
		}
		for _, w := range hist {
			if w == nil || !w.End.After(from) || w.End.After(hto) {
				continue
			}
			out = append(out, w)
		}
	}
	if b.IsZero() {
		// Memory is empty: history is all there is.
		return out, nil
	}
	mfrom := from
	if mfrom.Before(b) {
		mfrom = b
	}
	if !to.After(mfrom) {
		return out, nil
	}
	recent, err := t.Recent.Windows(ctx, mfrom, to)
	if err != nil {
		return nil, fmt.Errorf("memory windows: %w", err)
	}
	if len(out) == 0 {
		return recent, nil
	}
	return append(out, recent...), nil
}
