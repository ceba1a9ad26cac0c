package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

// TestTieredEveryRange checks every range over a timeline where history
// holds windows 0..13 (the writer keeps everything) and memory 8..19 (it
// evicted 0..7): for each (from, to], on window boundaries and between them,
// the result holds each window ending in the range exactly once, in order,
// memory's copy wherever memory has one, and the byte total equals the sum
// of the windows ending in the range.
func TestTieredEveryRange(t *testing.T) {
	hist := &fakeHistory{}
	for i := 0; i < 14; i++ {
		w := win(i, 1)
		w.Pairs[0].Src.Host = "from-history" // tells the copies apart
		hist.windows = append(hist.windows, w)
	}
	mem := NewMemory(DefaultMemoryConfig(), nil)
	memWin := map[time.Time]*aggregate.Window{}
	for i := 8; i < 20; i++ {
		w := win(i, 1)
		mem.Write(w)
		memWin[w.End] = w
	}
	tr := Tiered{Recent: mem, History: hist}
	ctx := context.Background()
	var offsets []time.Duration
	for s := -10; s <= 210; s += 5 {
		offsets = append(offsets, time.Duration(s)*time.Second)
	}
	for _, fo := range offsets {
		for _, to := range offsets {
			from, to := t0.Add(fo), t0.Add(to)
			if !to.After(from) {
				continue
			}
			hist.calls = nil
			got, err := tr.Windows(ctx, from, to)
			require.NoError(t, err)
			want := []time.Time{}
			var wantBytes, gotBytes float64
			for i := 0; i < 20; i++ {
				w := win(i, 1)
				if w.End.After(from) && !w.End.After(to) {
					want = append(want, w.End)
					wantBytes += w.Pairs[0].Stats.Bytes
				}
			}
			msg := fmt.Sprintf("range (%s, %s]", fo, to.Sub(t0))
			require.Equal(t, want, ends(got), msg)
			for _, w := range got {
				gotBytes += w.Pairs[0].Stats.Bytes
				if _, ok := memWin[w.End]; ok {
					assert.NotEqual(t, "from-history", w.Pairs[0].Src.Host, "%s: memory is authoritative after the boundary", msg)
				}
			}
			assert.Equal(t, wantBytes, gotBytes, msg)
			if !from.Before(win(8, 0).Start) {
				assert.Empty(t, hist.calls, "%s: memory covers the range, history not asked", msg)
			} else {
				require.Len(t, hist.calls, 1, msg)
				assert.False(t, hist.calls[0][1].After(win(8, 0).Start), "%s: history asked only up to memory's oldest start", msg)
			}
		}
	}
}

// A restart: memory starts later than history ends (vmflow was down in
// between); the range spanning both has the old windows, the gap and the
// new ones, and nothing else.
func TestTieredAfterRestartGap(t *testing.T) {
	hist := &fakeHistory{windows: []*aggregate.Window{win(0, 2), win(1, 2), win(2, 2)}}
	mem := NewMemory(DefaultMemoryConfig(), nil)
	mem.Write(win(10, 2))
	mem.Write(win(11, 2))
	got, err := Tiered{Recent: mem, History: hist}.Windows(context.Background(), t0.Add(-time.Minute), t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, endsOf(0, 1, 2, 10, 11), ends(got))
	require.Len(t, hist.calls, 1)
	assert.Equal(t, win(10, 0).Start, hist.calls[0][1])

	// The range ends inside the gap: memory holds nothing in it, history
	// answers the whole range.
	hist.calls = nil
	got, err = Tiered{Recent: mem, History: hist}.Windows(context.Background(), t0.Add(15*time.Second), t0.Add(80*time.Second))
	require.NoError(t, err)
	assert.Equal(t, endsOf(1, 2), ends(got))
	require.Len(t, hist.calls, 1)
	assert.Equal(t, t0.Add(80*time.Second), hist.calls[0][1])
}

// badHistory ignores the range it is asked for and returns nil windows:
// Tiered still returns only windows in the range, once.
type badHistory struct{ windows []*aggregate.Window }

func (b badHistory) Windows(context.Context, time.Time, time.Time) ([]*aggregate.Window, error) {
	return b.windows, nil
}

func TestTieredDefendsAgainstSloppyHistory(t *testing.T) {
	mem := NewMemory(DefaultMemoryConfig(), nil)
	mem.Write(win(5, 1))
	mem.Write(win(6, 1))
	hist := badHistory{windows: []*aggregate.Window{win(0, 1), nil, win(2, 1), win(4, 1), win(5, 1), win(6, 1), win(9, 1)}}
	got, err := Tiered{Recent: mem, History: hist}.Windows(context.Background(), win(1, 0).End, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, endsOf(2, 4, 5, 6), ends(got))

	// Without memory, history is trusted as is (it is the only tier).
	got, err = Tiered{History: &fakeHistory{windows: hist.windows[2:4]}}.Windows(context.Background(), t0, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, endsOf(2, 4), ends(got))

	// An empty or inverted range asks nobody.
	fh := &fakeHistory{}
	got, err = Tiered{Recent: mem, History: fh}.Windows(context.Background(), t0.Add(time.Hour), t0)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Empty(t, fh.calls)
}

func TestTieredContextCancelled(t *testing.T) {
	mem := NewMemory(DefaultMemoryConfig(), nil)
	mem.Write(win(5, 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Tiered{Recent: mem, History: &fakeHistory{}}.Windows(ctx, t0, t0.Add(time.Hour))
	require.ErrorIs(t, err, context.Canceled)
}
