// Package alert evaluates alert rules on every closed aggregation window:
// static thresholds with hysteresis, dynamic baselines, and anomaly
// detectors (new peer, fan-out, fan-in, failing connections, RST storm,
// ICMP unreachable bursts, expected pair absent, exporter silent, vmflow's
// own drops). It keeps the alert lifecycle (pending → firing → resolved,
// one alert per rule and subject), silences and inhibition, persists its
// state in a snapshot file, and hands every evaluation's result to a
// notify.Dispatcher. See README "Alerts".
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/alert/notify"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/enrich"
)

// Deps are the engine's collaborators; all optional.
type Deps struct {
	// Registerer receives the engine's metrics.
	Registerer prometheus.Registerer
	// Gatherer is read once per window by self_drops rules.
	Gatherer prometheus.Gatherer
	// Exporters returns the collector's exporter table (exporter rules).
	Exporters func() []collector.ExporterStatus
	// Dispatcher receives every evaluation's firing and resolved alerts.
	Dispatcher notify.Dispatcher
	// Resources returns every VM's latest resource figures (vm rules on
	// resource signals, resource_signals.go); nil: none.
	Resources func() []enrich.VMResources
	Logger    *slog.Logger
	// Now is the clock of the API (silence states); windows carry their own time.
	Now func() time.Time
	// Window is aggregate.window: a window shorter than that (the first
	// after a start, the last at a stop) never resolves an alert and is
	// not learned by baselines. 0 = every window counts in full.
	Window time.Duration
}

// RuleStatus is a rule's state for the API.
type RuleStatus struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Severity    string    `json:"severity"`
	Subject     string    `json:"subject"`
	Signal      string    `json:"signal,omitempty"`
	State       string    `json:"state"` // ok, disabled
	LastEval    time.Time `json:"last_eval,omitzero"`
	EvalSeconds float64   `json:"eval_seconds"`
	Pending     int       `json:"pending"`
	Firing      int       `json:"firing"`
	Spec        RuleSpec  `json:"spec"`
}

// RulesStatus is the rule set and the rules file's state.
type RulesStatus struct {
	File     string       `json:"file"` // "" = built-in default pack
	LoadedAt time.Time    `json:"loaded_at"`
	Error    string       `json:"error,omitempty"`
	ErrorAt  time.Time    `json:"error_at,omitzero"`
	Rules    []RuleStatus `json:"rules"`
}

// Engine is the alert engine: an aggregate.Sink. New is inert.
type Engine struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *metrics

	in      chan *aggregate.Window
	stop    chan struct{}
	done    chan struct{}
	snapNow chan struct{}
	started bool
	stopped bool
	lifeMu  sync.Mutex

	// mu guards everything the API reads.
	mu        sync.Mutex
	rules     []*Rule
	status    map[string]*RuleStatus
	alerts    map[uint64]*active
	byRule    map[string]map[uint64]*active
	recent    []AlertView // resolved, newest last (ring by slice)
	silences  []Silence
	loadedAt  time.Time
	ruleErr   error
	ruleErrAt time.Time
	fileMod   time.Time
	fileSize  int64

	st *evalState // owned by the evaluation goroutine
}

var _ aggregate.Sink = (*Engine)(nil)

// New builds the engine and loads the rules (an invalid rules file is an
// error here; later broken edits keep the last good rules).
func New(cfg Config, deps Deps) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("alert config: %w", err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	e := &Engine{
		cfg: cfg, deps: deps, log: deps.Logger,
		in:      make(chan *aggregate.Window, cfg.Queue),
		stop:    make(chan struct{}),
		snapNow: make(chan struct{}, 1),
		done:    make(chan struct{}),
		status:  map[string]*RuleStatus{},
		alerts:  map[uint64]*active{},
		byRule:  map[string]map[uint64]*active{},
		st:      newEvalState(),
	}
	var err error
	if e.m, err = newMetrics(deps.Registerer, e); err != nil {
		return nil, fmt.Errorf("alert metrics: %w", err)
	}
	rules, err := e.readRules()
	if err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	e.setRules(rules, time.Now())
	if err := e.loadSnapshot(); err != nil {
		e.log.Warn("alert snapshot not loaded: starting fresh", "file", cfg.SnapshotFile, "err", err)
		e.m.snapshotErrors.Inc()
	}
	return e, nil
}

