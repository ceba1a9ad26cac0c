package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/api/auth"
)

// TestEveryRouteHasAPolicy: every route the server registers (with the
// UI) and every operation of the OpenAPI document has a declared access
// policy, and every policy names a registered route. A route added
// without a row in routePolicies fails here (and answers 403 meanwhile).
func TestEveryRouteHasAPolicy(t *testing.T) {
	e := newEnv(t, nil)
	registered := map[string]bool{}
	for _, r := range e.srv.Routes() {
		key := r.Method + " " + r.Path
		registered[key] = true
		_, ok := routePolicies[key]
		assert.True(t, ok, "route %s has no access policy: add it to routePolicies (access_policy.go)", key)
	}
	for key := range routePolicies {
		assert.True(t, registered[key], "policy for %s, which is no route", key)
	}
	doc := loadDoc(t, e)
	for p, ops := range doc.Paths {
		for m := range ops {
			role, tenant, ok := RouteAccess(strings.ToUpper(m), RouteOf(p))
			assert.True(t, ok, "documented %s %s has no policy", m, p)
			if strings.HasPrefix(p, "/api/v1/admin/") || strings.ToUpper(m) != "GET" && p != "/login" && p != "/logout" {
				assert.NotEqual(t, auth.RoleViewer, role, "%s %s changes state: more than viewer", m, p)
				assert.False(t, tenant, "%s %s changes state: not for tenants", m, p)
			}
		}
	}
	// Fail closed: a route registered without a policy is refused.
	e.srv.engine.GET("/api/v1/undeclared", func(c *gin.Context) { c.String(200, "secret") })
	code, body := e.do(t, "GET", "/api/v1/undeclared", "", nil)
	assert.Equal(t, http.StatusForbidden, code)
	assert.NotContains(t, body, "secret")
}

// accessEnv is a server with anonymous access off and tokens for each
// role and for tenant "other" (VM cache-1 of the fixture) and "acme".
type accessEnv struct {
	*testEnv
	tok   map[string]string
	audit *bytes.Buffer
}

func newAccessEnv(t testing.TB, mutate func(*Deps, *Config)) *accessEnv {
	t.Helper()
	ae := &accessEnv{tok: map[string]string{}, audit: &bytes.Buffer{}}
	file := filepath.Join(t.TempDir(), "tokens")
	for _, x := range []struct {
		name    string
		role    auth.Role
		tenants []string
		exp     time.Time
	}{
		{"viewer", auth.RoleViewer, nil, time.Time{}}, {"operator", auth.RoleOperator, nil, time.Time{}},
		{"admin", auth.RoleAdmin, nil, time.Time{}}, {"expired", auth.RoleAdmin, nil, T}, // the fixture clock is T+60s
		{"other", auth.RoleViewer, []string{"other"}, time.Time{}}, {"acme", auth.RoleViewer, []string{"acme"}, time.Time{}},
	} {
		tok, err := auth.AppendToken(file, auth.TokenEntry{Name: x.name, Role: x.role, Tenants: x.tenants, Expires: x.exp}, time.Now())
		require.NoError(t, err)
		ae.tok[x.name] = tok
	}
	ae.testEnv = newEnv(t, func(d *Deps, c *Config) {
		c.Auth.TokensFile, c.Auth.Anonymous = file, false
		d.Access.AuditWriter = syncWriter{ae.audit}
		if mutate != nil {
			mutate(d, c)
		}
	})
	return ae
}

type syncWriter struct{ w io.Writer }

func (s syncWriter) Write(b []byte) (int, error) { return s.w.Write(b) }

