package notify

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vmflow/vmflow/internal/testenv/alertmanager"
	"github.com/vmflow/vmflow/internal/testenv/mailpit"
)

func integration(t *testing.T) {
	t.Helper()
	if os.Getenv("VMFLOW_INTEGRATION") != "1" {
		t.Skip("set VMFLOW_INTEGRATION=1 (make test)")
	}
}

// amConfig is an Alertmanager config mailing every alert to mp, with
// short group timings.
func amConfig(mp *mailpit.Server) string {
	return fmt.Sprintf(`global:
  smtp_smarthost: %q
  smtp_from: alertmanager@vmflow.test
  smtp_require_tls: false
route:
  receiver: mail
  group_by: [alertname, vm]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: mail
    email_configs:
      - to: ops@vmflow.test
        send_resolved: true
        headers:
          Subject: '[{{ .CommonLabels.severity }} {{ .Status | toUpper }}] {{ .CommonAnnotations.summary }}'
        text: '{{ range .Alerts }}{{ .Annotations.summary }} value={{ .Annotations.value }} threshold={{ .Annotations.threshold }} url={{ .GeneratorURL }}{{ end }}'
`, mp.SMTPAddr())
}

func amNotifier(t *testing.T, urls ...string) *Notifier {
	cfg := testConfig()
	cfg.Alertmanager.URLs = urls
	cfg.ExternalURL = "http://vmflow.test:8080"
	n, _ := start(t, cfg)
	return n
}

func findAM(alerts []alertmanager.Alert, vm string) *alertmanager.Alert {
	for i := range alerts {
		if alerts[i].Labels["vm"] == vm {
			return &alerts[i]
		}
	}
	return nil
}

func subjectIs(s string) func(mailpit.Message) bool {
	return func(m mailpit.Message) bool { return m.Subject == s }
}

// vmflow → real Alertmanager → its e-mail receiver → real SMTP server:
// the firing and the resolved e-mails arrive with the right subject, and
// Alertmanager holds the alert with vmflow's endsAt.
func TestIntegrationAlertmanagerMail(t *testing.T) {
	integration(t)
	mp := mailpit.Start(t, mailpit.Options{})
	am := alertmanager.Start(t, amConfig(mp))
	n := amNotifier(t, am.URL)

	now := time.Now().UTC().Truncate(time.Second)
	a := fanOut(StateFiring)
	a.StartsAt = now.Add(-20 * time.Second)
	n.Notify(now, []Alert{a})
	flush(t, n)

	m := mp.WaitFor(t, 20*time.Second, subjectIs("[P1 FIRING] fan-out web-3 → 57 peers"))
	assert.Equal(t, "ops@vmflow.test", m.To[0].Address)
	full := mp.Get(t, m.ID)
	assert.Contains(t, full.Text, "fan-out web-3 → 57 peers value=57 threshold=20 url=http://vmflow.test:8080/#/vms/web-3")

	got := findAM(am.Alerts(t), "web-3")
	require.NotNil(t, got, "alert in Alertmanager")
	assert.Equal(t, "active", got.Status.State)
	assert.Equal(t, "fan-out", got.Labels["alertname"])
	assert.Equal(t, "P1", got.Labels["severity"])
	assert.WithinDuration(t, now.Add(4*time.Minute), got.EndsAt, time.Second, "endsAt = now + 4 × max(window, resend)")
	assert.WithinDuration(t, a.StartsAt, got.StartsAt, time.Second)

	r := a
	r.State, r.EndsAt = StateResolved, time.Now().UTC()
	n.Notify(time.Now(), []Alert{r})
	flush(t, n)
	mp.WaitFor(t, 20*time.Second, subjectIs("[P1 RESOLVED] fan-out web-3 → 57 peers"))
}

