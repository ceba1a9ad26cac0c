package main

// `vmflow demo` and `vmflow synth`: the synthetic cloud of internal/synth,
// either feeding a vmflow started in the same process (demo) or sent to a
// separately running one (synth, for the scale benchmarks).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/internal/synth"
)

// cloudFlags registers the flags that shape the synthetic cloud on fs,
// with cfg's values as defaults; apply copies them back after Parse.
func cloudFlags(fs *flag.FlagSet, cfg *synth.Config) (apply func()) {
	fs.IntVar(&cfg.Hosts, "hosts", cfg.Hosts, "hypervisors (one exporter address each, from 127.1.0.10)")
	fs.IntVar(&cfg.VMs, "vms", cfg.VMs, "VMs")
	fs.IntVar(&cfg.Tenants, "tenants", cfg.Tenants, "tenants")
	fs.IntVar(&cfg.Pairs, "pairs", cfg.Pairs, "active directed VM pairs at the start")
	fs.Float64Var(&cfg.SampleRate, "rate", cfg.SampleRate, "sFlow flow samples per second of the steady traffic (mean over a day)")
	sampling := fs.Uint("sampling", uint(cfg.SamplingRate), "sFlow sampling rate 1-in-N")
	fs.Float64Var(&cfg.IPFIXShare, "ipfix-share", cfg.IPFIXShare, "fraction of hypervisors that also export IPFIX (1-in-1)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed: the same seed gives the same cloud and traffic")
	fs.DurationVar(&cfg.DayPeriod, "day", cfg.DayPeriod, "one simulated day (tenants' rates follow a sinusoid); 0 = flat")
	fs.BoolVar(&cfg.DestinationSamples, "dest-samples", cfg.DestinationSamples, "also sample VM-to-VM packets where they enter the destination's bridge (vmflow must count them once)")
	events := fs.Bool("events", cfg.ScanEvery > 0, "bursts, port scans and new pairs now and then")
	fs.IntVar(&cfg.MaxDatagram, "max-datagram", cfg.MaxDatagram, "datagram size limit in bytes (OVS: 1400)")
	fs.IntVar(&cfg.HeaderBytes, "header-bytes", cfg.HeaderBytes, "sampled header bytes (OVS header=128)")
	fs.DurationVar(&cfg.CounterInterval, "polling", cfg.CounterInterval, "sFlow counter polling interval per VM port")
	fs.DurationVar(&cfg.IPFIXInterval, "ipfix-interval", cfg.IPFIXInterval, "IPFIX active timeout (records exported this often)")
	fs.Float64Var(&cfg.ProbeRate, "probe-rate", cfg.ProbeRate, "TCP handshakes per second timed by the hypervisors' latency probes (IPFIX); 0 = no probe")
	fs.BoolVar(&cfg.HostStats, "hsflowd", cfg.HostStats, "every hypervisor also runs hsflowd (sFlow host structures: VM CPU, memory, disk, vNIC)")
	demo := synth.DemoConfig()
	return func() {
		cfg.SamplingRate = uint32(min(*sampling, 1<<31))
		if !*events {
			cfg.BurstEvery, cfg.ScanEvery, cfg.NewPairEvery = 0, 0, 0
		} else if cfg.ScanEvery == 0 {
			cfg.BurstEvery, cfg.ScanEvery, cfg.NewPairEvery = demo.BurstEvery, demo.ScanEvery, demo.NewPairEvery
		}
	}
}

