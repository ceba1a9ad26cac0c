package influx

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

// TestWindowMergedExactly: with influx.window = 30 s, 10 s windows are
// merged into one point per series per 30 s, stamped at the 30 s
// boundary; the stop flushes the open merged window at the last window's
// end. Per series, bytes and variances summed over the points equal the
// sums over the 10 s windows, exactly.
func TestWindowMergedExactly(t *testing.T) {
	const db = "vmflow_merge"
	srv := startInflux(t, db)
	cfg := testConfig(t, srv.URL(), db)
	cfg.Window = 30 * time.Second
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	var wins []*aggregate.Window
	for k := 0; k < 7; k++ { // 0–70 s: merged at 30, 60, and 70 (stop)
		wins = append(wins, mkWindow(base, k))
	}
	w := newTestWriter(t, cfg)
	require.NoError(t, w.Start(context.Background()))
	for _, win := range wins {
		w.Write(win)
	}
	w.Stop()
	require.EqualValues(t, 0, w.Health()["spool_pending_points"])

	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()
	wantBytes, wantVar := map[string]float64{}, map[string]float64{}
	for _, win := range wins {
		for id, ep := range expectedPoints(win) {
			wantBytes[id] += ep.fields["bytes"].(float64)
			wantVar[id] += ep.fields["bytes_var"].(float64)
		}
	}
	sums, counts := seriesBytes(t, r, cfg.Bucket, base, base.Add(time.Hour))
	assert.Equal(t, wantBytes, sums)
	for id, n := range counts {
		assert.EqualValues(t, 3, n, "%s: points at 30 s, 60 s and the stop (70 s)", id)
	}
	rows := fluxRows(t, r, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "vm_pair" and (r._field == "bytes_var" or r._field == "interval"))
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		cfg.Bucket, fluxTime(base), fluxTime(base.Add(time.Hour))))
	gotVar := map[string]float64{}
	times := map[time.Duration]int64{}
	for _, row := range rows {
		gotVar[seriesID(tagsOf(row))] += row["bytes_var"].(float64)
		times[row["_time"].(time.Time).Sub(base)] = row["interval"].(int64)
	}
	assert.Equal(t, wantVar, gotVar)
	assert.Equal(t, map[time.Duration]int64{30 * time.Second: 30, 60 * time.Second: 30, 70 * time.Second: 10}, times)
}