// A silence created in Alertmanager stops the e-mail (Alertmanager has the
// alert, suppressed by that silence); an alert silenced in vmflow never
// reaches Alertmanager. A control alert proves mail was flowing meanwhile.
func TestIntegrationSilences(t *testing.T) {
	integration(t)
	mp := mailpit.Start(t, mailpit.Options{})
	am := alertmanager.Start(t, amConfig(mp))
	n := amNotifier(t, am.URL)

	silID := am.CreateSilence(t, time.Hour, "maintenance of web-3", alertmanager.Equal("vm", "web-3"))

	now := time.Now().UTC()
	amSilenced := fanOut(StateFiring) // web-3: silenced in Alertmanager
	vmSilenced := fanOut(StateFiring)
	vmSilenced.Fingerprint, vmSilenced.Silenced = "fp-web5", true
	vmSilenced.Labels = map[string]string{"vm": "web-5"}
	vmSilenced.Annotations = map[string]string{"summary": "fan-out web-5 → 80 peers"}
	control := fanOut(StateFiring)
	control.Fingerprint = "fp-web4"
	control.Labels = map[string]string{"vm": "web-4"}
	control.Annotations = map[string]string{"summary": "fan-out web-4 → 33 peers"}
	n.Notify(now, []Alert{amSilenced, vmSilenced, control})
	flush(t, n)

	mp.WaitFor(t, 20*time.Second, subjectIs("[P1 FIRING] fan-out web-4 → 33 peers"))
	time.Sleep(3 * time.Second) // two more group intervals for a stray e-mail to show
	for _, m := range mp.Messages(t) {
		assert.NotContains(t, m.Subject, "web-3", "silenced in Alertmanager")
		assert.NotContains(t, m.Subject, "web-5", "silenced in vmflow")
	}
	alerts := am.Alerts(t)
	s := findAM(alerts, "web-3")
	require.NotNil(t, s, "Alertmanager has the alert it silences")
	assert.Equal(t, "suppressed", s.Status.State)
	assert.Equal(t, []string{silID}, s.Status.SilencedBy)
	assert.Nil(t, findAM(alerts, "web-5"), "a vmflow-silenced alert is never sent")
	assert.NotNil(t, findAM(alerts, "web-4"))
}

// Two Alertmanagers (HA): both hold every alert. One stops: the other
// still gets the next alert, and the stopped one's failed attempts are
// retried, then counted and dropped; Notify never waits.
func TestIntegrationAlertmanagerHA(t *testing.T) {
	integration(t)
	mp := mailpit.Start(t, mailpit.Options{})
	am1 := alertmanager.Start(t, amConfig(mp))
	am2 := alertmanager.Start(t, amConfig(mp))
	cfg := testConfig()
	cfg.Alertmanager.URLs = []string{am1.URL, am2.URL}
	cfg.Outbox.MaxAttempts = 3
	n, _ := start(t, cfg)

	now := time.Now().UTC()
	n.Notify(now, []Alert{fanOut(StateFiring)})
	flush(t, n)
	assert.NotNil(t, findAM(am1.Alerts(t), "web-3"))
	assert.NotNil(t, findAM(am2.Alerts(t), "web-3"))

	am1.Stop()
	b := fanOut(StateFiring)
	b.Fingerprint, b.Labels = "fp-db1", map[string]string{"vm": "db-1"}
	begin := time.Now()
	n.Notify(now.Add(10*time.Second), []Alert{fanOut(StateFiring), b})
	assert.Less(t, time.Since(begin), time.Second, "Notify does not wait for a dead Alertmanager")
	flush(t, n)
	assert.NotNil(t, findAM(am2.Alerts(t), "db-1"))
	down := amReceiverName(am1.URL)
	assert.Equal(t, 3.0, testutil.ToFloat64(n.m.failed.WithLabelValues(down)))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues(down, DropRetriesExhausted)))
	h := n.Health()
	assert.Equal(t, "degraded", h["status"])
	assert.Contains(t, h["receivers"].(map[string]any)[down].(map[string]any)["last_error"], "connection refused")
}

