package logsample

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func lines(buf *bytes.Buffer, substr string) int {
	n := 0
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// A flood of one warning: First pass, then 1 in Thereafter; the rest is
// counted; another message is unaffected; the next interval starts afresh
// and its first record says how many were suppressed.
func TestFloodIsSampledAndCounted(t *testing.T) {
	var buf bytes.Buffer
	clk := &clock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelInfo, Config{Interval: time.Second, First: 5, Thereafter: 100})
	h.SetClock(clk.now)
	log := slog.New(h)

	for i := 0; i < 1005; i++ {
		log.LogAttrs(context.Background(), slog.LevelWarn, "bad datagram", slog.String("exporter", "192.0.2.1"))
	}
	log.Warn("other message")
	// 5 first + records 105, 205, ..., 1005 (10) = 15
	assert.Equal(t, 15, lines(&buf, "bad datagram"))
	assert.Equal(t, 1, lines(&buf, "other message"))
	assert.Equal(t, 990.0, testutil.ToFloat64(h.st.counter.WithLabelValues("warn")))
	assert.Contains(t, buf.String(), "suppressed=99", "a passing record tells how many were dropped before it")

	buf.Reset()
	clk.add(1500 * time.Millisecond)
	for i := 0; i < 5; i++ {
		log.Warn("bad datagram")
	}
	assert.Equal(t, 5, lines(&buf, "bad datagram"), "a new interval lets First through again")
}

func TestLevelAndSamplingChangeLive(t *testing.T) {
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelInfo, Config{})
	log := slog.New(h).With("component", "x")
	log.Debug("hidden")
	for i := 0; i < 50; i++ {
		log.Info("repeated")
	}
	assert.Equal(t, 0, lines(&buf, "hidden"))
	assert.Equal(t, 50, lines(&buf, "repeated"), "interval 0: no sampling")

	h.SetLevel(slog.LevelDebug)
	h.SetSampling(Config{Interval: time.Hour, First: 2, Thereafter: 0})
	buf.Reset()
	log.Debug("shown")
	for i := 0; i < 50; i++ {
		log.Info("repeated")
	}
	assert.Equal(t, 1, lines(&buf, "shown"), "the derived logger sees the new level")
	assert.Equal(t, 2, lines(&buf, "repeated"), "thereafter 0 drops every record after the first")
	assert.Equal(t, 48.0, testutil.ToFloat64(h.st.counter.WithLabelValues("info")))
	assert.Equal(t, slog.LevelDebug, h.Level())
	assert.Equal(t, 2, h.Sampling().First)
}

// Distinct messages beyond MaxKeys share one entry: memory stays bounded.
func TestManyDistinctMessagesStayBounded(t *testing.T) {
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, nil), slog.LevelInfo, Config{Interval: time.Hour, First: 1, Thereafter: 0})
	log := slog.New(h)
	for i := 0; i < 3*MaxKeys; i++ {
		log.Warn("msg " + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	assert.LessOrEqual(t, len(h.st.keys), MaxKeys)
	assert.Equal(t, float64(2*MaxKeys-1), testutil.ToFloat64(h.st.counter.WithLabelValues("warn")))
}

func TestValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate("log.sample."))
	err := Config{Interval: -1, First: -1, Thereafter: -1}.Validate("log.sample.")
	require.Error(t, err)
	for _, k := range []string{"log.sample.interval", "log.sample.first", "log.sample.thereafter"} {
		assert.Contains(t, err.Error(), k)
	}
}
