package store

import (
	"context"
	"time"
)

// HistoryProbe is a history Reader (InfluxDB) that can tell cheaply
// whether it holds any pair traffic in a range.
type HistoryProbe interface {
	// HasPairs tells whether any pair row ends in (from, to].
	HasPairs(ctx context.Context, from, to time.Time) (bool, error)
}

// historyEmpty tells whether History holds nothing in (from, b], b being
// memory's oldest window start: then memory alone answers a range from
// from exactly (e.g. "the last hour" minutes after vmflow's first start,
// the history holding nothing before it), without reading windows back.
// False when History cannot tell, or on error (the caller reads windows
// as before).
func (t Tiered) historyEmpty(ctx context.Context, from, b time.Time) bool {
	hp, ok := t.History.(HistoryProbe)
	if !ok || b.IsZero() || !b.After(from) {
		return false
	}
	has, err := hp.HasPairs(ctx, from, b)
	return err == nil && !has
}