// The shipped configs/alertmanager.yml passes amtool, routes P0/P1 to
// the pager and the rest to e-mail, and — run by a real Alertmanager with
// its addresses pointed at local servers — pages for a P0, mails a P3,
// and inhibits a P2 of the VM that has a P0.
func TestIntegrationSampleAlertmanagerConfig(t *testing.T) {
	integration(t)
	const sample = "../../configs/alertmanager.yml"
	out, err := alertmanager.CheckConfig(t, sample)
	require.NoError(t, err, out)
	assert.Contains(t, out, "SUCCESS")

	raw, err := os.ReadFile(sample)
	require.NoError(t, err)
	var conf map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &conf))
	mp := mailpit.Start(t, mailpit.Options{})
	page, pageSrv := newRecorder(t)
	g := conf["global"].(map[string]any)
	g["smtp_smarthost"], g["smtp_require_tls"] = mp.SMTPAddr(), false
	delete(g, "smtp_auth_username")
	delete(g, "smtp_auth_password_file")
	route := conf["route"].(map[string]any)
	fast := func(r map[string]any) { r["group_wait"], r["group_interval"] = "1s", "1s" }
	fast(route)
	for _, sub := range route["routes"].([]any) {
		fast(sub.(map[string]any))
	}
	for _, rc := range conf["receivers"].([]any) {
		r := rc.(map[string]any)
		if hooks, ok := r["webhook_configs"].([]any); ok {
			hooks[0].(map[string]any)["url"] = pageSrv.URL
		}
	}
	b, err := yaml.Marshal(conf)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "am.yml")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	out, err = alertmanager.CheckConfig(t, p)
	require.NoError(t, err, out)
	am := alertmanager.Start(t, string(b))
	n := amNotifier(t, am.URL)

	mk := func(fp, sev, vm, summary string) Alert {
		a := fanOut(StateFiring)
		a.Fingerprint, a.Severity = fp, sev
		a.Rule = "rule-" + strings.ToLower(sev)
		a.Labels = map[string]string{"vm": vm, "tenant": "acme"}
		a.Annotations = map[string]string{"summary": summary}
		return a
	}
	p0 := mk("fp-p0", "P0", "web-3", "web-3 isolated")
	p2 := mk("fp-p2", "P2", "web-3", "new peer web-3 → db-7")
	p3 := mk("fp-p3", "P3", "db-1", "rst storm db-1")
	n.Notify(time.Now(), []Alert{p0, p2, p3})
	flush(t, n)

	mp.WaitFor(t, 20*time.Second, subjectIs("[P3 FIRING] rst storm db-1"))
	page.wait(t, 1)
	var hook WebhookPayload // Alertmanager's own webhook payload
	require.NoError(t, json.Unmarshal(page.body(0), &hook))
	assert.Equal(t, "page", hook.Receiver)
	require.Len(t, hook.Alerts, 1)
	assert.Equal(t, "P0", hook.Alerts[0].Labels["severity"])
	time.Sleep(2 * time.Second)
	for _, m := range mp.Messages(t) {
		assert.NotContains(t, m.Subject, "web-3", "P0 pages (no mail), P2 is inhibited")
	}
	var inhibited *alertmanager.Alert
	for _, a := range am.Alerts(t) {
		if a.Labels["severity"] == "P2" {
			inhibited = &a
		}
	}
	require.NotNil(t, inhibited)
	assert.Equal(t, "suppressed", inhibited.Status.State)
	assert.NotEmpty(t, inhibited.Status.InhibitedBy)
}

