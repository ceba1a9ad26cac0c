package web_test

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// axe-core, vendored for the tests only (see testdata/axe-core-4.14.1).
//
//go:embed testdata/axe-core-4.14.1/axe.min.js
var axeJS string

// browser is one headless Chromium tab on the console, recording every
// request it makes and every script error.
type browser struct {
	t      testing.TB
	ctx    context.Context
	origin string

	mu       sync.Mutex
	requests []string
	errors   []string
}

func chromeOpts(t testing.TB, exe string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
}

func newBrowser(t testing.TB, origin string) *browser {
	t.Helper()
	exe := chromium(t)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), chromeOpts(t, exe)...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(cancel3)
	b := &browser{t: t, ctx: ctx, origin: origin}
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == "error" {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, "console.error: "+strings.Join(parts, " "))
			}
		}
	}))
	return b
}

// open loads the console at hash in a fresh document and waits for the view.
func (b *browser) open(hash string) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Navigate(b.origin+"/"+hash)))
	b.waitReady()
}

// goHash changes the hash in the loaded page (as a link would) and waits.
func (b *browser) goHash(hash string) {
	b.t.Helper()
	b.stale()
	b.eval(fmt.Sprintf(`location.hash = %q; true`, hash), nil)
	b.waitReady()
}

// stale marks the current render so that waitReady waits for the next one.
func (b *browser) stale() {
	b.eval(`document.getElementById("view").dataset.state = "stale"; true`, nil)
}

func (b *browser) waitReady() {
	b.t.Helper()
	state, err := chromedp.Run(b.ctx, chromedp.Poll[string](`(() => { const s = document.getElementById("view") && document.getElementById("view").dataset.state; return s === "ready" || s === "error" ? s : null })()`,
		chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(b.t, err, "view never got ready; errors: %v", b.errs())
	if state == "error" {
		var msg string
		b.eval(`document.getElementById("view").textContent`, &msg)
		b.t.Fatalf("view failed: %s (errors %v)", msg, b.errs())
	}
	// Let charts paint.
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Sleep(150*time.Millisecond)))
}

func (b *browser) eval(js string, out any) {
	b.t.Helper()
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[json.RawMessage](js, func(p *runtime.EvaluateParams) { yes := true; p.AwaitPromise = &yes }))
	require.NoError(b.t, err, js)
	if out != nil {
		require.NoError(b.t, json.Unmarshal(raw, out), "%s: %s", js, raw)
	}
}

// at reports whether the page shows view with the given parameters.
func (b *browser) at(view string, want map[string]string) bool {
	b.t.Helper()
	h := strings.TrimPrefix(b.hash(), "#/")
	v, qs, _ := strings.Cut(h, "?")
	q, err := url.ParseQuery(qs)
	if err != nil || v != view {
		b.t.Errorf("at %q, want view %s", h, view)
		return false
	}
	for k, x := range want {
		if q.Get(k) != x {
			b.t.Errorf("at %q, want %s=%s", h, k, x)
			return false
		}
	}
	return true
}

func (b *browser) hash() string {
	var h string
	b.eval(`location.hash`, &h)
	return h
}

// value reads the data-value of the first element matching sel.
func (b *browser) value(sel string) float64 {
	b.t.Helper()
	var v float64
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no element " + %q); return parseFloat(e.dataset.value) })()`, sel, sel), &v)
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var v string
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no element " + %q); return e.textContent })()`, sel, sel), &v)
	return strings.TrimSpace(v)
}

// attr reads an attribute of the first element matching sel.
func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	var v string
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no element " + %q); return e.getAttribute(%q) || "" })()`, sel, sel, name), &v)
	return v
}

func (b *browser) count(sel string) int {
	var n int
	b.eval(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n)
	return n
}

// click clicks the element through the page (as a keyboard Enter or a mouse would).
func (b *browser) click(sel string) {
	b.t.Helper()
	b.stale()
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(sel))), sel)
	b.waitReady()
}

// fill sets a form field and submits its form with Enter.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.stale()
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = ""; e.focus(); return true })()`, sel), nil)
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.CSS(sel), value+"\r")), sel)
	b.waitReady()
}

// choose sets a select (its change event applies it).
func (b *browser) choose(sel, value string) {
	b.t.Helper()
	b.stale()
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event("change")); return true })()`, sel, value), nil)
	b.waitReady()
}

// chart returns the data of a chart's series (window.vmflow.chartData).
func (b *browser) chart(name string, out any) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(() => { const o = window.vmflow.chartData(%q); if (!o) throw new Error("no chart %s"); return o.series.map(s => ({name: s.name, data: s.data, links: s.links || null})) })()`, name, name), out)
}

// axe runs axe-core in the page: no WCAG 2 A/AA violation.
func (b *browser) axe(what string) {
	b.t.Helper()
	var loaded bool
	b.eval(`typeof axe !== "undefined"`, &loaded)
	if !loaded {
		b.eval(axeJS+"\n;true", nil)
	}
	var res []struct {
		ID    string `json:"id"`
		Help  string `json:"help"`
		Nodes []struct {
			Target []any  `json:"target"`
			HTML   string `json:"html"`
			Fail   string `json:"failureSummary"`
		} `json:"nodes"`
	}
	b.eval(`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}).then(r => r.violations)`, &res)
	for _, v := range res {
		var where []string
		for i, n := range v.Nodes {
			if i == 3 {
				where = append(where, fmt.Sprintf("... %d more", len(v.Nodes)-3))
				break
			}
			where = append(where, fmt.Sprintf("%v %s", n.Target, n.Fail))
		}
		b.t.Errorf("%s: axe %s (%s): %s", what, v.ID, v.Help, strings.Join(where, "; "))
	}
}

// screenshotDir is where the screenshots go (VMFLOW_SCREENSHOTS, default
// bin/screenshots at the repository root).
func screenshotDir(t testing.TB) string {
	d := os.Getenv("VMFLOW_SCREENSHOTS")
	if d == "" {
		d = filepath.Join("..", "bin", "screenshots")
	}
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

func (b *browser) shot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(90)) // quality < 100: JPEG
	require.NoError(b.t, err)
	p := filepath.Join(screenshotDir(b.t), name+".jpg")
	require.NoError(b.t, os.WriteFile(p, buf, 0o644))
	b.t.Logf("screenshot %s", p)
}

func (b *browser) errs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// checkOrigin: every request the page made went to the vmflow origin (or
// was a data: URL).
func (b *browser) checkOrigin() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.NotEmpty(b.t, b.requests, "no request recorded: the network listener is broken")
	for _, u := range b.requests {
		if !strings.HasPrefix(u, b.origin+"/") && u != b.origin && !strings.HasPrefix(u, "data:") {
			b.t.Errorf("request outside the vmflow origin %s: %s", b.origin, u)
		}
	}
	require.Empty(b.t, b.errors, "script errors in the page")
}

func apiGet(t testing.TB, origin, path string, out any) {
	t.Helper()
	resp, err := http.Get(origin + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, 200, resp.StatusCode, "%s: %s", path, body)
	require.NoError(t, json.Unmarshal(body, out), path)
}
