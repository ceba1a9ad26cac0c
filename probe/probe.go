// Package probe is `vmflow probe`: it runs on a hypervisor, watches the
// VMs' tap interfaces with AF_PACKET sockets whose classic BPF filter
// passes only TCP SYN/FIN/RST, ICMP echo and ICMP errors, times TCP
// handshakes and pings with the kernel's timestamps, and exports each
// measurement to vmflow as an IPFIX record (decoder/probe_ies.go).
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/bpf"
)

// Probe is a running probe. New is inert; Start opens the export socket,
// the metrics listener and the taps; Stop closes everything.
type Probe struct {
	cfg    Config
	log    *slog.Logger
	reg    prometheus.Registerer
	gather prometheus.Gatherer
	m      *metrics
	re     *regexp.Regexp
	filter []bpf.RawInstruction
	// ListTaps returns the candidate interfaces (name → ifindex); nil:
	// the host's interfaces (and OVS ports with probe.ovs_ports).
	ListTaps func() (map[string]int, error)

	exp *exporter

	mu      sync.Mutex
	taps    map[string]*tap
	cancel  context.CancelFunc
	done    sync.WaitGroup
	srv     *http.Server
	rescanC chan struct{}
}

type tap struct {
	sock *tapSock
	tr   *tracker
	dead chan struct{} // closed when the reader stops
	stop func() bool   // stops the filter's re-attach timer (nil: none)
}

// New builds a probe. reg receives its metrics (vmflow_probe_*); gather
// serves them on probe.metrics_listen (nil: no /metrics).
func New(cfg Config, reg prometheus.Registerer, gather prometheus.Gatherer, log *slog.Logger) (*Probe, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	f, err := Filter()
	if err != nil {
		return nil, fmt.Errorf("probe filter: %w", err)
	}
	p := &Probe{cfg: cfg, log: log, reg: reg, gather: gather, re: regexp.MustCompile(cfg.Taps), filter: f,
		taps: map[string]*tap{}, rescanC: make(chan struct{}, 1)}
	if p.m, err = newMetrics(reg, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Start opens the export socket and the taps and starts the timers.
func (p *Probe) Start(ctx context.Context) error {
	conn, err := net.Dial("udp", p.cfg.Collector)
	if err != nil {
		return fmt.Errorf("probe export: %w", err)
	}
	p.exp = newExporter(conn, p.cfg.ObservationDomain, p.cfg.TemplateInterval, p.m)
	if p.cfg.MetricsListen != "" && p.gather != nil {
		ln, err := net.Listen("tcp", p.cfg.MetricsListen)
		if err != nil {
			conn.Close()
			return fmt.Errorf("probe metrics listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(p.gather, promhttp.HandlerOpts{}))
		p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = p.srv.Serve(ln) }()
	}
	ctx, p.cancel = context.WithCancel(ctx)
	if err := p.scan(); err != nil {
		p.log.Warn("probe: tap scan", "err", err)
	}
	p.exp.flush() // templates first
	p.done.Add(1)
	go p.loop(ctx)
	return nil
}

// Rescan re-reads the tap set now (SIGHUP).
func (p *Probe) Rescan() {
	select {
	case p.rescanC <- struct{}{}:
	default:
	}
}

func (p *Probe) loop(ctx context.Context) {
	defer p.done.Done()
	sweep := time.NewTicker(100 * time.Millisecond)
	flush := time.NewTicker(p.cfg.ExportInterval)
	rescan := time.NewTicker(p.cfg.Rescan)
	defer sweep.Stop()
	defer flush.Stop()
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-sweep.C:
			now := t.UnixNano()
			p.mu.Lock()
			for _, tp := range p.taps {
				tp.tr.sweep(now)
				tp.sock.syncFilter(tp.tr)
			}
			p.mu.Unlock()
		case <-flush.C:
			p.exp.flush()
			p.countDrops()
		case <-rescan.C:
			p.rescanLogged()
		case <-p.rescanC:
			p.rescanLogged()
		}
	}
}

func (p *Probe) rescanLogged() {
	if err := p.scan(); err != nil {
		p.log.Warn("probe: tap scan", "err", err)
	}
}

func (p *Probe) countDrops() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tp := range p.taps {
		if d := tp.sock.kernelDrops(); d > 0 {
			p.m.kernelDrops.Add(float64(d))
		}
	}
}

