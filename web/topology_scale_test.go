package web_test

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/api"
	"github.com/vmflow/vmflow/internal/scalefx"
	"github.com/vmflow/vmflow/store"
	"github.com/vmflow/vmflow/web"
)

// BenchmarkTopologyScale loads the topology view in headless Chromium with
// 2,000 VMs and 20,000 active pairs (internal/scalefx, 3 windows of 10 s in
// the memory store) and reports the first render: from the navigation
// start to ECharts' first finished frame (first-render-ms), the API answer
// (fetch-ms), the chart's setup (setoption-ms) and the renderer's
// main-thread busy time for the load (main-thread-ms: steadier than the
// wall clock on a shared machine), at the view's default
// (top 300 edges), at the maximum of 5,000 edges (every VM a node), and
// with the hypervisors collapsed. Target: first render < 2 s. Not a timed
// test: it fails only past a sanity bound of 30 s.
//
//	go test -run XXX -bench BenchmarkTopologyScale -benchtime 3x ./web
func BenchmarkTopologyScale(b *testing.B) {
	const vms, pairs, windows = 2000, 20_000, 3
	c := scalefx.New(vms, pairs)
	mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
	var end time.Time
	for i := 0; i < windows; i++ {
		w := c.Window(i)
		end = w.End
		mem.Write(w)
	}
	srv, err := api.New(api.DefaultConfig(), api.Deps{Store: mem, Recent: mem, UI: web.FS(), WindowSize: 10 * time.Second,
		Now: func() time.Time { return end }})
	require.NoError(b, err)
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	rng := "from=" + url.QueryEscape(end.Add(-windows*10*time.Second).Format(time.RFC3339)) + "&to=" + url.QueryEscape(end.Format(time.RFC3339))
	br := newBrowser(b, ts.URL)
	reload := 0
	_, err = chromedp.Call(br.ctx, performance.Enable, performance.EnableParams{})
	require.NoError(b, err)
	// mainThread is the current document's main-thread busy time so far
	// (tasks: script, style, layout, paint; Chromium counts it per
	// document): unlike the wall clock it does not grow when other
	// processes share the CPU.
	mainThread := func() float64 {
		res, err := chromedp.Call(br.ctx, performance.GetMetrics, cdp.Empty{})
		require.NoError(b, err)
		for _, m := range res.Metrics {
			if os.Getenv("VMFLOW_TOPO_METRICS") != "" && strings.HasSuffix(m.Name, "Duration") {
				b.Logf("%s %.0f ms", m.Name, m.Value*1000)
			}
			if m.Name == "TaskDuration" {
				return m.Value * 1000
			}
		}
		b.Fatal("no TaskDuration metric")
		return 0
	}
	for _, v := range []struct{ name, query string }{
		{"top300", ""},
		{"top5000", "&top=5000"},
		{"hosts-collapsed", "&level=group"},
	} {
		b.Run(v.name, func(b *testing.B) {
			br.t = b
			var sum struct{ nav, fetch, set, task float64 }
			var tm struct {
				SinceNavMs, FetchMs, SetOptionMs float64
				Nodes, Edges                     int
				Graph, Painted                   bool
			}
			for i := 0; i < b.N; i++ {
				// A fresh document each time (a new query string, not just a
				// new hash): module loading and the first paint count.
				reload++
				br.open(fmt.Sprintf("?r=%d#/topology?", reload) + rng + v.query)
				_, err := chromedp.Run(br.ctx, chromedp.Poll[bool](`!!(window.vmflow && window.vmflow.topologyTiming && window.vmflow.topologyTiming.painted)`,
					chromedp.WithPollingTimeout(30*time.Second)))
				require.NoError(b, err, "the map never finished drawing; errors %v", br.errs())
				br.eval(`(() => { const t = window.vmflow.topologyTiming; return {SinceNavMs: t.sinceNavMs, FetchMs: t.fetchMs, SetOptionMs: t.setOptionMs, Nodes: t.nodes, Edges: t.edges, Graph: t.graph, Painted: t.painted} })()`, &tm)
				sum.task += mainThread()
				require.True(b, tm.Graph, "drawn as a graph, not the table fallback")
				require.Less(b, tm.SinceNavMs, 30_000.0, "sanity bound")
				sum.nav += tm.SinceNavMs
				sum.fetch += tm.FetchMs
				sum.set += tm.SetOptionMs
			}
			n := float64(b.N)
			b.ReportMetric(sum.nav/n, "first-render-ms")
			b.ReportMetric(sum.fetch/n, "fetch-ms")
			b.ReportMetric(sum.set/n, "setoption-ms")
			b.ReportMetric(sum.task/n, "main-thread-ms")
			b.ReportMetric(float64(tm.Nodes), "nodes")
			b.ReportMetric(float64(tm.Edges), "edges")
			var steps map[string]float64
			br.eval(`window.vmflow.topologySteps`, &steps)
			b.Logf("%s: %d nodes, %d edges drawn; first render %.0f ms after navigation (API %.0f ms; last run: %v)", v.name, tm.Nodes, tm.Edges, sum.nav/n, sum.fetch/n, steps)
		})
	}
	require.Empty(b, br.errs(), "script errors")
	br.checkOrigin()
}
