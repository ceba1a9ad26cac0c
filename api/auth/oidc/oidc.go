// Package oidc authenticates with an OpenID Connect provider: browsers log
// in to the UI with the authorization code flow (PKCE, state and nonce),
// API clients send the provider's ID token (a JWT) as a bearer token.
// Roles and tenants come from configured claims. It is an auth.LoginProvider
// for the API's access control (api.oidc.*).
package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/vmflow/vmflow/api/auth"
)

// Config is the OpenID Connect client (key api.oidc).
type Config struct {
	// Issuer turns OIDC on: the provider's issuer URL (discovery at
	// Issuer/.well-known/openid-configuration).
	Issuer string `mapstructure:"issuer" yaml:"issuer"`
	// ClientID and ClientSecret of vmflow at the provider. ID tokens must
	// have ClientID in their audience.
	ClientID     string `mapstructure:"client_id" yaml:"client_id"`
	ClientSecret string `mapstructure:"client_secret" yaml:"client_secret"`
	// RedirectURL is vmflow's callback as the browser reaches it
	// (https://vmflow.example/auth/callback); "": from the request's host.
	RedirectURL string `mapstructure:"redirect_url" yaml:"redirect_url"`
	// Scopes asked for besides openid.
	Scopes []string `mapstructure:"scopes" yaml:"scopes"`
	// RoleClaim holds viewer, operator or admin; DefaultRole applies when
	// the claim is absent ("": such users are refused).
	RoleClaim   string `mapstructure:"role_claim" yaml:"role_claim"`
	DefaultRole string `mapstructure:"default_role" yaml:"default_role"`
	// TenantsClaim holds the tenant ids (a string or a list); absent or
	// empty: unscoped. TenantRequired refuses users without tenants.
	TenantsClaim   string `mapstructure:"tenants_claim" yaml:"tenants_claim"`
	TenantRequired bool   `mapstructure:"tenant_required" yaml:"tenant_required"`
	// NameClaim names the identity (falls back to sub).
	NameClaim string `mapstructure:"name_claim" yaml:"name_claim"`
}

// DefaultConfig: off.
func DefaultConfig() Config {
	return Config{Scopes: []string{"profile", "email"}, RoleClaim: "vmflow_role", TenantsClaim: "vmflow_tenants", NameClaim: "preferred_username"}
}

// Enabled tells whether an issuer is configured.
func (c Config) Enabled() bool { return c.Issuer != "" }

// Validate checks the settings; errors name the key.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.Issuer); err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("api.oidc.issuer: %q is not an absolute URL", c.Issuer))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("api.oidc.client_id: required with api.oidc.issuer"))
	}
	if c.RedirectURL != "" {
		if u, err := url.Parse(c.RedirectURL); err != nil || u.Scheme == "" || u.Path != "/auth/callback" {
			errs = append(errs, fmt.Errorf("api.oidc.redirect_url: %q must be an absolute URL ending in /auth/callback", c.RedirectURL))
		}
	}
	if c.DefaultRole != "" {
		if _, err := auth.ParseRole(c.DefaultRole); err != nil {
			errs = append(errs, fmt.Errorf("api.oidc.default_role: %w", err))
		}
	}
	if c.RoleClaim == "" && c.DefaultRole == "" {
		errs = append(errs, errors.New("api.oidc.role_claim: set it or api.oidc.default_role"))
	}
	return errors.Join(errs...)
}

// Cookies of the login flow.
const (
	SessionCookie = "vmflow_oidc"       // the ID token
	stateCookie   = "vmflow_oidc_state" // state, nonce, PKCE verifier, next (signed)
)

// Provider is the authenticator. New is inert: discovery happens at first
// use (and is retried until it succeeds).
type Provider struct {
	cfg Config
	key []byte // signs the state cookie
	now func() time.Time

	mu       sync.Mutex
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
}

// New makes the provider; now is the clock (nil: time.Now).
func New(cfg Config, now func() time.Time) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Provider{cfg: cfg, key: key, now: now}, nil
}

func (p *Provider) discover(ctx context.Context) (*gooidc.Provider, *gooidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.provider, p.verifier, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pr, err := gooidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("oidc discovery %s: %w", p.cfg.Issuer, err)
	}
	p.provider = pr
	p.verifier = pr.Verifier(&gooidc.Config{ClientID: p.cfg.ClientID, Now: p.now})
	return p.provider, p.verifier, nil
}

// Authenticate implements auth.Authenticator: a JWT bearer token, else the
// session cookie.
func (p *Provider) Authenticate(r *http.Request) (*auth.Identity, error) {
	raw, method := auth.BearerToken(r), auth.MethodJWT
	if raw == "" && r.Header.Get("Authorization") == "" {
		if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" {
			raw, method = ck.Value, auth.MethodOIDC
		}
	}
	if raw == "" || strings.HasPrefix(raw, auth.TokenPrefix) || strings.Count(raw, ".") != 2 {
		return nil, auth.ErrNoCredentials
	}
	_, v, err := p.discover(r.Context())
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(r.Context(), raw)
	if err != nil {
		var exp *gooidc.TokenExpiredError
		if errors.As(err, &exp) {
			return nil, fmt.Errorf("%w: %v", auth.ErrExpired, err)
		}
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalid, err)
	}
	id, err := p.identity(tok)
	if err != nil {
		return nil, err
	}
	id.Method = method
	return id, nil
}

