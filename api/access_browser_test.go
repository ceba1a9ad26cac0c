package api

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zitadel/oidc/v3/example/server/storage"

	"github.com/vmflow/vmflow/internal/testenv/bin"
)

// TestOIDCLoginInChromium: headless Chromium opens the UI without a
// session, is sent to the OpenID provider (zitadel/oidc's example OP on
// loopback), logs in there as test-user and lands on the UI; the page's
// own API calls then carry the session (HttpOnly: invisible to scripts)
// and see tenant acme's pairs only.
func TestOIDCLoginInChromium(t *testing.T) {
	exe := bin.Require(t, "chromium", "apt-get install -y chromium")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	issuer := "http://" + ln.Addr().String()
	var cfg Config
	var deps Deps
	newEnv(t, func(d *Deps, c *Config) {
		c.Auth.Anonymous = false
		c.OIDC.Issuer, c.OIDC.ClientID, c.OIDC.ClientSecret = issuer, "vmflow-ui", "s3cret"
		c.OIDC.Scopes = []string{"profile", storage.CustomScope}
		cfg, deps = *c, *d
	})
	deps.Registerer = nil
	srv, err := New(cfg, deps) // no fixture credentials: the browser's own
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	storage.RegisterClients(storage.WebClient("vmflow-ui", "s3cret", ts.URL+"/auth/callback"))
	startOPWith(t, ln)

	actx, cancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
	defer cancel()
	ctx, cancel2 := chromedp.NewContext(actx)
	defer cancel2()
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	defer cancel3()
	poll := func(js string) string { // survives the navigations of the login flow
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const v = `+js+`; return v === null ? "" : v })()`))
			if err == nil && v != "" {
				return v
			}
			require.True(t, time.Now().Before(deadline), "waiting for %s: %v", js, err)
			time.Sleep(200 * time.Millisecond)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, func(p *runtime.EvaluateParams) { yes := true; p.AwaitPromise = &yes }))
		require.NoError(t, err, js)
		return v
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/")))
	loginPage := poll(`document.getElementById("username") ? location.href : null`)
	assert.True(t, strings.HasPrefix(loginPage, issuer), "the UI sent the browser to the provider: %s", loginPage)
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#username"), "test-user@127.0.0.1")))
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#password"), "verysecure\r")))
	landed := poll(`location.href.startsWith(` + quoteJS(ts.URL) + `) && document.title === "vmflow" ? location.href : null`)
	assert.Equal(t, ts.URL+"/", landed)
	assert.NotContains(t, eval(`Promise.resolve(document.cookie)`), "vmflow_oidc", "the session cookie is HttpOnly")
	pairs := eval(`fetch("/api/v1/pairs?since=1h").then(r => r.text())`)
	assert.Contains(t, pairs, "web-1")
	assert.Contains(t, pairs, OtherTenant, "acme's pair from cache-1 shows the other tenant masked")
	assert.NotContains(t, pairs, "cache-1")
	assert.Contains(t, eval(`fetch("/api/v1/exporters").then(r => String(r.status))`), "403")
}

func quoteJS(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
