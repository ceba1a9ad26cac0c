package notify

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is an HTTP receiver that keeps every request body.
type recorder struct {
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	status  int           // 0 = 200
	hold    chan struct{} // when set, requests wait for it to close
	got     chan struct{}
}

func newRecorder(t *testing.T) (*recorder, *httptest.Server) {
	r := &recorder{got: make(chan struct{}, 1000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		hold, status := r.hold, r.status
		r.bodies = append(r.bodies, b)
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		r.got <- struct{}{}
		if hold != nil {
			select {
			case <-hold:
			case <-req.Context().Done():
				return
			}
		}
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *recorder) n() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.bodies) }

func (r *recorder) body(i int) []byte { r.mu.Lock(); defer r.mu.Unlock(); return r.bodies[i] }

func (r *recorder) header(i int) http.Header { r.mu.Lock(); defer r.mu.Unlock(); return r.headers[i] }

// wait waits for n requests in total.
func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for r.n() < n {
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("got %d requests, want %d", r.n(), n)
		}
	}
}

func testConfig() Config {
	c := DefaultConfig()
	c.Window = 10 * time.Second
	c.GroupWait = 0
	c.Outbox.BackoffMin = 10 * time.Millisecond
	c.Outbox.BackoffMax = 40 * time.Millisecond
	c.StopTimeout = 2 * time.Second
	return c
}

func start(t *testing.T, cfg Config) (*Notifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	n, err := New(cfg, reg, nil)
	require.NoError(t, err)
	require.NoError(t, n.Start(context.Background()))
	t.Cleanup(n.Stop)
	return n, reg
}

var t0 = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

func fanOut(state State) Alert {
	return Alert{
		Fingerprint:  "fp-fanout-web3",
		Rule:         "fan-out",
		Kind:         "fanout",
		Severity:     "P1",
		State:        state,
		Labels:       map[string]string{"alertname": "fan-out", "severity": "P1", "rule": "fan-out", "kind": "fanout", "vm": "web-3", "tenant": "acme", "host": "hv1"},
		Annotations:  map[string]string{"summary": "fan-out web-3 → 57 peers", "value": "57", "threshold": "20"},
		StartsAt:     t0.Add(-time.Minute),
		Value:        57,
		Peak:         61,
		GeneratorURL: "/#/vms/web-3",
	}
}

func decodeAM(t *testing.T, b []byte) []amAlert {
	t.Helper()
	var out []amAlert
	require.NoError(t, json.Unmarshal(b, &out), "%s", b)
	return out
}

func flush(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, n.Flush(ctx))
}

func TestDefaultConfigValid(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	assert.False(t, DefaultConfig().Enabled())
}

func TestInvalidConfigNamesKey(t *testing.T) {
	for _, tc := range []struct {
		mod func(*Config)
		key string
	}{
		{func(c *Config) { c.Alertmanager.URLs = []string{"am:9093"} }, "alert.notify.alertmanager.urls[0]"},
		{func(c *Config) { c.Alertmanager.ResendInterval = 0 }, "alert.notify.alertmanager.resend_interval"},
		{func(c *Config) { c.SMTP.TLS = "maybe" }, "alert.notify.smtp.tls"},
		{func(c *Config) { c.SMTP.Host = "mail"; c.SMTP.To = nil }, "alert.notify.smtp.to"},
		{func(c *Config) { c.SMTP.Host = "mail"; c.SMTP.To = []string{"not an address"} }, "alert.notify.smtp.to[0]"},
		{func(c *Config) { c.SMTP.Host = "mail:25" }, "alert.notify.smtp.host"},
		{func(c *Config) { c.SMTP.Subject = "{{.Nope" }, "alert.notify.smtp.subject"},
		{func(c *Config) { c.SMTP.Subject = "{{.Nope}}" }, "alert.notify.smtp.subject"},
		{func(c *Config) { c.SMTP.Password = "x" }, "alert.notify.smtp.username"},
		{func(c *Config) { c.Webhooks = []WebhookConfig{{URL: "ftp://x"}} }, "alert.notify.webhooks[0].url"},
		{func(c *Config) { c.Webhooks = []WebhookConfig{{URL: "http://a/1"}, {URL: "http://a/2"}} }, "alert.notify.webhooks[1].name"},
		{func(c *Config) { c.GroupBy = []string{"bad-label"} }, "alert.notify.group_by[0]"},
		{func(c *Config) { c.Outbox.Size = 0 }, "alert.notify.outbox.size"},
		{func(c *Config) { c.Outbox.BackoffMax = time.Millisecond }, "alert.notify.outbox.backoff_max"},
		{func(c *Config) { c.RepeatInterval = time.Second }, "alert.notify.repeat_interval"},
	} {
		c := DefaultConfig()
		tc.mod(&c)
		err := c.Validate()
		require.Error(t, err, tc.key)
		assert.Contains(t, err.Error(), tc.key+":")
	}
}

