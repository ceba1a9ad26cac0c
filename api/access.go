package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/api/auth"
	"github.com/vmflow/vmflow/api/auth/oidc"
)

// AccessDeps are the access-control collaborators (Deps.Access).
type AccessDeps struct {
	// Authenticators are asked after the token file and client
	// certificates, in order (OpenID Connect plugs in here). One that is
	// an auth.LoginProvider gets its routes served publicly, and browsers
	// without an identity are sent to its login.
	Authenticators []auth.Authenticator
	// AuditWriter receives the audit log instead of api.audit.file.
	AuditWriter io.Writer

	// scope is set on the servers that answer tenant-scoped identities
	// (access_tenant.go): they run no access control of their own.
	scope *tenantScope
}

// access is the server's access control: authentication, route policy,
// tenant dispatch, limits and audit.
type access struct {
	s      *Server
	chain  *auth.Chain
	tokens *auth.TokenFile
	login  auth.LoginProvider
	audit  *auditLog
	limits *limiters // unscoped identities
	strict *limiters // tenant-scoped identities, failed authentication

	mDenied  *prometheus.CounterVec // refused requests by reason
	mReloads *prometheus.CounterVec // token file loads by result

	tokensSeen bool            // the first (re)load is no change
	public     map[string]bool // the login provider's routes ("METHOD /path")

	mu     sync.Mutex
	scoped map[string]*Server // by identity scope key
}

// loginKey is where POST /login leaves the identity it logged in.
const loginKey = "vmflow.login"

// TokenCookie carries an API token for the UI (set by POST /login).
const TokenCookie = "vmflow_token"

// installAccess builds the access control and installs it as middleware
// (before any route). Tenant-scoped servers have none.
func (s *Server) installAccess(e *gin.Engine) error {
	if s.deps.Access.scope != nil {
		return nil
	}
	a := &access{s: s, scoped: map[string]*Server{},
		mDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_api_denied_total",
			Help: "Requests refused by access control, by reason (unauthenticated, invalid, expired, forbidden, tenant, rate_limited, too_large, no_policy).",
		}, []string{"reason"}),
		mReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_api_token_file_loads_total",
			Help: "Token file (re)loads, by result (ok, error: the previous tokens stay).",
		}, []string{"result"}),
	}
	if r := s.deps.Registerer; r != nil {
		for _, c := range []prometheus.Collector{a.mDenied, a.mReloads} {
			if err := r.Register(c); err != nil {
				return fmt.Errorf("api access metrics: %w", err)
			}
		}
	}
	var err error
	if a.audit, err = newAuditLog(s.cfg.Audit, s.deps.Access.AuditWriter); err != nil {
		return fmt.Errorf("api.audit.file: %w", err)
	}
	var chain []auth.Authenticator
	if f := s.cfg.Auth.TokensFile; f != "" {
		a.tokens = &auth.TokenFile{Path: f, Now: s.deps.Now, OnReload: a.tokensReloaded}
		if err := a.tokens.Load(); err != nil {
			return fmt.Errorf("api.auth.tokens_file: %w", err)
		}
		a.tokensSeen = true // from now on every change of the file is audited
		chain = append(chain, a.tokens, auth.AuthenticatorFunc(a.cookieToken))
	}
	if s.cfg.TLS.ClientAuth != "none" {
		chain = append(chain, auth.ClientCert{})
	}
	extra := s.deps.Access.Authenticators
	if s.cfg.OIDC.Enabled() {
		p, err := oidc.New(s.cfg.OIDC, s.deps.Now)
		if err != nil {
			return err
		}
		extra = append([]auth.Authenticator{p}, extra...)
	}
	for _, x := range extra {
		chain = append(chain, x)
		if lp, ok := x.(auth.LoginProvider); ok && a.login == nil {
			a.login = lp
		}
	}
	a.chain = &auth.Chain{Authenticators: chain, Now: s.deps.Now}
	if s.cfg.Auth.Anonymous {
		a.chain.Anonymous = &auth.Identity{Name: "anonymous", Role: auth.RoleViewer, Method: auth.MethodAnonymous}
	}
	a.limits = newLimiters(s.cfg.Limits.Rate, s.cfg.Limits.Burst)
	a.strict = newLimiters(s.cfg.Limits.TenantRate, s.cfg.Limits.TenantBurst)
	s.access = a
	e.Use(a.handle)
	e.GET("/login", a.loginPage)
	e.POST("/login", a.loginSubmit)
	e.POST("/logout", a.logout)
	if a.login != nil {
		a.public = map[string]bool{}
		for _, r := range a.login.Routes() {
			a.public[r.Method+" "+r.Path] = true
			e.Handle(r.Method, r.Path, gin.WrapH(r.Handler))
		}
	}
	return nil
}

