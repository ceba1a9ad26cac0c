package influx

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/internal/scalefx"
	"github.com/vmflow/vmflow/store"
)

// TestTieredEmptyHistory: a range reaching before the memory store's
// oldest window (vmflow started minutes ago) is answered from memory alone
// when the real influxd holds no pair point before it — the same answer as
// memory's, without reading windows back — and falls back to reading
// windows (ErrNotCovered for the fast paths) as soon as it holds one.
func TestTieredEmptyHistory(t *testing.T) {
	const db = "vmflow_hist_empty"
	srv := startInflux(t, db)
	cfg := testConfig(t, srv.URL(), db)
	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()

	c := scalefx.New(1000, 3000)
	m := store.NewMemory(store.DefaultMemoryConfig(), nil)
	for i := 0; i < 12; i++ {
		m.Write(c.Window(i))
	}
	m.WaitIdle()
	end := scalefx.Epoch.Add(12 * 10 * time.Second)
	tiered := store.Tiered{Recent: m, History: r}
	ctx := context.Background()
	q := store.PairQuery{From: end.Add(-time.Hour), To: end, Auto: true, Limit: 50}

	t0 := time.Now()
	got, err := tiered.TopPairs(ctx, q)
	took := time.Since(t0)
	require.NoError(t, err, "empty history: memory answers")
	want, err := m.TopPairs(ctx, q)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, 3000, got.Total)
	require.Equal(t, scalefx.Epoch, got.CoveredFrom, "covered_from tells where the answer starts")
	_, err = tiered.Scan(ctx, store.ScanQuery{From: q.From, To: end, Auto: true})
	require.NoError(t, err, "console aggregates: memory answers too")
	t.Logf("since=1h over an empty history: %s (3,000 pairs, 12 windows)", took)
	ws, err := tiered.Windows(ctx, q.From, end)
	require.NoError(t, err)
	require.Len(t, ws, 12, "series routes: memory's windows, no history read")

	// one window before memory's oldest, in InfluxDB
	w := newTestWriter(t, cfg)
	require.NoError(t, w.Start(ctx))
	w.Write(c.Window(-3))
	w.Stop()
	_, err = tiered.TopPairs(ctx, q)
	require.ErrorIs(t, err, store.ErrNotCovered, "history holds data: the windows are merged as before")
	_, err = tiered.Scan(ctx, store.ScanQuery{From: q.From, To: end, Auto: true})
	require.ErrorIs(t, err, store.ErrNotCovered)
	ws, err = tiered.Windows(ctx, q.From, end)
	require.NoError(t, err)
	require.Len(t, ws, 13, "the history window and memory's 12")
	require.Len(t, ws[0].Pairs, 3000)
	// a range after that window: memory again
	_, err = tiered.TopPairs(ctx, store.PairQuery{From: scalefx.Epoch.Add(-time.Second), To: end, Auto: true, Limit: 5})
	require.NoError(t, err)
}
