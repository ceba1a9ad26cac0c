package store

import (
	"context"
	"time"

	"github.com/vmflow/vmflow/aggregate"
)

// Reader returns the closed windows that end in (from, to], oldest first.
// The memory store answers recent ranges; the InfluxDB reader answers
// older ones; Tiered merges both at the boundary.
type Reader interface {
	Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error)
}
