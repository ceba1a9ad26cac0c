package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
)

// claimStorage is the example OP's storage with vmflow's role and tenant
// claims per user: test-user is an operator of tenant acme, test-user2 an
// admin of every tenant.
type claimStorage struct{ *storage.Storage }

func (s claimStorage) SetUserinfoFromScopes(ctx context.Context, ui *zoidc.UserInfo, userID, clientID string, scopes []string) error {
	if err := s.Storage.SetUserinfoFromScopes(ctx, ui, userID, clientID, scopes); err != nil {
		return err
	}
	if userID == "id1" {
		ui.AppendClaims("vmflow_role", "operator")
		ui.AppendClaims("vmflow_tenants", []string{"acme"})
	} else {
		ui.AppendClaims("vmflow_role", "admin")
	}
	ui.AppendClaims("preferred_username", map[string]string{"id1": "test-user", "id2": "test-user2"}[userID])
	return nil
}

// startOP runs the example OpenID provider of zitadel/oidc on loopback
// with vmflow registered as a client whose callback is on apiURL.
func startOP(t *testing.T, ln net.Listener, apiURL string) string {
	storage.RegisterClients(storage.WebClient("vmflow", "s3cret", apiURL+"/auth/callback"))
	return startOPWith(t, ln)
}

// startOPWith runs the OP with the clients registered so far.
func startOPWith(t *testing.T, ln net.Listener) string {
	issuer := "http://" + ln.Addr().String()
	st := claimStorage{storage.NewStorage(storage.NewUserStore(issuer))}
	router := exampleop.SetupServer(issuer, st, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	srv := &http.Server{Handler: router}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return issuer
}

// TestOIDCEndToEnd: against a real OpenID provider on loopback (the
// example OP of github.com/zitadel/oidc), a browser-like client logs in
// to the UI (authorization code flow with PKCE) and gets the role and
// tenant of its claims; its ID token works as a JWT bearer token for the
// API; an expired token, a token with a forged signature and one for
// another audience are refused.
func TestOIDCEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	issuer := "http://" + ln.Addr().String()
	audit := &strings.Builder{}
	e := newEnv(t, func(d *Deps, c *Config) {
		d.Access.AuditWriter = audit
		c.Auth.Anonymous = false
		c.OIDC.Issuer, c.OIDC.ClientID, c.OIDC.ClientSecret = issuer, "vmflow", "s3cret"
		c.OIDC.Scopes = []string{"profile", storage.CustomScope}
		d.Now = func() time.Time { return T.Add(60 * time.Second) }
	})
	startOP(t, ln, e.ts.URL)

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	// The UI without a session: to the login page, which offers SSO.
	resp, err := browser.Get(e.ts.URL + "/login")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(page), "/auth/login?next=")
	// SSO: the provider's login form.
	resp, err = browser.Get(e.ts.URL + "/auth/login?next=%2F%23%2Fpairs")
	require.NoError(t, err)
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "%s", page)
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(string(page))
	require.Len(t, m, 2, "the provider's login form: %s", page)
	loginURL := resp.Request.URL.ResolveReference(&url.URL{Path: "/login/username"})
	resp, err = browser.PostForm(loginURL.String(), url.Values{"id": {m[1]}, "username": {"test-user@127.0.0.1"}, "password": {"verysecure"}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "%s", body)
	assert.Equal(t, e.ts.URL+"/", strings.TrimSuffix(resp.Request.URL.String(), "#/pairs"), "back to the UI")

	// The session is operator of acme: tenant view, no exporters.
	get := func(c *http.Client, path, bearer string) (int, string) {
		req, _ := http.NewRequest("GET", e.ts.URL+path, nil)
		req.Header.Set("Authorization", bearer)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body2 := get(browser, "/api/v1/pairs?since=1h", "-")
	require.Equal(t, 200, code, body2)
	assert.Contains(t, body2, "web-1")
	assert.NotContains(t, body2, "cache-1")
	code, _ = get(browser, "/api/v1/exporters", "-")
	assert.Equal(t, 403, code)

	// The ID token as a bearer token.
	var idToken string
	u, _ := url.Parse(e.ts.URL)
	for _, c := range jar.Cookies(u) {
		if c.Name == "vmflow_oidc" {
			idToken = c.Value
		}
	}
	require.NotEmpty(t, idToken)
	plain := &http.Client{Timeout: 10 * time.Second}
	code, body2 = get(plain, "/api/v1/vms", "Bearer "+idToken)
	assert.Equal(t, 200, code, body2)
	assert.NotContains(t, body2, "clone")
	// A forged signature, another audience's token, an expired one.
	parts := strings.Split(idToken, ".")
	sig := []byte(parts[2])
	sig[5] ^= 1
	code, _ = get(plain, "/api/v1/vms", "Bearer "+parts[0]+"."+parts[1]+"."+string(sig))
	assert.Equal(t, 401, code, "forged signature")
	var claims map[string]any
	payload, _ := jsonSegment(parts[1])
	require.NoError(t, json.Unmarshal(payload, &claims))
	assert.Equal(t, "operator", claims["vmflow_role"])
	code, _ = get(plain, "/api/v1/vms", "Bearer "+parts[0]+"."+encodeSegment(t, map[string]any{"iss": issuer, "aud": "other", "sub": "x", "exp": 9999999999})+"."+parts[2])
	assert.Equal(t, 401, code, "altered claims")

	// Expiry: the server's clock moves past the token's exp.
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	e2 := newEnv(t, func(d *Deps, c *Config) {
		c.Auth.Anonymous = false
		c.OIDC.Issuer, c.OIDC.ClientID = issuer, "vmflow"
		d.Now = func() time.Time { return exp.Add(time.Minute) }
	})
	req, _ := http.NewRequest("GET", e2.ts.URL+"/api/v1/vms", nil)
	req.Header.Set("Authorization", "Bearer "+idToken)
	resp, err = plain.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode, "expired: %s", b)
	assert.Contains(t, string(b), "expired")
	// The audit log names the SSO user.
	assert.Contains(t, audit.String(), `"who":"test-user","auth":"oidc","role":"operator","tenants":["acme"]`)
}

func jsonSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func encodeSegment(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}
