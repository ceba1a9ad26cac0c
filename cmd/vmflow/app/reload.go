package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/api"
	"github.com/vmflow/vmflow/cmd/vmflow/internal/cfgload"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/logsample"
)

// Configuration reload (SIGHUP, POST /api/v1/admin/reload).
//
// Reload re-reads the configuration with the Loader given to SetLoader
// (the same file and environment as at start), compares it key by key with
// the running configuration, and hands each changed key to the hook that
// declared it live (OnReload). Keys no hook declares are reported as
// needing a restart; an invalid file changes nothing. To make a key of a
// new component live, give the component a setter and declare it in
// registerReloadHooks (or from the component's wiring):
//
//	a.OnReload("alert", []string{"alert.rules_file", "alert.receivers"},
//		func(cur, next Config) error { return a.alert.SetRules(next.Alert) })
//
// A key pattern is a key or a section (a prefix ending at a dot boundary:
// "log.sample" covers log.sample.first). A hook returning an error wrapping
// ErrRestartRequired moves its keys to the restart list; any other error
// keeps the running value of its keys and fails the reload.

// ErrRestartRequired, wrapped by a hook's error, reports that the change
// cannot be applied live.
var ErrRestartRequired = errors.New("needs a restart")

// Loader re-reads the configuration for Reload.
type Loader func() (Config, LoadResult, error)

type reloadHook struct {
	name  string
	keys  []string
	apply func(cur, next Config) error
}

func (h *reloadHook) covers(key string) bool {
	for _, p := range h.keys {
		if key == p || strings.HasPrefix(key, p+".") {
			return true
		}
	}
	return false
}

type reloadState struct {
	mu      sync.Mutex // serialises reloads; guards the fields below
	file    string
	loader  Loader
	hooks   []*reloadHook
	running Config // the configuration in effect (start config + applied reloads)
	last    *api.ReloadResult
	restart []string // keys that differ from the file and need a restart

	mReloads     *prometheus.CounterVec
	mLastSuccess prometheus.Gauge
	mRestart     prometheus.Gauge
}

func (r *reloadState) init(cfg Config, reg prometheus.Registerer) {
	r.running = cfg
	r.mReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_config_reloads_total",
		Help: "Configuration reloads (SIGHUP or POST /api/v1/admin/reload), by result: ok, error (the running configuration was kept, in whole or for the failed part).",
	}, []string{"result"})
	r.mReloads.WithLabelValues("ok")
	r.mReloads.WithLabelValues("error")
	r.mLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vmflow_config_last_reload_successful",
		Help: "1 when the last configuration reload succeeded (or none was tried), 0 when it failed.",
	})
	r.mLastSuccess.Set(1)
	r.mRestart = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vmflow_config_restart_required_keys",
		Help: "Configuration keys whose value in the file differs from the running one and needs a restart.",
	})
	reg.MustRegister(r.mReloads, r.mLastSuccess, r.mRestart)
}

// SetLoader tells Reload how to re-read the configuration; file is what
// it reports as the source.
func (a *App) SetLoader(file string, load Loader) {
	a.rl.mu.Lock()
	defer a.rl.mu.Unlock()
	a.rl.file, a.rl.loader = file, load
}

// OnReload declares keys (or sections) that apply can change while running.
func (a *App) OnReload(name string, keys []string, apply func(cur, next Config) error) {
	a.rl.mu.Lock()
	defer a.rl.mu.Unlock()
	a.rl.hooks = append(a.rl.hooks, &reloadHook{name: name, keys: keys, apply: apply})
}

// LiveKeys lists the key patterns that can change without a restart.
func (a *App) LiveKeys() []string {
	a.rl.mu.Lock()
	defer a.rl.mu.Unlock()
	var out []string
	for _, h := range a.rl.hooks {
		out = append(out, h.keys...)
	}
	return out
}

// RunningConfig is the configuration in effect (the start configuration
// with the keys applied by reloads).
func (a *App) RunningConfig() Config {
	a.rl.mu.Lock()
	defer a.rl.mu.Unlock()
	return a.rl.running
}