func (e *Engine) readRules() ([]*Rule, error) {
	if e.cfg.RulesFile == "" {
		return ParseRules(DefaultRules)
	}
	fi, err := os.Stat(e.cfg.RulesFile)
	if err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	data, err := os.ReadFile(e.cfg.RulesFile)
	if err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	e.fileMod, e.fileSize = fi.ModTime(), fi.Size()
	rules, err := ParseRules(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.cfg.RulesFile, err)
	}
	return rules, nil
}

// setRules installs a rule set; alerts of rules that disappeared (or
// changed kind, subject or signal) are resolved. Caller holds mu or is New.
func (e *Engine) setRules(rules []*Rule, now time.Time) []AlertView {
	byName := map[string]*Rule{}
	for _, r := range rules {
		byName[r.Name()] = r
	}
	var resolved []AlertView
	for name, as := range e.byRule {
		nr := byName[name]
		for _, a := range as {
			if nr == nil || nr.kind != a.rule.kind || nr.subject != a.rule.subject || nr.signal != a.rule.signal || nr.Spec.Disabled {
				resolved = append(resolved, e.resolve(a, now))
				continue
			}
			a.rule = nr
		}
	}
	e.rules = rules
	e.status = map[string]*RuleStatus{}
	for _, r := range rules {
		if e.byRule[r.Name()] == nil {
			e.byRule[r.Name()] = map[uint64]*active{}
		}
		state := "ok"
		if r.Spec.Disabled {
			state = "disabled"
		}
		e.status[r.Name()] = &RuleStatus{Name: r.Name(), Kind: r.kind, Severity: r.Severity(), Subject: r.subject, Signal: r.signal, State: state, Spec: r.Spec}
	}
	for name := range e.byRule {
		if byName[name] == nil {
			delete(e.byRule, name)
		}
	}
	e.loadedAt = now
	e.ruleErr = nil
	e.m.ruleOK.Set(1)
	e.m.rules.Set(float64(len(rules)))
	return resolved
}

// Start starts the evaluation goroutine.
func (e *Engine) Start(ctx context.Context) error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if e.started {
		return errors.New("alert: already started")
	}
	e.started = true
	go e.loop()
	return nil
}

// Write hands a closed window to the evaluation goroutine without
// waiting: when the hand-off queue is full the window is dropped and
// counted (vmflow_alert_windows_dropped_total).
func (e *Engine) Write(w *aggregate.Window) {
	if w == nil {
		return
	}
	select {
	case e.in <- w:
	default:
		e.m.windowsDropped.Inc()
	}
}

// Stop evaluates the windows already handed over (the aggregator's final
// window included, when it was written before Stop), writes the snapshot
// and returns. Safe to call twice and before Start.
func (e *Engine) Stop() {
	e.lifeMu.Lock()
	if e.stopped {
		e.lifeMu.Unlock()
		return
	}
	e.stopped = true
	started := e.started
	e.lifeMu.Unlock()
	close(e.stop)
	if started {
		<-e.done
		return
	}
	e.drain()
	e.writeSnapshotLogged()
}

func (e *Engine) loop() {
	defer close(e.done)
	var reload <-chan time.Time
	if e.cfg.Reload > 0 && e.cfg.RulesFile != "" {
		t := time.NewTicker(e.cfg.Reload)
		defer t.Stop()
		reload = t.C
	}
	snap := time.NewTicker(e.cfg.SnapshotInterval)
	defer snap.Stop()
	for {
		select {
		case w := <-e.in:
			e.Evaluate(w)
		case <-reload:
			e.checkReload()
		case <-snap.C:
			e.writeSnapshotLogged()
		case <-e.snapNow:
			e.writeSnapshotLogged()
		case <-e.stop:
			e.drain()
			e.writeSnapshotLogged()
			return
		}
	}
}

func (e *Engine) drain() {
	for {
		select {
		case w := <-e.in:
			e.Evaluate(w)
		default:
			return
		}
	}
}

func (e *Engine) checkReload() {
	fi, err := os.Stat(e.cfg.RulesFile)
	if err == nil && fi.ModTime().Equal(e.fileMod) && fi.Size() == e.fileSize {
		return
	}
	var rules []*Rule
	if err == nil {
		rules, err = e.readRules()
	} else {
		err = fmt.Errorf("rules file: %w", err)
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		if e.ruleErr == nil || e.ruleErr.Error() != err.Error() {
			e.log.Error("alert rules not reloaded: keeping the last good rules", "err", err)
			e.m.ruleErrors.Inc()
		}
		e.ruleErr, e.ruleErrAt = err, now
		e.m.ruleOK.Set(0)
		return
	}
	resolved := e.setRules(rules, now)
	e.log.Info("alert rules reloaded", "file", e.cfg.RulesFile, "rules", len(rules))
	if len(resolved) > 0 && e.deps.Dispatcher != nil {
		e.notify(now, resolved)
	}
}