// logMode says at startup who may get in.
func (a *access) logMode() {
	s := a.s
	if s.cfg.Auth.Anonymous {
		s.deps.Logger.Warn("api: anonymous read-only access is ON (api.auth.anonymous=true): anyone who reaches "+s.cfg.Listen+" can read all traffic; turn it off and use tokens anywhere but loopback",
			"listen", s.cfg.Listen, "tls", s.cfg.TLS.Enabled())
		return
	}
	s.deps.Logger.Info("api: authentication required (anonymous access off)", "listen", s.cfg.Listen, "tls", s.cfg.TLS.Enabled(),
		"tokens_file", s.cfg.Auth.TokensFile, "authenticators", len(a.chain.Authenticators))
}

// cookieToken authenticates the UI's token cookie like a bearer token.
func (a *access) cookieToken(r *http.Request) (*auth.Identity, error) {
	ck, err := r.Cookie(TokenCookie)
	if err != nil || ck.Value == "" || r.Header.Get("Authorization") != "" {
		return nil, auth.ErrNoCredentials
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+ck.Value)
	id, err := a.tokens.Authenticate(r2)
	if errors.Is(err, auth.ErrNoCredentials) {
		return nil, fmt.Errorf("%w: malformed token cookie", auth.ErrInvalid)
	}
	if id != nil {
		id.Method = auth.MethodToken + "+cookie"
	}
	return id, err
}

// securityHeaders are sent with every response.
func (a *access) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	// API responses load nothing; uiHeaders sets the UI's own policy.
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	if c.Request.TLS != nil && a.s.cfg.TLS.HSTSMaxAge > 0 {
		h.Set("Strict-Transport-Security", "max-age="+strconv.FormatInt(int64(a.s.cfg.TLS.HSTSMaxAge/time.Second), 10)+"; includeSubDomains")
	}
}

