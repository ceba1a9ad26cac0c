package store

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// win builds the i-th 10 s window after t0 with n distinct pairs.
func win(i, n int) *aggregate.Window {
	w := &aggregate.Window{
		Start: t0.Add(time.Duration(i) * 10 * time.Second),
		End:   t0.Add(time.Duration(i+1) * 10 * time.Second),
	}
	for p := 0; p < n; p++ {
		w.Pairs = append(w.Pairs, aggregate.Pair{
			Key: aggregate.PairKey{
				Src: aggregate.EndpointKey{IP: netip.AddrFrom4([4]byte{10, 0, byte(i), byte(p)})},
				Dst: aggregate.EndpointKey{IP: netip.AddrFrom4([4]byte{10, 1, 0, 1})},
			},
			Stats: aggregate.Stats{Bytes: float64(1000*i + p)},
		})
	}
	return w
}

func ends(ws []*aggregate.Window) []time.Time {
	out := make([]time.Time, len(ws))
	for i, w := range ws {
		out[i] = w.End
	}
	return out
}

func endsOf(idx ...int) []time.Time {
	out := make([]time.Time, len(idx))
	for i, j := range idx {
		out[i] = win(j, 0).End
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	c := DefaultConfig()
	c.Memory.Retention = 0
	c.Memory.MaxPairs = 0
	c.Memory.MaxWindows = -1
	err := c.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "store.memory.retention")
	assert.Contains(t, err.Error(), "store.memory.max_pairs")
	assert.Contains(t, err.Error(), "store.memory.max_windows")
}

func TestMemoryRangeBoundaries(t *testing.T) {
	m := NewMemory(DefaultMemoryConfig(), nil)
	for i := 0; i < 6; i++ {
		m.Write(win(i, 1))
	}
	ctx := context.Background()
	// Window i ends at t0+(i+1)*10s. (from, to] is open at from, closed at to.
	got, err := m.Windows(ctx, t0.Add(10*time.Second), t0.Add(30*time.Second))
	require.NoError(t, err)
	assert.Equal(t, endsOf(1, 2), ends(got))

	got, _ = m.Windows(ctx, t0.Add(9*time.Second), t0.Add(31*time.Second))
	assert.Equal(t, endsOf(0, 1, 2), ends(got))

	got, _ = m.Windows(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	assert.Equal(t, endsOf(0, 1, 2, 3, 4, 5), ends(got))

	got, _ = m.Windows(ctx, t0.Add(60*time.Second), t0.Add(time.Hour))
	assert.Empty(t, got)

	got, _ = m.Windows(ctx, t0.Add(30*time.Second), t0.Add(30*time.Second))
	assert.Empty(t, got)

	assert.Equal(t, t0, m.Oldest())

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = m.Windows(cctx, t0, t0.Add(time.Hour))
	assert.True(t, errors.Is(err, context.Canceled))
}

func TestMemoryOutOfOrderInsert(t *testing.T) {
	m := NewMemory(DefaultMemoryConfig(), nil)
	for _, i := range []int{0, 2, 1, 4, 3} {
		m.Write(win(i, 1))
	}
	got, _ := m.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	assert.Equal(t, endsOf(0, 1, 2, 3, 4), ends(got))
}

func TestMemoryEvictRetention(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMemory(MemoryConfig{Retention: time.Minute, MaxPairs: 1000}, reg)
	for i := 0; i < 20; i++ {
		m.Write(win(i, 2))
	}
	// Newest ends at t0+200s; keep windows ending after t0+140s: i = 14..19.
	got, _ := m.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	assert.Equal(t, endsOf(14, 15, 16, 17, 18, 19), ends(got))
	assert.Equal(t, win(14, 0).Start, m.Oldest())
	w, p := m.Len()
	assert.Equal(t, 6, w)
	assert.Equal(t, 12, p)
	assert.Equal(t, 14.0, testutil.ToFloat64(m.mEvictW.WithLabelValues("retention")))
	assert.Equal(t, 28.0, testutil.ToFloat64(m.mEvictP.WithLabelValues("retention")))
	assert.Equal(t, 6.0, testutil.ToFloat64(m.mWindows))
	assert.Equal(t, 12.0, testutil.ToFloat64(m.mPairs))

	// A window already beyond retention is refused and counted.
	m.Write(win(3, 1))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.mRejected))
	m.Write(nil)
	assert.Equal(t, 2.0, testutil.ToFloat64(m.mRejected))
	w, _ = m.Len()
	assert.Equal(t, 6, w)

	n, err := testutil.GatherAndCount(reg, "vmflow_store_memory_evicted_windows_total")
	require.NoError(t, err)
	assert.Equal(t, 3, n) // one series per reason
}