// Evaluate evaluates the rules on one window synchronously (the
// evaluation goroutine calls it; tests and benchmarks may too, but never
// concurrently with a started engine).
func (e *Engine) Evaluate(w *aggregate.Window) {
	t0 := time.Now()
	var exps []collector.ExporterStatus
	var gathered map[string]float64
	needExp, needSelf := false, false
	e.mu.Lock()
	for _, r := range e.rules {
		needExp = needExp || r.subject == subjectExporter && !r.Spec.Disabled
		needSelf = needSelf || r.subject == subjectSelf && !r.Spec.Disabled
	}
	e.mu.Unlock()
	if needExp && e.deps.Exporters != nil {
		exps = e.deps.Exporters()
		if exps == nil {
			exps = []collector.ExporterStatus{}
		}
	}
	if needSelf && e.deps.Gatherer != nil {
		gathered = gatherCounters(e.deps.Gatherer)
	}
	e.mu.Lock()
	_, resolved := e.evalWindow(w, exps, gathered)
	for k, v := range gathered {
		e.st.self[k] = v
	}
	if e.st.seq%360 == 0 {
		e.expire(w.End)
	}
	out := e.collect(w.End, resolved)
	e.updateGauges()
	e.mu.Unlock()
	e.m.evalSeconds.Observe(time.Since(t0).Seconds())
	e.m.windows.Inc()
	if e.deps.Dispatcher != nil {
		e.deps.Dispatcher.Notify(w.End, out)
	}
}

// expire forgets baselines, peers and learning starts not seen for
// alert.series_expiry.
func (e *Engine) expire(now time.Time) {
	cut := uint32(now.Add(-e.cfg.SeriesExpiry).Unix())
	e.st.series.expire(cut)
	for k, last := range e.st.peers {
		if last < cut {
			delete(e.st.peers, k)
		}
	}
}

// collect marks silenced and inhibited alerts and returns the firing ones
// plus resolved. Caller holds mu.
func (e *Engine) collect(_ time.Time, resolved []AlertView) []notify.Alert {
	now := e.deps.Now() // silences are wall-clock
	inhibitVM := map[string]bool{}
	if e.cfg.Inhibit {
		for _, a := range e.alerts {
			if a.state == StateFiring && a.rule.sevRank == 0 && a.labels["vm"] != "" && !e.silenced(a.labels, now) {
				inhibitVM[a.labels["vm"]] = true
			}
		}
	}
	var out []notify.Alert
	for _, a := range e.alerts {
		if a.state != StateFiring {
			continue
		}
		v := a.view(time.Time{}, StateFiring)
		v.Silenced = e.silenced(a.labels, now)
		v.Inhibited = a.rule.sevRank >= 2 && inhibitVM[a.labels["vm"]]
		out = append(out, v.toNotify())
	}
	for i := range resolved {
		resolved[i].Silenced = e.silenced(resolved[i].Labels, now)
		out = append(out, resolved[i].toNotify())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	return out
}

func (e *Engine) notify(now time.Time, resolved []AlertView) {
	out := e.collect(now, resolved)
	e.deps.Dispatcher.Notify(now, out)
}

func (e *Engine) silenced(labels map[string]string, now time.Time) bool {
	for i := range e.silences {
		if e.silences[i].activeAt(now) && e.silences[i].matches(labels) {
			return true
		}
	}
	return false
}

func (e *Engine) addRecent(v AlertView) {
	if e.cfg.Recent == 0 {
		return
	}
	if len(e.recent) >= e.cfg.Recent {
		n := copy(e.recent, e.recent[len(e.recent)-e.cfg.Recent+1:])
		e.recent = e.recent[:n]
	}
	e.recent = append(e.recent, v)
}

// Alerts returns the pending, firing and recently resolved alerts that
// match f, newest first.
func (e *Engine) Alerts(f AlertFilter) []AlertView {
	now := e.deps.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	inhibitVM := map[string]bool{}
	if e.cfg.Inhibit {
		for _, a := range e.alerts {
			if a.state == StateFiring && a.rule.sevRank == 0 && a.labels["vm"] != "" {
				inhibitVM[a.labels["vm"]] = true
			}
		}
	}
	out := []AlertView{}
	for _, a := range e.alerts {
		v := a.view(time.Time{}, a.state)
		v.Silenced = e.silenced(a.labels, now)
		v.Inhibited = a.rule.sevRank >= 2 && inhibitVM[a.labels["vm"]]
		if f.match(&v) {
			out = append(out, v)
		}
	}
	for i := range e.recent {
		if f.match(&e.recent[i]) {
			v := e.recent[i]
			v.Silenced = e.silenced(v.Labels, now)
			out = append(out, v)
		}
	}
	sortViews(out)
	return out
}

// Rules returns each rule with its state and the rules file's state.
func (e *Engine) Rules() RulesStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := RulesStatus{File: e.cfg.RulesFile, LoadedAt: e.loadedAt, Rules: []RuleStatus{}}
	if e.ruleErr != nil {
		rs.Error, rs.ErrorAt = e.ruleErr.Error(), e.ruleErrAt
	}
	for _, r := range e.rules {
		s := *e.status[r.Name()]
		for _, a := range e.byRule[r.Name()] {
			if a.state == StateFiring {
				s.Firing++
			} else {
				s.Pending++
			}
		}
		rs.Rules = append(rs.Rules, s)
	}
	return rs
}