// Alertmanager: a new alert is posted at once with endsAt = now + 4 ×
// max(window, resend); evaluations within the resend interval post
// nothing; then it is re-sent; a resolve is posted with its endsAt.
func TestAlertmanagerResendAndEndsAt(t *testing.T) {
	rec, srv := newRecorder(t)
	cfg := testConfig()
	cfg.Alertmanager.URLs = []string{srv.URL}
	n, reg := start(t, cfg)

	a := fanOut(StateFiring)
	n.Notify(t0, []Alert{a})
	flush(t, n)
	require.Equal(t, 1, rec.n())
	got := decodeAM(t, rec.body(0))
	require.Len(t, got, 1)
	assert.Equal(t, "fan-out", got[0].Labels["alertname"])
	assert.Equal(t, "web-3", got[0].Labels["vm"])
	assert.Equal(t, "fan-out web-3 → 57 peers", got[0].Annotations["summary"])
	assert.Equal(t, "61", got[0].Annotations["peak"])
	assert.Equal(t, a.StartsAt, got[0].StartsAt)
	assert.Equal(t, t0.Add(4*time.Minute), got[0].EndsAt, "4 × max(10s window, 1m resend)")
	assert.Equal(t, "/#/vms/web-3", got[0].GeneratorURL)

	for i := 1; i < 6; i++ { // 10 s … 50 s: not yet
		n.Notify(t0.Add(time.Duration(i)*10*time.Second), []Alert{a})
	}
	flush(t, n)
	assert.Equal(t, 1, rec.n(), "no re-send within the resend interval")
	n.Notify(t0.Add(60*time.Second), []Alert{a})
	flush(t, n)
	require.Equal(t, 2, rec.n())
	assert.Equal(t, t0.Add(60*time.Second+4*time.Minute), decodeAM(t, rec.body(1))[0].EndsAt)

	r := fanOut(StateResolved)
	r.EndsAt = t0.Add(65 * time.Second)
	n.Notify(t0.Add(70*time.Second), []Alert{r})
	flush(t, n)
	require.Equal(t, 3, rec.n(), "a resolve is sent at once")
	assert.Equal(t, r.EndsAt, decodeAM(t, rec.body(2))[0].EndsAt)

	// resolved alerts are repeated at the resend interval for a while
	n.Notify(t0.Add(80*time.Second), nil)
	n.Notify(t0.Add(130*time.Second), nil)
	flush(t, n)
	require.Equal(t, 4, rec.n())
	assert.Equal(t, r.EndsAt, decodeAM(t, rec.body(3))[0].EndsAt)
	n.Notify(t0.Add(70*time.Second+resolvedRetention+time.Minute), nil)
	flush(t, n)
	assert.Equal(t, 4, rec.n(), "forgotten after the retention")

	name := amReceiverName(srv.URL)
	assert.Equal(t, 4.0, testutil.ToFloat64(n.m.sent.WithLabelValues(name)))
	assert.Equal(t, 0.0, testutil.ToFloat64(n.m.failed.WithLabelValues(name)))
	_ = reg
}

// A longer window than the resend interval sets the expiry.
func TestAlertmanagerEndsAtUsesWindow(t *testing.T) {
	rec, srv := newRecorder(t)
	cfg := testConfig()
	cfg.Window = 5 * time.Minute
	cfg.Alertmanager.URLs = []string{srv.URL}
	n, _ := start(t, cfg)
	n.Notify(t0, []Alert{fanOut(StateFiring)})
	flush(t, n)
	require.Equal(t, 1, rec.n())
	assert.Equal(t, t0.Add(20*time.Minute), decodeAM(t, rec.body(0))[0].EndsAt)
}

