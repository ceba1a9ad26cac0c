package ship

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/api/auth"
)

const invAlpha = `
vms:
  - name: alpha
    interfaces: [{mac: "52:54:00:00:00:01", ips: [10.0.0.1]}]
`

const invBravo = `
vms:
  - name: bravo
    interfaces: [{mac: "52:54:00:00:00:02", ips: [10.0.0.2]}]
`

type reloadHealth struct {
	Status string `json:"status"`
	Config struct {
		File            string   `json:"file"`
		ReloadError     string   `json:"reload_error"`
		RestartRequired []string `json:"restart_required"`
		LastReload      *struct {
			OK              bool     `json:"ok"`
			Applied         []string `json:"applied"`
			RestartRequired []string `json:"restart_required"`
			Error           string   `json:"error"`
		} `json:"last_reload"`
	} `json:"config"`
}

// SIGHUP re-reads the file: a new inventory path, log level and sampling
// rate take effect; a key that needs a restart is reported, not applied;
// an invalid file keeps the running configuration and the error shows in
// health (and in the admin API's answer) until a good file is loaded.
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vmflow.yaml")
	writeFile(t, filepath.Join(dir, "a.yaml"), invAlpha)
	writeFile(t, filepath.Join(dir, "b.yaml"), invBravo)
	writeFile(t, cfgPath, `
log:
  level: info
enrich:
  static:
    file: a.yaml
`)
	port := freePort(t)
	// The admin reload route needs an admin token (README "Security model").
	tokens := filepath.Join(t.TempDir(), "tokens")
	adminToken, err := auth.AppendToken(tokens, auth.TokenEntry{Name: "ship-admin", Role: auth.RoleAdmin}, time.Now())
	require.NoError(t, err)
	p := start(t, binPath, t.TempDir(), append(portEnv(port), "VMFLOW_API_AUTH_TOKENS_FILE="+tokens), port, "--config", cfgPath)
	p.token = adminToken
	require.Equal(t, []string{"alpha"}, p.vmNames(t))

	reloads := func(result string) float64 {
		return p.metric(t, `vmflow_config_reloads_total{result="`+result+`"}`)
	}
	hup := func(result string) {
		t.Helper()
		before := reloads(result)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
		require.Eventually(t, func() bool { return reloads(result) == before+1 }, 10*time.Second, 20*time.Millisecond,
			"SIGHUP not processed (%s):\n%s", result, p.out.String())
	}

	// 1. Inventory path, log level, sampling rate, and one key that needs
	// a restart.
	writeFile(t, cfgPath, `
log:
  level: debug
  sample:
    interval: 1h
    first: 2
    thereafter: 0
enrich:
  static:
    file: b.yaml
aggregate:
  window: 5s
`)
	hup("ok")
	assert.Equal(t, []string{"bravo"}, p.vmNames(t), "the new inventory file is in use")
	var h reloadHealth
	code, body := p.get(t, "/api/v1/health", &h)
	require.Equal(t, 200, code, body)
	assert.Equal(t, "ok", h.Status)
	require.NotNil(t, h.Config.LastReload)
	assert.True(t, h.Config.LastReload.OK)
	assert.Subset(t, h.Config.LastReload.Applied, []string{"log.level", "log.sample.interval", "log.sample.first", "log.sample.thereafter", "enrich.static.file"})
	assert.Equal(t, []string{"aggregate.window"}, h.Config.RestartRequired)
	assert.Equal(t, 1, p.out.count("configuration changes need a restart"), p.out.String())

	// The level is debug now, and the sampling is 2 per message per hour:
	// five more SIGHUPs log "SIGHUP: reloading" twice, the rest is counted.
	suppressedBefore := p.metric(t, `vmflow_log_suppressed_total{level="info"}`)
	hupLines := p.out.count("SIGHUP: reloading the configuration")
	for i := 0; i < 5; i++ {
		hup("ok")
	}
	assert.Equal(t, hupLines+2, p.out.count("SIGHUP: reloading the configuration"), "sampling: first 2, then none\n%s", p.out.String())
	assert.GreaterOrEqual(t, p.out.count("level=DEBUG msg=\"reload: compared"), 1, "debug records are written after the reload")
	// 3 of each of the info messages "SIGHUP: reloading" and "configuration reloaded"
	assert.GreaterOrEqual(t, p.metric(t, `vmflow_log_suppressed_total{level="info"}`)-suppressedBefore, 6.0)

	// 2. An invalid file: nothing changes, the error is logged and in health.
	writeFile(t, cfgPath, `
log:
  level: loud
enrich:
  static:
    file: a.yaml
`)
	hup("error")
	assert.Equal(t, []string{"bravo"}, p.vmNames(t), "the running inventory is kept")
	h = reloadHealth{}
	code, body = p.get(t, "/api/v1/health", &h)
	require.Equal(t, 200, code, body)
	assert.Equal(t, "degraded", h.Status)
	assert.Contains(t, h.Config.ReloadError, "log.level")
	assert.Equal(t, 0.0, p.metric(t, "vmflow_config_last_reload_successful"))
	assert.Contains(t, p.out.String(), "keeping the running one")

	// A new inventory file that does not exist: refused the same way.
	writeFile(t, cfgPath, `
log:
  level: debug
  sample: {interval: 1h, first: 2, thereafter: 0}
enrich:
  static:
    file: missing.yaml
aggregate:
  window: 5s
`)
	code, body = p.do(t, "POST", "/api/v1/admin/reload", nil)
	assert.Equal(t, 422, code, body)
	assert.Contains(t, body, "missing.yaml")
	assert.Equal(t, []string{"bravo"}, p.vmNames(t))

	// 3. A good file again, through the admin API: healthy, alpha back.
	writeFile(t, cfgPath, `
log:
  level: info
enrich:
  static:
    file: a.yaml
`)
	code, body = p.do(t, "POST", "/api/v1/admin/reload", nil)
	require.Equal(t, 200, code, body)
	assert.Equal(t, []string{"alpha"}, p.vmNames(t))
	h = reloadHealth{}
	_, _ = p.get(t, "/api/v1/health", &h)
	assert.Equal(t, "ok", h.Status)
	assert.Empty(t, h.Config.ReloadError)
	assert.Empty(t, h.Config.RestartRequired, "aggregate.window is back to its running value")
	assert.Equal(t, 1.0, p.metric(t, "vmflow_config_last_reload_successful"))
}