// do sends a request with the given Authorization header ("" none: the
// fixture then adds its admin token, so "none" is sent as "-").
func (e *testEnv) do(t *testing.T, method, path, authz string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	require.NoError(t, err)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := noFollow.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (ae *accessEnv) as(name string) string { return "Bearer " + ae.tok[name] }

func TestTenantViewMasksOtherTenants(t *testing.T) {
	ae := newAccessEnv(t, nil)
	// Tenant "other" owns cache-1; its one pair goes to acme's web-1.
	code, body := ae.do(t, "GET", "/api/v1/pairs?since=1h", ae.as("other"), nil)
	require.Equal(t, 200, code, body)
	var out pairsOut
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	require.Len(t, out.Pairs, 1, body)
	assert.Equal(t, "cache-1", out.Pairs[0].Src.VM)
	assert.Equal(t, OtherTenant, out.Pairs[0].Dst.VM)
	assert.Equal(t, aggStatsBytes(2000), out.Pairs[0].Bytes)
	for _, s := range []string{"web-1", "db-1", "10.0.0.1", "52:54:00:00:00:01", "11111111-1111", "192.0.2.7", "8.8.8.8", "hv1"} {
		assert.NotContains(t, body, s)
	}
	// Every readable route, and filters naming acme's VMs.
	for _, p := range []string{"/api/v1/vms", "/api/v1/overview?since=1h", "/api/v1/graph?since=1h", "/api/v1/graph?since=1h&group=tenant",
		"/api/v1/capacity?since=1h", "/api/v1/capacity?since=1h&kind=pair", "/api/v1/alerts", "/api/v1/health",
		"/api/v1/pairs?since=1h&vm=web-1", "/api/v1/overview?since=1h&vm=web-1", "/api/v1/pairs/cache-1/" + urlPath(OtherTenant) + "/series?since=1h"} {
		code, body := ae.do(t, "GET", p, ae.as("other"), nil)
		assert.Equal(t, 200, code, "%s: %s", p, body)
		for _, s := range []string{"web-1", "db-1", "10.0.0.1", "10.0.0.2", "52:54:00:00:00:01", "52:54:00:00:00:02", "11111111-1111", "192.0.2.7", "\"clone\"", "/api/v1/exporters"} {
			assert.False(t, strings.Contains(body, s), "%s shows %s", p, s)
		}
	}
	// The OpenAPI document a tenant gets lists only what it may call.
	code, body = ae.do(t, "GET", "/api/v1/openapi.json", ae.as("other"), nil)
	require.Equal(t, 200, code)
	var doc struct{ Paths map[string]map[string]any }
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	assert.Contains(t, doc.Paths, "/api/v1/pairs")
	for _, p := range []string{"/api/v1/exporters", "/api/v1/inventory/sources", "/metrics", "/api/v1/silences", "/api/v1/admin/reload", "/api/v1/alerts/rules"} {
		assert.NotContains(t, doc.Paths, p)
	}
	// A VM of another tenant is a VM that does not exist.
	c1, b1 := ae.do(t, "GET", "/api/v1/vms/web-1/series?since=1h", ae.as("other"), nil)
	c2, b2 := ae.do(t, "GET", "/api/v1/vms/nosuch/series?since=1h", ae.as("other"), nil)
	assert.Equal(t, 404, c1)
	assert.Equal(t, c2, c1)
	assert.Equal(t, strings.ReplaceAll(b2, "nosuch", "web-1"), b1)
	// acme sees its pairs, the external scanner masked.
	code, body = ae.do(t, "GET", "/api/v1/pairs?since=1h", ae.as("acme"), nil)
	require.Equal(t, 200, code)
	assert.Contains(t, body, "web-1")
	assert.Contains(t, body, External)
	assert.NotContains(t, body, "192.0.2.7")
	assert.NotContains(t, body, "cache-1")
	// Bounded cost for tenants.
	code, body = ae.do(t, "GET", "/api/v1/pairs?since=720h", ae.as("acme"), nil)
	assert.Equal(t, 400, code, body)
	assert.Contains(t, body, "at most")
	code, _ = ae.do(t, "GET", "/api/v1/pairs?limit=1000", ae.as("acme"), nil)
	assert.Equal(t, 400, code)
	code, _ = ae.do(t, "GET", "/api/v1/pairs?since=720h", ae.as("viewer"), nil)
	assert.Equal(t, 200, code, "unscoped identities keep the full range")
}

func TestTenantExternalIPsWhenConfigured(t *testing.T) {
	ae := newAccessEnv(t, func(_ *Deps, c *Config) { c.Auth.TenantExternalIPs = true })
	_, body := ae.do(t, "GET", "/api/v1/pairs?since=1h", ae.as("acme"), nil)
	assert.Contains(t, body, "192.0.2.7")
	assert.NotContains(t, body, "cache-1")
}

func aggStatsBytes(b float64) float64 { return b }

func urlPath(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "(", "%28"), " ", "%20")
}

