package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/configs"
	"github.com/vmflow/vmflow/internal/synth"
)

// Demo is a running `vmflow demo`: vmflow plus the synthetic cloud
// (internal/synth) feeding it real sFlow and IPFIX over loopback. The
// console tests use it too.
type Demo struct {
	App   *App
	Gen   *synth.Generator
	Cloud *synth.Cloud
	done  chan struct{}
	stop  context.CancelFunc
	sink  *synth.UDPSink
}

// DemoOptions are what the demo takes besides the cloud.
type DemoOptions struct {
	Listen  string        // API and console
	Window  time.Duration // aggregation window
	Dir     string        // where the inventory and the rules go
	Environ []string      // VMFLOW_* overrides of the demo's settings
}

// StartDemo writes the cloud's inventory and the demo's alert rules
// (configs/demo-rules.yaml), starts vmflow with them (memory store,
// collectors on ephemeral loopback ports) and the generator sending to
// those ports.
func StartDemo(ctx context.Context, cfg synth.Config, o DemoOptions, log *slog.Logger) (*Demo, error) {
	c, err := synth.Build(cfg)
	if err != nil {
		return nil, err
	}
	inv := filepath.Join(o.Dir, "inventory.yaml")
	f, err := os.Create(inv)
	if err != nil {
		return nil, fmt.Errorf("demo inventory: %w", err)
	}
	err = c.WriteInventory(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("demo inventory: %w", err)
	}
	rules := filepath.Join(o.Dir, "demo-rules.yaml")
	if err := os.WriteFile(rules, configs.DemoRules, 0o644); err != nil {
		return nil, fmt.Errorf("demo rules: %w", err)
	}
	env := append([]string{
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=",
		"VMFLOW_INFLUX_ENABLED=false",
		"VMFLOW_ENRICH_STATIC_RELOAD=0s",
		"VMFLOW_ENRICH_STATIC_FILE=" + inv,
		"VMFLOW_AGGREGATE_WINDOW=" + o.Window.String(),
		"VMFLOW_ALERT_RULES_FILE=" + rules,
		// resources stay fresh for 3 of these: hsflowd's polling interval,
		// whatever the window (the demo has no libvirt connection)
		"VMFLOW_INVENTORY_LIBVIRT_STATS_INTERVAL=" + max(cfg.CounterInterval, o.Window).String(),
	}, o.Environ...)
	env = append(env, "VMFLOW_API_LISTEN="+o.Listen)
	acfg, _, err := Load("", env)
	if err != nil {
		return nil, err
	}
	a, err := New(acfg, log)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	if err := a.Start(ctx); err != nil {
		stop()
		return nil, err
	}
	cfg.SFlowTarget = fmt.Sprintf("127.0.0.1:%d", a.ListenPort(collector.ProtoSFlow))
	cfg.IPFIXTarget = fmt.Sprintf("127.0.0.1:%d", a.ListenPort(collector.ProtoIPFIX))
	sink, err := synth.NewUDPSink(c, cfg.SFlowTarget, cfg.IPFIXTarget, cfg.Batch, cfg.MaxDatagram)
	if err != nil {
		stop()
		a.Stop()
		return nil, err
	}
	d := &Demo{App: a, Cloud: c, Gen: synth.New(c, cfg, sink, time.Now()), done: make(chan struct{}), stop: stop, sink: sink}
	go func() {
		defer close(d.done)
		_ = synth.Run(ctx, d.Gen, 0, 0)
	}()
	return d, nil
}

// Stop stops the generator (exporting what is open), then vmflow.
func (d *Demo) Stop() {
	d.stop()
	<-d.done
	d.sink.Close()
	d.App.Stop()
}
