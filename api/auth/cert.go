package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// ClientCert authenticates a verified TLS client certificate (the server
// verifies it against api.tls.client_ca_file): the subject's common name
// is the identity's name, its first organizational unit the role
// (viewer when absent) and its organizations the tenant scope (none: the
// whole cloud) — the convention Kubernetes uses for users and groups.
type ClientCert struct{}

// Authenticate implements Authenticator.
func (ClientCert) Authenticate(r *http.Request) (*Identity, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, ErrNoCredentials
	}
	if r.Header.Get("Authorization") != "" {
		return nil, ErrNoCredentials // an explicit credential wins over the connection's
	}
	leaf := r.TLS.VerifiedChains[0][0]
	name := strings.TrimSpace(leaf.Subject.CommonName)
	if name == "" {
		return nil, fmt.Errorf("%w: client certificate without a common name", ErrInvalid)
	}
	role := RoleViewer
	if len(leaf.Subject.OrganizationalUnit) > 0 {
		var err error
		if role, err = ParseRole(leaf.Subject.OrganizationalUnit[0]); err != nil {
			return nil, fmt.Errorf("%w: client certificate %s: %v", ErrInvalid, name, err)
		}
	}
	return &Identity{Name: name, Role: role, Tenants: append([]string(nil), leaf.Subject.Organization...), Expires: leaf.NotAfter, Method: MethodCert}, nil
}