// handle is the middleware: every request passes here first.
func (a *access) handle(c *gin.Context) {
	start := time.Now()
	a.securityHeaders(c)
	r := c.Request
	route := c.FullPath()
	var pol policy
	known := false
	if route != "" {
		pol, known = routePolicies[r.Method+" "+route]
		if !known && a.public[r.Method+" "+route] {
			pol, known = public, true
		}
	}
	if route != "" && !known {
		a.s.deps.Logger.Error("api: route has no access policy: refused", "route", r.Method+" "+route)
		a.mDenied.WithLabelValues("no_policy").Inc()
		c.AbortWithStatusJSON(http.StatusForbidden, errorBody{Error: "forbidden"})
		return
	}
	if known && pol.role == "" { // public: audited with whatever identity it carries
		id, _ := a.chain.Authenticate(r)
		if !a.allow(c, a.strict, "public:"+clientHost(r)) { // login flows call out (code exchange): bounded
			a.record(c, id, start)
			return
		}
		c.Next()
		if v, ok := c.Get(loginKey); ok && id == nil {
			id, _ = v.(*auth.Identity)
		}
		a.record(c, id, start)
		return
	}
	id, err := a.chain.Authenticate(r)
	if err != nil {
		// Failed attempts are rate limited per client address.
		if !a.allow(c, a.strict, "addr:"+clientHost(r)) {
			a.record(c, nil, start)
			return
		}
		a.refuse(c, err)
		a.record(c, nil, start)
		return
	}
	key := id.Method + ":" + id.Name
	if id.Method == auth.MethodAnonymous {
		key = "anonymous:" + clientHost(r)
	}
	lim := a.limits
	if id.Scoped() {
		lim = a.strict
	}
	if !a.allow(c, lim, key) {
		a.record(c, id, start)
		return
	}
	defer a.record(c, id, start)
	if !known { // unmatched path or method: the router's 404/405
		if id.Scoped() {
			a.serveScoped(c, id)
			return
		}
		c.Next()
		return
	}
	if !id.Role.Allows(pol.role) {
		a.mDenied.WithLabelValues("forbidden").Inc()
		c.AbortWithStatusJSON(http.StatusForbidden, errorBody{Error: fmt.Sprintf("forbidden: %s %s needs role %s (you are %s)", r.Method, route, pol.role, id.Role)})
		return
	}
	if id.Scoped() && !pol.tenant {
		a.mDenied.WithLabelValues("tenant").Inc()
		c.AbortWithStatusJSON(http.StatusForbidden, errorBody{Error: fmt.Sprintf("forbidden: %s %s is not available to tenant-scoped identities", r.Method, route)})
		return
	}
	if (id.Method == auth.MethodToken+"+cookie" || id.Method == auth.MethodOIDC) && r.Method != http.MethodGet && !sameOrigin(r) {
		c.AbortWithStatusJSON(http.StatusForbidden, errorBody{Error: "forbidden: cross-origin request"})
		return
	}
	if r.ContentLength > a.s.cfg.Limits.MaxBodyBytes {
		a.mDenied.WithLabelValues("too_large").Inc()
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("request body over %d bytes (api.limits.max_body_bytes)", a.s.cfg.Limits.MaxBodyBytes)})
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(c.Writer, r.Body, a.s.cfg.Limits.MaxBodyBytes)
	}
	ctx, cancel := context.WithTimeout(auth.WithIdentity(r.Context(), id), a.s.cfg.Limits.RequestTimeout)
	defer cancel()
	c.Request = r.WithContext(ctx)
	if id.Scoped() {
		if err := a.tenantBounds(c); err != nil {
			c.Abort()
			writeError(c, err)
			return
		}
		a.serveScoped(c, id)
		return
	}
	var before any
	var object string
	if pol.changes != nil {
		object, before = pol.changes(a.s)
	}
	c.Next()
	if pol.changes != nil && c.Writer.Status() < 300 {
		_, after := pol.changes(a.s)
		a.audit.change(c, id, object, before, after)
	}
}

// refuse answers a request without a valid identity: browsers asking for
// the UI go to the login page, everything else gets 401.
func (a *access) refuse(c *gin.Context, err error) {
	r := c.Request
	if r.Method == http.MethodGet && (c.FullPath() == "/" || strings.HasPrefix(c.FullPath(), "/assets/")) && r.Header.Get("Authorization") == "" {
		next := "/"
		if a.login != nil {
			c.Redirect(http.StatusFound, a.login.LoginURL(next))
		} else {
			c.Redirect(http.StatusFound, "/login")
		}
		c.Abort()
		return
	}
	msg, reason := "authentication required", "unauthenticated"
	hdr := `Bearer realm="vmflow"`
	switch {
	case errors.Is(err, auth.ErrExpired):
		msg, reason, hdr = "credentials expired", "expired", hdr+`, error="invalid_token", error_description="expired"`
	case !errors.Is(err, auth.ErrNoCredentials):
		msg, reason, hdr = "invalid credentials", "invalid", hdr+`, error="invalid_token"`
	}
	a.mDenied.WithLabelValues(reason).Inc()
	c.Header("WWW-Authenticate", hdr)
	c.AbortWithStatusJSON(http.StatusUnauthorized, errorBody{Error: msg})
}

