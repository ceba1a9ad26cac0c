// Package logsample is a log/slog handler that bounds repeated messages so
// that a misbehaving exporter (or anything else logging per packet) cannot
// flood the journal: per message and level, the first Config.First records
// of each Config.Interval pass, then one in Config.Thereafter. Every
// suppressed record is counted (vmflow_log_suppressed_total{level}), and the
// next record of that message that passes carries the number suppressed
// since the previous one (attribute "suppressed"). The level and the
// sampling can be changed while running (SetLevel, SetSampling), which is
// what a configuration reload does.
//
// State: one entry (~100 bytes plus the message) per distinct message and
// level seen in the current interval, at most MaxKeys; beyond that, further
// new messages share one overflow entry.
package logsample

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxKeys bounds the distinct messages tracked at once.
const MaxKeys = 1024

// Config is the log.sample section.
type Config struct {
	// Interval is the sampling period per message; 0 disables sampling.
	Interval time.Duration `mapstructure:"interval" yaml:"interval"`
	// First records of a message pass in each interval.
	First int `mapstructure:"first" yaml:"first"`
	// Thereafter: after First, one record in Thereafter passes (0: none).
	Thereafter int `mapstructure:"thereafter" yaml:"thereafter"`
}

// DefaultConfig: 10 records of a message per second, then 1 in 100.
func DefaultConfig() Config {
	return Config{Interval: time.Second, First: 10, Thereafter: 100}
}

// Validate checks the settings; errors name the key under prefix ("log.sample.").
func (c Config) Validate(prefix string) error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("%sinterval: must be >= 0 (0 disables sampling), got %s", prefix, c.Interval))
	}
	if c.First < 0 {
		errs = append(errs, fmt.Errorf("%sfirst: must be >= 0, got %d", prefix, c.First))
	}
	if c.Thereafter < 0 {
		errs = append(errs, fmt.Errorf("%sthereafter: must be >= 0 (0 drops every record after the first), got %d", prefix, c.Thereafter))
	}
	return errors.Join(errs...)
}

type key struct {
	level slog.Level
	msg   string
}

type entry struct {
	start      time.Time
	n          int   // records seen in this interval
	suppressed int64 // since the last record that passed
}

type state struct {
	level    slog.LevelVar
	cfg      atomic.Pointer[Config]
	now      func() time.Time
	mu       sync.Mutex
	keys     map[key]*entry
	overflow entry
	counter  *prometheus.CounterVec
}

// Handler is the sampling handler. WithAttrs and WithGroup share the
// level, the sampling and the counts with the handler they derive from.
type Handler struct {
	next slog.Handler
	st   *state
}

// New wraps next (which should accept every level: the Handler filters).
func New(next slog.Handler, level slog.Level, cfg Config) *Handler {
	st := &state{
		now:  time.Now,
		keys: map[key]*entry{},
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_log_suppressed_total",
			Help: "Log records not written because the same message repeated too often (log.sample.*), by level.",
		}, []string{"level"}),
	}
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		st.counter.WithLabelValues(levelLabel(l))
	}
	st.level.Set(level)
	st.cfg.Store(&cfg)
	return &Handler{next: next, st: st}
}

// SetLevel changes the minimum level (live).
func (h *Handler) SetLevel(l slog.Level) { h.st.level.Set(l) }

// Level is the current minimum level.
func (h *Handler) Level() slog.Level { return h.st.level.Level() }

// SetSampling changes the sampling (live); counts restart.
func (h *Handler) SetSampling(c Config) {
	h.st.mu.Lock()
	h.st.cfg.Store(&c)
	clear(h.st.keys)
	h.st.overflow = entry{}
	h.st.mu.Unlock()
}

// Sampling is the current sampling configuration.
func (h *Handler) Sampling() Config { return *h.st.cfg.Load() }

// SetClock replaces the clock (tests).
func (h *Handler) SetClock(now func() time.Time) { h.st.now = now }

// Collector is the suppressed-records counter.
func (h *Handler) Collector() prometheus.Collector { return h.st.counter }

// Enabled reports whether records at level l are logged at all.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.st.level.Level() }

// Handle writes r unless its message is over its budget for this interval.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	cfg := h.st.cfg.Load()
	if cfg.Interval <= 0 {
		return h.next.Handle(ctx, r)
	}
	pass, suppressed := h.st.admit(key{r.Level, r.Message}, cfg, h.st.now())
	if !pass {
		h.st.counter.WithLabelValues(levelLabel(r.Level)).Inc()
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64("suppressed", suppressed))
	}
	return h.next.Handle(ctx, r)
}

// admit decides one record: whether it passes, and if so how many of its
// kind were suppressed before it.
func (st *state) admit(k key, cfg *Config, t time.Time) (bool, int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.keys[k]
	if e == nil {
		if len(st.keys) >= MaxKeys {
			for kk, ee := range st.keys {
				if t.Sub(ee.start) >= cfg.Interval && ee.suppressed == 0 {
					delete(st.keys, kk)
				}
			}
		}
		if len(st.keys) >= MaxKeys {
			e = &st.overflow
		} else {
			e = &entry{start: t}
			st.keys[k] = e
		}
	}
	if t.Sub(e.start) >= cfg.Interval || t.Before(e.start) {
		e.start, e.n = t, 0
	}
	e.n++
	pass := e.n <= cfg.First || (cfg.Thereafter > 0 && (e.n-cfg.First)%cfg.Thereafter == 0)
	if !pass {
		e.suppressed++
		return false, 0
	}
	s := e.suppressed
	e.suppressed = 0
	return true, s
}

// WithAttrs returns a handler adding attrs, sharing level and sampling.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), st: h.st}
}

// WithGroup returns a handler with a group, sharing level and sampling.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), st: h.st}
}

func levelLabel(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
