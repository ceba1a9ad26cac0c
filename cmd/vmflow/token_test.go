package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/api/auth"
)

// TestTokenCreate: vmflow token create prints a token once and appends
// only its hash, with role, tenants and expiry; a second token of the same
// name and a bad role are refused.
func TestTokenCreate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"token", "create", "ci", "--role", "operator", "--tenant", "acme,globex", "--expires", "720h", "--file", file}, nil, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	tok := strings.TrimSpace(out.String())
	assert.True(t, strings.HasPrefix(tok, auth.TokenPrefix), tok)
	assert.Contains(t, errb.String(), "shown only now")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.NotContains(t, string(data), tok, "the token itself is not stored")
	es, err := auth.ParseTokenFile(data)
	require.NoError(t, err)
	require.Len(t, es, 1)
	assert.Equal(t, auth.HashToken(tok), es[0].SHA256)
	assert.Equal(t, auth.RoleOperator, es[0].Role)
	assert.Equal(t, []string{"acme", "globex"}, es[0].Tenants)
	assert.WithinDuration(t, time.Now().Add(720*time.Hour), es[0].Expires, time.Minute)
	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	out.Reset()
	errb.Reset()
	assert.Equal(t, 1, run(context.Background(), []string{"token", "create", "ci", "--role", "viewer", "--file", file}, nil, &out, &errb))
	assert.Contains(t, errb.String(), "exists")
	assert.Empty(t, out.String())
	assert.Equal(t, 2, run(context.Background(), []string{"token", "create", "x", "--role", "root", "--file", file}, nil, &out, &errb))
	assert.Equal(t, 2, run(context.Background(), []string{"token", "create", "--role", "viewer", "--file", file}, nil, &out, &errb))
}