// Reload re-reads the configuration and applies what can change live.
func (a *App) Reload(ctx context.Context) api.ReloadResult {
	r := &a.rl
	r.mu.Lock()
	defer r.mu.Unlock()
	res := api.ReloadResult{At: time.Now().UTC(), File: r.file}
	defer func() {
		r.last = &res
		if res.OK {
			r.mReloads.WithLabelValues("ok").Inc()
			r.mLastSuccess.Set(1)
		} else {
			r.mReloads.WithLabelValues("error").Inc()
			r.mLastSuccess.Set(0)
		}
	}()
	if r.loader == nil {
		res.Error = "reload: no configuration loader (vmflow was not started with one)"
		return res
	}
	if err := ctx.Err(); err != nil {
		res.Error = "reload: " + err.Error()
		return res
	}
	next, lr, err := r.loader()
	if lr.File != "" {
		res.File = lr.File
	}
	if err != nil {
		res.Error = err.Error()
		a.log.Error("reload: the new configuration is invalid; keeping the running one", "file", res.File, "err", err)
		return res
	}
	cur := r.running
	changed := cfgload.Changed(cur, next)
	a.log.Debug("reload: compared with the running configuration", "file", res.File, "changed", changed)
	claimed := map[*reloadHook][]string{}
	var restart []string
	for _, k := range changed {
		var owner *reloadHook
		for _, h := range r.hooks {
			if h.covers(k) {
				owner = h
				break
			}
		}
		if owner == nil {
			restart = append(restart, k)
			continue
		}
		claimed[owner] = append(claimed[owner], k)
	}
	var errs []error
	for _, h := range r.hooks {
		keys := claimed[h]
		if len(keys) == 0 {
			continue
		}
		if err := h.apply(cur, next); err != nil {
			if errors.Is(err, ErrRestartRequired) {
				restart = append(restart, keys...)
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
			continue
		}
		if err := cfgload.CopyKeys(&cur, next, keys); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Applied = append(res.Applied, keys...)
	}
	r.running = cur
	r.restart = restart
	r.mRestart.Set(float64(len(restart)))
	res.RestartRequired = restart
	res.OK = len(errs) == 0
	if !res.OK {
		res.Error = errors.Join(errs...).Error()
		a.log.Error("reload: part of the new configuration could not be applied; those keys keep their running values", "file", res.File, "applied", res.Applied, "err", res.Error)
	} else {
		a.log.Info("configuration reloaded", "file", res.File, "applied", res.Applied, "restart_required", restart)
	}
	if len(restart) > 0 {
		a.log.Warn("configuration changes need a restart to take effect", "keys", restart)
	}
	return res
}

// configHealth is the "config" part of /api/v1/health, and whether it
// degrades the status (the last reload failed).
func (a *App) configHealth() (map[string]any, bool) {
	a.rl.mu.Lock()
	defer a.rl.mu.Unlock()
	out := map[string]any{
		"file":             a.rl.file,
		"restart_required": append([]string{}, a.rl.restart...),
		"last_reload":      nil,
	}
	degraded := false
	if l := a.rl.last; l != nil {
		out["last_reload"] = *l
		if !l.OK {
			out["reload_error"] = l.Error
			degraded = true
		}
	}
	return out, degraded
}

// registerReloadHooks declares what vmflow can change live.
func (a *App) registerReloadHooks() {
	a.OnReload("log", []string{"log.level", "log.sample"}, func(cur, next Config) error {
		if a.logh == nil {
			return fmt.Errorf("%w (the logger was not built by LogConfig.NewLogger)", ErrRestartRequired)
		}
		lvl, err := parseLevel(next.Log.Level)
		if err != nil {
			return err
		}
		a.logh.SetLevel(lvl)
		if next.Log.Sample != cur.Log.Sample {
			a.logh.SetSampling(next.Log.Sample)
		}
		return nil
	})
	a.OnReload("inventory", []string{"enrich.static.file", "enrich.static.reload"}, func(cur, next Config) error {
		err := a.enr.SetStatic(next.Enrich.Static)
		if errors.Is(err, enrich.ErrStaticToggled) {
			return fmt.Errorf("%w: %v", ErrRestartRequired, err)
		}
		return err
	})
	a.OnReload("collector", []string{"collector.allowed_exporters"}, func(cur, next Config) error {
		return a.col.SetAllowedExporters(next.Collector.AllowedExporters)
	})
}

// loggerHandler finds the reloadable handler of a logger built by NewLogger.
func loggerHandler(log *slog.Logger) *logsample.Handler {
	h, _ := log.Handler().(*logsample.Handler)
	return h
}
