package influx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SetupOptions tune `vmflow influx setup`. The zero value is usable.
type SetupOptions struct {
	// Names of the 1.x rollup retention policies (default rollup_1m,
	// rollup_1h) or suffixes of the 2.x rollup buckets (default _1m, _1h).
	RP1m, RP1h         string
	Bucket1m, Bucket1h string
	// Resample is how far back each run of a rollup recomputes, so that
	// late windows (replayed from the spool) are included (defaults: 10m
	// for the 1-minute rollup, 3h for the 1-hour rollup).
	Resample1m, Resample1h time.Duration
	// Logf, when set, reports each action taken.
	Logf func(format string, args ...any)
	// HTTPClient (default: one with cfg.Timeout).
	HTTPClient *http.Client
}

func (o *SetupOptions) defaults(cfg Config) {
	if o.RP1m == "" {
		o.RP1m = "rollup_1m"
	}
	if o.RP1h == "" {
		o.RP1h = "rollup_1h"
	}
	if o.Bucket1m == "" {
		o.Bucket1m = cfg.Bucket + "_1m"
	}
	if o.Bucket1h == "" {
		o.Bucket1h = cfg.Bucket + "_1h"
	}
	if o.Resample1m <= 0 {
		o.Resample1m = 10 * time.Minute
	}
	if o.Resample1h <= 0 {
		o.Resample1h = 3 * time.Hour
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: cfg.Timeout}
	}
}

// rollupFields are summed by the rollups; *_max fields keep the peak rate.
var (
	pairSumFields = []string{"bytes", "packets", "bytes_var", "packets_var", "samples", "flows",
		"tcp_bytes", "tcp_packets", "udp_bytes", "udp_packets", "icmp_bytes", "icmp_packets", "other_bytes", "other_packets",
		"syn", "synack", "rst", "fin", "icmp_errors", "dropped_packets", "dropped_bytes", "synack_in", "rst_in"}
	vmSumFields       = []string{"tx_bytes", "tx_packets", "rx_bytes", "rx_packets", "tx_pairs", "rx_pairs"}
	exporterLastField = []string{"datagrams", "samples", "decode_errors", "lost_datagrams", "lost_records", "reordered", "restarts"}
)

type setupClient struct {
	cfg  Config
	opts SetupOptions
	base string
}

