package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/api"
	"github.com/vmflow/vmflow/api/auth"
	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/internal/synth"
)

// demoEnv is vmflow fed by `vmflow demo`'s synthetic cloud (real sFlow and
// IPFIX over loopback, the demo's alert rules), as `make demo` runs it.
type demoEnv struct {
	d      *app.Demo
	origin string
	// opToken is an operator's API token: the demo itself serves anonymous
	// viewers only, so changes (silences) need an identity.
	opToken string
}

func startDemoEnv(t *testing.T, window time.Duration) *demoEnv {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.jsonl")
	tok, err := auth.AppendToken(tokens, auth.TokenEntry{Name: "demo-operator", Role: auth.RoleOperator}, time.Now())
	require.NoError(t, err)
	d, err := app.StartDemo(context.Background(), synth.DemoConfig(), app.DemoOptions{Listen: "127.0.0.1:0", Window: window, Dir: dir,
		Environ: []string{"VMFLOW_API_AUTH_TOKENS_FILE=" + tokens}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(d.Stop)
	return &demoEnv{d: d, origin: "http://" + d.App.APIAddr(), opToken: tok}
}

func (e *demoEnv) api(t testing.TB, path string, out any) { apiGet(t, e.origin, path, out) }

type apiAlert struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Severity    string            `json:"severity"`
	State       string            `json:"state"`
	Labels      map[string]string `json:"labels"`
	Value       float64           `json:"value"`
	Silenced    bool              `json:"silenced"`
}

func (e *demoEnv) alerts(t testing.TB, q string) []apiAlert {
	var out struct {
		Alerts []apiAlert `json:"alerts"`
	}
	e.api(t, "/api/v1/alerts?"+q, &out)
	return out.Alerts
}

func fingerprints(as []apiAlert) []string {
	var fs []string
	for _, a := range as {
		fs = append(fs, a.Fingerprint)
	}
	sort.Strings(fs)
	return fs
}

// pageAlerts reads the fingerprints the alerts list shows.
func (b *browser) pageAlerts() []string {
	var fs []string
	b.eval(`[...document.querySelectorAll("#alerts-table .silence-btn")].map(x => x.dataset.fingerprint)`, &fs)
	sort.Strings(fs)
	return fs
}

// openStable opens hash and returns the API's alerts for q when the list
// did not change while the page loaded (alerts fire and resolve every
// window), retrying a few times.
func (e *demoEnv) openStable(t *testing.T, b *browser, hash, q string) []apiAlert {
	t.Helper()
	for try := 0; ; try++ {
		before := e.alerts(t, q)
		b.open(hash)
		after := e.alerts(t, q)
		if fmt.Sprint(fingerprints(before)) == fmt.Sprint(fingerprints(after)) || try == 4 {
			return after
		}
	}
}

// TestConsoleAlertsDemo: the alerts view against the real alert API of a
// vmflow fed by the demo: the demo's scans and new pairs fire real alerts
// within 30 s; the list shows exactly the API's alerts, filters by state
// and severity (in the URL), links to the subject, and silencing from the
// list creates the silence in the API and marks the alert silenced; no
// request leaves the vmflow origin; axe-core clean, screenshots in both
// themes (also of the overview and the map, for the README).
func TestConsoleAlertsDemo(t *testing.T) {
	e := startDemoEnv(t, 10*time.Second)
	start := time.Now()
	for len(e.alerts(t, "state=firing")) == 0 {
		require.Less(t, time.Since(start), 30*time.Second, "no firing alert 30 s after the demo started")
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("first firing alert %.1f s after start", time.Since(start).Seconds())
	b := newBrowser(t, e.origin)

	for _, theme := range []string{"light", "dark"} {
		th := "&theme=" + theme
		// The list is the API's, alert for alert.
		want := e.openStable(t, b, "#/alerts?state=firing"+th, "state=firing")
		require.NotEmpty(t, want)
		assert.Equal(t, fingerprints(want), b.pageAlerts(), "firing alerts shown = the API's")
		b.axe("alerts (demo) " + theme)
		b.shot("alerts-demo-" + theme)
		// And the overview's alert counts by severity.
		want = e.openStable(t, b, "#/overview?since=5m"+th, "state=firing")
		bySev := map[string]int{}
		for _, a := range want {
			bySev[a.Severity]++
		}
		for _, s := range []string{"P0", "P1", "P2", "P3", "P4"} {
			assert.Equal(t, float64(bySev[s]), b.value("#ov-alerts .sev-"+strings.ToLower(s)+" .kpi-value"), "overview %s alerts", s)
		}
		b.shot("overview-demo-" + theme)
		b.open("#/topology?since=5m" + th)
		b.shot("topology-demo-" + theme)
	}

	checkVMPortsDemo(t, e, b)

	// Filter by severity through the select: the URL holds it, every row has it.
	b.open("#/alerts?state=firing")
	sev := e.alerts(t, "state=firing")[0].Severity
	b.choose("#alert-filters-severity", sev)
	assert.Contains(t, b.hash(), "severity="+sev)
	var sevs []string
	b.eval(`[...document.querySelectorAll("#alerts-table .silence-btn")].map(x => x.dataset.severity)`, &sevs)
	require.NotEmpty(t, sevs)
	for _, s := range sevs {
		assert.Equal(t, sev, s)
	}
	// The URL restores the filter.
	b.open(b.hash())
	assert.Equal(t, sev, b.eval1(`document.getElementById("alert-filters-severity").value`))

	// Silence the first listed alert from the list, logged in as an
	// operator (the token cookie POST /login sets; anonymous viewers may
	// not change silences).
	_, err := chromedp.Call(b.ctx, network.SetCookie, network.SetCookieParams{Name: api.TokenCookie, Value: e.opToken, URL: e.origin, HTTPOnly: new(true)})
	require.NoError(t, err)
	b.open("#/alerts?state=firing")
	var first struct{ Fingerprint, Rule string }
	b.eval(`(() => { const x = document.querySelector("#alerts-table tbody tr:first-child .silence-btn"); return {Fingerprint: x.dataset.fingerprint, Rule: x.closest("tr").children[2].textContent} })()`, &first)
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS("#alerts-table tbody tr:first-child .silence-btn"))))
	b.stale()
	require.NoError(t, chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.CSS("form.silence input"), "demo maintenance\r")))
	b.waitReady()
	var sils struct {
		Silences []struct {
			ID       string `json:"id"`
			Comment  string `json:"comment"`
			State    string `json:"state"`
			EndsAt   string `json:"endsAt"`
			Matchers []struct{ Name, Value string }
		} `json:"silences"`
	}
	e.api(t, "/api/v1/silences", &sils)
	require.Len(t, sils.Silences, 1, "the silence is in the alert API")
	s := sils.Silences[0]
	assert.Equal(t, "demo maintenance", s.Comment)
	assert.Equal(t, "active", s.State)
	assert.Contains(t, fmt.Sprint(s.Matchers), first.Rule)
	ends, err := time.Parse(time.RFC3339, s.EndsAt)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), ends, 2*time.Minute, "silenced for the chosen hour")
	assert.Contains(t, b.text("#silences-table"), "demo maintenance")
	silenced := false
	for _, a := range e.alerts(t, "") {
		if a.Fingerprint == first.Fingerprint {
			silenced = a.Silenced
		}
	}
	assert.True(t, silenced, "the API marks the alert silenced")
	b.open("#/alerts")
	assert.Contains(t, b.text("#alerts-table"), "(silenced)")

	// The subject link opens the subject: the pair of a pair alert, the VM
	// of a VM alert.
	for _, a := range e.alerts(t, "state=firing") {
		src, dst, vm := a.Labels["src"], a.Labels["dst"], a.Labels["vm"]
		if vm == "" && (src == "" || dst == "") {
			continue
		}
		b.open("#/alerts?state=firing&severity=" + a.Severity)
		var n int
		b.eval(fmt.Sprintf(`[...document.querySelectorAll("#alerts-table .silence-btn")].findIndex(x => x.dataset.fingerprint === %q) + 1`, a.Fingerprint), &n)
		if n == 0 {
			continue // resolved meanwhile
		}
		b.click(fmt.Sprintf(`#alerts-table tbody tr:nth-child(%d) td:nth-child(4) a`, n))
		if src != "" && dst != "" {
			b.at("pair", map[string]string{"src": src, "dst": dst})
		} else {
			b.at("vm", map[string]string{"name": vm})
		}
		break
	}
	// The detail views list numeric fields they do not know yet (a later
	// vmflow's latency, connection or resource measurements).
	var extra [][]any
	b.eval(`import("/assets/views/common.js").then(m => m.extraFields({bytes: 1, src: {vm: "a"}, latency: {p50_us: 12, note: "x"}, rtt_ms: 3, top_ports: [1]}, new Set(["bytes", "src", "top_ports"])))`, &extra)
	assert.Equal(t, [][]any{{"latency.p50_us", 12.0}, {"rtt_ms", 3.0}}, extra)
	b.checkOrigin()
	raw, _ := json.Marshal(e.d.Gen.Stats())
	t.Logf("generator: %s", raw)
}