// vmflow's own SMTP receiver against a real SMTP server: plain, STARTTLS
// with AUTH, and TLS from the first byte; subject and body as a reader
// sees them.
func TestIntegrationSMTPReceiver(t *testing.T) {
	integration(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("hunter2\n"), 0o600))
	for _, tc := range []struct {
		name string
		opts mailpit.Options
		mod  func(*SMTPConfig, *mailpit.Server)
	}{
		{"plain", mailpit.Options{}, func(c *SMTPConfig, _ *mailpit.Server) { c.TLS = SMTPNone }},
		{"starttls_auth", mailpit.Options{TLS: true, RequireSTARTTLS: true, Auth: map[string]string{"vmflow": "hunter2"}}, func(c *SMTPConfig, mp *mailpit.Server) {
			c.TLS, c.CAFile, c.Username, c.PasswordFile = SMTPStartTLS, mp.CAFile, "vmflow", pwFile
		}},
		{"tls", mailpit.Options{RequireTLS: true}, func(c *SMTPConfig, mp *mailpit.Server) { c.TLS, c.CAFile = SMTPTLS, mp.CAFile }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mp := mailpit.Start(t, tc.opts)
			cfg := testConfig()
			cfg.GroupWait = 300 * time.Millisecond
			cfg.ExternalURL = "http://vmflow.test:8080"
			cfg.SMTP.Host, cfg.SMTP.Port = mp.SMTPHost, mp.SMTPPort
			cfg.SMTP.From, cfg.SMTP.To = "vmflow <vmflow@vmflow.test>", []string{"ops@vmflow.test", "noc@vmflow.test"}
			tc.mod(&cfg.SMTP, mp)
			n, _ := start(t, cfg)

			now := time.Now().UTC()
			a := fanOut(StateFiring)
			a.StartsAt = now.Add(-2 * time.Minute)
			n.Notify(now, []Alert{a})
			n.Notify(now.Add(10*time.Second), []Alert{a}) // no change: no second e-mail
			flush(t, n)
			m := mp.WaitFor(t, 10*time.Second, subjectIs("[P1 FIRING] fan-out web-3 → 57 peers"))
			require.Len(t, m.To, 2)
			assert.Equal(t, "vmflow@vmflow.test", m.From.Address)
			text := mp.Get(t, m.ID).Text
			for _, want := range []string{"P1 FIRING: 1 alert for rule=fan-out severity=P1", "value: 57   threshold: 20   peak: 61",
				"since: " + fmtTime(a.StartsAt), "link: http://vmflow.test:8080/#/vms/web-3", "vm=web-3", "tenant=acme"} {
				assert.Contains(t, text, want)
			}
			assert.Len(t, mp.Messages(t), 1, "one e-mail per transition, not per evaluation")

			r := a
			r.State, r.EndsAt = StateResolved, now.Add(20*time.Second)
			n.Notify(now.Add(20*time.Second), []Alert{r})
			flush(t, n)
			m = mp.WaitFor(t, 10*time.Second, subjectIs("[P1 RESOLVED] fan-out web-3 → 57 peers"))
			assert.Contains(t, mp.Get(t, m.ID).Text, "RESOLVED (1)")
			assert.Equal(t, 2.0, testutil.ToFloat64(n.m.sent.WithLabelValues("smtp")))
			assert.Equal(t, 0.0, testutil.ToFloat64(n.m.failed.WithLabelValues("smtp")))
		})
	}
}

// A wrong password is refused by the server: not retried, counted.
func TestIntegrationSMTPBadPassword(t *testing.T) {
	integration(t)
	mp := mailpit.Start(t, mailpit.Options{TLS: true, Auth: map[string]string{"vmflow": "hunter2"}})
	cfg := testConfig()
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.To = mp.SMTPHost, mp.SMTPPort, []string{"ops@vmflow.test"}
	cfg.SMTP.CAFile, cfg.SMTP.Username, cfg.SMTP.Password = mp.CAFile, "vmflow", "wrong"
	n, _ := start(t, cfg)
	n.Notify(time.Now(), []Alert{fanOut(StateFiring)})
	flush(t, n)
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.failed.WithLabelValues("smtp")))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues("smtp", DropRejected)))
	assert.Contains(t, n.Health()["receivers"].(map[string]any)["smtp"].(map[string]any)["last_error"], "535")
	assert.Empty(t, mp.Messages(t))
}

// STARTTLS required but the server does not offer it: refused at once
// (no retries), counted, and nothing sent in the clear.
func TestIntegrationSMTPRequiresSTARTTLS(t *testing.T) {
	integration(t)
	mp := mailpit.Start(t, mailpit.Options{})
	cfg := testConfig()
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.To = mp.SMTPHost, mp.SMTPPort, []string{"ops@vmflow.test"}
	n, _ := start(t, cfg)
	n.Notify(time.Now(), []Alert{fanOut(StateFiring)})
	flush(t, n)
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.failed.WithLabelValues("smtp")))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.m.dropped.WithLabelValues("smtp", DropRejected)))
	assert.Empty(t, mp.Messages(t))
}