func (c *setupClient) do(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd = strings.NewReader(b.Encode())
		ctype = "application/x-www-form-urlencoded"
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(js)
		ctype = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	c.auth(req)
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

func (c *setupClient) auth(req *http.Request) {
	tok := c.cfg.Token
	if tok == "" || tok == ":" {
		return
	}
	if user, pass, ok := strings.Cut(tok, ":"); ok && !strings.HasPrefix(req.URL.Path, "/api/v2") {
		req.SetBasicAuth(user, pass) // 1.x /query
		return
	}
	req.Header.Set("Authorization", "Token "+tok)
}

// ServerVersion returns the X-Influxdb-Version of the server at cfg.URL
// (e.g. "1.8.10", "v2.7.1", "Cloud").
func ServerVersion(ctx context.Context, cfg Config, hc *http.Client) (string, error) {
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(cfg.URL, "/")+"/ping", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("influx ping: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("influx ping: status %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Influxdb-Version"), nil
}

// IsV1 says whether a version string is InfluxDB 1.x.
func IsV1(version string) bool {
	return strings.HasPrefix(strings.TrimPrefix(version, "v"), "1.")
}

func isV2(version string) bool {
	v := strings.TrimPrefix(version, "v")
	return strings.HasPrefix(v, "2.") || strings.HasPrefix(v, "3.") || strings.EqualFold(v, "cloud") || strings.HasPrefix(strings.ToLower(v), "cloud")
}

// Setup creates what vmflow needs in InfluxDB; running it again changes
// nothing (idempotent). On 1.x: the database, the raw retention policy of
// Bucket (default, Retention.Raw), the rollup_1m and rollup_1h retention
// policies, and continuous queries that roll vm_pair, vm and exporter up
// into them. On 2.x: the bucket, the rollup buckets and Flux tasks.
func Setup(ctx context.Context, cfg Config, opts SetupOptions) error {
	cfg.Enabled = true
	if cfg.Spool.Dir == "" {
		cfg.Spool.Dir = "-" // not used by setup
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	opts.defaults(cfg)
	c := &setupClient{cfg: cfg, opts: opts, base: strings.TrimRight(cfg.URL, "/")}
	ver, err := ServerVersion(ctx, cfg, opts.HTTPClient)
	if err != nil {
		return fmt.Errorf("influx setup: %w", err)
	}
	v1 := IsV1(ver)
	if !IsV1(ver) && !isV2(ver) {
		// A 1.8 built from source says "unknown": only 2.x serves /api/v2/setup.
		v1 = c.do(ctx, http.MethodGet, "/api/v2/setup", nil, nil, nil) != nil
	}
	opts.Logf("InfluxDB version %q (1.x API: %v)", ver, v1)
	if v1 {
		err = c.setupV1(ctx)
	} else {
		err = c.setupV2(ctx)
	}
	if err != nil {
		return fmt.Errorf("influx setup: %w", err)
	}
	return nil
}

// ---- 1.x ----

type influxQLResult struct {
	Results []struct {
		Error  string `json:"error"`
		Series []struct {
			Name    string   `json:"name"`
			Columns []string `json:"columns"`
			Values  [][]any  `json:"values"`
		} `json:"series"`
	} `json:"results"`
	Error string `json:"error"`
}

func (c *setupClient) influxQL(ctx context.Context, q string) (*influxQLResult, error) {
	var res influxQLResult
	if err := c.do(ctx, http.MethodPost, "/query", nil, url.Values{"q": {q}}, &res); err != nil {
		return nil, fmt.Errorf("influxql %q: %w", q, err)
	}
	if res.Error != "" {
		return nil, fmt.Errorf("influxql %q: %s", q, res.Error)
	}
	for _, r := range res.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("influxql %q: %s", q, r.Error)
		}
	}
	return &res, nil
}

func qi(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// influxQLDuration formats d as an InfluxQL duration literal (INF for 0).
func influxQLDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "INF"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", (d+time.Second-1)/time.Second)
	}
}

// shardDuration is InfluxDB's own default shard group duration for a
// retention policy of duration d.
func shardDuration(d time.Duration) string {
	switch {
	case d > 0 && d < 2*24*time.Hour:
		return "1h"
	case d > 0 && d <= 180*24*time.Hour:
		return "1d"
	}
	return "7d"
}

