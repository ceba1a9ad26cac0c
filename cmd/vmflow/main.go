// Command vmflow collects sFlow, IPFIX and NetFlow v9 from Open vSwitch,
// attributes traffic to VM pairs and serves the result over a REST API.
//
//	vmflow [--config FILE] [--check] [--dump] [--keys] [--version]
//	vmflow influx setup [--config FILE]   create the InfluxDB database/bucket,
//	                                      retention policies and rollups
//	vmflow demo [flags]                   vmflow fed by a synthetic cloud over loopback
//	vmflow synth [flags]                  the synthetic cloud alone, sent to a vmflow
//	vmflow token create NAME --role R     a new API token (printed once, stored hashed)
//	vmflow probe [--config FILE]          the hypervisor probe (probe.* keys)
//
// Every configuration key can be overridden by an environment variable:
// VMFLOW_ + the key path in upper case with "." replaced by "_"
// (api.listen → VMFLOW_API_LISTEN).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/internal/buildinfo"
	"github.com/vmflow/vmflow/store/influx"
)

// DefaultConfigPath is read when --config is not given and the file
// exists (a checkout); else SystemConfigPath (the package's) when it exists.
const (
	DefaultConfigPath = "configs/vmflow.yaml"
	SystemConfigPath  = "/etc/vmflow/vmflow.yaml"
)

func main() {
	ctx, stop := stopContext(os.Stderr) // signals.go: 1st SIGINT/SIGTERM stops cleanly, 2nd exits
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code. vmflow runs
// until ctx is done (SIGINT or SIGTERM), then stops cleanly (App.Stop).
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "influx" {
		return runInflux(ctx, args[1:], environ, stdout, stderr)
	}
	// synthetic cloud (synth.go)
	if len(args) >= 1 && args[0] == "demo" {
		return runDemo(ctx, args[1:], environ, stdout, stderr)
	}
	if len(args) >= 1 && args[0] == "synth" {
		return runSynth(ctx, args[1:], stdout, stderr)
	}
	if len(args) >= 1 && args[0] == "token" { // token.go
		return runToken(args[1:], environ, stdout, stderr, time.Now())
	}
	if len(args) >= 1 && args[0] == "probe" { // probe.go
		return runProbe(ctx, args[1:], environ, stderr)
	}
	fs := flag.NewFlagSet("vmflow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (default "+DefaultConfigPath+" when it exists)")
	check := fs.Bool("check", false, "validate the configuration and exit (0: valid, 1: invalid)")
	dump := fs.Bool("dump", false, "print the effective configuration as YAML and exit")
	keys := fs.Bool("keys", false, "list every configuration key with its environment variable and exit")
	showVersion := fs.Bool("version", false, "print the version, commit, build date and Go version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: vmflow [--config FILE] [--check] [--dump] [--keys] [--version]\n       vmflow influx setup [--config FILE]\n       vmflow demo|synth [flags]   (synthetic cloud; -h for flags)\n       vmflow probe [--config FILE]   (hypervisor probe)\n\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nEvery key can be overridden by VMFLOW_<KEY_PATH>, e.g. VMFLOW_API_LISTEN=127.0.0.1:9090.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vmflow: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *showVersion {
		printVersion(stdout)
		return 0
	}
	if *keys {
		for _, k := range app.Keys() {
			fmt.Fprintf(stdout, "%-45s %s\n", k.Path, k.Env)
		}
		return 0
	}
	cfg, res, err := app.Load(configFile(*configPath), environ)
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "vmflow: warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vmflow: %v\n", err)
		return 1
	}
	if *dump {
		out, err := cfg.Dump()
		if err != nil {
			fmt.Fprintf(stderr, "vmflow: dump: %v\n", err)
			return 1
		}
		_, _ = stdout.Write(out)
		return 0
	}
	if *check {
		src := "defaults"
		if res.File != "" {
			src = res.File
		}
		fmt.Fprintf(stdout, "vmflow: configuration OK (%s", src)
		if len(res.EnvUsed) > 0 {
			fmt.Fprintf(stdout, ", environment: %v", res.EnvUsed)
		}
		fmt.Fprintln(stdout, ")")
		return 0
	}

	log := cfg.Log.NewLogger(stderr)
	log.Info("vmflow", "version", buildinfo.Get().Version, "commit", buildinfo.Get().Commit)
	if res.File != "" {
		log.Info("configuration loaded", "file", res.File, "env", res.EnvUsed)
	} else {
		log.Info("no configuration file: defaults and environment", "env", res.EnvUsed)
	}
	a, err := app.New(cfg, log)
	if err != nil {
		log.Error("build", "err", err)
		return 1
	}
	setLoader(a, res.File, environ)
	stopReload := reloadOnHUP(ctx, a, log)
	defer stopReload()
	if err := a.Start(ctx); err != nil {
		log.Error("start", "err", err)
		return 1
	}
	sdReady()
	watchdog(ctx, a, log)
	<-ctx.Done()
	log.Info("stopping")
	sdStopping()
	a.Stop()
	return 0
}

// configFile is the --config value, or the first of DefaultConfigPath and
// SystemConfigPath that exists.
func configFile(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	for _, p := range []string{DefaultConfigPath, SystemConfigPath} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// runInflux handles `vmflow influx setup`: it creates what the influx
// section's writer needs (idempotent; see store/influx.Setup).
func runInflux(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "setup" {
		fmt.Fprintf(stderr, "usage: vmflow influx setup [--config FILE]\n")
		return 2
	}
	fs := flag.NewFlagSet("vmflow influx setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (default "+DefaultConfigPath+" when it exists)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, res, err := app.Load(configFile(*configPath), environ)
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "vmflow: warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vmflow: %v\n", err)
		return 1
	}
	err = influx.Setup(ctx, cfg.Influx, influx.SetupOptions{
		Logf: func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) },
	})
	if err != nil {
		fmt.Fprintf(stderr, "vmflow: influx setup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "vmflow: influx setup done (%s)\n", cfg.Influx.URL)
	return 0
}
