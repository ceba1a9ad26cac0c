package influx

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

// The window queue is bounded by memory (influx.queue_bytes), not only by
// count: while the encoder is busy, windows beyond the bound are encoded
// at once into batches (memory queue, then spool), counted as overflows;
// no point is lost, and the queue never holds more than the bound plus one
// window.
func TestQueueBoundedByBytes(t *testing.T) {
	srv := &scriptedServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := testConfig(t, ts.URL, "q")
	cfg.QueueBytes = 1 << 20
	cfg.QueueWindows = 64
	w := newTestWriter(t, cfg)
	base := time.Unix(1_700_000_000, 0)
	var wins []*aggregate.Window
	points := 0
	for k := 0; k < 8; k++ { // ~0.75 MB each: more than one does not fit
		win := benchWindow(1000, base.Add(time.Duration(k+1)*10*time.Second))
		wins = append(wins, win)
		require.Greater(t, windowBytes(win), cfg.QueueBytes/2)
		w.Write(win) // not started: nothing dequeues
		assert.LessOrEqual(t, w.inBytes.Load(), cfg.QueueBytes+windowBytes(win))
	}
	assert.Equal(t, 1, len(w.in), "one window queued, the others over the byte bound")
	assert.Equal(t, 7.0, testutil.ToFloat64(w.m.queueOverflow))
	for _, win := range wins {
		e := newEncoder()
		e.prepare(win)
		points += len(e.pairs) + len(e.vms) // (vm_info depends on the order encoded)
	}
	require.NoError(t, w.Start(t.Context()))
	w.Stop()
	assert.Zero(t, w.inBytes.Load())
	srv.mu.Lock()
	defer srv.mu.Unlock()
	got := 0
	for _, b := range srv.accepted {
		for _, l := range strings.Split(b, "\n") {
			if strings.HasPrefix(l, MeasurementPair+",") || strings.HasPrefix(l, MeasurementVM+",") {
				got++
			}
		}
	}
	assert.Equal(t, points, got, "every point written")
}