// identity maps the token's claims.
func (p *Provider) identity(tok *gooidc.IDToken) (*auth.Identity, error) {
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", auth.ErrInvalid, err)
	}
	id := &auth.Identity{Name: tok.Subject, Expires: tok.Expiry}
	if s, ok := claims[p.cfg.NameClaim].(string); ok && s != "" {
		id.Name = s
	}
	roleS, _ := claims[p.cfg.RoleClaim].(string)
	if roleS == "" {
		roleS = p.cfg.DefaultRole
	}
	role, err := auth.ParseRole(roleS)
	if err != nil {
		return nil, fmt.Errorf("%w: claim %s: %v", auth.ErrInvalid, p.cfg.RoleClaim, err)
	}
	id.Role = role
	switch t := claims[p.cfg.TenantsClaim].(type) {
	case string:
		if t != "" {
			id.Tenants = []string{t}
		}
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok && s != "" {
				id.Tenants = append(id.Tenants, s)
			}
		}
	}
	if p.cfg.TenantRequired && len(id.Tenants) == 0 {
		return nil, fmt.Errorf("%w: no tenant in claim %s", auth.ErrInvalid, p.cfg.TenantsClaim)
	}
	return id, nil
}

// LoginURL implements auth.LoginProvider.
func (p *Provider) LoginURL(next string) string { return "/auth/login?next=" + url.QueryEscape(next) }

// Routes implements auth.LoginProvider.
func (p *Provider) Routes() []auth.Route {
	return []auth.Route{
		{Method: http.MethodGet, Path: "/auth/login", Handler: http.HandlerFunc(p.login)},
		{Method: http.MethodGet, Path: "/auth/callback", Handler: http.HandlerFunc(p.callback)},
		{Method: http.MethodPost, Path: "/auth/logout", Handler: http.HandlerFunc(p.logout)},
	}
}

func (p *Provider) oauth(r *http.Request, pr *gooidc.Provider) *oauth2.Config {
	redirect := p.cfg.RedirectURL
	if redirect == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		redirect = scheme + "://" + r.Host + "/auth/callback"
	}
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: pr.Endpoint(),
		RedirectURL: redirect, Scopes: append([]string{gooidc.ScopeOpenID}, p.cfg.Scopes...)}
}

type flowState struct {
	State, Nonce, Verifier, Next string
	Exp                          int64
}

func (p *Provider) sign(b []byte) string {
	m := hmac.New(sha256.New, p.key)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *Provider) open(s string) ([]byte, bool) {
	body, sig, ok := strings.Cut(s, ".")
	if !ok {
		return nil, false
	}
	b, err1 := base64.RawURLEncoding.DecodeString(body)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	m := hmac.New(sha256.New, p.key)
	m.Write(b)
	return b, hmac.Equal(mac, m.Sum(nil))
}

func randString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// localNext keeps a redirect on this site.
func localNext(n string) string {
	if n == "" || !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") {
		return "/"
	}
	return n
}

func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	pr, _, err := p.discover(r.Context())
	if err != nil {
		http.Error(w, "single sign-on is unavailable: the provider does not answer", http.StatusServiceUnavailable)
		return
	}
	st := flowState{State: randString(), Nonce: randString(), Verifier: oauth2.GenerateVerifier(), Next: localNext(r.URL.Query().Get("next")),
		Exp: p.now().Add(10 * time.Minute).Unix()}
	b, _ := json.Marshal(st)
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: p.sign(b), Path: "/auth/", MaxAge: 600, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, p.oauth(r, pr).AuthCodeURL(st.State, gooidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

func (p *Provider) callback(w http.ResponseWriter, r *http.Request) {
	pr, v, err := p.discover(r.Context())
	if err != nil {
		http.Error(w, "single sign-on is unavailable", http.StatusServiceUnavailable)
		return
	}
	ck, err := r.Cookie(stateCookie)
	var st flowState
	b, ok := []byte(nil), false
	if err == nil {
		b, ok = p.open(ck.Value)
	}
	if !ok || json.Unmarshal(b, &st) != nil || st.Exp < p.now().Unix() || r.URL.Query().Get("state") != st.State {
		http.Error(w, "login expired or not started here: start again at /auth/login", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/auth/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	if e := r.URL.Query().Get("error"); e != "" {
		http.Error(w, "the provider refused the login: "+e, http.StatusUnauthorized)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	tok, err := p.oauth(r, pr).Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		http.Error(w, "code exchange failed", http.StatusUnauthorized)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := v.Verify(ctx, raw)
	if err != nil || idt.Nonce != st.Nonce {
		http.Error(w, "invalid ID token", http.StatusUnauthorized)
		return
	}
	if _, err := p.identity(idt); err != nil {
		http.Error(w, "login refused: "+err.Error(), http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: raw, Path: "/", Expires: idt.Expiry, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, st.Next, http.StatusSeeOther)
}

func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
