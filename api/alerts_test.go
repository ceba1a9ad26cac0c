package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/alert"
)

// testAlerts is a real alert engine that evaluated the fixture windows:
// web-1 → db-1 sends SYNs nobody answers (failing connections, firing),
// and 192.0.2.7 → db-1 had one ICMP error in window 1 (resolved since).
func testAlerts(t testing.TB) *alert.Engine {
	t.Helper()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte(`
rules:
  - name: failing
    kind: failing_connections
    severity: P2
    threshold: 0.5
    ratio: 0.5
    labels: {team: db}
  - name: icmp
    kind: icmp_unreachable
    severity: P3
    threshold: 0
`), 0o644))
	cfg := alert.DefaultConfig()
	cfg.RulesFile, cfg.SnapshotFile = rules, ""
	e, err := alert.New(cfg, alert.Deps{Now: func() time.Time { return T.Add(60 * time.Second) }})
	require.NoError(t, err)
	for _, w := range fixtureWindows() {
		e.Evaluate(w)
	}
	_, err = e.AddSilence(alert.Silence{Matchers: []alert.Matcher{{Name: "rule", Value: "icmp"}}, EndsAt: T.Add(time.Hour), Comment: "known scanner", CreatedBy: "test"})
	require.NoError(t, err)
	return e
}

type alertsBody struct {
	Alerts []alert.AlertView `json:"alerts"`
}

func TestAlertsRoute(t *testing.T) {
	e := newEnv(t, nil)
	var all alertsBody
	require.Equal(t, 200, e.get(t, "/api/v1/alerts", &all))
	require.Len(t, all.Alerts, 2)
	assert.Equal(t, "icmp", all.Alerts[0].Rule, "newest state change first: icmp resolved at the end of window 2")
	assert.Equal(t, "failing", all.Alerts[1].Rule, "firing since the end of window 0")
	assert.True(t, all.Alerts[0].Silenced)
	var firing alertsBody
	require.Equal(t, 200, e.get(t, "/api/v1/alerts?state=firing&vm=db-1&tenant=acme&severity=P2", &firing))
	require.Len(t, firing.Alerts, 1)
	a := firing.Alerts[0]
	assert.Equal(t, "web-1", a.Labels["src"])
	assert.Equal(t, "db-1", a.Labels["dst"])
	assert.Equal(t, "db", a.Labels["team"])
	assert.Equal(t, "/#/pair/web-1/db-1", a.Link)
	var res alertsBody
	require.Equal(t, 200, e.get(t, "/api/v1/alerts?state=resolved", &res))
	require.Len(t, res.Alerts, 1)
	assert.Equal(t, "icmp", res.Alerts[0].Rule)
	assert.Equal(t, "192.0.2.7", res.Alerts[0].Labels["src"])
	var er errorBody
	assert.Equal(t, 400, e.get(t, "/api/v1/alerts?severity=P9", &er))
	assert.Equal(t, "severity", er.Parameter)
	assert.Equal(t, 400, e.get(t, "/api/v1/alerts?state=open", &er))
	assert.Equal(t, "state", er.Parameter)

	var rules alert.RulesStatus
	require.Equal(t, 200, e.get(t, "/api/v1/alerts/rules", &rules))
	require.Len(t, rules.Rules, 2)
	assert.Equal(t, 1, rules.Rules[0].Firing)
	assert.False(t, rules.Rules[0].LastEval.IsZero())
}

func TestSilencesRoutes(t *testing.T) {
	e := newEnv(t, nil)
	post := func(body string) (int, map[string]any) {
		resp, err := http.Post(e.ts.URL+"/api/v1/silences", "application/json", bytes.NewBufferString(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	code, out := post(`{"matchers":[{"name":"vm","value":"web-1","isRegex":false}],"endsAt":"2025-03-01T14:00:00Z","comment":"deploy","createdBy":"ops"}`)
	require.Equal(t, 200, code, "%v", out)
	id := out["silence"].(map[string]any)["id"].(string)
	assert.Equal(t, "active", out["silence"].(map[string]any)["state"])
	code, out = post(`{"matchers":[],"endsAt":"2025-03-01T14:00:00Z","comment":"x"}`)
	assert.Equal(t, 400, code)
	assert.Contains(t, out["error"], "matchers")
	code, _ = post(`{"matchers":[{"name":"vm","value":"a","isRegex":false}],"endsAt":"2025-03-01T14:00:00Z","comment":"x","bogus":1}`)
	assert.Equal(t, 400, code, "unknown fields are refused")
	code, _ = post(`{"id":"nope","matchers":[{"name":"vm","value":"a","isRegex":false}],"endsAt":"2025-03-01T14:00:00Z","comment":"x"}`)
	assert.Equal(t, 404, code)

	var list struct{ Silences []alert.Silence }
	require.Equal(t, 200, e.get(t, "/api/v1/silences", &list))
	require.Len(t, list.Silences, 2)
	assert.Equal(t, id, list.Silences[0].ID, "newest first")

	del := func(id string) int {
		req, _ := http.NewRequest(http.MethodDelete, e.ts.URL+"/api/v1/silences/"+id, nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 200, del(id))
	assert.Equal(t, 404, del("nope"))
	require.Equal(t, 200, e.get(t, "/api/v1/silences", &list))
	assert.Equal(t, "expired", list.Silences[0].State)
}

func TestAlertsDisabled(t *testing.T) {
	e := newEnv(t, func(d *Deps, _ *Config) { d.Alerts = nil })
	var er errorBody
	assert.Equal(t, 503, e.get(t, "/api/v1/alerts", &er))
	assert.Contains(t, er.Error, "disabled")
}