func TestAuthenticationAndRoles(t *testing.T) {
	ae := newAccessEnv(t, nil)
	for _, c := range []struct {
		authz, method, path string
		want                int
	}{
		{"-", "GET", "/api/v1/pairs", 401},
		{"Bearer vmf_nope", "GET", "/api/v1/pairs", 401},
		{"Bearer something-else", "GET", "/api/v1/pairs", 401},
		{"Basic dXNlcjpwYXNz", "GET", "/api/v1/pairs", 401},
		{ae.as("expired"), "GET", "/api/v1/pairs", 401},
		{ae.as("viewer"), "GET", "/api/v1/pairs", 200},
		{"bearer  " + ae.tok["viewer"], "GET", "/api/v1/pairs", 200},
		{ae.as("viewer"), "GET", "/metrics", 200},
		{"-", "GET", "/metrics", 401},
		{ae.as("viewer"), "POST", "/api/v1/silences", 403},
		{ae.as("operator"), "POST", "/api/v1/admin/reload", 403},
		{ae.as("admin"), "POST", "/api/v1/admin/reload", 503},
		{ae.as("other"), "GET", "/api/v1/exporters", 403},
		{ae.as("other"), "GET", "/metrics", 403},
		{"-", "GET", "/", 302},
		{"-", "GET", "/login", 200},
	} {
		code, body := ae.do(t, c.method, c.path, c.authz, nil)
		assert.Equal(t, c.want, code, "%s %s as %q: %s", c.method, c.path, c.authz, body)
	}
	code, body := ae.do(t, "GET", "/api/v1/pairs", ae.as("expired"), nil)
	assert.Equal(t, 401, code)
	assert.Contains(t, body, "expired")
	// The audit log has each request, with who and role.
	var n int
	for _, l := range strings.Split(strings.TrimSpace(ae.audit.String()), "\n") {
		var rec AuditRecord
		require.NoError(t, json.Unmarshal([]byte(l), &rec), l)
		if rec.Who == "operator" && rec.Route == "/api/v1/admin/reload" {
			assert.Equal(t, auth.RoleOperator, rec.Role)
			assert.Equal(t, 403, rec.Status)
			n++
		}
		if rec.Who == "other" {
			assert.Equal(t, []string{"other"}, rec.Tenants)
		}
	}
	assert.Equal(t, 1, n)
}

func TestTokenFileReloadAndRevoke(t *testing.T) {
	ae := newAccessEnv(t, nil)
	file := ae.srv.cfg.Auth.TokensFile
	tok, err := auth.AppendToken(file, auth.TokenEntry{Name: "late", Role: auth.RoleOperator}, time.Now())
	require.NoError(t, err)
	waitStatus := func(authz string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, _ := ae.do(t, "GET", "/api/v1/health", authz, nil)
			if code == want || time.Now().After(deadline) {
				assert.Equal(t, want, code)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitStatus("Bearer "+tok, 200)
	// Revoke: delete its line.
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var kept []string
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, `"late"`) {
			kept = append(kept, l)
		}
	}
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(kept, "\n")), 0o600))
	waitStatus("Bearer "+tok, 401)
	// A broken file keeps the tokens in effect.
	require.NoError(t, os.WriteFile(file, append(data, []byte("{not json\n")...), 0o600))
	time.Sleep(1100 * time.Millisecond)
	waitStatus(ae.as("viewer"), 200)
	// The audit log has the token change (names, never hashes).
	assert.Contains(t, ae.audit.String(), `"object":"tokens"`)
	assert.NotContains(t, ae.audit.String(), auth.HashToken(tok))
}