// Silenced and inhibited alerts never reach Alertmanager; one that becomes
// silenced is no longer re-sent.
func TestSilencedNotDelivered(t *testing.T) {
	rec, srv := newRecorder(t)
	hook, hsrv := newRecorder(t)
	cfg := testConfig()
	cfg.Alertmanager.URLs = []string{srv.URL}
	cfg.Webhooks = []WebhookConfig{{URL: hsrv.URL, SendResolved: true}}
	n, _ := start(t, cfg)

	s := fanOut(StateFiring)
	s.Silenced = true
	in := fanOut(StateFiring)
	in.Fingerprint, in.Inhibited = "fp-inhibited", true
	ok := fanOut(StateFiring)
	ok.Fingerprint, ok.Labels = "fp-ok", map[string]string{"vm": "db-1"}
	n.Notify(t0, []Alert{s, in, ok})
	flush(t, n)
	require.Equal(t, 1, rec.n())
	got := decodeAM(t, rec.body(0))
	require.Len(t, got, 1)
	assert.Equal(t, "db-1", got[0].Labels["vm"])
	require.Equal(t, 1, hook.n())
	var p WebhookPayload
	require.NoError(t, json.Unmarshal(hook.body(0), &p))
	require.Len(t, p.Alerts, 1)
	assert.Equal(t, "fp-ok", p.Alerts[0].Fingerprint)

	ok.Silenced = true
	n.Notify(t0.Add(2*time.Minute), []Alert{ok})
	r := ok
	r.State, r.EndsAt = StateResolved, t0.Add(3*time.Minute)
	n.Notify(t0.Add(3*time.Minute), []Alert{r})
	flush(t, n)
	assert.Equal(t, 1, rec.n(), "silenced in vmflow: not re-sent, its resolve not sent")
	assert.Equal(t, 1, hook.n())
}

// HA: every Alertmanager gets every alert; one that is down does not hold
// back the other, and its failures are counted.
func TestAlertmanagerHAOneDown(t *testing.T) {
	up, upSrv := newRecorder(t)
	down, downSrv := newRecorder(t)
	down.status = http.StatusServiceUnavailable
	cfg := testConfig()
	cfg.Outbox.MaxAttempts = 3
	cfg.Alertmanager.URLs = []string{downSrv.URL, upSrv.URL}
	n, _ := start(t, cfg)
	n.Notify(t0, []Alert{fanOut(StateFiring)})
	flush(t, n)
	assert.Equal(t, 1, up.n())
	assert.Equal(t, 3, down.n(), "retried up to max_attempts")
	dn := amReceiverName(downSrv.URL)
	assert.Equal(t, 3.0, testutil.ToFloat64(n.m.failed.WithLabelValues(dn)))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues(dn, DropRetriesExhausted)))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.sent.WithLabelValues(amReceiverName(upSrv.URL))))
	h := n.Health()
	assert.Equal(t, "degraded", h["status"])
	rh := h["receivers"].(map[string]any)[dn].(map[string]any)
	assert.Equal(t, uint64(3), rh["failed"])
	assert.Contains(t, rh["last_error"], "503")
}

// A 4xx is not retried.
func TestRejectedNotRetried(t *testing.T) {
	rec, srv := newRecorder(t)
	rec.status = http.StatusBadRequest
	cfg := testConfig()
	cfg.Alertmanager.URLs = []string{srv.URL}
	n, _ := start(t, cfg)
	n.Notify(t0, []Alert{fanOut(StateFiring)})
	flush(t, n)
	assert.Equal(t, 1, rec.n())
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues(amReceiverName(srv.URL), DropRejected)))
}

// A receiver that hangs never blocks Notify: the outbox fills, the oldest
// messages are dropped and counted, and Stop gives up at its deadline.
func TestHangingReceiverNeverBlocks(t *testing.T) {
	rec, srv := newRecorder(t)
	rec.hold = make(chan struct{})
	defer close(rec.hold)
	cfg := testConfig()
	cfg.Alertmanager.URLs = []string{srv.URL}
	cfg.Outbox.Size = 3
	cfg.Timeout = time.Minute
	cfg.StopTimeout = 300 * time.Millisecond
	reg := prometheus.NewRegistry()
	n, err := New(cfg, reg, nil)
	require.NoError(t, err)
	require.NoError(t, n.Start(context.Background()))

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10; i++ {
			a := fanOut(StateFiring)
			a.Fingerprint = "fp" + string(rune('a'+i)) // a new alert each time: always sent
			n.Notify(t0.Add(time.Duration(i)*time.Second), []Alert{a})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Notify blocked on a receiver that hangs")
	}
	rec.wait(t, 1) // the first is in flight, held by the server
	name := amReceiverName(srv.URL)
	assert.Equal(t, 3.0, testutil.ToFloat64(n.m.queued.WithLabelValues(name)))
	assert.Equal(t, 7.0, testutil.ToFloat64(n.m.dropped.WithLabelValues(name, DropOutboxFull)), "10 messages, 3 kept")

	stopped := make(chan struct{})
	go func() { n.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not give up at its deadline")
	}
	assert.Equal(t, 3.0, testutil.ToFloat64(n.m.dropped.WithLabelValues(name, DropShutdown)))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.failed.WithLabelValues(name)), "the attempt cut by Stop")
	assert.Equal(t, 1, rec.n())
	n.Notify(t0.Add(time.Hour), []Alert{fanOut(StateFiring)})
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues(name, DropStopped)))
}

