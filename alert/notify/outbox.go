package notify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Drop reasons (label reason of vmflow_alert_notifications_dropped_total).
const (
	DropOutboxFull       = "outbox_full"       // the oldest queued message made room for a new one
	DropRetriesExhausted = "retries_exhausted" // outbox.max_attempts failed attempts
	DropRejected         = "rejected"          // the receiver refused it for good (HTTP 4xx, SMTP 5xx)
	DropShutdown         = "shutdown"          // still queued when Stop's deadline passed
	DropStopped          = "stopped"           // handed over after Stop
	DropExpired          = "expired"           // an Alertmanager post older than the alerts' expiry (superseded)
	DropRenderError      = "render_error"      // the message could not be rendered (subject template)
)

var dropReasons = []string{DropOutboxFull, DropRetriesExhausted, DropRejected, DropShutdown, DropStopped, DropExpired, DropRenderError}

// sender delivers one rendered message to one receiver. Errors wrapped by
// permanent are not retried.
type sender interface {
	deliver(ctx context.Context, body []byte) error
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// item is one message waiting in an outbox.
type item struct {
	body     []byte
	alerts   int
	queuedAt time.Time
	// expires, when set: not worth sending after (a stale Alertmanager
	// post would mark alerts resolved in the past)
	expires time.Time
}

// outbox is one receiver's bounded queue and the goroutine delivering it
// in order, retrying with exponential backoff. push never blocks.
type outbox struct {
	name, kind string
	s          sender
	cfg        OutboxConfig
	timeout    time.Duration
	m          *metrics
	log        *slog.Logger

	mu       sync.Mutex
	q        []item
	busy     bool // the head is being delivered or waited on
	closed   bool // no more pushes (Stop)
	wake     chan struct{}
	idle     chan struct{} // closed and replaced when the queue drains
	sent     uint64
	failed   uint64
	dropped  uint64
	failing  int // consecutive failed attempts
	lastErr  string
	lastErrT time.Time
	lastOK   time.Time
}

func newOutbox(name, kind string, s sender, cfg Config, m *metrics, log *slog.Logger) *outbox {
	o := &outbox{
		name: name, kind: kind, s: s, cfg: cfg.Outbox, timeout: cfg.Timeout, m: m,
		log:  log.With("receiver", name),
		wake: make(chan struct{}, 1),
		idle: make(chan struct{}),
	}
	close(o.idle) // empty at first
	m.queued.WithLabelValues(name).Set(0)
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(name, r)
	}
	m.failed.WithLabelValues(name)
	m.sent.WithLabelValues(name)
	return o
}

// push queues a message; when the outbox is full the oldest message is
// dropped (newer state supersedes it). It never blocks.
func (o *outbox) push(it item) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		o.drop(DropStopped, 1)
		return
	}
	var evicted int
	for len(o.q) >= o.cfg.Size {
		// never evict the head while it is in flight: its result is counted by the worker
		i := 0
		if o.busy {
			i = 1
		}
		if i >= len(o.q) {
			break
		}
		o.q = append(o.q[:i], o.q[i+1:]...)
		evicted++
	}
	if len(o.q) == 0 && !o.busy {
		o.idle = make(chan struct{})
	}
	o.q = append(o.q, it)
	n := len(o.q)
	o.mu.Unlock()
	if evicted > 0 {
		o.drop(DropOutboxFull, evicted)
	}
	o.m.queued.WithLabelValues(o.name).Set(float64(n))
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) drop(reason string, n int) {
	o.mu.Lock()
	o.dropped += uint64(n)
	o.mu.Unlock()
	o.m.dropped.WithLabelValues(o.name, reason).Add(float64(n))
	o.log.Warn("alert notification dropped", "reason", reason, "messages", n)
}

// run delivers until ctx is cancelled, or until closed and empty.
func (o *outbox) run(ctx context.Context) {
	for {
		o.mu.Lock()
		if len(o.q) == 0 {
			o.busy = false
			o.signalIdleLocked()
			closed := o.closed
			o.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-o.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		head := o.q[0]
		o.busy = true
		o.mu.Unlock()

		if err := o.attemptAll(ctx, head); err != nil && ctx.Err() != nil {
			return // the head stays queued: discard counts it
		}

		o.mu.Lock()
		o.q = o.q[1:]
		n := len(o.q)
		o.mu.Unlock()
		o.m.queued.WithLabelValues(o.name).Set(float64(n))
	}
}

func (o *outbox) signalIdleLocked() {
	select {
	case <-o.idle:
	default:
		close(o.idle)
	}
}

// attemptAll tries one message up to MaxAttempts times.
func (o *outbox) attemptAll(ctx context.Context, it item) error {
	wait := o.cfg.BackoffMin
	for attempt := 1; ; attempt++ {
		if !it.expires.IsZero() && time.Now().After(it.expires) {
			o.drop(DropExpired, 1)
			return nil
		}
		actx, cancel := context.WithTimeout(ctx, o.timeout)
		start := time.Now()
		err := o.s.deliver(actx, it.body)
		cancel()
		o.m.duration.WithLabelValues(o.name).Observe(time.Since(start).Seconds())
		if err == nil {
			o.mu.Lock()
			o.sent++
			o.failing = 0
			o.lastOK = time.Now()
			o.mu.Unlock()
			o.m.sent.WithLabelValues(o.name).Inc()
			o.m.alertsSent.WithLabelValues(o.name).Add(float64(it.alerts))
			return nil
		}
		o.mu.Lock()
		o.failed++
		o.failing++
		o.lastErr = err.Error()
		o.lastErrT = time.Now()
		o.mu.Unlock()
		o.m.failed.WithLabelValues(o.name).Inc()
		if ctx.Err() != nil {
			return err
		}
		switch {
		case isPermanent(err):
			o.log.Warn("alert notification rejected", "err", err)
			o.drop(DropRejected, 1)
			return err
		case attempt >= o.cfg.MaxAttempts:
			o.log.Warn("alert notification failed, giving up", "attempts", attempt, "err", err)
			o.drop(DropRetriesExhausted, 1)
			return err
		}
		o.log.Debug("alert notification failed, retrying", "attempt", attempt, "in", wait, "err", err)
		d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		wait = min(2*wait, o.cfg.BackoffMax)
	}
}

// close stops accepting messages; run returns once the queue is empty.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// discard counts what is left as dropped (after Stop's deadline).
func (o *outbox) discard() {
	o.mu.Lock()
	n := len(o.q)
	o.q = nil
	o.busy = false
	o.signalIdleLocked()
	o.mu.Unlock()
	o.m.queued.WithLabelValues(o.name).Set(0)
	if n > 0 {
		o.drop(DropShutdown, n)
	}
}

// idleCh is closed once nothing is queued or in flight.
func (o *outbox) idleCh() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.idle
}

func (o *outbox) health() map[string]any {
	o.mu.Lock()
	defer o.mu.Unlock()
	status := "ok"
	if o.failing > 0 {
		status = "failing"
	}
	h := map[string]any{
		"kind":                 o.kind,
		"status":               status,
		"queued":               len(o.q),
		"sent":                 o.sent,
		"failed":               o.failed,
		"dropped":              o.dropped,
		"consecutive_failures": o.failing,
	}
	if o.lastErr != "" {
		h["last_error"] = o.lastErr
		h["last_error_at"] = o.lastErrT.UTC()
	}
	if !o.lastOK.IsZero() {
		h["last_success"] = o.lastOK.UTC()
	}
	return h
}
