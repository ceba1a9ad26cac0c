package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func showResult(t *testing.T, raw []byte) [][]any {
	t.Helper()
	var res influxQLResult
	require.NoError(t, json.Unmarshal(raw, &res))
	var rows [][]any
	for _, r := range res.Results {
		for _, s := range r.Series {
			for _, v := range s.Values {
				rows = append(rows, append([]any{s.Name}, v...))
			}
		}
	}
	return rows
}

// TestSetupV1 runs Setup twice against a real influxd 1.8: the database,
// retention policies and continuous queries exist after the first run and
// are unchanged by the second.
func TestSetupV1(t *testing.T) {
	srv := startInflux(t, "other")
	cfg := testConfig(t, srv.URL(), "vmflow_setup")
	cfg.Retention.Raw = 48 * time.Hour
	var logs []string
	opts := SetupOptions{Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }}
	require.NoError(t, Setup(context.Background(), cfg, opts))

	raw, err := srv.Query("", "SHOW DATABASES")
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"vmflow_setup"`)

	raw, err = srv.Query("", `SHOW RETENTION POLICIES ON "vmflow_setup"`)
	require.NoError(t, err)
	rps := map[string][]any{}
	for _, r := range showResult(t, raw) {
		rps[r[1].(string)] = r[2:]
	}
	require.Contains(t, rps, "autogen")
	require.Contains(t, rps, "rollup_1m")
	require.Contains(t, rps, "rollup_1h")
	assert.Equal(t, "48h0m0s", rps["autogen"][0])
	assert.Equal(t, true, rps["autogen"][3], "raw RP is the default")
	assert.Equal(t, "2160h0m0s", rps["rollup_1m"][0])
	assert.Equal(t, "17520h0m0s", rps["rollup_1h"][0])

	showCQ := func() map[string]string {
		raw, err := srv.Query("", "SHOW CONTINUOUS QUERIES")
		require.NoError(t, err)
		cqs := map[string]string{}
		for _, r := range showResult(t, raw) {
			if r[0] == "vmflow_setup" {
				cqs[r[1].(string)] = r[2].(string)
			}
		}
		return cqs
	}
	cqs := showCQ()
	for _, n := range []string{"vmflow_vm_pair_1m", "vmflow_vm_pair_1h", "vmflow_vm_1m", "vmflow_vm_1h", "vmflow_exporter_1m", "vmflow_exporter_1h"} {
		assert.Contains(t, cqs, n)
	}
	assert.Contains(t, cqs["vmflow_vm_pair_1m"], `INTO vmflow_setup.rollup_1m.vm_pair FROM vmflow_setup.autogen.vm_pair`)
	assert.Contains(t, cqs["vmflow_vm_pair_1h"], `INTO vmflow_setup.rollup_1h.vm_pair FROM vmflow_setup.rollup_1m.vm_pair`)

	// second run: nothing changes, no CQ re-created
	logs = nil
	require.NoError(t, Setup(context.Background(), cfg, opts))
	assert.Equal(t, cqs, showCQ())
	for _, l := range logs {
		assert.NotContains(t, l, "created", "second run re-created something: %v", logs)
	}

	// A CQ runs: write raw points into a past minute and run the 1m CQ's
	// SELECT by hand (CQs only cover recent intervals); the sums match.
	w := newTestWriter(t, cfg)
	require.NoError(t, w.Start(context.Background()))
	base := time.Now().Add(-30 * time.Minute).Truncate(time.Minute)
	win1, win2 := mkWindow(base.Add(-10*time.Second), 0), mkWindow(base, 0) // both end inside one minute
	w.Write(win1)
	w.Write(win2)
	w.Stop()
	sel := cqs["vmflow_vm_pair_1m"]
	sel = sel[strings.Index(sel, "SELECT"):strings.LastIndex(sel, " END")]
	sel = strings.Replace(sel, "GROUP BY", fmt.Sprintf("WHERE time >= '%s' AND time < '%s' GROUP BY", base.UTC().Format(time.RFC3339), base.Add(time.Minute).UTC().Format(time.RFC3339)), 1)
	_, err = srv.Query("vmflow_setup", sel)
	require.NoError(t, err)
	raw, err = srv.Query("vmflow_setup", `SELECT "bytes","samples" FROM "rollup_1m"."vm_pair" WHERE src_vm = 'web-1' AND dst_vm = 'db-1' AND source = 'sflow'`)
	require.NoError(t, err)
	rows := showResult(t, raw)
	require.Len(t, rows, 1, string(raw))
	assert.InDelta(t, win1.Pairs[0].Stats.Bytes+win2.Pairs[0].Stats.Bytes, rows[0][2], 1e-9)
	assert.EqualValues(t, win1.Pairs[0].Stats.Samples+win2.Pairs[0].Stats.Samples, rows[0][3])
}

// fakeV2 is an in-memory InfluxDB 2.x API: /ping, orgs, buckets, tasks.
type fakeV2 struct {
	mu      sync.Mutex
	buckets map[string]v2Bucket
	tasks   map[string]v2Task
	writes  []string // method + path of mutating requests
	nextID  int
}

func (f *fakeV2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/ping" && r.Header.Get("Authorization") != "Token secret" {
		http.Error(w, `{"code":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		f.writes = append(f.writes, r.Method+" "+r.URL.Path)
	}
	body, _ := io.ReadAll(r.Body)
	js := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	id := func() string { f.nextID++; return fmt.Sprintf("%016d", f.nextID) }
	switch {
	case r.URL.Path == "/ping":
		w.Header().Set("X-Influxdb-Version", "v2.7.4")
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/api/v2/orgs":
		if r.URL.Query().Get("org") == "acme" {
			js(map[string]any{"orgs": []v2Org{{ID: "org1", Name: "acme"}}})
		} else {
			js(map[string]any{"orgs": []v2Org{}})
		}
	case r.URL.Path == "/api/v2/buckets" && r.Method == http.MethodGet:
		var out []v2Bucket
		if b, ok := f.buckets[r.URL.Query().Get("name")]; ok && b.OrgID == r.URL.Query().Get("orgID") {
			out = append(out, b)
		}
		js(map[string]any{"buckets": out})
	case r.URL.Path == "/api/v2/buckets" && r.Method == http.MethodPost:
		var b v2Bucket
		_ = json.Unmarshal(body, &b)
		b.ID = id()
		f.buckets[b.Name] = b
		w.WriteHeader(http.StatusCreated)
		js(b)
	case strings.HasPrefix(r.URL.Path, "/api/v2/buckets/") && r.Method == http.MethodPatch:
		var p v2Bucket
		_ = json.Unmarshal(body, &p)
		for n, b := range f.buckets {
			if "/api/v2/buckets/"+b.ID == r.URL.Path {
				b.RetentionRules = p.RetentionRules
				f.buckets[n] = b
			}
		}
		js(map[string]any{})
	case r.URL.Path == "/api/v2/tasks" && r.Method == http.MethodGet:
		var out []v2Task
		if t, ok := f.tasks[r.URL.Query().Get("name")]; ok {
			out = append(out, t)
		}
		js(map[string]any{"tasks": out})
	case r.URL.Path == "/api/v2/tasks" && r.Method == http.MethodPost:
		var t v2Task
		_ = json.Unmarshal(body, &t)
		// the server takes the name from the script's task option
		i := strings.Index(t.Flux, `name: "`)
		t.Name = t.Flux[i+7 : i+7+strings.Index(t.Flux[i+7:], `"`)]
		t.ID = id()
		f.tasks[t.Name] = t
		w.WriteHeader(http.StatusCreated)
		js(t)
	case strings.HasPrefix(r.URL.Path, "/api/v2/tasks/") && r.Method == http.MethodPatch:
		var p v2Task
		_ = json.Unmarshal(body, &p)
		for n, t := range f.tasks {
			if "/api/v2/tasks/"+t.ID == r.URL.Path {
				t.Flux = p.Flux
				f.tasks[n] = t
			}
		}
		js(map[string]any{})
	default:
		http.NotFound(w, r)
	}
}