func TestMemoryEvictPairCap(t *testing.T) {
	m := NewMemory(MemoryConfig{Retention: time.Hour, MaxPairs: 10}, nil)
	for i := 0; i < 5; i++ {
		m.Write(win(i, 3)) // 3 pairs each: 15 total > 10
	}
	got, _ := m.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	assert.Equal(t, endsOf(2, 3, 4), ends(got))
	_, p := m.Len()
	assert.Equal(t, 9, p)
	assert.Equal(t, 2.0, testutil.ToFloat64(m.mEvictW.WithLabelValues("max_pairs")))
	assert.Equal(t, 6.0, testutil.ToFloat64(m.mEvictP.WithLabelValues("max_pairs")))

	// A single window larger than the cap is still kept (the newest always is).
	m.Write(win(5, 25))
	got, _ = m.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	assert.Equal(t, endsOf(5), ends(got))
	_, p = m.Len()
	assert.Equal(t, 25, p)
}

func TestMemoryEvictWindowCap(t *testing.T) {
	m := NewMemory(MemoryConfig{Retention: time.Hour, MaxWindows: 3, MaxPairs: 1000}, nil)
	for i := 0; i < 10; i++ {
		m.Write(win(i, 1))
	}
	got, _ := m.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	assert.Equal(t, endsOf(7, 8, 9), ends(got))
	assert.Equal(t, 7.0, testutil.ToFloat64(m.mEvictW.WithLabelValues("max_windows")))
}

func TestMemoryBoundedUnderLongRun(t *testing.T) {
	m := NewMemory(MemoryConfig{Retention: time.Minute, MaxPairs: 1000}, nil)
	for i := 0; i < 5000; i++ {
		m.Write(win(i, 1))
	}
	w, _ := m.Len()
	assert.Equal(t, 6, w)
	m.mu.RLock()
	c := cap(m.segs)
	m.mu.RUnlock()
	assert.Less(t, c, 200, "backing array must not grow with the number of writes")
}

type fakeHistory struct {
	windows []*aggregate.Window
	calls   [][2]time.Time
	err     error
}

func (f *fakeHistory) Windows(_ context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	f.calls = append(f.calls, [2]time.Time{from, to})
	if f.err != nil {
		return nil, f.err
	}
	var out []*aggregate.Window
	for _, w := range f.windows {
		if w.End.After(from) && !w.End.After(to) {
			out = append(out, w)
		}
	}
	return out, nil
}

func TestTieredBoundary(t *testing.T) {
	// History has windows 0..9; memory has 6..11 (overlap 6..9).
	hist := &fakeHistory{}
	for i := 0; i < 10; i++ {
		hist.windows = append(hist.windows, win(i, 1))
	}
	mem := NewMemory(DefaultMemoryConfig(), nil)
	for i := 6; i < 12; i++ {
		mem.Write(win(i, 1))
	}
	tr := Tiered{Recent: mem, History: hist}
	ctx := context.Background()

	got, err := tr.Windows(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, endsOf(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), ends(got), "each window exactly once, in order")
	// Windows 6.. come from memory.
	for _, w := range got[6:] {
		mw, _ := mem.Windows(ctx, w.End.Add(-time.Second), w.End)
		require.Len(t, mw, 1)
		assert.Equal(t, mw[0], w)
	}
	// History was asked only up to memory's oldest start.
	require.Len(t, hist.calls, 1)
	assert.Equal(t, win(6, 0).Start, hist.calls[0][1])

	// A range entirely in memory never asks history.
	hist.calls = nil
	got, err = tr.Windows(ctx, win(7, 0).End, win(10, 0).End)
	require.NoError(t, err)
	assert.Equal(t, endsOf(8, 9, 10), ends(got))
	assert.Empty(t, hist.calls)

	// A range starting exactly at the boundary: window 6 (ends after it) from memory only.
	got, _ = tr.Windows(ctx, win(6, 0).Start, win(7, 0).End)
	assert.Equal(t, endsOf(6, 7), ends(got))

	// A range entirely in history.
	got, _ = tr.Windows(ctx, win(1, 0).End, win(3, 0).End)
	assert.Equal(t, endsOf(2, 3), ends(got))

	// History errors surface when history is needed.
	hist.err = errors.New("influx down")
	_, err = tr.Windows(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "influx down")
}

func TestTieredStraddlingHistoryWindowDropped(t *testing.T) {
	mem := NewMemory(DefaultMemoryConfig(), nil)
	mem.Write(win(5, 1)) // covers [t0+50s, t0+60s]
	odd := &aggregate.Window{Start: t0.Add(45 * time.Second), End: t0.Add(55 * time.Second)}
	hist := &fakeHistory{windows: []*aggregate.Window{win(3, 1), odd}}
	got, err := Tiered{Recent: mem, History: hist}.Windows(context.Background(), t0, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, endsOf(3, 5), ends(got))
}

func TestTieredEmptyMemoryOrNoHistory(t *testing.T) {
	hist := &fakeHistory{windows: []*aggregate.Window{win(0, 1), win(1, 1)}}
	mem := NewMemory(DefaultMemoryConfig(), nil)
	got, err := Tiered{Recent: mem, History: hist}.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, endsOf(0, 1), ends(got))

	mem.Write(win(4, 1))
	got, err = Tiered{Recent: mem}.Windows(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, endsOf(4), ends(got))
}
