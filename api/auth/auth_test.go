package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoles(t *testing.T) {
	assert.True(t, RoleAdmin.Allows(RoleOperator))
	assert.True(t, RoleOperator.Allows(RoleViewer))
	assert.False(t, RoleViewer.Allows(RoleOperator))
	assert.False(t, Role("root").Allows(RoleViewer))
	assert.False(t, RoleAdmin.Allows(Role("")))
	_, err := ParseRole("superuser")
	assert.Error(t, err)
	r, err := ParseRole(" Admin ")
	require.NoError(t, err)
	assert.Equal(t, RoleAdmin, r)
}

func TestParseTokenFile(t *testing.T) {
	h := HashToken("vmf_x")
	good := `# comment
{"name":"a","role":"viewer","sha256":"` + h + `"}

{"name":"b","role":"admin","tenants":["t1"],"expires":"2030-01-01T00:00:00Z","sha256":"` + h + `"}
`
	es, err := ParseTokenFile([]byte(good))
	require.NoError(t, err)
	require.Len(t, es, 2)
	assert.Equal(t, []string{"t1"}, es[1].Tenants)
	for name, bad := range map[string]string{
		"duplicate name": `{"name":"a","role":"viewer","sha256":"` + h + `"}` + "\n" + `{"name":"a","role":"viewer","sha256":"` + h + `"}`,
		"unknown role":   `{"name":"a","role":"root","sha256":"` + h + `"}`,
		"short hash":     `{"name":"a","role":"viewer","sha256":"abcd"}`,
		"unknown field":  `{"name":"a","role":"viewer","sha256":"` + h + `","token":"vmf_x"}`,
		"not json":       `name=a`,
		"empty tenant":   `{"name":"a","role":"viewer","tenants":[""],"sha256":"` + h + `"}`,
	} {
		_, err := ParseTokenFile([]byte(bad))
		assert.Error(t, err, name)
		assert.Contains(t, err.Error(), "line ", name)
	}
}

func TestChain(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	yes := AuthenticatorFunc(func(r *http.Request) (*Identity, error) {
		switch BearerToken(r) {
		case "good":
			return &Identity{Name: "g", Role: RoleViewer}, nil
		case "old":
			return &Identity{Name: "o", Role: RoleAdmin, Expires: now}, nil
		case "norole":
			return &Identity{Name: "n"}, nil
		case "":
			return nil, ErrNoCredentials
		}
		return nil, ErrNoCredentials
	})
	c := &Chain{Authenticators: []Authenticator{yes}, Now: func() time.Time { return now }}
	req := func(h string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		return r
	}
	id, err := c.Authenticate(req("Bearer good"))
	require.NoError(t, err)
	assert.Equal(t, "g", id.Name)
	_, err = c.Authenticate(req("Bearer old"))
	assert.True(t, errors.Is(err, ErrExpired), "%v", err)
	_, err = c.Authenticate(req("Bearer norole"))
	assert.True(t, errors.Is(err, ErrInvalid))
	_, err = c.Authenticate(req("Bearer unknown"))
	assert.True(t, errors.Is(err, ErrInvalid), "a credential nobody accepts is refused")
	_, err = c.Authenticate(req(""))
	assert.True(t, errors.Is(err, ErrNoCredentials))
	c.Anonymous = &Identity{Name: "anonymous", Role: RoleViewer, Method: MethodAnonymous}
	id, err = c.Authenticate(req(""))
	require.NoError(t, err)
	assert.Equal(t, MethodAnonymous, id.Method)
	_, err = c.Authenticate(req("Bearer unknown"))
	assert.Error(t, err, "never downgraded to anonymous")
	scoped := &Identity{Tenants: []string{"b", "a", "b"}}
	assert.Equal(t, "a\x00b", scoped.ScopeKey())
	assert.True(t, scoped.InTenant("a"))
	assert.False(t, scoped.InTenant(""))
	assert.True(t, (&Identity{}).InTenant("x"))
}