// listTaps returns the interfaces matching probe.taps (and, with
// probe.ovs_ports, only those that are ports of the local OVS).
func (p *Probe) listTaps() (map[string]int, error) {
	if p.ListTaps != nil {
		return p.ListTaps()
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var ovs map[string]bool
	if p.cfg.OVSPorts {
		if ovs, err = ovsPorts(); err != nil {
			return nil, err
		}
	}
	out := map[string]int{}
	for _, i := range ifs {
		if !p.re.MatchString(i.Name) || (ovs != nil && !ovs[i.Name]) {
			continue
		}
		out[i.Name] = i.Index
	}
	return out, nil
}

// ovsPorts lists the ports of every bridge of the local Open vSwitch.
func ovsPorts() (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	brs, err := exec.CommandContext(ctx, "ovs-vsctl", "list-br").Output()
	if err != nil {
		return nil, fmt.Errorf("ovs-vsctl list-br: %w", err)
	}
	out := map[string]bool{}
	for _, br := range strings.Fields(string(brs)) {
		ports, err := exec.CommandContext(ctx, "ovs-vsctl", "list-ports", br).Output()
		if err != nil {
			return nil, fmt.Errorf("ovs-vsctl list-ports %s: %w", br, err)
		}
		for _, pt := range strings.Fields(string(ports)) {
			out[pt] = true
		}
	}
	return out, nil
}

// scan opens new taps and closes gone ones (or ones whose ifindex changed,
// or whose reader stopped on an error).
func (p *Probe) scan() error {
	want, err := p.listTaps()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, tp := range p.taps {
		idx, ok := want[name]
		dead := false
		select {
		case <-tp.dead:
			dead = true
		default:
		}
		if ok && idx == tp.sock.ifindex && !dead {
			continue
		}
		tp.sock.close()
		<-tp.dead
		if tp.stop != nil {
			tp.stop()
		}
		delete(p.taps, name)
		p.m.tapEvents.WithLabelValues("closed").Inc()
		p.log.Info("probe: tap released", "tap", name)
	}
	var errs []error
	for name, idx := range want {
		if _, ok := p.taps[name]; ok {
			continue
		}
		s, err := openTap(name, idx, p.filter, p.cfg.SocketBuffer)
		if err != nil {
			p.m.tapErrors.Inc()
			errs = append(errs, err)
			continue
		}
		tp := &tap{sock: s, dead: make(chan struct{}),
			tr: newTracker(uint32(idx), p.cfg.MaxPending, int64(p.cfg.HandshakeTimeout), p.exp.add, p.m)}
		if tp.tr.af, err = newAckFilter(p.filter, p.cfg.AckSlots); err != nil {
			s.close()
			return fmt.Errorf("tap %s: ack filter: %w", name, err)
		}
		if tp.tr.af != nil {
			tm := time.AfterFunc(time.Hour, func() { s.syncFilter(tp.tr) })
			tm.Stop()
			tp.tr.afKick = func() { tm.Reset(time.Duration(attachGap)) }
			tp.stop = tm.Stop
		}
		p.taps[name] = tp
		go func() {
			defer close(tp.dead)
			s.run(tp.tr, p.m)
		}()
		p.m.tapEvents.WithLabelValues("opened").Inc()
		p.log.Info("probe: tap watched", "tap", name, "ifindex", idx)
	}
	return errors.Join(errs...)
}

func (p *Probe) tapCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.taps)
}

func (p *Probe) pendingCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, tp := range p.taps {
		n += tp.tr.pending()
	}
	return n
}

// Taps lists the watched taps' names.
func (p *Probe) Taps() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.taps))
	for n := range p.taps {
		out = append(out, n)
	}
	return out
}

// Stop closes the taps, flushes the pending records and stops.
func (p *Probe) Stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.done.Wait()
	p.mu.Lock()
	for name, tp := range p.taps {
		tp.sock.close()
		<-tp.dead
		if tp.stop != nil {
			tp.stop()
		}
		delete(p.taps, name)
	}
	p.mu.Unlock()
	if p.exp != nil {
		p.exp.flush()
		p.exp.conn.Close()
	}
	if p.srv != nil {
		_ = p.srv.Close()
	}
}