// A receiver that is down, then up: the message is retried and arrives.
func TestRetryThenDelivered(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		got, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	cfg := testConfig()
	cfg.Webhooks = []WebhookConfig{{Name: "ops", URL: srv.URL}}
	n, _ := start(t, cfg)
	n.Notify(t0, []Alert{fanOut(StateFiring)})
	flush(t, n)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 3, calls)
	assert.Contains(t, string(got), "fan-out web-3")
	assert.Equal(t, 2.0, testutil.ToFloat64(n.m.failed.WithLabelValues("webhook:ops")))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.sent.WithLabelValues("webhook:ops")))
	assert.Equal(t, "ok", n.Health()["status"], "the last attempt succeeded")
}

// Webhook: Alertmanager-shaped JSON, one post per group and transition
// (not per evaluation), HMAC signature that verifies.
func TestWebhookPayloadGroupsAndSignature(t *testing.T) {
	rec, srv := newRecorder(t)
	cfg := testConfig()
	cfg.GroupWait = 200 * time.Millisecond
	cfg.ExternalURL = "http://vmflow.example:8080"
	cfg.Webhooks = []WebhookConfig{{Name: "ops", URL: srv.URL, Secret: "s3cret", SendResolved: true}}
	n, _ := start(t, cfg)

	a := fanOut(StateFiring)
	b := fanOut(StateFiring)
	b.Fingerprint, b.StartsAt = "fp-fanout-web4", t0
	b.Labels = map[string]string{"alertname": "fan-out", "severity": "P1", "rule": "fan-out", "kind": "fanout", "vm": "web-4", "tenant": "acme", "host": "hv2"}
	b.Annotations = map[string]string{"summary": "fan-out web-4 → 30 peers"}
	other := fanOut(StateFiring)
	other.Fingerprint, other.Severity, other.Rule = "fp-new-peer", "P3", "new-peer"
	other.Labels = map[string]string{"vm": "db-1"}

	n.Notify(t0, []Alert{a})
	n.Notify(t0.Add(10*time.Second), []Alert{a, b, other}) // b joins within group_wait
	rec.wait(t, 2)
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, 2, rec.n(), "one post per group")

	var fan, peer WebhookPayload
	for i := 0; i < 2; i++ {
		body := rec.body(i)
		assert.True(t, VerifySignature([]byte("s3cret"), body, rec.header(i).Get(SignatureHeader)), "signature")
		assert.False(t, VerifySignature([]byte("wrong"), body, rec.header(i).Get(SignatureHeader)))
		assert.True(t, strings.HasPrefix(rec.header(i).Get(SignatureHeader), "sha256="))
		var p WebhookPayload
		require.NoError(t, json.Unmarshal(body, &p))
		if p.GroupLabels["rule"] == "fan-out" {
			fan = p
		} else {
			peer = p
		}
	}
	assert.Equal(t, "4", fan.Version)
	assert.Equal(t, "firing", fan.Status)
	assert.Equal(t, "webhook:ops", fan.Receiver)
	assert.Equal(t, map[string]string{"rule": "fan-out", "severity": "P1"}, fan.GroupLabels)
	assert.Equal(t, `{rule="fan-out", severity="P1"}`, fan.GroupKey)
	assert.Equal(t, "acme", fan.CommonLabels["tenant"])
	assert.NotContains(t, fan.CommonLabels, "vm", "differs between the alerts")
	require.Len(t, fan.Alerts, 2)
	assert.Equal(t, "fp-fanout-web3", fan.Alerts[0].Fingerprint, "oldest first")
	assert.Equal(t, "http://vmflow.example:8080/#/vms/web-3", fan.Alerts[0].GeneratorURL)
	assert.Equal(t, "firing", fan.Alerts[0].Status)
	assert.Equal(t, 57.0, fan.Alerts[0].Value)
	assert.True(t, fan.Alerts[0].EndsAt.IsZero())
	assert.Equal(t, "new-peer", peer.GroupLabels["rule"])
	assert.Equal(t, "P3", peer.GroupLabels["severity"])

	// more evaluations without change: nothing
	for i := 2; i < 6; i++ {
		n.Notify(t0.Add(time.Duration(i)*10*time.Second), []Alert{a, b, other})
	}
	time.Sleep(400 * time.Millisecond)
	assert.Equal(t, 2, rec.n(), "no post without a transition")

	// a resolves: one resolved post carrying a (and b still firing)
	r := a
	r.State, r.EndsAt = StateResolved, t0.Add(60*time.Second)
	n.Notify(t0.Add(60*time.Second), []Alert{r, b, other})
	n.Notify(t0.Add(70*time.Second), []Alert{b, other}) // before group_wait ends
	rec.wait(t, 3)
	var p WebhookPayload
	require.NoError(t, json.Unmarshal(rec.body(2), &p))
	assert.Equal(t, "firing", p.Status, "b still fires")
	require.Len(t, p.Alerts, 2)
	var resolved *WebhookAlert
	for i := range p.Alerts {
		if p.Alerts[i].Status == "resolved" {
			resolved = &p.Alerts[i]
		}
	}
	require.NotNil(t, resolved)
	assert.Equal(t, "fp-fanout-web3", resolved.Fingerprint)
	assert.Equal(t, r.EndsAt, resolved.EndsAt)
}

