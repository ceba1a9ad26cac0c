package influx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/query"

	"github.com/vmflow/vmflow/store"
)

var _ store.HistoryProbe = (*Reader)(nil)

var errFound = errors.New("found")

// HasPairs tells whether any pair traffic is stamped in (from, to]. It
// probes the per-VM points (measurement vm, field interval: written with
// every window for each VM of its pairs, ~1 series per VM and source)
// rather than vm_pair itself: on InfluxDB 1.8 even an empty range costs a
// cursor per series of the shard, and vm_pair has one per pair and field
// (6,000,000 at 200,000 pairs: the probe took longer than the API's 30 s
// write timeout). One point per series at most is read (limit), and the
// query stops at the first record. store.Tiered asks it before falling
// back to reading whole windows, so that a range reaching before vmflow's
// start costs nothing more than this when InfluxDB holds nothing there.
func (r *Reader) HasPairs(ctx context.Context, from, to time.Time) (bool, error) {
	if !to.After(from) {
		return false, nil
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => r._measurement == %q and r._field == "interval")
  |> limit(n: 1)`, fluxString(r.cfg.Bucket), rangeFor(from, to), MeasurementVM)
	err := r.query(ctx, flux, func(*query.FluxRecord) error { return errFound })
	switch {
	case errors.Is(err, errFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("history probe: %w", err)
	}
	return false, nil
}
