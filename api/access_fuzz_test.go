package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/vmflow/vmflow/api/auth"
)

// FuzzAuthHeader: any Authorization header and any query string on any
// route: no crash, no 5xx, and no bypass — only a request carrying one of
// the valid tokens gets past authentication, and the tenant token never
// sees the other tenant's VMs.
func FuzzAuthHeader(f *testing.F) {
	ae := newAccessEnv(f, func(_ *Deps, c *Config) {
		c.Limits.Rate, c.Limits.TenantRate = 0, 0
	})
	h := ae.srv.Handler()
	valid := map[string]string{}
	for name, tok := range ae.tok {
		if name != "expired" {
			valid[tok] = name
		}
	}
	routes := []string{"/api/v1/pairs", "/api/v1/vms", "/api/v1/overview", "/api/v1/graph", "/api/v1/capacity", "/api/v1/alerts",
		"/api/v1/pairs/web-1/db-1/series", "/api/v1/vms/web-1/series", "/api/v1/exporters", "/metrics", "/", "/api/v1/silences", "/api/v1/admin/reload"}
	for _, s := range []string{"", "Bearer ", "Bearer vmf_", "bearer " + ae.tok["viewer"], "Bearer " + ae.tok["expired"], "Bearer " + ae.tok["other"],
		"Bearer " + ae.tok["viewer"] + "x", "Bearer " + strings.ToUpper(ae.tok["viewer"]), "Basic YTpi", "Bearer \x00", "Bearer " + ae.tok["admin"] + " " + ae.tok["viewer"]} {
		f.Add(s, "since=1h&vm=web-1", uint8(0))
	}
	f.Add("Bearer "+ae.tok["other"], "since=1h&vm=web-1&tenant=acme&group=tenant", uint8(2))
	f.Add("Bearer "+ae.tok["other"], "from=0&to=9999999999", uint8(1))
	f.Add("Bearer "+ae.tok["other"], "limit=%zz&since=-1s", uint8(4))
	f.Fuzz(func(t *testing.T, authz, query string, route uint8) {
		path := routes[int(route)%len(routes)]
		method := "GET"
		if path == "/api/v1/admin/reload" {
			method = "POST"
		}
		req := httptest.NewRequest(method, "http://vmflow"+path, nil)
		req.URL.RawQuery = query
		if strings.ContainsAny(authz, "\r\n") {
			return // not a header a client can send
		}
		req.Header["Authorization"] = []string{authz}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		code, body := rec.Code, rec.Body.String()
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s?%s as %q: %d %s", method, path, query, authz, code, body)
		}
		name, ok := valid[auth.BearerToken(req)]
		if authz == "" || !ok {
			if code != http.StatusUnauthorized && !(path == "/" && code == http.StatusFound && authz == "") {
				t.Fatalf("bypass: %s %s?%s as %q answered %d: %s", method, path, query, authz, code, body)
			}
			return
		}
		if code == http.StatusUnauthorized {
			t.Fatalf("valid token %s refused on %s: %s", name, path, body)
		}
		if name == "other" && code == http.StatusOK {
			q, _ := url.ParseQuery(query)
			for _, s := range []string{"db-1", "10.0.0.2", "52:54:00:00:00:02", "11111111-1111-1111-1111-111111111111", "192.0.2.7"} {
				if strings.Contains(body, s) && !strings.Contains(query, s) && !strings.Contains(strings.Join(q["vm"], ""), s) {
					t.Fatalf("tenant other sees %s on %s?%s", s, path, query)
				}
			}
		}
	})
}