// Without send_resolved a resolve alone sends nothing.
func TestWebhookNoSendResolved(t *testing.T) {
	rec, srv := newRecorder(t)
	cfg := testConfig()
	cfg.Webhooks = []WebhookConfig{{URL: srv.URL}}
	n, _ := start(t, cfg)
	n.Notify(t0, []Alert{fanOut(StateFiring)})
	r := fanOut(StateResolved)
	r.EndsAt = t0.Add(time.Minute)
	n.Notify(t0.Add(time.Minute), []Alert{r})
	flush(t, n)
	assert.Equal(t, 1, rec.n())
	assert.Empty(t, rec.header(0).Get(SignatureHeader), "no secret, no signature")
}

// Repeat interval: a group still firing is re-notified.
func TestRepeatInterval(t *testing.T) {
	rec, srv := newRecorder(t)
	cfg := testConfig()
	cfg.RepeatInterval = time.Minute
	cfg.Webhooks = []WebhookConfig{{URL: srv.URL}}
	reg := prometheus.NewRegistry()
	n, err := New(cfg, reg, nil)
	require.NoError(t, err)
	now := t0
	var mu sync.Mutex
	n.clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	require.NoError(t, n.Start(context.Background()))
	defer n.Stop()
	n.Notify(t0, []Alert{fanOut(StateFiring)})
	rec.wait(t, 1)
	mu.Lock()
	now = t0.Add(61 * time.Second)
	mu.Unlock()
	rec.wait(t, 2)
	var p WebhookPayload
	require.NoError(t, json.Unmarshal(rec.body(1), &p))
	assert.True(t, p.Repeat)
	assert.Len(t, p.Alerts, 1)
}

