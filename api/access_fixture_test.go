package api

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/api/auth"
)

// fixtureAdmin gives cfg a token file with one admin token and returns a
// wrapper that sends that token with every request that has no
// Authorization header: the API tests that are not about access control
// run as an authenticated admin.
func fixtureAdmin(t testing.TB, cfg *Config) func(http.Handler) http.Handler {
	t.Helper()
	cfg.Auth.TokensFile = filepath.Join(t.TempDir(), "tokens")
	tok, err := auth.AppendToken(cfg.Auth.TokensFile, auth.TokenEntry{Name: "fixture-admin", Role: auth.RoleAdmin}, time.Now())
	require.NoError(t, err)
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Header.Get("Authorization") {
			case "":
				r.Header.Set("Authorization", "Bearer "+tok)
			case "-": // a test of requests without credentials
				r.Header.Del("Authorization")
			}
			h.ServeHTTP(w, r)
		})
	}
}
