package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/vmflow/vmflow/internal/buildinfo"
)

// health is what the app adds to /api/v1/health: the build, the
// configuration (file, last reload, keys waiting for a restart) and the
// InfluxDB writer. The status is "degraded" when any part is.
func (a *App) health() map[string]any {
	out := map[string]any{"build": buildinfo.Get()}
	status := "ok"
	if a.influx != nil {
		h := a.influx.Health()
		out["influx"] = h
		if st, _ := h["status"].(string); st != "" && st != "ok" {
			status = st
		}
	}
	if a.notifier != nil {
		h := a.notifier.Health()
		out["alert_notify"] = h
		if st, _ := h["status"].(string); st != "" && st != "ok" && status == "ok" {
			status = st
		}
	}
	cfg, degraded := a.configHealth()
	out["config"] = cfg
	if degraded {
		status = "degraded"
	}
	out["status"] = status
	return out
}

// Alive runs the health route in-process (no network): it fails when the
// API's handlers do not answer before ctx ends, e.g. a lock held forever.
// The systemd watchdog is fed only while Alive succeeds.
func (a *App) Alive(ctx context.Context) error {
	done := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/api/v1/health", nil).WithContext(ctx)
		a.api.Handler().ServeHTTP(rec, req)
		done <- rec.Code
	}()
	select {
	case code := <-done:
		if code != http.StatusOK {
			return fmt.Errorf("health answered %d", code)
		}
		return nil
	case <-ctx.Done():
		return errors.New("health did not answer: " + ctx.Err().Error())
	}
}