// allow applies the rate limit of key; false: answered 429.
func (a *access) allow(c *gin.Context, l *limiters, key string) bool {
	wait, ok := l.allow(key)
	if ok {
		return true
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	a.mDenied.WithLabelValues("rate_limited").Inc()
	c.Header("Retry-After", strconv.FormatInt(secs, 10))
	c.AbortWithStatusJSON(http.StatusTooManyRequests, errorBody{Error: "rate limit exceeded; retry after " + strconv.FormatInt(secs, 10) + "s"})
	return false
}

// tenantBounds caps what a tenant-scoped identity may make the server
// scan: the time range and the result size.
func (a *access) tenantBounds(c *gin.Context) error {
	lim := a.s.cfg.Limits
	q := newQuery(c)
	if _, _, err := q.get("since"); err == nil {
		from, to, err := q.timeRange(a.s.deps.Now(), 5*time.Minute)
		if err == nil && to.Sub(from) > lim.TenantMaxRange {
			name := "since"
			if _, ok, _ := q.get("from"); ok {
				name = "from"
			}
			return badParam(name, "the range is %s; tenant-scoped identities may query at most %s", to.Sub(from), lim.TenantMaxRange)
		}
	}
	for _, p := range []string{"limit", "top"} {
		if v, ok, err := q.get(p); err == nil && ok {
			if n, err := strconv.Atoi(v); err == nil && n > lim.TenantMaxLimit {
				return badParam(p, "tenant-scoped identities may ask for at most %d, got %d", lim.TenantMaxLimit, n)
			}
		}
	}
	return nil
}

// serveScoped hands the request to the server of the identity's tenant
// scope and stops the chain here.
func (a *access) serveScoped(c *gin.Context, id *auth.Identity) {
	srv, err := a.scopedServer(id)
	if err != nil {
		c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{Error: "internal error"})
		a.s.deps.Logger.Error("api: tenant view", "err", err)
		return
	}
	c.Abort()
	srv.engine.ServeHTTP(c.Writer, c.Request)
}

// scopedServer is the (cached) server for a tenant scope.
func (a *access) scopedServer(id *auth.Identity) (*Server, error) {
	key := id.ScopeKey()
	a.mu.Lock()
	defer a.mu.Unlock()
	if srv := a.scoped[key]; srv != nil {
		return srv, nil
	}
	if len(a.scoped) >= 1024 {
		clear(a.scoped) // bounded: scopes come from tokens and claims
	}
	srv, err := New(a.s.cfg, a.s.scopedDeps(newTenantScope(id.Tenants, a.s.cfg.Auth.TenantExternalIPs)))
	if err != nil {
		return nil, err
	}
	a.scoped[key] = srv
	return srv, nil
}

func (a *access) tokensReloaded(before, after []auth.TokenEntry, err error) {
	if err != nil {
		a.mReloads.WithLabelValues("error").Inc()
		a.s.deps.Logger.Error("api: token file not reloaded; the previous tokens stay in effect", "err", err)
		return
	}
	a.mReloads.WithLabelValues("ok").Inc()
	if !a.tokensSeen {
		a.tokensSeen = true
		a.s.deps.Logger.Info("api: tokens loaded", "file", a.s.cfg.Auth.TokensFile, "tokens", len(after))
		return
	}
	strip := func(es []auth.TokenEntry) []auth.TokenEntry {
		out := make([]auth.TokenEntry, len(es))
		for i, e := range es {
			e.SHA256 = ""
			out[i] = e
		}
		return out
	}
	a.s.deps.Logger.Info("api: tokens reloaded", "file", a.s.cfg.Auth.TokensFile, "tokens", len(after))
	a.audit.change(nil, nil, "tokens", strip(before), strip(after))
}

// sameOrigin tells whether a cookie-authenticated change comes from the
// UI's own origin (browsers send Origin on POST/DELETE).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	o = strings.TrimPrefix(strings.TrimPrefix(o, "https://"), "http://")
	return o == r.Host
}

// clientHost is the client's address without the port.
func clientHost(r *http.Request) string {
	h := r.RemoteAddr
	if i := strings.LastIndexByte(h, ':'); i > 0 {
		h = h[:i]
	}
	return strings.Trim(h, "[]")
}
