package api

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/api/auth"
)

// uiCSP is the UI's Content-Security-Policy: its own scripts, styles and
// images only, no inline script or style, no plugins, no framing.
const uiCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// addAccessDoc documents the login routes and the security scheme, and
// adds 401, 403 and 429 to every operation that needs an identity.
func addAccessDoc(doc obj) {
	paths := doc["paths"].(obj)
	html := func(desc string) obj {
		return obj{"description": desc, "content": obj{"text/html": obj{"schema": obj{"type": "string"}}}}
	}
	paths["/login"] = obj{
		"get": obj{"operationId": "loginPage", "summary": "Login form of the web UI (an API token)", "security": []any{},
			"responses": obj{"200": html("the form")}},
		"post": obj{"operationId": "login", "summary": "Log the browser in with an API token: sets the token cookie", "security": []any{},
			"requestBody": obj{"content": obj{"application/x-www-form-urlencoded": obj{"schema": object("form", obj{
				"token": str("an API token (vmflow token create)"), "next": str("local path to go to"),
			}, "token")}}},
			"responses": obj{"303": obj{"description": "logged in; to `next`"}, "401": html("invalid or expired token: the form again")}},
	}
	paths["/logout"] = obj{"post": obj{"operationId": "logout", "summary": "Clear the token cookie", "security": []any{},
		"responses": obj{"303": obj{"description": "to /login"}}}}
	comps := doc["components"].(obj)
	comps["securitySchemes"] = obj{
		"bearer": obj{"type": "http", "scheme": "bearer", "description": "API token (`vmflow token create`) or, when configured, a JWT of the OpenID provider"},
		"cookie": obj{"type": "apiKey", "in": "cookie", "name": TokenCookie, "description": "the web UI's token cookie (POST /login)"},
	}
	doc["security"] = []any{obj{"bearer": []any{}}, obj{"cookie": []any{}}}
	for _, ops := range paths {
		for _, op := range ops.(obj) {
			o := op.(obj)
			if sec, ok := o["security"].([]any); ok && len(sec) == 0 {
				continue // public
			}
			resp := o["responses"].(obj)
			for code, desc := range map[string]string{
				"401": "no, invalid or expired credentials",
				"403": "the identity's role or tenant scope does not allow this route",
				"429": "rate limit of the identity exceeded (see Retry-After)",
			} {
				if _, has := resp[code]; !has {
					resp[code] = errResp(desc)
				}
			}
		}
	}
}

var openapiPathParam = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

// openapiFor is the OpenAPI document as the request's identity may use
// it: operations it may not call are left out.
func (s *Server) openapiFor(c *gin.Context) []byte {
	// Unscoped identities get the whole document (a viewer may learn
	// that admin routes exist); tenant-scoped ones only what they may call.
	if s.deps.Access.scope == nil {
		return s.openapi
	}
	role, scoped := auth.RoleViewer, true
	if id := auth.FromContext(c.Request.Context()); id != nil {
		role = id.Role
	}
	key := string(role) + "+tenant"
	s.docMu.Lock()
	defer s.docMu.Unlock()
	if b := s.docs[key]; b != nil {
		return b
	}
	var doc map[string]any
	if json.Unmarshal(s.openapi, &doc) != nil {
		return s.openapi
	}
	paths, _ := doc["paths"].(map[string]any)
	for p, ops := range paths {
		m, _ := ops.(map[string]any)
		for verb := range m {
			pol, ok := routePolicies[strings.ToUpper(verb)+" "+ginPath(p)]
			if !ok || (pol.role != "" && (!role.Allows(pol.role) || (scoped && !pol.tenant))) {
				delete(m, verb)
			}
		}
		if len(m) == 0 {
			delete(paths, p)
		}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return s.openapi
	}
	if s.docs == nil {
		s.docs = map[string][]byte{}
	}
	s.docs[key] = b
	return b
}

// ginPath turns an OpenAPI path into the router's syntax.
func ginPath(p string) string {
	if p == "/assets/{filepath}" {
		return "/assets/*filepath"
	}
	return openapiPathParam.ReplaceAllString(p, ":$1")
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vmflow — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>vmflow</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<input type="hidden" name="next" value="{{.Next}}">
<button type="submit">Sign in</button>
</form>
{{if .SSO}}<p><a href="{{.SSO}}">Sign in with single sign-on</a></p>{{end}}
</main></body></html>
`))

type loginData struct{ Error, Next, SSO string }

// localNext keeps a redirect target on this site.
func localNext(n string) string {
	if n == "" || !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") {
		return "/"
	}
	if u, err := url.Parse(n); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return n
}

func (a *access) renderLogin(c *gin.Context, code int, d loginData) {
	if a.login != nil {
		d.SSO = a.login.LoginURL(d.Next)
	}
	c.Header("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Header("Cache-Control", "no-store")
	c.Status(code)
	c.Header("Content-Type", "text/html; charset=utf-8")
	_ = loginTmpl.Execute(c.Writer, d)
}

func (a *access) loginPage(c *gin.Context) {
	a.renderLogin(c, http.StatusOK, loginData{Next: localNext(c.Query("next"))})
}

func (a *access) loginSubmit(c *gin.Context) {
	if !a.allow(c, a.strict, "addr:"+clientHost(c.Request)) {
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 16<<10)
	tok, next := c.PostForm("token"), localNext(c.PostForm("next"))
	var id *auth.Identity
	var err error = auth.ErrInvalid
	if a.tokens != nil && strings.HasPrefix(tok, auth.TokenPrefix) {
		r := c.Request.Clone(c.Request.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
		id, err = a.tokens.Authenticate(r)
	}
	if err != nil {
		a.renderLogin(c, http.StatusUnauthorized, loginData{Error: "That token is not valid (unknown or expired).", Next: next})
		return
	}
	ck := &http.Cookie{Name: TokenCookie, Value: tok, Path: "/", HttpOnly: true, Secure: c.Request.TLS != nil, SameSite: http.SameSiteStrictMode}
	if !id.Expires.IsZero() {
		ck.Expires = id.Expires
	}
	http.SetCookie(c.Writer, ck)
	c.Set(loginKey, id)
	c.Redirect(http.StatusSeeOther, next)
}

func (a *access) logout(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: TokenCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.Request.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.Redirect(http.StatusSeeOther, "/login")
}