// TestSetupV2 exercises the 2.x path against a fake server (InfluxDB 2.x
// cannot run on this machine): buckets with retention and rollup tasks are
// created, a second run changes nothing, a changed retention is patched.
func TestSetupV2(t *testing.T) {
	f := &fakeV2{buckets: map[string]v2Bucket{}, tasks: map[string]v2Task{}}
	ts := httptest.NewServer(f)
	defer ts.Close()
	cfg := DefaultConfig()
	cfg.URL, cfg.Token, cfg.Org, cfg.Bucket = ts.URL, "secret", "acme", "vmflow"
	require.NoError(t, Setup(context.Background(), cfg, SetupOptions{}))

	require.Contains(t, f.buckets, "vmflow")
	require.Contains(t, f.buckets, "vmflow_1m")
	require.Contains(t, f.buckets, "vmflow_1h")
	assert.Equal(t, int64(7*24*3600), f.buckets["vmflow"].RetentionRules[0].EverySeconds)
	assert.Equal(t, int64(90*24*3600), f.buckets["vmflow_1m"].RetentionRules[0].EverySeconds)
	assert.Len(t, f.tasks, 6)
	tk := f.tasks["vmflow_vm_pair_1m"]
	assert.Contains(t, tk.Flux, `from(bucket: "vmflow")`)
	assert.Contains(t, tk.Flux, `to(bucket: "vmflow_1m", org: "acme")`)
	assert.Contains(t, f.tasks["vmflow_vm_pair_1h"].Flux, `from(bucket: "vmflow_1m")`)
	assert.Equal(t, "active", tk.Status)

	n := len(f.writes)
	require.NoError(t, Setup(context.Background(), cfg, SetupOptions{}))
	assert.Equal(t, n, len(f.writes), "second run must not change anything: %v", f.writes[n:])

	cfg.Retention.Raw = 14 * 24 * time.Hour
	require.NoError(t, Setup(context.Background(), cfg, SetupOptions{}))
	assert.Equal(t, []string{"PATCH /api/v2/buckets/" + f.buckets["vmflow"].ID}, f.writes[n:])
	assert.Equal(t, int64(14*24*3600), f.buckets["vmflow"].RetentionRules[0].EverySeconds)

	cfg.Org = "nope"
	assert.ErrorContains(t, Setup(context.Background(), cfg, SetupOptions{}), "influx.org")
}
