package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/alert"
	"github.com/vmflow/vmflow/alert/notify"
	"github.com/vmflow/vmflow/api"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/enrich/libvirt"
	"github.com/vmflow/vmflow/internal/buildinfo"
	"github.com/vmflow/vmflow/internal/logsample"
	"github.com/vmflow/vmflow/store"
	"github.com/vmflow/vmflow/store/influx"
	"github.com/vmflow/vmflow/store/peer"
	"github.com/vmflow/vmflow/web"
)

// App is a wired vmflow. New is inert; Start starts the components in data
// flow order (inventory first, API last); Stop stops them in reverse, so
// the aggregator flushes its open window to the sinks before they stop
// (see stopPipeline and aggregate.Drainer). The components run until Stop:
// none of them watches the context given to Start.
type App struct {
	cfg    Config
	log    *slog.Logger
	reg    *prometheus.Registry
	enr    *enrich.Enricher
	dec    *decoder.Decoder
	mem    *store.Memory
	influx *influx.Writer
	hist   *influx.Reader
	agg    *aggregate.Aggregator
	pipe   *aggregate.Pipeline
	col    *collector.Collector
	api    *api.Server
	res    *enrich.ResourceTracker // VM resources (libvirt stats, hsflowd)
	alerts *alert.Engine
	// notifier delivers alerts (nil without receivers in alert.notify).
	notifier *notify.Notifier
	logh     *logsample.Handler // nil when the logger is not NewLogger's
	rl       reloadState        // see reload.go

	mu       sync.Mutex
	stops    []func()
	cancel   context.CancelFunc
	bgCancel context.CancelFunc
	bgDone   chan struct{}
	stopped  bool
}

// Extras are optional collaborators of New.
type Extras struct {
	// AlertDispatcher receives every alert evaluation's result (nil: none).
	AlertDispatcher notify.Dispatcher
}

// New builds every component from cfg (which must be valid). It starts nothing.
func New(cfg Config, log *slog.Logger) (*App, error) { return NewWith(cfg, log, Extras{}) }

