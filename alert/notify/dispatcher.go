package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	sent       *prometheus.CounterVec
	alertsSent *prometheus.CounterVec
	failed     *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	queued     *prometheus.GaugeVec
	duration   *prometheus.HistogramVec
	groups     prometheus.GaugeFunc
	notified   prometheus.Counter
}

// Notifier is the Dispatcher of vmflow's receivers: every Alertmanager
// in alert.notify.alertmanager.urls, the SMTP receiver and each webhook,
// each with its own bounded outbox and delivery goroutine.
type Notifier struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	mail *mailRenderer

	am      []*outbox // one per Alertmanager
	smtp    *outbox
	hooks   []*outbox
	hookCfg []WebhookConfig
	all     []*outbox

	// sendMu orders the hand-over to the outboxes: messages computed
	// under mu are pushed in the same order
	sendMu sync.Mutex
	mu     sync.Mutex
	gen    uint64
	amMap  map[string]*amEntry
	groups map[string]*group
	// restore is the notification memory read from the state file,
	// until the engine's alerts claim it
	restore map[string]*restored
	keyBuf  []byte
	clock   func() time.Time

	startOnce, drainOnce sync.Once
	drainErr             error
	cancel               context.CancelFunc
	wg                   sync.WaitGroup
	tickDone             chan struct{}
	stopped              chan struct{}
}

var _ Dispatcher = (*Notifier)(nil)

// stateSaveInterval: the state file is rewritten this often (and on Stop).
const stateSaveInterval = time.Minute

// New builds the receivers of cfg (inert: no goroutine, no connection
// until Start). Secret files (SMTP password, webhook secrets, bearer
// token) are read here. cfg.Window is the evaluation window.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("alert notify: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Notifier{
		cfg:      cfg,
		log:      logger.With("component", "alert.notify"),
		amMap:    map[string]*amEntry{},
		groups:   map[string]*group{},
		clock:    time.Now,
		tickDone: make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	var err error
	if d.restore, err = loadState(cfg.StateFile); err != nil {
		return nil, fmt.Errorf("alert notify: %w", err)
	}
	d.initMetrics(reg)
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	token, err := readSecret("alertmanager.bearer_token_file", "", cfg.Alertmanager.BearerTokenFile)
	if err != nil {
		return nil, fmt.Errorf("alert notify: %w", err)
	}
	for _, u := range cfg.Alertmanager.URLs {
		o := newOutbox(amReceiverName(u), "alertmanager", newAMSender(u, token, client), cfg, d.m, d.log)
		d.am = append(d.am, o)
	}
	if cfg.SMTP.Host != "" {
		s, err := newSMTPSender(cfg.SMTP)
		if err != nil {
			return nil, fmt.Errorf("alert notify: %w", err)
		}
		if d.mail, err = newMailRenderer(cfg.SMTP); err != nil {
			return nil, fmt.Errorf("alert notify: %w", err)
		}
		d.smtp = newOutbox("smtp", "smtp", s, cfg, d.m, d.log)
	}
	for i, w := range cfg.Webhooks {
		secret, err := readSecret(fmt.Sprintf("webhooks[%d].secret_file", i), w.Secret, w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("alert notify: %w", err)
		}
		o := newOutbox(w.receiverName(), "webhook", &webhookSender{url: w.URL, secret: []byte(secret), client: client}, cfg, d.m, d.log)
		d.hooks = append(d.hooks, o)
		d.hookCfg = append(d.hookCfg, w)
	}
	d.all = append(append(append(d.all, d.am...), d.hooks...), d.smtp)
	if d.smtp == nil {
		d.all = d.all[:len(d.all)-1]
	}
	return d, nil
}

func amReceiverName(u string) string {
	if p, err := url.Parse(u); err == nil {
		return "alertmanager:" + p.Host + strings.TrimRight(p.Path, "/")
	}
	return "alertmanager:" + u
}

