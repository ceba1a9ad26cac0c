package influx

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func rec(i int) []byte { return []byte(fmt.Sprintf("m,k=v f=%di %d\n", i, 1000+i)) }

func drain(t *testing.T, s *spool) []string {
	t.Helper()
	var out []string
	for {
		r, ok, err := s.Peek()
		require.NoError(t, err)
		if !ok {
			return out
		}
		out = append(out, string(r.data))
		require.NoError(t, s.Ack(r))
	}
}

func TestSpoolOrderAndRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 1<<20, 200)
	require.NoError(t, err)
	for i := 0; i < 10; i++ {
		_, err := s.Append(rec(i), 1)
		require.NoError(t, err)
	}
	// send and acknowledge the first three
	for i := 0; i < 3; i++ {
		r, ok, err := s.Peek()
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, string(rec(i)), string(r.data))
		require.NoError(t, s.Ack(r))
	}
	// a peeked but unacknowledged record is sent again after a restart
	r, ok, err := s.Peek()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, string(rec(3)), string(r.data))
	require.NoError(t, s.Close())

	s, err = openSpool(dir, 1<<20, 200)
	require.NoError(t, err)
	assert.EqualValues(t, 7, s.Stats().PendingPoints)
	var want []string
	for i := 3; i < 10; i++ {
		want = append(want, string(rec(i)))
	}
	assert.Equal(t, want, drain(t, s))
	assert.False(t, s.Pending())
	// fully sent segments are deleted; at most the one being appended to is left
	ents, _ := os.ReadDir(dir)
	assert.LessOrEqual(t, len(ents), 1)
	require.NoError(t, s.Close())
}

func TestSpoolTornRecord(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 1<<20, 1<<20)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err := s.Append(rec(i), 1)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	// tear the last record as a crash during write would
	seg := filepath.Join(dir, fmt.Sprintf("%020d.seg", 1))
	st, err := os.Stat(seg)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(seg, st.Size()-5))

	s, err = openSpool(dir, 1<<20, 1<<20)
	require.NoError(t, err)
	assert.EqualValues(t, 1, s.Stats().CorruptRecords)
	_, err = s.Append(rec(3), 1) // appends continue after the torn record
	require.NoError(t, err)
	assert.Equal(t, []string{string(rec(0)), string(rec(1)), string(rec(3))}, drain(t, s))
	require.NoError(t, s.Close())

	// a flipped payload byte fails the CRC: the record and the rest of its
	// segment are skipped and counted
	dir = t.TempDir()
	s, err = openSpool(dir, 1<<20, 1<<20)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err := s.Append(rec(i), 1)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	seg = filepath.Join(dir, fmt.Sprintf("%020d.seg", 1))
	data, err := os.ReadFile(seg)
	require.NoError(t, err)
	second := recHeaderLen + len(rec(0)) + recHeaderLen + 3
	data[second] ^= 0xff
	require.NoError(t, os.WriteFile(seg, data, 0o640))
	s, err = openSpool(dir, 1<<20, 1<<20)
	require.NoError(t, err)
	assert.EqualValues(t, 1, s.Stats().CorruptRecords)
	assert.Equal(t, []string{string(rec(0))}, drain(t, s))
	require.NoError(t, s.Close())
}

// TestSpoolFullDropsOldest: with InfluxDB unreachable, a writer whose spool
// is too small keeps the newest batches, deletes the oldest, and counts the
// dropped points in the metric and in Health.
func TestSpoolFullDropsOldest(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.URL = "http://127.0.0.1:1" // nothing listens there
	cfg.Spool.Dir = t.TempDir()
	cfg.Spool.MaxBytes = 1 << 20
	cfg.Spool.SegmentBytes = 64 << 10
	cfg.BatchSize = 50
	cfg.MaxRetries = 0
	cfg.RetryMin, cfg.RetryMax = time.Hour, time.Hour // never retried during the test
	cfg.SelfInterval = 0
	reg := prometheus.NewRegistry()
	w, err := NewWriter(cfg, reg)
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))

	base := time.Unix(1_700_000_000, 0)
	const windows = 1500 // ~6 points of ~700 bytes each: ~6 MB, six times the spool
	for k := 0; k < windows; k++ {
		w.Write(mkWindow(base, k))
	}
	w.Stop()

	encoded := testutil.ToFloat64(w.m.encodedPoints)
	spooled := testutil.ToFloat64(w.m.spooledPoints)
	dropped := testutil.ToFloat64(w.m.spoolDropped)
	require.Greater(t, dropped, 0.0)
	assert.Equal(t, encoded, spooled, "every point went to the spool")
	st := w.spool.Stats()
	assert.LessOrEqual(t, st.Bytes, cfg.Spool.MaxBytes)
	assert.Equal(t, spooled, float64(st.PendingPoints)+dropped, "spooled = pending + dropped")

	h := w.Health()
	assert.Equal(t, "degraded", h["status"])
	assert.EqualValues(t, dropped, h["spool_dropped_points"])

	// what is left is the newest data: the last window is there, the first is not
	s, err := openSpool(cfg.Spool.Dir, cfg.Spool.MaxBytes, cfg.Spool.SegmentBytes)
	require.NoError(t, err)
	defer s.Close()
	all := ""
	for _, d := range drain(t, s) {
		all += d
	}
	last := fmt.Sprintf(" %d\n", mkWindow(base, windows-1).End.UnixNano())
	first := fmt.Sprintf(" %d\n", mkWindow(base, 0).End.UnixNano())
	assert.Contains(t, all, last)
	assert.NotContains(t, all, first)
}
