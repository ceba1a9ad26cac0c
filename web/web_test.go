package web_test

import (
	"context"
	"io/fs"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/api"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
	"github.com/vmflow/vmflow/web"
)

func TestFSHasNoExternalReferences(t *testing.T) {
	ui := web.FS()
	var files []string
	require.NoError(t, fs.WalkDir(ui, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, p)
		b, err := fs.ReadFile(ui, p)
		if err != nil {
			return err
		}
		s := string(b)
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			assert.NotContains(t, s, bad, "%s must not load anything from elsewhere", p)
		}
		return nil
	}))
	assert.ElementsMatch(t, []string{"index.html", "assets/app.js", "assets/style.css"}, files)
}

type exporters []collector.ExporterStatus

func (e exporters) Exporters() []collector.ExporterStatus { return e }

func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("VMFLOW_INTEGRATION") == "1" {
		t.Fatal("chromium not found (apt-get install -y chromium); required under VMFLOW_INTEGRATION=1")
	}
	t.Skip("chromium not found; set VMFLOW_INTEGRATION=1 to make this a failure")
	return ""
}

// TestUIShowsPairs drives headless chromium against the real API handler
// serving the embedded UI, with a store holding known pairs.
func TestUIShowsPairs(t *testing.T) {
	exe := chromium(t)

	now := time.Now().Truncate(10 * time.Second)
	w := &aggregate.Window{Start: now.Add(-20 * time.Second), End: now.Add(-10 * time.Second)}
	vmA := aggregate.EndpointKey{VM: 1}
	vmB := aggregate.EndpointKey{VM: 2}
	ext := aggregate.EndpointKey{IP: netip.MustParseAddr("198.51.100.9")}
	w.Pairs = []aggregate.Pair{
		{Key: aggregate.PairKey{Src: vmA, Dst: vmB, Source: decoder.SourceIPFIX},
			Src:   aggregate.Endpoint{VM: "frontend-7", Host: "hv1", IP: "10.0.0.7"},
			Dst:   aggregate.Endpoint{VM: "postgres-2", Host: "hv2", IP: "10.0.0.2"},
			Stats: aggregate.Stats{Bytes: 1234567, Packets: 1000, Samples: 1000, Flows: 3, SampledBytes: 1234567, SampledPackets: 1000}},
		{Key: aggregate.PairKey{Src: vmA, Dst: ext, Source: decoder.SourceSFlow},
			Src:   aggregate.Endpoint{VM: "frontend-7", Host: "hv1", IP: "10.0.0.7"},
			Dst:   aggregate.Endpoint{IP: "198.51.100.9"},
			Stats: aggregate.Stats{Bytes: 64000, Packets: 64, BytesVar: 1e8, Samples: 4, Flows: 1, SampledBytes: 4000, SampledPackets: 4}},
	}
	mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
	mem.Write(w)
	en, err := enrich.New(enrich.DefaultConfig(), nil)
	require.NoError(t, err)
	srv, err := api.New(api.DefaultConfig(), api.Deps{
		Store: mem, Recent: mem, Inventory: en, UI: web.FS(),
		Exporters: exporters{{Protocol: "ipfix", Address: "192.0.2.1:41000", ObsDomain: 5, Datagrams: 42, Samples: 420, LastSeen: now}},
	})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return v
	}
	rowCount := func() int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#pairs tbody tr").length`))
		require.NoError(t, err)
		return n
	}

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#pairs tbody tr`)),
		chromedp.WaitVisible(chromedp.CSS(`#exporters tbody tr`)),
	))
	assert.Equal(t, 2, rowCount())
	pairsText := text(`#pairs tbody`)
	assert.Contains(t, pairsText, "frontend-7")
	assert.Contains(t, pairsText, "postgres-2")
	assert.Contains(t, pairsText, "198.51.100.9", "non-VM endpoint shown by IP")
	assert.Equal(t, "frontend-7", strings.TrimSpace(text(`#pairs tbody tr:first-child td:nth-child(1)`)))
	assert.Equal(t, "postgres-2", strings.TrimSpace(text(`#pairs tbody tr:first-child td:nth-child(2)`)))
	assert.Equal(t, "1.23 MB", strings.TrimSpace(text(`#pairs tbody tr:first-child td.bytes`)), "largest pair first, bytes formatted")
	assert.Contains(t, text(`#exporters tbody`), "192.0.2.1:41000")

	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("health").classList.contains("ok")`,
		chromedp.WithPollingTimeout(10*time.Second)))
	require.NoError(t, err)
	assert.Contains(t, text(`#health`), "ok")

	// Source selector: sFlow only shows the sFlow pair.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#source`), "sflow"),
	))
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("source").dispatchEvent(new Event("change"))`))
	require.NoError(t, err)
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#pairs tbody tr").length === 1`,
		chromedp.WithPollingTimeout(10*time.Second)))
	require.NoError(t, err)
	pairsText = text(`#pairs tbody`)
	assert.Contains(t, pairsText, "198.51.100.9")
	assert.NotContains(t, pairsText, "postgres-2")

	// VM filter: a VM with no traffic empties the table and says so.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#vm`), "nobody"),
	))
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#pairs tbody tr").length === 0 && !document.getElementById("pairs-empty").hidden`,
		chromedp.WithPollingTimeout(10*time.Second)))
	require.NoError(t, err)
}