func (d *Notifier) initMetrics(reg prometheus.Registerer) {
	d.m = &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_alert_notifications_sent_total",
			Help: "Notifications (HTTP posts, e-mails) a receiver accepted."}, []string{"receiver"}),
		alertsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_alert_notifications_alerts_sent_total",
			Help: "Alerts carried by the accepted notifications."}, []string{"receiver"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_alert_notifications_failed_total",
			Help: "Failed delivery attempts (each retry counts)."}, []string{"receiver"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_alert_notifications_dropped_total",
			Help: "Notifications given up: outbox_full, retries_exhausted, rejected, shutdown, stopped."}, []string{"receiver", "reason"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmflow_alert_notifications_queued",
			Help: "Notifications waiting in a receiver's outbox (the one in flight included)."}, []string{"receiver"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vmflow_alert_notification_duration_seconds",
			Help: "Duration of one delivery attempt.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"receiver"}),
		notified: prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_alert_notify_calls_total",
			Help: "Evaluations handed to delivery (Notify calls)."}),
	}
	d.m.groups = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_alert_notify_groups",
		Help: "Alert groups tracked for the e-mail and webhook receivers."},
		func() float64 { d.mu.Lock(); defer d.mu.Unlock(); return float64(len(d.groups)) })
	if reg != nil {
		reg.MustRegister(d.m.sent, d.m.alertsSent, d.m.failed, d.m.dropped, d.m.queued, d.m.duration, d.m.notified, d.m.groups)
	}
}

// Start starts one delivery goroutine per receiver and the group timer.
// They run until Drain or Stop; ctx is not watched (vmflow's shutdown
// order: the engine's last evaluation is notified, then delivery drains).
func (d *Notifier) Start(ctx context.Context) error {
	select {
	case <-d.stopped:
		return fmt.Errorf("alert notify: start after stop")
	default:
	}
	d.startOnce.Do(func() {
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		d.cancel = cancel
		for _, o := range d.all {
			d.wg.Add(1)
			go func() { defer d.wg.Done(); o.run(wctx) }()
		}
		go d.tick(wctx)
	})
	return nil
}

// tick flushes groups whose group_wait is over and repeat reminders.
func (d *Notifier) tick(ctx context.Context) {
	defer close(d.tickDone)
	iv := min(max(d.cfg.GroupWait/5, 50*time.Millisecond), time.Second)
	t := time.NewTicker(iv)
	defer t.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if d.cfg.StateFile != "" && time.Since(lastSave) >= stateSaveInterval {
				lastSave = time.Now()
				if err := d.saveState(); err != nil {
					d.log.Warn("alert notify: saving state", "err", err)
				}
			}
			d.sendMu.Lock()
			d.mu.Lock()
			msgs := d.groupsDue(d.clock(), false)
			d.mu.Unlock()
			d.sendGrouped(msgs)
			d.sendMu.Unlock()
		}
	}
}

// deliverable: firing or resolved, neither silenced nor inhibited.
func deliverable(a *Alert) bool {
	return !a.Silenced && !a.Inhibited && (a.State == StateFiring || a.State == StateResolved)
}

// Notify takes one evaluation's alerts (see Dispatcher). It only updates
// in-memory state and queues messages: it never waits for a receiver.
// The alerts' maps are copied; the caller may reuse them.
func (d *Notifier) Notify(now time.Time, alerts []Alert) {
	d.m.notified.Inc()
	deliver := alerts // amSelect and groupUpdate skip what is not deliverable
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	d.mu.Lock()
	d.gen++
	var amOut []amAlert
	if len(d.am) > 0 {
		amOut = d.amSelect(now, d.gen, deliver)
	}
	var msgs []Message
	if d.smtp != nil || len(d.hooks) > 0 {
		msgs = d.groupUpdate(d.clock(), d.gen, deliver)
	}
	d.mu.Unlock()
	d.sendAM(amOut)
	d.sendGrouped(msgs)
}

func (d *Notifier) sendAM(alerts []amAlert) {
	// superseded by the re-sends long before; and posted after it, the
	// firing alerts' endsAt would lie in the past
	expires := time.Now().Add(d.amExpiry())
	for len(alerts) > 0 {
		n := min(len(alerts), amBatch)
		body, err := encodeAM(alerts[:n])
		if err != nil {
			d.log.Error("alertmanager payload", "err", err)
			return
		}
		for _, o := range d.am {
			o.push(item{body: body, alerts: n, queuedAt: time.Now(), expires: expires})
		}
		alerts = alerts[n:]
	}
}

