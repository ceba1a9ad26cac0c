package influx

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

// TestOutage streams windows into the writer while influxd is stopped
// mid-stream and restarted later; while it is down the writer itself is
// stopped and a new one started on the same spool (a vmflow restart). In
// the end every series holds one point per window and the totals per pair
// equal what was written: none missing, none duplicated.
func TestOutage(t *testing.T) {
	const db = "vmflow_outage"
	srv := ownInflux(t, db)
	cfg := testConfig(t, srv.URL(), db)
	cfg.BatchSize = 20 // several batches per window burst
	cfg.MaxRetries = 1

	base := time.Now().Add(-2 * time.Hour).Truncate(10 * time.Second)
	var wins []*aggregate.Window
	k := 0
	stream := func(w *Writer, n int) {
		for i := 0; i < n; i++ {
			win := mkWindow(base, k)
			k++
			wins = append(wins, win)
			w.Write(win)
			time.Sleep(2 * time.Millisecond)
		}
	}

	w1 := newTestWriter(t, cfg)
	require.NoError(t, w1.Start(context.Background()))
	stream(w1, 60)
	srv.Stop() // InfluxDB goes away mid-stream
	stream(w1, 60)
	w1.Stop() // vmflow restarts while InfluxDB is down
	h := w1.Health()
	require.Greater(t, h["spool_pending_points"].(int64), int64(0), "spool holds the outage: %v", h)

	w2 := newTestWriter(t, cfg)
	require.True(t, w2.spooling, "the new writer found the spool")
	require.NoError(t, w2.Start(context.Background()))
	stream(w2, 60)
	srv.Restart()
	stream(w2, 60)
	require.Eventually(t, func() bool {
		h := w2.Health()
		return h["spool_pending_points"] == int64(0) && h["queue_batches"] == 0 && h["queue_windows"] == 0
	}, 60*time.Second, 20*time.Millisecond, "spool never drained: %v", w2.Health())
	w2.Stop()
	h = w2.Health()
	assert.EqualValues(t, 0, h["spool_dropped_points"])
	assert.EqualValues(t, 0, h["dropped_points"])
	assert.EqualValues(t, 0, h["rejected_points"])
	assert.Greater(t, testutil.ToFloat64(w2.m.replayedPoints), 0.0)

	// expected totals per series
	type tot struct {
		bytes, packets float64
		samples, n     int64
	}
	want := map[string]*tot{}
	for _, win := range wins {
		for id, ep := range expectedPoints(win) {
			x := want[id]
			if x == nil {
				x = &tot{}
				want[id] = x
			}
			x.bytes += ep.fields["bytes"].(float64)
			x.packets += ep.fields["packets"].(float64)
			x.samples += ep.fields["samples"].(int64)
			x.n++
		}
	}

	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()
	rng := fmt.Sprintf(`range(start: %s, stop: %s)`, fluxTime(base), fluxTime(base.Add(3*time.Hour)))
	got := map[string]*tot{}
	for _, q := range []struct{ field, fn string }{{"bytes", "sum"}, {"packets", "sum"}, {"samples", "sum"}, {"bytes", "count"}} {
		rows := fluxRows(t, r, fmt.Sprintf(`from(bucket: %q) |> %s
  |> filter(fn: (r) => r._measurement == "vm_pair" and r._field == %q)
  |> %s()`, cfg.Bucket, rng, q.field, q.fn))
		for _, row := range rows {
			tags := map[string]string{}
			for _, k := range []string{"src_vm", "dst_vm", "source", "src_host", "dst_host", "src_tenant", "dst_tenant"} {
				if s, ok := row[k].(string); ok {
					tags[k] = s
				}
			}
			id := seriesID(tags)
			x := got[id]
			if x == nil {
				x = &tot{}
				got[id] = x
			}
			switch {
			case q.fn == "count":
				x.n = row["_value"].(int64)
			case q.field == "bytes":
				x.bytes = row["_value"].(float64)
			case q.field == "packets":
				x.packets = row["_value"].(float64)
			case q.field == "samples":
				x.samples = row["_value"].(int64)
			}
		}
	}
	require.Equal(t, len(want), len(got), "series")
	for id, x := range want {
		g := got[id]
		if !assert.NotNil(t, g, "series %s missing", id) {
			continue
		}
		assert.Equal(t, x.n, g.n, "%s: points (one per window)", id)
		assert.InDelta(t, x.bytes, g.bytes, 1e-6*x.bytes, "%s bytes", id)
		assert.InDelta(t, x.packets, g.packets, 1e-6*x.packets, "%s packets", id)
		assert.Equal(t, x.samples, g.samples, "%s samples", id)
	}
	assert.Equal(t, int64(len(wins)), want[seriesID(map[string]string{"src_vm": "web-1", "dst_vm": "db-1", "source": "sflow", "src_host": "hv1", "dst_host": "hv2", "src_tenant": "acme", "dst_tenant": "acme"})].n)
}