func TestMailSubjectAndBody(t *testing.T) {
	r, err := newMailRenderer(DefaultConfig().SMTP)
	require.NoError(t, err)
	m := Message{Receiver: "smtp", GroupKey: `{rule="fan-out", severity="P1"}`, GroupLabels: map[string]string{"rule": "fan-out", "severity": "P1"},
		Firing: []Alert{fanOut(StateFiring)}, ExternalURL: "http://vmflow:8080"}
	m.finish()
	subj, err := r.Subject(&m)
	require.NoError(t, err)
	assert.Equal(t, "[P1 FIRING] fan-out web-3 → 57 peers", subj)
	body := MailBody(&m, t0)
	for _, want := range []string{"P1 FIRING: 1 alert for rule=fan-out severity=P1", "* fan-out web-3 → 57 peers",
		"value: 57   threshold: 20   peak: 61", "since: 2026-12-02 07:59:00 UTC (1m0s ago)", "link: http://vmflow:8080/#/vms/web-3", "vm=web-3"} {
		assert.Contains(t, body, want)
	}
	raw, err := r.render(&m, t0)
	require.NoError(t, err)
	assert.Contains(t, string(raw), "Subject: =?utf-8?q?[P1_FIRING]_fan-out_web-3_=E2=86=92_57_peers?=")

	res := fanOut(StateResolved)
	res.EndsAt = t0.Add(4 * time.Minute)
	m2 := Message{Receiver: "smtp", Resolved: []Alert{res}, Firing: nil}
	m2.Firing = append(m2.Firing, func() Alert {
		a := fanOut(StateFiring)
		a.Severity = "P0"
		a.Annotations = map[string]string{}
		return a
	}())
	m2.finish()
	subj, _ = r.Subject(&m2)
	assert.Equal(t, "[P0 FIRING] fan-out web-3 (+1 more)", subj, "most urgent severity; summary from rule and vm")
	assert.Contains(t, MailBody(&m2, t0), "resolved 2026-12-02 08:04:00 UTC (after 5m0s)")
}

// An SMTP server that accepts and never answers: Notify returns at once,
// each attempt times out, is retried, and is counted.
func TestSMTPHangingServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent
		}
	}()
	cfg := testConfig()
	cfg.Timeout = 200 * time.Millisecond
	cfg.Outbox.MaxAttempts = 2
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.To = "127.0.0.1", l.Addr().(*net.TCPAddr).Port, []string{"ops@vmflow.test"}
	cfg.SMTP.TLS = SMTPNone
	n, _ := start(t, cfg)
	done := make(chan struct{})
	go func() { n.Notify(t0, []Alert{fanOut(StateFiring)}); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Notify blocked on a silent SMTP server")
	}
	flush(t, n)
	assert.Equal(t, 2.0, testutil.ToFloat64(n.m.failed.WithLabelValues("smtp")))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues("smtp", DropRetriesExhausted)))
	assert.Contains(t, n.Health()["receivers"].(map[string]any)["smtp"].(map[string]any)["last_error"], "timeout")
}

func TestRedacted(t *testing.T) {
	c := DefaultConfig()
	c.SMTP.Password = "pw"
	c.Webhooks = []WebhookConfig{{URL: "http://x", Secret: "s"}, {URL: "http://y"}}
	r := c.Redacted("<redacted>")
	assert.Equal(t, "<redacted>", r.SMTP.Password)
	assert.Equal(t, "<redacted>", r.Webhooks[0].Secret)
	assert.Empty(t, r.Webhooks[1].Secret)
	assert.Equal(t, "s", c.Webhooks[0].Secret, "the original is untouched")
}

// With a state file a restart does not announce again the alerts already
// notified as firing, and still announces their resolve.
func TestStateFileSurvivesRestart(t *testing.T) {
	for _, keep := range []bool{true, false} {
		rec, srv := newRecorder(t)
		cfg := testConfig()
		cfg.Webhooks = []WebhookConfig{{URL: srv.URL, SendResolved: true}}
		if keep {
			cfg.StateFile = filepath.Join(t.TempDir(), "sub", "notify-state.json")
		}
		n1, err := New(cfg, prometheus.NewRegistry(), nil)
		require.NoError(t, err)
		require.NoError(t, n1.Start(context.Background()))
		n1.Notify(t0, []Alert{fanOut(StateFiring)})
		flush(t, n1)
		n1.Stop()
		require.Equal(t, 1, rec.n())

		n2, _ := start(t, cfg)
		n2.Notify(t0.Add(time.Minute), []Alert{fanOut(StateFiring)})
		flush(t, n2)
		if !keep {
			assert.Equal(t, 2, rec.n(), "without a state file the restart announces it again")
			continue
		}
		assert.Equal(t, 1, rec.n(), "no second FIRING after the restart")
		r := fanOut(StateResolved)
		r.EndsAt = t0.Add(2 * time.Minute)
		n2.Notify(t0.Add(2*time.Minute), []Alert{r})
		flush(t, n2)
		require.Equal(t, 2, rec.n())
		var p WebhookPayload
		require.NoError(t, json.Unmarshal(rec.body(1), &p))
		assert.Equal(t, "resolved", p.Status)
	}
}