func (c *setupClient) setupV1(ctx context.Context) error {
	db := c.cfg.DatabaseName()
	if db == "" {
		return errors.New("influx.database: empty (and influx.bucket names no database)")
	}
	if _, err := c.influxQL(ctx, "CREATE DATABASE "+qi(db)); err != nil {
		return err
	}
	c.opts.Logf("database %s ready", db)
	res, err := c.influxQL(ctx, "SHOW RETENTION POLICIES ON "+qi(db))
	if err != nil {
		return err
	}
	existing := map[string]bool{}
	for _, r := range res.Results {
		for _, s := range r.Series {
			for _, v := range s.Values {
				if len(v) > 0 {
					if name, ok := v[0].(string); ok {
						existing[name] = true
					}
				}
			}
		}
	}
	rp := func(name string, d time.Duration, def bool) error {
		verb := "CREATE"
		if existing[name] {
			verb = "ALTER"
		}
		q := fmt.Sprintf("%s RETENTION POLICY %s ON %s DURATION %s REPLICATION 1 SHARD DURATION %s", verb, qi(name), qi(db), influxQLDuration(d), shardDuration(d))
		if def {
			q += " DEFAULT"
		}
		if _, err := c.influxQL(ctx, q); err != nil {
			return err
		}
		c.opts.Logf("retention policy %s.%s: %s", db, name, influxQLDuration(d))
		return nil
	}
	raw := c.cfg.RetentionPolicy()
	if err := rp(raw, c.cfg.Retention.Raw, true); err != nil {
		return err
	}
	if c.cfg.Retention.Rollup1m > 0 {
		if err := rp(c.opts.RP1m, c.cfg.Retention.Rollup1m, false); err != nil {
			return err
		}
	}
	if c.cfg.Retention.Rollup1h > 0 {
		if err := rp(c.opts.RP1h, c.cfg.Retention.Rollup1h, false); err != nil {
			return err
		}
	}
	// continuous queries
	cqs, err := c.influxQL(ctx, "SHOW CONTINUOUS QUERIES")
	if err != nil {
		return err
	}
	have := map[string]string{}
	for _, r := range cqs.Results {
		for _, s := range r.Series {
			if s.Name != db {
				continue
			}
			for _, v := range s.Values {
				if len(v) >= 2 {
					n, _ := v[0].(string)
					q, _ := v[1].(string)
					have[n] = q
				}
			}
		}
	}
	want := c.continuousQueries(db, raw)
	for _, cq := range want {
		if q, ok := have[cq.name]; ok {
			if normalizeCQ(q) == normalizeCQ(cq.query) {
				c.opts.Logf("continuous query %s unchanged", cq.name)
				continue
			}
			if _, err := c.influxQL(ctx, fmt.Sprintf("DROP CONTINUOUS QUERY %s ON %s", qi(cq.name), qi(db))); err != nil {
				return err
			}
		}
		if _, err := c.influxQL(ctx, cq.query); err != nil {
			return err
		}
		c.opts.Logf("continuous query %s created", cq.name)
	}
	return nil
}

// normalizeCQ makes a CQ's text comparable with what SHOW CONTINUOUS
// QUERIES returns (quoting and spacing differ).
func normalizeCQ(q string) string {
	q = strings.ReplaceAll(q, `"`, "")
	q = strings.Join(strings.Fields(q), " ")
	return strings.ToLower(q)
}

type cqDef struct{ name, query string }

func sumSelect(fields []string, suffix func(f string) string) string {
	var parts []string
	for _, f := range fields {
		parts = append(parts, fmt.Sprintf("sum(%s) AS %s", qi(f), qi(f)))
	}
	if suffix != nil {
		for _, f := range fields {
			if s := suffix(f); s != "" {
				parts = append(parts, s)
			}
		}
	}
	return strings.Join(parts, ", ")
}