// sendGrouped renders each group message for the e-mail receiver and the
// webhooks and queues it.
func (d *Notifier) sendGrouped(msgs []Message) {
	for i := range msgs {
		m := msgs[i]
		if d.smtp != nil {
			mm := m
			if !d.cfg.SMTP.SendResolved {
				mm.Resolved = nil
			}
			if len(mm.Firing) > 0 || len(mm.Resolved) > 0 {
				mm.Receiver = "smtp"
				mm.finish()
				body, err := d.mail.render(&mm, d.clock())
				if err != nil {
					d.log.Error("e-mail rendering", "err", err)
					d.smtp.drop(DropRenderError, 1)
				} else {
					d.smtp.push(item{body: body, alerts: len(mm.Firing) + len(mm.Resolved), queuedAt: time.Now()})
				}
			}
		}
		for j, o := range d.hooks {
			mm := m
			if !d.hookCfg[j].SendResolved {
				mm.Resolved = nil
			}
			if len(mm.Firing) == 0 && len(mm.Resolved) == 0 {
				continue
			}
			mm.Receiver = o.name
			mm.finish()
			body, err := encodeWebhook(&mm)
			if err != nil {
				d.log.Error("webhook payload", "err", err)
				o.drop(DropRenderError, 1)
				continue
			}
			o.push(item{body: body, alerts: len(mm.Firing) + len(mm.Resolved), queuedAt: time.Now()})
		}
	}
}

// flushPending sends every group still in its group wait now.
func (d *Notifier) flushPending() {
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	d.mu.Lock()
	msgs := d.groupsDue(d.clock(), true)
	d.mu.Unlock()
	d.sendGrouped(msgs)
}

// Flush sends the groups still in their group_wait now and waits until
// every outbox is empty (delivered or given up), or ctx ends.
func (d *Notifier) Flush(ctx context.Context) error {
	d.flushPending()
	for _, o := range d.all {
		select {
		case <-o.idleCh():
		case <-ctx.Done():
			return fmt.Errorf("alert notify: flush: %w", ctx.Err())
		}
	}
	return nil
}

// Drain is delivery's part of a clean stop (the aggregate.Drainer
// contract): the groups still in their group wait are sent, the state
// file is written, and the outboxes are delivered until empty or ctx is
// done; what is left then is dropped and counted (reason shutdown). Later
// Notify calls are counted as dropped (stopped). It returns an error
// naming how many notifications were dropped while draining. Calling it
// again returns the first result.
func (d *Notifier) Drain(ctx context.Context) error {
	d.drainOnce.Do(func() { d.drainErr = d.drain(ctx) })
	return d.drainErr
}

// Stop is Drain within alert.notify.stop_timeout.
func (d *Notifier) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.StopTimeout)
	defer cancel()
	_ = d.Drain(ctx)
}

func (d *Notifier) droppedTotal() uint64 {
	var n uint64
	for _, o := range d.all {
		o.mu.Lock()
		n += o.dropped
		o.mu.Unlock()
	}
	return n
}

func (d *Notifier) drain(ctx context.Context) error {
	defer close(d.stopped)
	dropped0 := d.droppedTotal()
	d.flushPending()
	if err := d.saveState(); err != nil {
		d.log.Warn("alert notify: saving state", "err", err)
	}
	for _, o := range d.all {
		o.close()
	}
	if d.cancel != nil { // started
		done := make(chan struct{})
		go func() { d.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			d.log.Warn("alert notify: drain deadline passed, dropping what is queued")
		}
		d.cancel()
		<-done
		<-d.tickDone
	}
	for _, o := range d.all {
		o.discard()
	}
	if n := d.droppedTotal() - dropped0; n > 0 {
		return fmt.Errorf("alert notify: %d notifications dropped while draining (see vmflow_alert_notifications_dropped_total)", n)
	}
	return nil
}

// Health reports every receiver for GET /api/v1/health: status is "ok",
// or "degraded" while a receiver's last attempt failed.
func (d *Notifier) Health() map[string]any {
	status := "ok"
	recv := map[string]any{}
	for _, o := range d.all {
		h := o.health()
		if h["status"] != "ok" {
			status = "degraded"
		}
		recv[o.name] = h
	}
	d.mu.Lock()
	groups, am := len(d.groups), len(d.amMap)
	d.mu.Unlock()
	return map[string]any{
		"status":              status,
		"receivers":           recv,
		"groups":              groups,
		"alertmanager_alerts": am,
	}
}