func TestRateLimitAndBodyLimit(t *testing.T) {
	ae := newAccessEnv(t, func(_ *Deps, c *Config) {
		c.Limits.Rate, c.Limits.Burst = 1, 3
		c.Limits.MaxBodyBytes = 1024
	})
	codes := []int{}
	var retry string
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequest("GET", ae.ts.URL+"/api/v1/health", nil)
		req.Header.Set("Authorization", ae.as("viewer"))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	assert.Equal(t, []int{200, 200, 200, 429, 429}, codes)
	assert.Equal(t, "1", retry)
	code, _ := ae.do(t, "GET", "/api/v1/health", ae.as("admin"), nil)
	assert.Equal(t, 200, code, "limits are per identity")
	big := strings.Repeat("x", 4096)
	code, body := ae.do(t, "POST", "/api/v1/silences", ae.as("operator"), strings.NewReader(big))
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, body)
}

func TestSecurityHeadersAndCORS(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := http.Get(e.ts.URL + "/")
	require.NoError(t, err)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "script-src 'self'")
	assert.NotContains(t, csp, "unsafe-inline")
	assert.NotContains(t, csp, "unsafe-eval")
	assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	// CORS is closed: a preflight gets no Access-Control-* headers.
	req, _ := http.NewRequest("OPTIONS", e.ts.URL+"/api/v1/pairs", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	req, _ = http.NewRequest("GET", e.ts.URL+"/api/v1/pairs", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestLoginCookie(t *testing.T) {
	ae := newAccessEnv(t, nil)
	form := "token=" + ae.tok["viewer"] + "&next=%2F%23%2Fpairs"
	req, _ := http.NewRequest("POST", ae.ts.URL+"/login", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "-") // not the fixture's admin
	resp, err := noFollow.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/#/pairs", resp.Header.Get("Location"))
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == TokenCookie {
			ck = c
		}
	}
	require.NotNil(t, ck)
	assert.True(t, ck.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	get := func(path, origin string, method string) int {
		req, _ := http.NewRequest(method, ae.ts.URL+path, nil)
		req.AddCookie(ck)
		req.Header.Set("Authorization", "")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		// The fixture adds its admin token when there is no header: send
		// the cookie through a server without that wrapper.
		rec := httptest.NewRecorder()
		ae.srv.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	assert.Equal(t, 200, get("/api/v1/pairs", "", "GET"))
	assert.Equal(t, 200, get("/", "", "GET"))
	assert.Equal(t, 403, get("/api/v1/silences", "https://evil.example", "POST"), "viewer")
	// Open redirects are refused.
	assert.Equal(t, "/", localNext("//evil.example/"))
	assert.Equal(t, "/", localNext("https://evil.example/"))
	assert.Equal(t, "/#/vm/x", localNext("/#/vm/x"))
}

// fakeSSO stands for the OpenID Connect authenticator: a JWT-like bearer
// token and a login route of its own.
type fakeSSO struct{}

func (fakeSSO) Authenticate(r *http.Request) (*auth.Identity, error) {
	switch auth.BearerToken(r) {
	case "":
		return nil, auth.ErrNoCredentials
	case "jwt-acme":
		return &auth.Identity{Name: "carol@example", Role: auth.RoleViewer, Tenants: []string{"acme"}, Method: auth.MethodJWT}, nil
	case "jwt-old":
		return &auth.Identity{Name: "dave@example", Role: auth.RoleAdmin, Expires: T, Method: auth.MethodJWT}, nil
	}
	if strings.HasPrefix(auth.BearerToken(r), auth.TokenPrefix) {
		return nil, auth.ErrNoCredentials
	}
	return nil, auth.ErrInvalid
}

func (fakeSSO) Routes() []auth.Route {
	return []auth.Route{{Method: "GET", Path: "/auth/callback", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "callback")
	})}}
}

func (fakeSSO) LoginURL(next string) string { return "/auth/login?next=" + next }