// Silences lists the silences (active, pending and expired), newest first.
func (e *Engine) Silences() []Silence {
	now := e.deps.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Silence, 0, len(e.silences))
	for i := len(e.silences) - 1; i >= 0; i-- {
		out = append(out, e.silences[i].withState(now))
	}
	return out
}

// AddSilence validates and stores a silence (persisted at once). An ID
// naming an existing silence replaces it.
func (e *Engine) AddSilence(s Silence) (Silence, error) {
	now := e.deps.Now()
	if err := s.validate(now); err != nil {
		return Silence{}, err
	}
	e.mu.Lock()
	replaced := false
	if s.ID != "" {
		for i := range e.silences {
			if e.silences[i].ID == s.ID {
				e.silences[i] = s
				replaced = true
			}
		}
		if !replaced {
			e.mu.Unlock()
			return Silence{}, fmt.Errorf("%w: %s", ErrNoSilence, s.ID)
		}
	} else {
		s.ID = newID()
		e.gcSilences(now)
		e.silences = append(e.silences, s)
	}
	e.mu.Unlock()
	e.persistSilences()
	return s.withState(now), nil
}

// ErrNoSilence: no silence has that ID.
var ErrNoSilence = errors.New("no such silence")

// DeleteSilence expires a silence now (it stays listed as expired).
func (e *Engine) DeleteSilence(id string) error {
	now := e.deps.Now()
	e.mu.Lock()
	found := false
	for i := range e.silences {
		if e.silences[i].ID == id {
			found = true
			if e.silences[i].EndsAt.After(now) {
				e.silences[i].EndsAt = now
				if e.silences[i].StartsAt.After(now) {
					e.silences[i].StartsAt = now
				}
			}
		}
	}
	e.mu.Unlock()
	if !found {
		return fmt.Errorf("%w: %s", ErrNoSilence, id)
	}
	e.persistSilences()
	return nil
}

// gcSilences drops silences expired for over a day, and the oldest ones
// beyond MaxSilences. Caller holds mu.
func (e *Engine) gcSilences(now time.Time) {
	keep := e.silences[:0]
	for _, s := range e.silences {
		if now.Sub(s.EndsAt) < 24*time.Hour {
			keep = append(keep, s)
		}
	}
	e.silences = keep
	if len(e.silences) >= MaxSilences {
		e.silences = append(e.silences[:0], e.silences[len(e.silences)-MaxSilences+1:]...)
	}
}

// gatherCounters reads every counter and untyped metric as "name{labels}".
func gatherCounters(g prometheus.Gatherer) map[string]float64 {
	mfs, _ := g.Gather()
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if lp := m.GetLabel(); len(lp) > 0 {
				name += "{"
				for i, l := range lp {
					if i > 0 {
						name += ","
					}
					name += l.GetName() + "=" + fmt.Sprintf("%q", l.GetValue())
				}
				name += "}"
			}
			out[name] = m.GetCounter().GetValue()
		}
	}
	return out
}