// continuousQueries returns the rollup CQs (raw → 1m → 1h).
func (c *setupClient) continuousQueries(db, raw string) []cqDef {
	var out []cqDef
	type level struct {
		every, resample time.Duration
		rp, from, tag   string
	}
	var levels []level
	src := raw
	if c.cfg.Retention.Rollup1m > 0 {
		levels = append(levels, level{time.Minute, c.opts.Resample1m, c.opts.RP1m, src, "1m"})
		src = c.opts.RP1m
	}
	if c.cfg.Retention.Rollup1h > 0 {
		levels = append(levels, level{time.Hour, c.opts.Resample1h, c.opts.RP1h, src, "1h"})
	}
	for _, l := range levels {
		secs := int64(l.every / time.Second)
		// the peak rate: max of the raw bps, or of the finer rollup's bps_max
		peak := func(f, out string) string {
			if l.from == raw {
				return fmt.Sprintf("max(%s) AS %s", qi(f), qi(out))
			}
			return fmt.Sprintf("max(%s) AS %s", qi(out), qi(out))
		}
		wrap := func(name, meas, sel string) cqDef {
			q := fmt.Sprintf("CREATE CONTINUOUS QUERY %s ON %s RESAMPLE EVERY %s FOR %s BEGIN SELECT %s INTO %s.%s.%s FROM %s.%s.%s GROUP BY time(%s), * END",
				qi(name), qi(db), influxQLDuration(l.every), influxQLDuration(l.resample), sel,
				qi(db), qi(l.rp), qi(meas), qi(db), qi(l.from), qi(meas), influxQLDuration(l.every))
			return cqDef{name: name, query: q}
		}
		pairSel := sumSelect(pairSumFields, nil) +
			fmt.Sprintf(", sum(%s) * 8 / %d AS %s, sum(%s) / %d AS %s, %s, %s",
				qi("bytes"), secs, qi("bps"), qi("packets"), secs, qi("pps"), peak("bps", "bps_max"), peak("pps", "pps_max"))
		out = append(out, wrap("vmflow_vm_pair_"+l.tag, MeasurementPair, pairSel))
		vmSel := sumSelect(vmSumFields, nil) +
			fmt.Sprintf(", sum(%s) * 8 / %d AS %s, sum(%s) * 8 / %d AS %s, %s, %s",
				qi("tx_bytes"), secs, qi("tx_bps"), qi("rx_bytes"), secs, qi("rx_bps"), peak("tx_bps", "tx_bps_max"), peak("rx_bps", "rx_bps_max"))
		out = append(out, wrap("vmflow_vm_"+l.tag, MeasurementVM, vmSel))
		var ex []string
		for _, f := range exporterLastField {
			ex = append(ex, fmt.Sprintf("last(%s) AS %s", qi(f), qi(f)))
		}
		out = append(out, wrap("vmflow_exporter_"+l.tag, MeasurementExporter, strings.Join(ex, ", ")))
	}
	return out
}

// ---- 2.x ----

type v2Org struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type v2RetentionRule struct {
	Type         string `json:"type"`
	EverySeconds int64  `json:"everySeconds"`
}

type v2Bucket struct {
	ID             string            `json:"id,omitempty"`
	OrgID          string            `json:"orgID"`
	Name           string            `json:"name"`
	RetentionRules []v2RetentionRule `json:"retentionRules"`
}

type v2Task struct {
	ID     string `json:"id,omitempty"`
	OrgID  string `json:"orgID,omitempty"`
	Name   string `json:"name,omitempty"`
	Flux   string `json:"flux"`
	Status string `json:"status,omitempty"`
}

