// Package auth is vmflow's identity model: who a request comes from, with
// which role and which tenant scope, and the authenticators that tell.
//
// The API (package api) runs a Chain of Authenticators on every request
// and checks the route's declared policy (required role, whether a
// tenant-scoped identity may use it) against the resulting Identity. Token
// files (tokens.go), client certificates (cert.go) and anonymous access
// are implemented here; OpenID Connect (UI login and JWT bearer tokens)
// plugs in as one more Authenticator, and a LoginProvider when it serves
// login routes, without changes to the API.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Role is what an identity may do. Each role includes the ones below it.
type Role string

const (
	// RoleViewer reads: pairs, series, VMs, aggregates, alerts.
	RoleViewer Role = "viewer"
	// RoleOperator also changes silences and acknowledgements.
	RoleOperator Role = "operator"
	// RoleAdmin also changes rules, tokens and reloads inventory and
	// configuration.
	RoleAdmin Role = "admin"
)

// Roles in increasing order of power.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

func (r Role) rank() int { return slices.Index(Roles, r) }

// Valid tells a known role.
func (r Role) Valid() bool { return r.rank() >= 0 }

// Allows tells whether r includes need (an unknown role allows nothing).
func (r Role) Allows(need Role) bool {
	return r.rank() >= 0 && need.rank() >= 0 && r.rank() >= need.rank()
}

// ParseRole parses viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q (one of viewer, operator, admin)", s)
	}
	return r, nil
}

// Methods of authentication (Identity.Method).
const (
	MethodToken     = "token"     // API token from the token file
	MethodCert      = "cert"      // TLS client certificate
	MethodAnonymous = "anonymous" // no credentials, anonymous access configured
	MethodOIDC      = "oidc"      // UI session after OpenID Connect login
	MethodJWT       = "jwt"       // JWT bearer token from the OpenID provider
)

// Identity is who a request comes from.
type Identity struct {
	// Name is the token name, the certificate subject, the OIDC subject
	// (or preferred user name); "anonymous" for anonymous access.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Tenants, when not empty, scope the identity: it sees only pairs
	// with at least one endpoint in one of these tenants (tenant ids as
	// the inventory has them), other tenants' endpoints masked. Empty:
	// the whole cloud.
	Tenants []string `json:"tenants,omitempty"`
	// Expires is when the credential stops being valid (zero: never).
	Expires time.Time `json:"expires,omitzero"`
	// Method is how it was authenticated (Method* constants).
	Method string `json:"method"`
}

// Scoped tells a tenant-scoped identity.
func (id *Identity) Scoped() bool { return id != nil && len(id.Tenants) > 0 }

// InTenant tells whether tenant t is in the identity's scope (always true
// for an unscoped identity).
func (id *Identity) InTenant(t string) bool {
	if !id.Scoped() {
		return true
	}
	return t != "" && slices.Contains(id.Tenants, t)
}

// ScopeKey is a canonical string of the tenant scope ("" unscoped).
func (id *Identity) ScopeKey() string {
	if !id.Scoped() {
		return ""
	}
	t := slices.Clone(id.Tenants)
	slices.Sort(t)
	return strings.Join(slices.Compact(t), "\x00")
}

// Errors of authentication. An Authenticator returns ErrNoCredentials
// when the request carries nothing it understands (the chain asks the
// next one); any other error refuses the request with 401.
var (
	ErrNoCredentials = errors.New("no credentials")
	ErrInvalid       = errors.New("invalid credentials")
	ErrExpired       = errors.New("credentials expired")
)

// Authenticator turns a request into an Identity.
type Authenticator interface {
	// Authenticate returns the request's identity, ErrNoCredentials when
	// it carries none this authenticator handles, or an error (wrapping
	// ErrInvalid or ErrExpired) to refuse it.
	Authenticate(r *http.Request) (*Identity, error)
}

// AuthenticatorFunc adapts a function.
type AuthenticatorFunc func(r *http.Request) (*Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (*Identity, error) { return f(r) }

// Route is an HTTP route an authenticator serves itself (OIDC login and
// callback). Such routes need no identity; the API registers them as
// public.
type Route struct {
	Method, Path string // Path in the API router's syntax (e.g. /auth/callback)
	Handler      http.Handler
}

// LoginProvider is an Authenticator with an interactive login (OIDC): its
// routes are served publicly, and a browser asking for the UI without an
// identity is redirected to LoginURL.
type LoginProvider interface {
	Authenticator
	Routes() []Route
	// LoginURL is where to send a browser that wants next (a local path).
	LoginURL(next string) string
}

// Chain asks each authenticator in order. The first identity wins; an
// error other than ErrNoCredentials stops the chain. When none handles
// the request, Anonymous (when set) is the identity, unless the request
// carries an Authorization header: a credential nobody accepts is
// refused, never downgraded to anonymous.
type Chain struct {
	Authenticators []Authenticator
	Anonymous      *Identity
	Now            func() time.Time // nil: time.Now
}

// Authenticate runs the chain. Expired identities are refused here too, so
// an authenticator need not check Expires itself.
func (c *Chain) Authenticate(r *http.Request) (*Identity, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	for _, a := range c.Authenticators {
		id, err := a.Authenticate(r)
		if errors.Is(err, ErrNoCredentials) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if id == nil || !id.Role.Valid() {
			return nil, fmt.Errorf("%w: no valid role", ErrInvalid)
		}
		if !id.Expires.IsZero() && !now().Before(id.Expires) {
			return nil, fmt.Errorf("%w: %s expired at %s", ErrExpired, id.Name, id.Expires.UTC().Format(time.RFC3339))
		}
		return id, nil
	}
	if r.Header.Get("Authorization") != "" {
		return nil, fmt.Errorf("%w: unsupported or unknown authorization", ErrInvalid)
	}
	if c.Anonymous != nil {
		id := *c.Anonymous
		return &id, nil
	}
	return nil, ErrNoCredentials
}

// BearerToken is the token of an "Authorization: Bearer" header ("" when
// absent or another scheme).
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(h[7:])
}

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext is the identity of a request's context (nil: none).
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}