// TestAuthenticatorSeam: an extra authenticator (OIDC) plugs in through
// Deps.Access without changes to the API: its identities get roles and
// tenant scope like tokens, expired ones are refused, its routes are
// public, browsers are sent to its login.
func TestAuthenticatorSeam(t *testing.T) {
	ae := newAccessEnv(t, func(d *Deps, _ *Config) { d.Access.Authenticators = []auth.Authenticator{fakeSSO{}} })
	code, body := ae.do(t, "GET", "/api/v1/pairs?since=1h", "Bearer jwt-acme", nil)
	require.Equal(t, 200, code, body)
	assert.Contains(t, body, "web-1")
	assert.NotContains(t, body, "cache-1")
	code, _ = ae.do(t, "GET", "/api/v1/exporters", "Bearer jwt-acme", nil)
	assert.Equal(t, 403, code)
	code, body = ae.do(t, "GET", "/api/v1/pairs", "Bearer jwt-old", nil)
	assert.Equal(t, 401, code, body)
	code, _ = ae.do(t, "GET", "/api/v1/pairs", "Bearer forged", nil)
	assert.Equal(t, 401, code)
	code, _ = ae.do(t, "GET", "/api/v1/pairs", ae.as("viewer"), nil)
	assert.Equal(t, 200, code, "tokens still work next to it")
	code, body = ae.do(t, "GET", "/auth/callback", "-", nil)
	assert.Equal(t, 200, code)
	assert.Equal(t, "callback", body)
	req, _ := http.NewRequest("GET", ae.ts.URL+"/", nil)
	req.Header.Set("Authorization", "-")
	resp, err := noFollow.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "/auth/login?next=/", resp.Header.Get("Location"))
	assert.Contains(t, ae.audit.String(), `"who":"carol@example","auth":"jwt","role":"viewer","tenants":["acme"]`)
}

// TestAuditChanges: a silence created and deleted is in the audit log
// with who did it and the silence added, then removed; refusals count in
// vmflow_api_denied_total.
func TestAuditChanges(t *testing.T) {
	ae := newAccessEnv(t, nil)
	body := `{"matchers":[{"name":"vm","value":"web-1","isRegex":false}],"endsAt":"2025-03-01T14:00:00Z","comment":"deploy","createdBy":"ops"}`
	req, _ := http.NewRequest("POST", ae.ts.URL+"/api/v1/silences", strings.NewReader(body))
	req.Header.Set("Authorization", ae.as("operator"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var out struct {
		Silence struct{ ID, CreatedBy string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "operator", out.Silence.CreatedBy, "the authenticated identity, not the body's createdBy")
	code, _ := ae.do(t, "DELETE", "/api/v1/silences/"+out.Silence.ID, ae.as("admin"), nil)
	require.Equal(t, 200, code)
	var added, removed bool
	for _, l := range strings.Split(strings.TrimSpace(ae.audit.String()), "\n") {
		var rec AuditRecord
		require.NoError(t, json.Unmarshal([]byte(l), &rec))
		if rec.Kind != "change" || rec.Object != "silences" {
			continue
		}
		switch rec.Who {
		case "operator":
			added = len(rec.Added) == 1 && len(rec.Removed) == 0 && strings.Contains(string(rec.Added[0]), out.Silence.ID)
			assert.Equal(t, "/api/v1/silences", rec.Route)
		case "admin":
			removed = len(rec.Removed) == 1 && strings.Contains(string(rec.Removed[0]), out.Silence.ID)
		}
	}
	assert.True(t, added, "creation audited: %s", ae.audit.String())
	assert.True(t, removed, "deletion audited: %s", ae.audit.String())
	ae.do(t, "GET", "/api/v1/pairs", "-", nil)
	ae.do(t, "POST", "/api/v1/silences", ae.as("viewer"), strings.NewReader(body))
	assert.Equal(t, 1.0, testutil.ToFloat64(ae.srv.access.mDenied.WithLabelValues("unauthenticated")))
	assert.Equal(t, 1.0, testutil.ToFloat64(ae.srv.access.mDenied.WithLabelValues("forbidden")))
}
