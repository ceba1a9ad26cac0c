package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func post(t *testing.T, e *testEnv, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(e.ts.URL+path, "application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

// POST /api/v1/admin/reload calls Deps.Reload and answers its result (200
// applied, 422 refused) in the documented schema; without Reload, 503.
func TestAdminReload(t *testing.T) {
	calls := 0
	next := ReloadResult{OK: true, At: T, File: "/etc/vmflow/vmflow.yaml", Applied: []string{"log.level"}, RestartRequired: []string{"api.listen"}}
	e := newEnv(t, func(d *Deps, _ *Config) {
		d.Reload = func(ctx context.Context) ReloadResult {
			calls++
			_, ok := ctx.Deadline()
			assert.True(t, ok, "the reload is bounded")
			return next
		}
	})
	doc := loadDoc(t, e)
	var op docOp
	require.NoError(t, json.Unmarshal(doc.Paths["/api/v1/admin/reload"]["post"], &op))
	schemaOf := func(code string) any {
		var r struct {
			Content map[string]struct{ Schema any } `json:"content"`
		}
		require.NoError(t, json.Unmarshal(op.Responses[code], &r))
		return r.Content["application/json"].Schema
	}

	code, body := post(t, e, "/api/v1/admin/reload")
	require.Equal(t, 200, code, "%s", body)
	var got any
	require.NoError(t, json.Unmarshal(body, &got))
	for _, err := range validate(doc.Components.Schemas, schemaOf("200"), got, "reload 200") {
		t.Error(err)
	}
	var res ReloadResult
	require.NoError(t, json.Unmarshal(body, &res))
	assert.Equal(t, []string{"api.listen"}, res.RestartRequired)

	next = ReloadResult{OK: false, At: T.Add(time.Second), File: "/etc/vmflow/vmflow.yaml", Error: "config: log.level: must be debug, info, warn or error"}
	code, body = post(t, e, "/api/v1/admin/reload")
	require.Equal(t, 422, code, "%s", body)
	require.NoError(t, json.Unmarshal(body, &got))
	for _, err := range validate(doc.Components.Schemas, schemaOf("422"), got, "reload 422") {
		t.Error(err)
	}
	assert.Contains(t, string(body), "log.level")
	assert.Equal(t, 2, calls)

	assert.Equal(t, 405, e.get(t, "/api/v1/admin/reload", nil), "GET does not reload")
	code, _ = post(t, e, "/api/v1/admin/reload?force=1")
	assert.Equal(t, 400, code)
	assert.Equal(t, 2, calls)

	e = newEnv(t, nil)
	code, _ = post(t, e, "/api/v1/admin/reload")
	assert.Equal(t, 503, code)
}
