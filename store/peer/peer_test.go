package peer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func win(end time.Time, pairs ...aggregate.Pair) *aggregate.Window {
	return &aggregate.Window{Start: end.Add(-10 * time.Second), End: end, Pairs: pairs}
}

func pair(src, dst string, id enrich.VMID, bytes float64) aggregate.Pair {
	return aggregate.Pair{
		Key: aggregate.PairKey{Src: aggregate.EndpointKey{VM: id}, Dst: aggregate.EndpointKey{VM: id + 100}, Source: decoder.SourceSFlow},
		Src: aggregate.Endpoint{VM: src, Host: "hv-" + src}, Dst: aggregate.Endpoint{VM: dst, Host: "hv-" + dst},
		Stats: aggregate.Stats{Bytes: bytes, Packets: bytes / 100, BytesVar: bytes, Samples: 1},
	}
}

// a collector: its memory store behind WindowsPath
func collectorServer(t *testing.T, ws ...*aggregate.Window) *httptest.Server {
	mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
	for _, w := range ws {
		mem.Write(w)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, WindowsPath, r.URL.Path)
		from, err1 := time.Parse(time.RFC3339Nano, r.URL.Query().Get("from"))
		to, err2 := time.Parse(time.RFC3339Nano, r.URL.Query().Get("to"))
		if err1 != nil || err2 != nil {
			http.Error(w, "bad range", 400)
			return
		}
		got, err := mem.Windows(r.Context(), from, to)
		require.NoError(t, err)
		w.Header().Set("Content-Type", ContentType)
		require.NoError(t, EncodeWindows(w, got))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type history []*aggregate.Window

func (h history) Windows(_ context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	var out []*aggregate.Window
	for _, w := range h {
		if w.End.After(from) && !w.End.After(to) {
			out = append(out, w)
		}
	}
	return out, nil
}

func byName(t *testing.T, ws []*aggregate.Window) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, w := range ws {
		for _, p := range w.Pairs {
			out[w.End.Format("15:04:05")+" "+p.Src.VM+">"+p.Dst.VM] += p.Stats.Bytes
		}
	}
	return out
}

// The recent part comes from every collector, merged by window and pair
// (peer VM ids replaced by the query node's); the older part from
// history; the boundary is aligned to the history's window; a failing
// peer makes the recent part come from history, counted.
func TestFederated(t *testing.T) {
	now := t0.Add(95 * time.Second)
	c1 := collectorServer(t, win(t0.Add(60*time.Second), pair("a", "b", 1, 100)), win(t0.Add(90*time.Second), pair("a", "b", 1, 10), pair("x", "y", 7, 5)))
	c2 := collectorServer(t, win(t0.Add(90*time.Second), pair("c", "d", 3, 20), pair("x", "y", 9, 6)))
	hist := history{
		win(t0.Add(30*time.Second), pair("a", "b", 1, 1000)),
		win(t0.Add(60*time.Second), pair("a", "b", 1, 2000)), // after the boundary: the peers' answer wins
		win(t0.Add(90*time.Second), pair("a", "b", 1, 3000)),
	}
	cfg := DefaultConfig()
	cfg.Peers = []string{c1.URL, c2.URL + "/"}
	cfg.Recent = 50 * time.Second // now-50s = 12:00:45, aligned down to 12:00:30
	reg := prometheus.NewRegistry()
	f, err := New(cfg, hist, reg)
	require.NoError(t, err)
	f.Now = func() time.Time { return now }
	f.Align = 30 * time.Second
	ids := map[string]enrich.VMID{"a": 11, "b": 12, "c": 13, "d": 14, "x": 15, "y": 16}
	f.Resolve = func(e aggregate.Endpoint) enrich.VMID { return ids[e.VM] }
	require.Equal(t, t0.Add(30*time.Second), f.Boundary())

	ws, err := f.Windows(context.Background(), t0, now)
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{
		"12:00:30 a>b": 1000, // history
		"12:01:00 a>b": 100,  // peers from here
		"12:01:30 a>b": 10, "12:01:30 c>d": 20,
		"12:01:30 x>y": 11, // the same pair from both collectors: one pair
	}, byName(t, ws))
	require.Len(t, ws, 3)
	for _, w := range ws[1:] {
		for _, p := range w.Pairs {
			assert.Equal(t, ids[p.Src.VM], p.Key.Src.VM, "keyed by the query node's ids")
		}
	}
	last := ws[2]
	require.Len(t, last.Pairs, 3)

	// Entirely older than the boundary: history only.
	ws, err = f.Windows(context.Background(), t0, t0.Add(30*time.Second))
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"12:00:30 a>b": 1000}, byName(t, ws))

	// A peer down: the recent part comes from history.
	c2.Close()
	ws, err = f.Windows(context.Background(), t0, now)
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"12:00:30 a>b": 1000, "12:01:00 a>b": 2000, "12:01:30 a>b": 3000}, byName(t, ws))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.mFallbacks))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.mErrors.WithLabelValues(c2.URL+"/")))

	// No history: the error is the answer.
	f.History = nil
	_, err = f.Windows(context.Background(), t0, now)
	assert.ErrorContains(t, err, c2.URL)
}

func TestConfigValidate(t *testing.T) {
	assert.NoError(t, DefaultConfig().Validate())
	assert.False(t, DefaultConfig().Enabled())
	c := DefaultConfig()
	c.Peers = []string{"collector-1:8080"}
	c.Recent = 2 * time.Hour
	c.Timeout = 0
	err := c.Validate()
	assert.ErrorContains(t, err, "query.peers[0]")
	assert.ErrorContains(t, err, "query.recent")
	assert.ErrorContains(t, err, "query.timeout")
}

// A query node lists its collectors' exporters; a peer down is left out.
func TestFederatedExporters(t *testing.T) {
	serve := func(addr string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			require.Equal(t, "/api/v1/exporters", r.URL.Path)
			_, _ = w.Write([]byte(`{"exporters":[{"protocol":"sflow","address":"` + addr + `:6343","agent":"` + addr + `"}]}`))
		}))
		t.Cleanup(s.Close)
		return s
	}
	c1, c2 := serve("10.0.0.1"), serve("10.0.0.2")
	cfg := DefaultConfig()
	cfg.Peers = []string{c1.URL, c2.URL}
	f, err := New(cfg, nil, nil)
	require.NoError(t, err)
	var agents []string
	for _, e := range f.Exporters() {
		agents = append(agents, e.Agent)
	}
	assert.ElementsMatch(t, []string{"10.0.0.1", "10.0.0.2"}, agents)
	c2.Close()
	assert.Len(t, f.Exporters(), 1)
}