// NewWith is New with optional collaborators.
func NewWith(cfg Config, log *slog.Logger, x Extras) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	a := &App{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.reg.MustRegister(buildinfo.Get().Collector())
	if a.logh = loggerHandler(log); a.logh != nil {
		a.reg.MustRegister(a.logh.Collector())
	}
	a.rl.init(cfg, a.reg)

	var sources []enrich.InventorySource
	// VM resources (enrich.ResourceTracker): libvirt's stats poller (and
	// an hsflowd decoder) feed it; the API, alerts and InfluxDB read it.
	lvcfg := cfg.Inventory.Libvirt
	if lvcfg.StatsInterval == 0 {
		lvcfg.StatsInterval = cfg.Aggregate.Window
	}
	a.res = enrich.NewResourceTracker(enrich.ResourceTrackerConfig{StaleAfter: 3 * lvcfg.StatsInterval})
	if len(cfg.Inventory.Libvirt.Connections) > 0 {
		lv, err := libvirt.New(lvcfg, a.reg, libvirt.WithResourceSink(a.res))
		if err != nil {
			return nil, fmt.Errorf("libvirt: %w", err)
		}
		sources = append(sources, lv...)
	}
	var err error
	if a.enr, err = enrich.New(cfg.Enrich, a.reg, sources...); err != nil {
		return nil, fmt.Errorf("enrich: %w", err)
	}
	if a.dec, err = decoder.New(cfg.Decoder, a.reg); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if cfg.Query.Enabled() {
		// A query node runs no collector: it reads InfluxDB and its peers.
		cfg.Collector.SFlow.Listen, cfg.Collector.IPFIX.Listen, cfg.Collector.NetFlow9.Listen = "", "", ""
		a.cfg.Collector = cfg.Collector
	}
	a.mem = store.NewMemory(cfg.Store.Memory, a.reg)
	sinks := []aggregate.Sink{a.mem}
	var reader store.Reader = a.mem
	var local store.Reader = a.mem
	if cfg.Query.Enabled() {
		local = nil
		var hist store.Reader
		if cfg.Influx.Enabled {
			if a.hist, err = influx.NewReader(cfg.Influx); err != nil {
				return nil, fmt.Errorf("influx reader: %w", err)
			}
			a.hist.Resolve = a.resolveEndpoint
			hist = a.hist
		}
		fed, err := peer.New(cfg.Query, hist, a.reg)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		fed.Resolve, fed.Log = a.resolveEndpoint, log
		if fed.Align = cfg.Influx.Window; fed.Align <= 0 {
			fed.Align = cfg.Aggregate.Window
		}
		reader = fed
	} else if cfg.Influx.Enabled {
		if a.influx, err = influx.NewWriter(cfg.Influx, a.reg); err != nil {
			return nil, fmt.Errorf("influx: %w", err)
		}
		sinks = append(sinks, a.influx)
		a.res.OnUpdate(a.influx.WriteResources) // vm_resources, vm_disk, vm_nic
		if a.hist, err = influx.NewReader(cfg.Influx); err != nil {
			return nil, fmt.Errorf("influx reader: %w", err)
		}
		a.hist.Resolve = a.resolveEndpoint
		reader = store.Tiered{Recent: a.mem, History: a.hist}
	}
	// Alerts: evaluated on every closed window (alert/).
	if cfg.Alert.Enabled {
		if x.AlertDispatcher == nil && cfg.Alert.Notify.Enabled() {
			ncfg := cfg.Alert.Notify
			ncfg.Window = cfg.Aggregate.Window
			if a.notifier, err = notify.New(ncfg, a.reg, log); err != nil {
				return nil, err
			}
			x.AlertDispatcher = a.notifier
		}
		if a.influx != nil {
			// alert transitions to the influx `alert` measurement (Grafana annotations)
			x.AlertDispatcher = newAlertHistory(a.influx, x.AlertDispatcher)
		}
		a.alerts, err = alert.New(cfg.Alert, alert.Deps{Registerer: a.reg, Gatherer: a.reg, Logger: log, Window: cfg.Aggregate.Window,
			Exporters:  func() []collector.ExporterStatus { return a.col.Exporters() },
			Dispatcher: x.AlertDispatcher,
			Resources:  a.res.All}) // VM resource signals (alert/resource_signals.go)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, a.alerts)
	}
	if a.agg, err = aggregate.New(cfg.Aggregate, a.enr, a.reg, sinks...); err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	// sFlow host structures (hsflowd) decoded into Batch.Hosts go to the
	// resource tracker (enrich/hsflowd.go: attribution, source rule).
	hsflowd := enrich.NewHsflowd(a.res, a.enr.Index, a.reg)
	a.pipe = aggregate.NewPipeline(hsflowd.Tap(a.dec), a.enr, a.agg, a.reg)
	if a.col, err = collector.New(cfg.Collector, a.pipe, a.reg); err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	deps := api.Deps{
		Store:      reader,
		Local:      local,
		Inventory:  a.enr,
		Exporters:  a.col,
		Gatherer:   a.reg,
		Registerer: a.reg,
		UI:         web.FS(),
		WindowSize: cfg.Aggregate.Window,
		Logger:     log,
		Health:     a.health, // health.go
		Reload:     a.Reload, // reload.go
		Resources:  a.res,    // VM and host resources (api/resources.go)
	}
	if a.alerts != nil {
		deps.Alerts = a.alerts
	}
	if local != nil {
		deps.Recent = a.mem
	} else if fed, ok := reader.(*peer.Federated); ok {
		deps.Exporters = fed // a query node lists its collectors' exporters
	}
	if a.api, err = api.New(cfg.API, deps); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	a.registerReloadHooks()
	return a, nil
}

// resolveEndpoint maps a VM endpoint read back from InfluxDB to the id of
// the VM of that name in the current inventory (0 when unknown).
func (a *App) resolveEndpoint(e aggregate.Endpoint) enrich.VMID {
	if e.VM == "" {
		return 0
	}
	vms := a.enr.Index().VMs() // sorted by name
	i := sort.Search(len(vms), func(i int) bool { return vms[i].Name >= e.VM })
	if i < len(vms) && vms[i].Name == e.VM {
		return vms[i].ID
	}
	return 0
}