// checkVMPortsDemo: the demo's VMs send real sFlow counter samples; a VM's
// port counter table shows GET /api/v1/vms/{name}'s numbers (the range
// ends before the open window, retried while a late window lands).
func checkVMPortsDemo(t *testing.T, e *demoEnv, b *browser) {
	var name string
	for start := time.Now(); name == ""; time.Sleep(time.Second) {
		require.Less(t, time.Since(start), 40*time.Second, "no VM with port counters")
		var vms struct {
			VMs []struct {
				Name  string           `json:"name"`
				Ports []map[string]any `json:"ports"`
			} `json:"vms"`
		}
		e.api(t, "/api/v1/vms", &vms)
		for _, v := range vms.VMs {
			if len(v.Ports) > 0 && v.Ports[0]["in_bps"].(float64) > 0 {
				name = v.Name
				break
			}
		}
	}
	rng := "from=" + url.QueryEscape(time.Now().Add(-10*time.Minute).UTC().Format(time.RFC3339)) + "&to=" + url.QueryEscape(time.Now().Add(-time.Second).UTC().Format(time.RFC3339))
	get := func() (ps []map[string]any) {
		var d struct {
			Ports []map[string]any `json:"ports"`
		}
		e.api(t, "/api/v1/vms/"+name+"?"+rng, &d)
		return d.Ports
	}
	var ps []map[string]any
	for try := 0; try < 5; try++ {
		before := get()
		b.open("#/vm?name=" + url.QueryEscape(name) + "&" + rng)
		if ps = get(); fmt.Sprint(before) == fmt.Sprint(ps) {
			break
		}
	}
	require.NotEmpty(t, ps)
	for _, p := range ps {
		port, _ := p["name"].(string)
		if port == "" {
			port = fmt.Sprint(p["if_index"])
		}
		for _, k := range []string{"in_bps", "out_bps", "in_pps", "out_pps", "in_errors", "out_discards"} {
			same(t, p[k].(float64), b.value(fmt.Sprintf(`#vm-ports-table td.port[data-port=%q][data-field=%q]`, port, k)), name+" "+k)
		}
	}
	b.axe("vm (demo)")
	b.shot("vm-demo")
}
