package influx

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scriptedServer answers /api/v2/write with the given responses in turn
// (then 204) and records the bodies it accepted.
type scriptedServer struct {
	mu       sync.Mutex
	script   []func(w http.ResponseWriter)
	requests int
	accepted []string
}

func (s *scriptedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/ping" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rd = zr
	}
	body, _ := io.ReadAll(rd)
	s.requests++
	if len(s.script) > 0 {
		f := s.script[0]
		s.script = s.script[1:]
		f(w)
		return
	}
	s.accepted = append(s.accepted, string(body))
	w.WriteHeader(http.StatusNoContent)
}

func status(code int, hdr ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"code":"x","message":"` + http.StatusText(code) + `"}`))
	}
}

func unitWriter(t *testing.T, url string) (*Writer, *[]time.Duration) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.URL = url
	cfg.Gzip = false
	cfg.Spool.Dir = t.TempDir()
	cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 40*time.Millisecond
	cfg.SelfInterval = 0
	w := newTestWriter(t, cfg)
	var sleeps []time.Duration
	w.sleep = func(ctx context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		return ctx.Err()
	}
	return w, &sleeps
}

// TestRetryAfterHonoured: a 429 with Retry-After: 1 makes the writer wait
// exactly 1 s (not its own 10-40 ms backoff) before writing again.
func TestRetryAfterHonoured(t *testing.T) {
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		srv := &scriptedServer{script: []func(http.ResponseWriter){status(code, "Retry-After", "1")}}
		ts := httptest.NewServer(srv)
		w, sleeps := unitWriter(t, ts.URL)
		data := []byte("vm_pair,src_vm=a,dst_vm=b bytes=1 1700000000\n")
		require.NoError(t, w.send(context.Background(), data, 1, 3))
		assert.Equal(t, 2, srv.requests, "status %d", code)
		assert.Equal(t, []time.Duration{time.Second}, *sleeps, "status %d", code)
		require.Len(t, srv.accepted, 1)
		assert.Equal(t, string(data), srv.accepted[0])
		assert.Equal(t, 1.0, testutil.ToFloat64(w.m.pointsWritten))
		ts.Close()
	}
}

// TestRetryBackoffAndReject: a 500 is retried with the writer's backoff; a
// 400 (e.g. field type conflict) is not retried and counted as rejected.
func TestRetryBackoffAndReject(t *testing.T) {
	srv := &scriptedServer{script: []func(http.ResponseWriter){status(500), status(500)}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	w, sleeps := unitWriter(t, ts.URL)
	require.NoError(t, w.send(context.Background(), []byte("m f=1 1\n"), 1, 3))
	assert.Equal(t, 3, srv.requests)
	require.Len(t, *sleeps, 2)
	for _, d := range *sleeps {
		assert.True(t, d >= 8*time.Millisecond && d <= 40*time.Millisecond, "backoff %s", d)
	}

	srv2 := &scriptedServer{script: []func(http.ResponseWriter){status(400)}}
	ts2 := httptest.NewServer(srv2)
	defer ts2.Close()
	w2, sleeps2 := unitWriter(t, ts2.URL)
	err := w2.send(context.Background(), []byte("m f=1 1\nm f=2 2\n"), 2, 3)
	require.ErrorIs(t, err, errRejected)
	assert.Equal(t, 1, srv2.requests)
	assert.Empty(t, *sleeps2)
	assert.Equal(t, 2.0, testutil.ToFloat64(w2.m.rejectedPoints))

	// retries exhausted: the error is returned (the caller spools the batch)
	srv3 := &scriptedServer{script: []func(http.ResponseWriter){status(503), status(503), status(503)}}
	ts3 := httptest.NewServer(srv3)
	defer ts3.Close()
	w3, _ := unitWriter(t, ts3.URL)
	err = w3.send(context.Background(), []byte("m f=1 1\n"), 1, 2)
	require.Error(t, err)
	assert.NotErrorIs(t, err, errRejected)
	assert.Equal(t, 3, srv3.requests)
}

// TestWriterSpoolsWhileFailing runs the whole writer against a server that
// fails for a while: nothing is lost, and the batches arrive in order.
func TestWriterSpoolsWhileFailing(t *testing.T) {
	var script []func(http.ResponseWriter)
	for i := 0; i < 12; i++ {
		script = append(script, status(503))
	}
	srv := &scriptedServer{script: script}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := DefaultConfig()
	cfg.Enabled, cfg.URL, cfg.Gzip = true, ts.URL, true
	cfg.Spool.Dir = t.TempDir()
	cfg.RetryMin, cfg.RetryMax = time.Millisecond, 5*time.Millisecond
	cfg.MaxRetries = 1
	cfg.BatchSize = 6 // one window per batch
	cfg.SelfInterval = 0
	w := newTestWriter(t, cfg)
	require.NoError(t, w.Start(context.Background()))
	base := time.Unix(1_700_000_000, 0)
	const n = 40
	for k := 0; k < n; k++ {
		w.Write(mkWindow(base, k))
	}
	require.Eventually(t, func() bool {
		h := w.Health()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return h["spool_pending_points"] == int64(0) && h["queue_batches"] == 0 && len(srv.accepted) >= n
	}, 20*time.Second, 10*time.Millisecond)
	w.Stop()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	all := strings.Join(srv.accepted, "")
	var last int64
	for k := 0; k < n; k++ {
		ts := mkWindow(base, k).End.UnixNano()
		assert.Contains(t, all, " "+itoa(ts)+"\n", "window %d missing", k)
		assert.GreaterOrEqual(t, ts, last)
		last = ts
	}
	// order: the first line of each accepted batch has a non-decreasing timestamp
	var prev string
	for _, b := range srv.accepted {
		line := b[:strings.IndexByte(b, '\n')]
		tsf := line[strings.LastIndexByte(line, ' ')+1:]
		assert.GreaterOrEqual(t, tsf, prev, "batches out of order")
		prev = tsf
	}
	assert.Greater(t, testutil.ToFloat64(w.m.spooledPoints), 0.0, "the failures sent batches to the spool")
	assert.Equal(t, 0.0, testutil.ToFloat64(w.m.spoolDropped))
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
