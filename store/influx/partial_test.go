package influx

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

// reshape returns window k of mkWindow moved to [start, end).
func reshape(base time.Time, k int, start, end time.Time) *aggregate.Window {
	w := mkWindow(base, k)
	w.Start, w.End = start, end
	return w
}

// seriesBytes sums bytes per vm_pair series over [from, to] and counts the
// points, with Flux.
func seriesBytes(t *testing.T, r *Reader, bucket string, from, to time.Time) (map[string]float64, map[string]int64) {
	t.Helper()
	q := func(fn string) []map[string]any {
		return fluxRows(t, r, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "vm_pair" and r._field == "bytes")
  |> group(columns: ["src_vm", "dst_vm", "source", "src_host", "dst_host", "src_tenant", "dst_tenant"])
  |> %s()`, bucket, fluxTime(from), fluxTime(to), fn))
	}
	sums, counts := map[string]float64{}, map[string]int64{}
	for _, row := range q("sum") {
		sums[seriesID(tagsOf(row))] = row["_value"].(float64)
	}
	for _, row := range q("count") {
		counts[seriesID(tagsOf(row))] = row["_value"].(int64)
	}
	return sums, counts
}

func tagsOf(row map[string]any) map[string]string {
	tags := map[string]string{}
	for _, k := range []string{"src_vm", "dst_vm", "source", "src_host", "dst_host", "src_tenant", "dst_tenant"} {
		if s, ok := row[k].(string); ok {
			tags[k] = s
		}
	}
	return tags
}

// TestPartialWindowsNeverOverwrite writes what two vmflow runs produce
// around a restart: full windows, the partial window flushed at stop 300 ms
// after a boundary, the partial first window of the next run and a partial
// window flushed mid-window. Each is its own point (the partial one is not
// stamped on the boundary of the full window before it), so the bytes per
// series in InfluxDB are exactly the sum of every window written; the
// step sums of PairSeries put each partial window in the step it belongs to.
func TestPartialWindowsNeverOverwrite(t *testing.T) {
	const db = "vmflow_partial"
	srv := startInflux(t, db)
	cfg := testConfig(t, srv.URL(), db)
	base := time.Now().Add(-time.Hour).Truncate(10 * time.Second)
	sec := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	run1 := []*aggregate.Window{
		reshape(base, 0, sec(0), sec(10)),
		reshape(base, 1, sec(10), sec(20)),
		reshape(base, 2, sec(20), sec(20.3)), // stop 300 ms after a boundary
	}
	run2 := []*aggregate.Window{
		reshape(base, 3, sec(20.8), sec(30)), // first window after the restart
		reshape(base, 4, sec(30), sec(34.6)), // stop mid-window
	}
	w1 := newTestWriter(t, cfg)
	require.NoError(t, w1.Start(context.Background()))
	for _, w := range run1 {
		w1.Write(w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	require.NoError(t, w1.Drain(ctx))
	cancel()
	w1.Stop()
	w2 := newTestWriter(t, cfg)
	require.NoError(t, w2.Start(context.Background()))
	for _, w := range run2 {
		w2.Write(w)
	}
	w2.Stop()
	require.EqualValues(t, 0, w2.Health()["spool_pending_points"])

	want := map[string]float64{}
	wins := append(append([]*aggregate.Window(nil), run1...), run2...)
	for _, w := range wins {
		for id, ep := range expectedPoints(w) {
			want[id] += ep.fields["bytes"].(float64)
		}
	}
	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()
	sums, counts := seriesBytes(t, r, cfg.Bucket, base, base.Add(time.Minute))
	assert.Equal(t, want, sums, "bytes per series = the sum of every window")
	for id, n := range counts {
		assert.EqualValues(t, len(wins), n, "one point per window in %s", id)
	}

	// The partial window's own stamp, interval (rounded up) and true rate.
	rows := fluxRows(t, r, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "vm_pair" and r.src_vm == "web-1" and r.dst_vm == "db-1" and r.source == "sflow")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		cfg.Bucket, fluxTime(sec(20.1)), fluxTime(sec(20.5))))
	require.Len(t, rows, 1)
	assert.Equal(t, sec(20.3).UTC(), rows[0]["_time"].(time.Time).UTC())
	assert.Equal(t, int64(1), rows[0]["interval"])
	p := run1[2].Pairs[0]
	assert.InDelta(t, p.Stats.Bytes*8/0.3, rows[0]["bps"], 1e-6)

	// Windows rebuilds the partial window as a window of its own.
	back, err := r.Windows(context.Background(), sec(10), sec(30))
	require.NoError(t, err)
	require.Len(t, back, 3)
	assert.Equal(t, sec(20.3).UTC(), back[1].End.UTC())

	// Steps of 10 s: (20, 30] holds the windows ending at 20.3 and 30.
	ps, err := r.PairSeries(context.Background(), "web-1", "db-1", base, sec(40), 10*time.Second)
	require.NoError(t, err)
	got := map[int64]float64{}
	for _, pt := range ps {
		if pt.Source == "sflow" {
			got[pt.Time.Sub(base).Milliseconds()/1000] = pt.Bytes
		}
	}
	pairBytes := func(w *aggregate.Window) float64 { return w.Pairs[0].Stats.Bytes } // web-1 → db-1, sflow
	assert.Equal(t, map[int64]float64{
		10: pairBytes(run1[0]),
		20: pairBytes(run1[1]),
		30: pairBytes(run1[2]) + pairBytes(run2[0]),
		40: pairBytes(run2[1]),
	}, got)
}

// TestDrainSpoolsWhenInfluxDown: InfluxDB is down when vmflow stops. Drain
// returns when its deadline passes, with the last window in the spool
// (not dropped); the next run replays it into InfluxDB.
func TestDrainSpoolsWhenInfluxDown(t *testing.T) {
	const db = "vmflow_drain_down"
	srv := startInflux(t, db)
	cfg := testConfig(t, "http://127.0.0.1:1", db) // nothing listens there
	cfg.MaxRetries = 20                            // it would retry for longer than the deadline
	base := time.Now().Add(-time.Hour).Truncate(10 * time.Second)
	win := reshape(base, 0, base, base.Add(3700*time.Millisecond))

	w1 := newTestWriter(t, cfg)
	require.NoError(t, w1.Start(context.Background()))
	w1.Write(win)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	t0 := time.Now()
	require.NoError(t, w1.Drain(ctx))
	cancel()
	took := time.Since(t0)
	w1.Stop() // after Drain: only closes
	assert.Less(t, took, 4*time.Second, "Drain honours its context's deadline")
	h := w1.Health()
	require.Positive(t, testutil.ToFloat64(w1.m.encodedPoints))
	assert.EqualValues(t, testutil.ToFloat64(w1.m.encodedPoints), h["spool_pending_points"], "the window is in the spool: %v", h)
	assert.Zero(t, testutil.ToFloat64(w1.m.droppedPoints.WithLabelValues("stopped")))

	cfg.URL = srv.URL()
	w2 := newTestWriter(t, cfg)
	require.NoError(t, w2.Start(context.Background()))
	require.Eventually(t, func() bool { return w2.Health()["spool_pending_points"] == int64(0) }, 20*time.Second, 20*time.Millisecond)
	w2.Stop()
	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()
	sums, _ := seriesBytes(t, r, cfg.Bucket, base, base.Add(time.Minute))
	want := map[string]float64{}
	for id, ep := range expectedPoints(win) {
		want[id] = ep.fields["bytes"].(float64)
	}
	assert.Equal(t, want, sums)
}

// TestLegacySpoolRecordsReplayed: a spool written before windows were
// stamped to the nanosecond (record version 1, timestamps in seconds) is
// replayed at the right time.
func TestLegacySpoolRecordsReplayed(t *testing.T) {
	const db = "vmflow_legacy_spool"
	srv := startInflux(t, db)
	cfg := testConfig(t, srv.URL(), db)
	ts := time.Now().Add(-time.Hour).Truncate(10 * time.Second)
	sp, err := openSpool(cfg.Spool.Dir, cfg.Spool.MaxBytes, cfg.Spool.segmentBytes())
	require.NoError(t, err)
	lp := fmt.Sprintf("vm_pair,dst_host=-,dst_tenant=-,dst_vm=b,source=sflow,src_host=-,src_tenant=-,src_vm=a bytes=42,top_ports=\"6/80=1 17/53=2\",interval=10i %d\n"+
		"vm,host=-,source=sflow,tenant=-,vm=a tx_bytes=42 %d\n", ts.Unix(), ts.Unix())
	_, err = sp.Append([]byte(lp), 2)
	require.NoError(t, err)
	require.NoError(t, sp.Close())
	segs, err := filepath.Glob(filepath.Join(cfg.Spool.Dir, "*"+segSuffix))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{recVersionS}, 3) // as an older vmflow wrote it
	require.NoError(t, err)
	require.NoError(t, f.Close())

	w := newTestWriter(t, cfg)
	require.True(t, w.spooling)
	require.NoError(t, w.Start(context.Background()))
	require.Eventually(t, func() bool { return w.Health()["spool_pending_points"] == int64(0) }, 20*time.Second, 20*time.Millisecond)
	w.Stop()
	assert.EqualValues(t, 2, testutil.ToFloat64(w.m.replayedPoints))
	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()
	rows := fluxRows(t, r, fmt.Sprintf(`from(bucket: %q) |> range(start: %s, stop: %s) |> filter(fn: (r) => r._field == "bytes" or r._field == "tx_bytes")`,
		cfg.Bucket, fluxTime(ts.Add(-time.Minute)), fluxTime(ts.Add(time.Minute))))
	require.Len(t, rows, 2)
	for _, row := range rows {
		assert.Equal(t, ts.UTC(), row["_time"].(time.Time).UTC())
		assert.Equal(t, 42.0, row["_value"])
	}
}

func TestSecondsToNanos(t *testing.T) {
	in := "m,t=a f=1,s=\"x 1\" 1700000000\nm f=2i 1700000010\nm f=3 1700000020000000000\n"
	want := "m,t=a f=1,s=\"x 1\" 1700000000000000000\nm f=2i 1700000010000000000\nm f=3 1700000020000000000\n"
	assert.Equal(t, want, string(secondsToNanos([]byte(in))))
}