// runSynth handles `vmflow synth`: the generator alone, sending to a
// vmflow elsewhere.
func runSynth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vmflow synth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	preset := "demo"
	for i, a := range args { // the preset decides the other flags' defaults
		if v, ok := strings.CutPrefix(a, "--preset="); ok {
			preset = v
		} else if v, ok := strings.CutPrefix(a, "-preset="); ok {
			preset = v
		} else if (a == "--preset" || a == "-preset") && i+1 < len(args) {
			preset = args[i+1]
		}
	}
	var cfg synth.Config
	switch preset {
	case "demo":
		cfg = synth.DemoConfig()
	case "scale":
		cfg = synth.ScaleConfig()
	default:
		fmt.Fprintf(stderr, "vmflow synth: --preset %q: want demo or scale\n", preset)
		return 2
	}
	fs.String("preset", preset, "defaults: demo (6 hypervisors, 48 VMs, 2,000 samples/s) or scale (500, 10,000 VMs, 200,000 pairs, 1,000,000 samples/s)")
	apply := cloudFlags(fs, &cfg)
	sflowTarget := fs.String("sflow", "127.0.0.1:6343", `sFlow collector host:port ("" = no sFlow)`)
	ipfixTarget := fs.String("ipfix", "127.0.0.1:4739", `IPFIX collector host:port ("" = no IPFIX)`)
	invOut := fs.String("inventory-out", "", "write the matching static inventory (enrich.static.file) here")
	invOnly := fs.Bool("inventory-only", false, "write the inventory and exit")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM)")
	every := fs.Duration("stats", 10*time.Second, "print what was sent (JSON) this often; 0 = only at the end")
	truthOut := fs.String("truth-out", "", "at the end, write every pair's ground truth (JSON) here")
	if code, ok := parseSubcommand(fs, args, stderr, "usage: vmflow synth [--preset demo|scale] [flags]\n\n"+
		"Generates a synthetic cloud and sends its sFlow v5 and IPFIX datagrams over UDP,\n"+
		"each hypervisor from its own 127.x address (give vmflow --inventory-out's file).\n\n"); !ok {
		return code
	}
	apply()
	cfg.SFlowTarget, cfg.IPFIXTarget = *sflowTarget, *ipfixTarget
	c, err := synth.Build(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "vmflow synth: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "vmflow synth: %s\n", c.Summary())
	if *invOut != "" {
		if err := writeInventory(c, *invOut); err != nil {
			fmt.Fprintf(stderr, "vmflow synth: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "vmflow synth: inventory written to %s\n", *invOut)
	}
	if *invOnly {
		return 0
	}
	sink, err := synth.NewUDPSink(c, cfg.SFlowTarget, cfg.IPFIXTarget, cfg.Batch, cfg.MaxDatagram)
	if err != nil {
		fmt.Fprintf(stderr, "vmflow synth: %v\n", err)
		return 1
	}
	defer sink.Close()
	start := time.Now()
	g := synth.New(c, cfg, sink, start)
	enc := json.NewEncoder(stdout)
	report := func() {
		el := time.Since(start).Seconds()
		st := g.Stats()
		_ = enc.Encode(struct {
			synth.Stats
			Seconds        float64 `json:"seconds"`
			SamplesPerSec  float64 `json:"flow_samples_per_s"`
			Sent           uint64  `json:"datagrams_sent"`
			SendErrors     uint64  `json:"send_errors"`
			TargetSamplesS float64 `json:"target_samples_per_s"`
		}{st, el, float64(st.FlowSamples) / el, sink.Sent, sink.Errors, cfg.SampleRate})
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *every > 0 {
		go func() {
			t := time.NewTicker(*every)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
					report()
				}
			}
		}()
	}
	_ = synth.Run(runCtx, g, *duration, 0)
	cancel()
	report()
	if err := sink.Err(); err != nil {
		fmt.Fprintf(stderr, "vmflow synth: last send error: %v\n", err)
	}
	if *truthOut != "" {
		b, err := json.MarshalIndent(g.Truth(), "", " ")
		if err == nil {
			err = os.WriteFile(*truthOut, b, 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "vmflow synth: truth: %v\n", err)
			return 1
		}
	}
	return 0
}

func writeInventory(c *synth.Cloud, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if err := c.WriteInventory(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runDemo handles `vmflow demo`.
func runDemo(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vmflow demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := synth.DemoConfig()
	apply := cloudFlags(fs, &cfg)
	listen := fs.String("listen", "127.0.0.1:8080", "API and console address")
	window := fs.Duration("window", 10*time.Second, "aggregation window")
	if code, ok := parseSubcommand(fs, args, stderr, "usage: vmflow demo [flags]\n\n"+
		"Starts vmflow with a synthetic cloud exporting real sFlow and IPFIX over loopback:\n"+
		"the console on --listen shows it within seconds. VMFLOW_* variables still apply.\n\n"); !ok {
		return code
	}
	apply()
	dir, err := os.MkdirTemp("", "vmflow-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "vmflow demo: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := app.StartDemo(ctx, cfg, app.DemoOptions{Listen: *listen, Window: *window, Dir: dir, Environ: vmflowEnv(environ)}, log)
	if err != nil {
		fmt.Fprintf(stderr, "vmflow demo: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "vmflow demo: %s\n", d.Cloud.Summary())
	fmt.Fprintf(stdout, "vmflow demo: console on http://%s/ (windows of %s; first data within one window). Ctrl-C stops.\n", d.App.APIAddr(), *window)
	<-ctx.Done()
	d.Stop()
	st := d.Gen.Stats()
	fmt.Fprintf(stdout, "vmflow demo: sent %d flow samples, %d counter samples, %d IPFIX records, %d probe records, %d hsflowd samples\n",
		st.FlowSamples, st.CounterSamples, st.IPFIXRecords, st.ProbeRecords, st.HostSamples)
	return 0
}

// vmflowEnv keeps the VMFLOW_* entries of environ.
func vmflowEnv(environ []string) []string {
	var out []string
	for _, e := range environ {
		if strings.HasPrefix(e, "VMFLOW_") {
			out = append(out, e)
		}
	}
	return out
}

// parseSubcommand parses a subcommand's flags (no positional arguments);
// ok false: exit with code (0 after -h).
func parseSubcommand(fs *flag.FlagSet, args []string, stderr io.Writer, usage string) (code int, ok bool) {
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return 2, false
	}
	return 0, true
}