func (c *setupClient) setupV2(ctx context.Context) error {
	if c.cfg.Org == "" {
		return errors.New("influx.org: required for InfluxDB 2.x")
	}
	var orgs struct {
		Orgs []v2Org `json:"orgs"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v2/orgs", url.Values{"org": {c.cfg.Org}}, nil, &orgs); err != nil {
		return err
	}
	orgID := ""
	for _, o := range orgs.Orgs {
		if o.Name == c.cfg.Org {
			orgID = o.ID
		}
	}
	if orgID == "" {
		return fmt.Errorf("influx.org: organisation %q not found", c.cfg.Org)
	}
	bucket := func(name string, d time.Duration) error {
		rules := []v2RetentionRule{}
		if d > 0 {
			rules = append(rules, v2RetentionRule{Type: "expire", EverySeconds: int64(d / time.Second)})
		}
		var got struct {
			Buckets []v2Bucket `json:"buckets"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v2/buckets", url.Values{"name": {name}, "orgID": {orgID}}, nil, &got); err != nil {
			return err
		}
		for _, b := range got.Buckets {
			if b.Name != name {
				continue
			}
			if sameRules(b.RetentionRules, rules) {
				c.opts.Logf("bucket %s unchanged", name)
				return nil
			}
			if err := c.do(ctx, http.MethodPatch, "/api/v2/buckets/"+url.PathEscape(b.ID), nil,
				map[string]any{"retentionRules": rules}, nil); err != nil {
				return err
			}
			c.opts.Logf("bucket %s retention updated", name)
			return nil
		}
		if err := c.do(ctx, http.MethodPost, "/api/v2/buckets", nil, v2Bucket{OrgID: orgID, Name: name, RetentionRules: rules}, nil); err != nil {
			return err
		}
		c.opts.Logf("bucket %s created", name)
		return nil
	}
	if err := bucket(c.cfg.Bucket, c.cfg.Retention.Raw); err != nil {
		return err
	}
	if c.cfg.Retention.Rollup1m > 0 {
		if err := bucket(c.opts.Bucket1m, c.cfg.Retention.Rollup1m); err != nil {
			return err
		}
	}
	if c.cfg.Retention.Rollup1h > 0 {
		if err := bucket(c.opts.Bucket1h, c.cfg.Retention.Rollup1h); err != nil {
			return err
		}
	}
	for _, t := range c.tasks() {
		var got struct {
			Tasks []v2Task `json:"tasks"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v2/tasks", url.Values{"name": {t.Name}, "orgID": {orgID}}, nil, &got); err != nil {
			return err
		}
		found := false
		for _, have := range got.Tasks {
			if have.Name != t.Name {
				continue
			}
			found = true
			if strings.TrimSpace(have.Flux) == strings.TrimSpace(t.Flux) {
				c.opts.Logf("task %s unchanged", t.Name)
				break
			}
			if err := c.do(ctx, http.MethodPatch, "/api/v2/tasks/"+url.PathEscape(have.ID), nil, v2Task{Flux: t.Flux}, nil); err != nil {
				return err
			}
			c.opts.Logf("task %s updated", t.Name)
			break
		}
		if found {
			continue
		}
		if err := c.do(ctx, http.MethodPost, "/api/v2/tasks", nil, v2Task{OrgID: orgID, Flux: t.Flux, Status: "active"}, nil); err != nil {
			return err
		}
		c.opts.Logf("task %s created", t.Name)
	}
	return nil
}

func sameRules(a, b []v2RetentionRule) bool {
	norm := func(r []v2RetentionRule) int64 {
		for _, x := range r {
			if x.Type == "expire" || x.Type == "" {
				return x.EverySeconds
			}
		}
		return 0
	}
	return norm(a) == norm(b)
}

// tasks returns the 2.x rollup tasks (raw → 1m → 1h).
func (c *setupClient) tasks() []v2Task {
	var out []v2Task
	type level struct {
		every, resample time.Duration
		from, to, tag   string
	}
	var levels []level
	src := c.cfg.Bucket
	if c.cfg.Retention.Rollup1m > 0 {
		levels = append(levels, level{time.Minute, c.opts.Resample1m, src, c.opts.Bucket1m, "1m"})
		src = c.opts.Bucket1m
	}
	if c.cfg.Retention.Rollup1h > 0 {
		levels = append(levels, level{time.Hour, c.opts.Resample1h, src, c.opts.Bucket1h, "1h"})
	}
	for _, l := range levels {
		for _, m := range []struct {
			meas   string
			fields []string
			fn     string
		}{
			{MeasurementPair, pairSumFields, "sum"},
			{MeasurementVM, vmSumFields, "sum"},
			{MeasurementExporter, exporterLastField, "last"},
		} {
			name := fmt.Sprintf("vmflow_%s_%s", m.meas, l.tag)
			flux := fmt.Sprintf(`option task = {name: %s, every: %s, offset: 15s}

from(bucket: %s)
  |> range(start: -%s)
  |> filter(fn: (r) => r._measurement == %q and (%s))
  |> aggregateWindow(every: %s, fn: %s, timeSrc: "_start", createEmpty: false)
  |> to(bucket: %s, org: %s)
`, fluxString(name), fluxDuration(l.every), fluxString(l.from), fluxDuration(l.resample), m.meas, fieldFilter(m.fields),
				fluxDuration(l.every), m.fn, fluxString(l.to), fluxString(c.cfg.Org))
			out = append(out, v2Task{Name: name, Flux: flux})
		}
	}
	return out
}