// A resolve that happens while vmflow is down is still announced.
func TestStateFileResolvedAfterRestart(t *testing.T) {
	rec, srv := newRecorder(t)
	cfg := testConfig()
	cfg.Webhooks = []WebhookConfig{{URL: srv.URL, SendResolved: true}}
	cfg.StateFile = filepath.Join(t.TempDir(), "notify-state.json")
	n1, err := New(cfg, prometheus.NewRegistry(), nil)
	require.NoError(t, err)
	require.NoError(t, n1.Start(context.Background()))
	n1.Notify(t0, []Alert{fanOut(StateFiring)})
	n1.Stop()
	n2, _ := start(t, cfg)
	r := fanOut(StateResolved)
	r.EndsAt = t0.Add(time.Minute)
	n2.Notify(t0.Add(time.Minute), []Alert{r})
	flush(t, n2)
	require.Equal(t, 2, rec.n())
	var p WebhookPayload
	require.NoError(t, json.Unmarshal(rec.body(1), &p))
	assert.Equal(t, "resolved", p.Status)

	require.NoError(t, os.WriteFile(cfg.StateFile, []byte("{not json"), 0o644))
	_, err = New(cfg, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "alert.notify.state_file")
}

// Label names Alertmanager would refuse (and with them the whole post)
// are made valid; an alert without labels still gets an alertname.
func TestDeliveredLabelsValid(t *testing.T) {
	a := Alert{Labels: map[string]string{"src-ip": "10.0.0.1", "9x": "y", "ok": "", "bad": "\xff"}}
	l := deliveredLabels(&a)
	assert.Equal(t, map[string]string{"src_ip": "10.0.0.1", "_x": "y", "bad": "\uFFFD", "alertname": "vmflow"}, l)
}

// A post that waited longer than the alerts' expiry is dropped, not sent
// (it would tell Alertmanager the alerts ended in the past).
func TestStaleAlertmanagerPostExpires(t *testing.T) {
	rec, srv := newRecorder(t)
	cfg := testConfig()
	cfg.Alertmanager.URLs = []string{srv.URL}
	n, err := New(cfg, prometheus.NewRegistry(), nil)
	require.NoError(t, err)
	n.am[0].push(item{body: []byte("[]"), alerts: 1, expires: time.Now().Add(-time.Second)})
	require.NoError(t, n.Start(context.Background()))
	defer n.Stop()
	flush(t, n)
	assert.Equal(t, 0, rec.n())
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues(amReceiverName(srv.URL), DropExpired)))
}

// Drain (the shutdown contract) sends the groups still in their group
// wait and everything queued, then refuses (and counts) later alerts; with
// a receiver that hangs it returns at its deadline, naming the drops.
func TestDrain(t *testing.T) {
	rec, srv := newRecorder(t)
	cfg := testConfig()
	cfg.GroupWait = time.Hour // only Drain can send it
	cfg.Webhooks = []WebhookConfig{{Name: "ops", URL: srv.URL}}
	cfg.Alertmanager.URLs = []string{srv.URL}
	n, _ := start(t, cfg)
	n.Notify(t0, []Alert{fanOut(StateFiring)})
	require.NoError(t, n.Drain(context.Background()))
	assert.Equal(t, 2, rec.n(), "the Alertmanager post and the webhook group")
	require.NoError(t, n.Drain(context.Background()), "again: same result")
	n.Notify(t0.Add(time.Minute), []Alert{fanOut(StateFiring)})
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues("webhook:ops", DropStopped))+
		testutil.ToFloat64(n.m.dropped.WithLabelValues(amReceiverName(srv.URL), DropStopped)))
	assert.Error(t, n.Start(context.Background()), "no start after stop")

	hang, hsrv := newRecorder(t)
	hang.hold = make(chan struct{})
	defer close(hang.hold)
	cfg = testConfig()
	cfg.Timeout = time.Minute
	cfg.Webhooks = []WebhookConfig{{Name: "slow", URL: hsrv.URL}}
	n2, _ := start(t, cfg)
	a := fanOut(StateFiring)
	b := fanOut(StateFiring)
	b.Fingerprint, b.Rule, b.Labels = "fp-other", "other-rule", map[string]string{"vm": "db-1"}
	n2.Notify(t0, []Alert{a, b}) // two groups: one in flight, one queued
	hang.wait(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := n2.Drain(ctx)
	assert.Less(t, time.Since(begin), 3*time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "2 notifications dropped while draining")
	assert.Equal(t, 2.0, testutil.ToFloat64(n2.m.dropped.WithLabelValues("webhook:slow", DropShutdown)))
}
