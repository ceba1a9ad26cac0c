package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// WindowsPath is the collectors' route that serves their own closed
// windows (codec.go: []*aggregate.Window, oldest first), for
// ?from=&to= (RFC 3339, windows ending in (from, to]).
const WindowsPath = "/peer/v1/windows"

// ContentType of WindowsPath's answer (see codec.go).
const ContentType = "application/vnd.vmflow.windows"

// Federated is the query node's store.Reader: windows ending in the last
// Recent (aligned down to Align) come from every peer, merged; older ones
// from History. When a peer does not answer, that part falls back to
// History (counted in vmflow_query_peer_errors_total): it may lag, but
// the answer stays whole.
type Federated struct {
	cfg     Config
	token   string       // query.token_file's token
	History store.Reader // InfluxDB (may be nil)
	// Align is the step that history windows end on (influx.window, else
	// aggregate.window): the boundary between history and peers is a
	// multiple of it, so a merged history window is never cut.
	Align time.Duration
	// Resolve maps a VM endpoint to this process's VM id (by name, in the
	// query node's inventory): peers' VM ids are their own.
	Resolve func(aggregate.Endpoint) enrich.VMID
	Now     func() time.Time
	Log     *slog.Logger

	client     *http.Client
	mErrors    *prometheus.CounterVec
	mDur       *prometheus.HistogramVec
	mFallbacks prometheus.Counter
}

var _ store.Reader = (*Federated)(nil)

// New makes the reader; it contacts no peer until queried.
func New(cfg Config, history store.Reader, reg prometheus.Registerer) (*Federated, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Federated{
		cfg: cfg, History: history, Now: time.Now, Log: slog.Default(),
		client: &http.Client{Timeout: cfg.Timeout},
		mErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_query_peer_errors_total",
			Help: "Window requests to a collector peer that failed, by peer."}, []string{"peer"}),
		mDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vmflow_query_peer_duration_seconds",
			Help: "Duration of one window request to a collector peer.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"peer"}),
		mFallbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_query_history_fallbacks_total",
			Help: "Queries whose recent part was answered from InfluxDB because a peer failed."}),
	}
	if cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("query.token_file: %w", err)
		}
		if f.token = strings.TrimSpace(string(b)); f.token == "" {
			return nil, fmt.Errorf("query.token_file: %s is empty", cfg.TokenFile)
		}
	}
	if reg != nil {
		if err := reg.Register(f.mErrors); err != nil {
			return nil, fmt.Errorf("query metrics: %w", err)
		}
		reg.MustRegister(f.mDur, f.mFallbacks)
	}
	return f, nil
}

// Boundary is where the peers take over: windows ending after it come
// from them.
func (f *Federated) Boundary() time.Time {
	b := f.Now().Add(-f.cfg.Recent)
	if f.Align > 0 {
		b = b.Truncate(f.Align)
	}
	return b
}

// Windows returns the windows ending in (from, to], oldest first.
func (f *Federated) Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	if !to.After(from) {
		return nil, nil
	}
	b := f.Boundary()
	var out []*aggregate.Window
	if from.Before(b) && f.History != nil {
		hto := minTime(to, b)
		hist, err := f.History.Windows(ctx, from, hto)
		if err != nil {
			return nil, fmt.Errorf("history windows: %w", err)
		}
		for _, w := range hist {
			if w != nil && w.End.After(from) && !w.End.After(hto) {
				out = append(out, w)
			}
		}
	}
	if !to.After(b) {
		return out, nil
	}
	lo := maxTime(from, b)
	recent, err := f.fromPeers(ctx, lo, to)
	if err != nil {
		if f.History == nil {
			return nil, err
		}
		f.mFallbacks.Inc()
		f.Log.Warn("query node: a collector peer failed; recent windows from InfluxDB", "error", err)
		if recent, err = f.History.Windows(ctx, lo, to); err != nil {
			return nil, fmt.Errorf("history windows: %w", err)
		}
	}
	return append(out, recent...), nil
}

// fromPeers asks every peer at once and merges their windows by end.
func (f *Federated) fromPeers(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	res := make([][]*aggregate.Window, len(f.cfg.Peers))
	errs := make([]error, len(f.cfg.Peers))
	var wg sync.WaitGroup
	for i, p := range f.cfg.Peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			res[i], errs[i] = f.fetch(ctx, p, from, to)
			f.mDur.WithLabelValues(p).Observe(time.Since(start).Seconds())
			if errs[i] != nil {
				f.mErrors.WithLabelValues(p).Inc()
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("peer %s: %w", f.cfg.Peers[i], err)
		}
	}
	byEnd := map[int64]*aggregate.Window{}
	for _, ws := range res {
		for _, w := range ws {
			if w == nil || !w.End.After(from) || w.End.After(to) {
				continue
			}
			m := byEnd[w.End.UnixNano()]
			if m == nil {
				m = &aggregate.Window{Start: w.Start, End: w.End}
				byEnd[w.End.UnixNano()] = m
			}
			if w.Start.Before(m.Start) {
				m.Start = w.Start
			}
			for j := range w.Pairs {
				p := w.Pairs[j]
				if f.Resolve != nil {
					if p.Src.VM != "" {
						p.Key.Src = aggregate.EndpointKey{VM: f.Resolve(p.Src)}
					}
					if p.Dst.VM != "" {
						p.Key.Dst = aggregate.EndpointKey{VM: f.Resolve(p.Dst)}
					}
				}
				m.Pairs = append(m.Pairs, p)
			}
		}
	}
	out := make([]*aggregate.Window, 0, len(byEnd))
	for _, w := range byEnd {
		store.MergeSamePairs(w)
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].End.Before(out[j].End) })
	return out, nil
}

func (f *Federated) fetch(ctx context.Context, base string, from, to time.Time) ([]*aggregate.Window, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	u := strings.TrimRight(base, "/") + WindowsPath + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", ContentType)
	f.authorize(req)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", WindowsPath, resp.StatusCode)
	}
	ws, err := DecodeWindows(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", WindowsPath, err)
	}
	return ws, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Exporters lists every peer's exporters (GET /api/v1/exporters of each
// collector), for the query node's own /api/v1/exporters. A peer that does
// not answer is left out (counted in vmflow_query_peer_errors_total).
func (f *Federated) Exporters() []collector.ExporterStatus {
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	defer cancel()
	res := make([][]collector.ExporterStatus, len(f.cfg.Peers))
	var wg sync.WaitGroup
	for i, p := range f.cfg.Peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out struct {
				Exporters []collector.ExporterStatus `json:"exporters"`
			}
			if err := f.getJSON(ctx, p, "/api/v1/exporters", &out); err != nil {
				f.mErrors.WithLabelValues(p).Inc()
				f.Log.Warn("query node: exporters of a collector peer", "peer", p, "error", err)
				return
			}
			res[i] = out.Exporters
		}()
	}
	wg.Wait()
	var all []collector.ExporterStatus
	for _, r := range res {
		all = append(all, r...)
	}
	return all
}

// authorize adds the peers' token (query.token_file), if any.
func (f *Federated) authorize(req *http.Request) {
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
}

func (f *Federated) getJSON(ctx context.Context, base, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return err
	}
	f.authorize(req)
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
