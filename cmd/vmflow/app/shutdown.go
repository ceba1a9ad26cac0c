package app

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ShutdownConfig configures the clean stop (SIGINT/SIGTERM → App.Stop).
type ShutdownConfig struct {
	// Timeout bounds how long the sinks may take to drain after the last
	// window was flushed into them (the InfluxDB writer sends what it
	// holds, and spools what InfluxDB did not take by then).
	Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
}

// DefaultShutdownConfig is the default: 10 s.
func DefaultShutdownConfig() ShutdownConfig {
	return ShutdownConfig{Timeout: 10 * time.Second}
}

// Validate checks the shutdown settings.
func (c ShutdownConfig) Validate() error {
	if c.Timeout < 100*time.Millisecond || c.Timeout > 10*time.Minute {
		return fmt.Errorf("shutdown.timeout: must be between 100ms and 10m, got %s", c.Timeout)
	}
	return nil
}

// stopPipeline is the data path's part of Stop, in reverse data-flow
// order: the collector stops receiving (and its workers finish what they
// queued), the aggregator flushes its open window into every sink, then
// the sinks drain (aggregate.Drainer) within shutdown.timeout. The sinks
// themselves (InfluxDB writer) are stopped after this by Stop.
func (a *App) stopPipeline() {
	a.col.Stop()
	a.stopExporters()
	if a.influx != nil {
		// the exporters' final counters, before the writer drains
		a.influx.WriteExporters(time.Now(), a.col.Exporters())
	}
	a.agg.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Shutdown.Timeout)
	defer cancel()
	t0 := time.Now()
	err := a.agg.Drain(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		a.log.Warn("shutdown.timeout reached while draining the sinks; what was not sent is in the spool", "timeout", a.cfg.Shutdown.Timeout)
	}
	if err != nil {
		a.log.Error("drain", "err", err)
	}
	attrs := []any{"took", time.Since(t0).Round(time.Millisecond)}
	if a.influx != nil {
		h := a.influx.Health()
		attrs = append(attrs, "influx_spool_pending_points", h["spool_pending_points"])
	}
	a.log.Info("sinks drained", attrs...)
}

// stopExporters stops exportersLoop and waits for it.
func (a *App) stopExporters() {
	a.mu.Lock()
	cancel, done := a.bgCancel, a.bgDone
	a.bgCancel = nil
	a.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