// Start starts every component; on error it stops what it started. The
// components keep running when ctx is cancelled: only Stop stops them, in
// order (a signal handler calls Stop).
func (a *App) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.mu.Lock()
	a.cancel = cancel
	a.mu.Unlock()
	type step struct {
		name  string
		start func(context.Context) error
		stop  func()
	}
	steps := []step{{"enrich", a.enr.Start, a.enr.Stop}}
	if a.influx != nil {
		steps = append(steps, step{"influx", a.influx.Start, a.influx.Stop})
	}
	if a.notifier != nil {
		// started before and so stopped after the engine: its outboxes
		// drain (alert.notify.stop_timeout) after the final evaluation.
		steps = append(steps, step{"alert notify", a.notifier.Start, a.notifier.Stop})
	}
	if a.alerts != nil {
		steps = append(steps, step{"alert", a.alerts.Start, a.alerts.Stop})
	}
	steps = append(steps,
		step{"aggregate", a.agg.Start, a.agg.Stop},
		step{"collector", a.col.Start, a.stopPipeline},
		step{"api", a.api.Start, a.api.Stop},
	)
	for _, s := range steps {
		if err := s.start(ctx); err != nil {
			a.Stop()
			return fmt.Errorf("start %s: %w", s.name, err)
		}
		a.mu.Lock()
		a.stops = append(a.stops, s.stop)
		a.mu.Unlock()
	}
	if a.influx != nil {
		bgCtx, bgCancel := context.WithCancel(ctx)
		a.mu.Lock()
		a.bgCancel, a.bgDone = bgCancel, make(chan struct{})
		a.mu.Unlock()
		go a.exportersLoop(bgCtx, a.bgDone)
	}
	if lim := a.cfg.Runtime.applyMemoryLimit(); lim > 0 {
		a.log.Info("go memory limit", "mib", lim>>20)
	}
	a.log.Info("vmflow started", a.describe()...)
	return nil
}

func (a *App) describe() []any {
	out := []any{"api", a.APIAddr()}
	for p, addrs := range a.col.Addrs() {
		if len(addrs) > 0 {
			out = append(out, p.String(), addrs[0].String())
		}
	}
	return out
}

// exportersLoop records the collector's per-exporter state in InfluxDB
// until stopExporters.
func (a *App) exportersLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	every := a.cfg.Influx.SelfInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.influx.WriteExporters(now, a.col.Exporters())
		}
	}
}

// Stop stops the components in reverse start order: the API, then the data
// path (collector, aggregator flush, sinks drained within shutdown.timeout;
// see stopPipeline), the InfluxDB writer, the inventory. It is safe to call
// twice.
func (a *App) Stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	stops := a.stops
	a.stops = nil
	cancel := a.cancel
	a.mu.Unlock()
	a.stopExporters()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	if cancel != nil {
		cancel()
	}
	if a.hist != nil {
		a.hist.Close()
	}
	a.log.Info("vmflow stopped")
}

// Registry is the Prometheus registry every component registers on.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Collector returns the collector (its Addrs tell the bound ports).
func (a *App) Collector() *collector.Collector { return a.col }

// Enricher returns the inventory.
func (a *App) Enricher() *enrich.Enricher { return a.enr }

// Alerts returns the alert engine (nil when alert.enabled is false).
func (a *App) Alerts() *alert.Engine { return a.alerts }

// Resources is the VM resource tracker: the ResourceSink an hsflowd
// decoder hands its samples to, and what the API reads.
func (a *App) Resources() *enrich.ResourceTracker { return a.res }

// Memory returns the in-memory store.
func (a *App) Memory() *store.Memory { return a.mem }

// APIAddr is the address the API listens on ("" before Start).
func (a *App) APIAddr() string {
	if ad := a.api.Addr(); ad != nil {
		return ad.String()
	}
	return ""
}

// ListenPort returns the UDP port bound for a protocol (0 when disabled).
func (a *App) ListenPort(p collector.Protocol) int {
	for _, ad := range a.col.Addrs()[p] {
		if u, ok := ad.(*net.UDPAddr); ok {
			return u.Port
		}
	}
	return 0
}
