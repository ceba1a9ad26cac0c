package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/internal/buildinfo"
	"github.com/vmflow/vmflow/probe"
)

// runProbe is `vmflow probe`: the hypervisor probe (package probe), with
// the probe.* keys of the same configuration file. SIGHUP re-reads the tap
// set at once (it is also re-read every probe.rescan).
func runProbe(ctx context.Context, args, environ []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("vmflow probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (its probe section; default "+DefaultConfigPath+" when it exists)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, _, err := app.Load(configFile(*configPath), environ)
	if err != nil {
		fmt.Fprintf(stderr, "vmflow probe: %v\n", err)
		return 1
	}
	if *check {
		return 0
	}
	log := cfg.Log.NewLogger(stderr)
	log.Info("vmflow probe", "version", buildinfo.Get().Version, "collector", cfg.Probe.Collector, "taps", cfg.Probe.Taps)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p, err := probe.New(cfg.Probe, reg, reg, log)
	if err != nil {
		log.Error("probe", "err", err)
		return 1
	}
	if err := p.Start(ctx); err != nil {
		log.Error("probe start", "err", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sdReady()
	for {
		select {
		case <-ctx.Done():
			log.Info("probe stopping")
			sdStopping()
			p.Stop()
			return 0
		case <-hup:
			log.Info("SIGHUP: re-reading the tap set")
			p.Rescan()
		}
	}
}
