package notify

import (
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"text/template"
	"time"
)

// TLS modes of the SMTP receiver.
const (
	// SMTPStartTLS: plain connection upgraded with STARTTLS, which the
	// server must offer (refuses to send otherwise).
	SMTPStartTLS = "starttls"
	// SMTPTLS: TLS from the first byte (SMTPS, usually port 465).
	SMTPTLS = "tls"
	// SMTPNone: no TLS at all (a local relay on loopback).
	SMTPNone = "none"
)

const keyPrefix = "alert.notify."

// AlertmanagerConfig sends every alert to Prometheus Alertmanager(s) with
// the API v2 (POST /api/v2/alerts).
type AlertmanagerConfig struct {
	// URLs are Alertmanager base URLs (http://am1:9093, with the route
	// prefix if any). Every alert goes to each (an HA cluster dedups).
	URLs []string `mapstructure:"urls" yaml:"urls"`
	// ResendInterval: firing alerts are re-sent this often (Prometheus'
	// --rules.alert.resend-delay) so Alertmanager does not expire them.
	ResendInterval time.Duration `mapstructure:"resend_interval" yaml:"resend_interval"`
	// BearerTokenFile, if set, is read at start and sent as
	// "Authorization: Bearer" (an Alertmanager behind an auth proxy).
	BearerTokenFile string `mapstructure:"bearer_token_file" yaml:"bearer_token_file"`
}

// SMTPConfig sends one e-mail per alert group directly over SMTP.
type SMTPConfig struct {
	// Host is the SMTP server; "" disables e-mail.
	Host string `mapstructure:"host" yaml:"host"`
	Port int    `mapstructure:"port" yaml:"port"`
	// TLS is starttls, tls or none.
	TLS string `mapstructure:"tls" yaml:"tls"`
	// CAFile verifies the server with this PEM bundle instead of the
	// system roots; ServerName overrides the name checked (default Host).
	CAFile             string `mapstructure:"ca_file" yaml:"ca_file"`
	ServerName         string `mapstructure:"server_name" yaml:"server_name"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify" yaml:"insecure_skip_verify"`
	// Hello is the name sent in EHLO (default: the host name).
	Hello string `mapstructure:"hello" yaml:"hello"`
	// Username and Password (or PasswordFile, read at start) enable AUTH
	// PLAIN, which net/smtp only sends over TLS or to localhost.
	Username     string   `mapstructure:"username" yaml:"username"`
	Password     string   `mapstructure:"password" yaml:"password"`
	PasswordFile string   `mapstructure:"password_file" yaml:"password_file"`
	From         string   `mapstructure:"from" yaml:"from"`
	To           []string `mapstructure:"to" yaml:"to"`
	// Subject is a text/template over Message (see README); the default
	// gives "[P1 FIRING] fan-out web-3 → 57 peers".
	Subject string `mapstructure:"subject" yaml:"subject"`
	// SendResolved also mails when a group's alerts resolve.
	SendResolved bool `mapstructure:"send_resolved" yaml:"send_resolved"`
}

// WebhookConfig is one HTTP endpoint receiving Alertmanager-style JSON.
type WebhookConfig struct {
	// Name labels the receiver in metrics and health (default: the URL's host).
	Name string `mapstructure:"name" yaml:"name"`
	URL  string `mapstructure:"url" yaml:"url"`
	// Secret (or SecretFile) signs the body: X-Vmflow-Signature:
	// sha256=hex(HMAC-SHA256(secret, body)).
	Secret       string `mapstructure:"secret" yaml:"secret"`
	SecretFile   string `mapstructure:"secret_file" yaml:"secret_file"`
	SendResolved bool   `mapstructure:"send_resolved" yaml:"send_resolved"`
}

// OutboxConfig bounds each receiver's queue and its retries.
type OutboxConfig struct {
	// Size is the number of messages queued per receiver; when full the
	// oldest is dropped (and counted).
	Size int `mapstructure:"size" yaml:"size"`
	// MaxAttempts per message (first try included) before it is dropped.
	MaxAttempts int `mapstructure:"max_attempts" yaml:"max_attempts"`
	// BackoffMin/Max bound the exponential wait between attempts (±20% jitter).
	BackoffMin time.Duration `mapstructure:"backoff_min" yaml:"backoff_min"`
	BackoffMax time.Duration `mapstructure:"backoff_max" yaml:"backoff_max"`
}

// Config configures delivery (alert.notify.*).
type Config struct {
	Alertmanager AlertmanagerConfig `mapstructure:"alertmanager" yaml:"alertmanager"`
	SMTP         SMTPConfig         `mapstructure:"smtp" yaml:"smtp"`
	Webhooks     []WebhookConfig    `mapstructure:"webhooks" yaml:"webhooks"`
	// GroupBy: labels whose values form an e-mail/webhook group
	// (rule and severity also fall back to the alert's fields).
	GroupBy []string `mapstructure:"group_by" yaml:"group_by"`
	// GroupWait: a group's first change waits this long for others.
	GroupWait time.Duration `mapstructure:"group_wait" yaml:"group_wait"`
	// RepeatInterval re-notifies a group still firing (0 = never).
	RepeatInterval time.Duration `mapstructure:"repeat_interval" yaml:"repeat_interval"`
	// Timeout bounds one delivery attempt (HTTP request or SMTP session).
	Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
	// StopTimeout: Stop keeps delivering the outboxes this long.
	StopTimeout time.Duration `mapstructure:"stop_timeout" yaml:"stop_timeout"`
	Outbox      OutboxConfig  `mapstructure:"outbox" yaml:"outbox"`
	// StateFile keeps which alerts the e-mail and webhook receivers were
	// told about across restarts, so a restart does not re-announce
	// firing alerts ("" = not kept).
	StateFile string `mapstructure:"state_file" yaml:"state_file"`
	// ExternalURL is vmflow's console address, used for links in
	// messages whose alerts carry relative links ("" = as given).
	ExternalURL string `mapstructure:"external_url" yaml:"external_url"`

	// Window is the evaluation window (aggregate.window); Alertmanager's
	// endsAt for a firing alert is now + 4 × max(Window, ResendInterval).
	// Set by the wiring, not a key of its own.
	Window time.Duration `mapstructure:"-" yaml:"-"`
}

// DefaultSubject is the default SMTP subject template.
const DefaultSubject = `[{{.Severity}} {{.StatusUpper}}] {{.Summary}}`

// DefaultConfig sends nowhere; once a receiver is given it resends to
// Alertmanager every minute and groups e-mails by rule and severity.
func DefaultConfig() Config {
	return Config{
		Alertmanager: AlertmanagerConfig{ResendInterval: time.Minute},
		SMTP: SMTPConfig{
			Port:         587,
			TLS:          SMTPStartTLS,
			From:         "vmflow@localhost",
			Subject:      DefaultSubject,
			SendResolved: true,
		},
		GroupBy:        []string{"rule", "severity"},
		GroupWait:      5 * time.Second,
		RepeatInterval: 4 * time.Hour,
		Timeout:        10 * time.Second,
		StopTimeout:    5 * time.Second,
		Outbox: OutboxConfig{
			Size:        256,
			MaxAttempts: 6,
			BackoffMin:  500 * time.Millisecond,
			BackoffMax:  30 * time.Second,
		},
	}
}

// Enabled reports whether any receiver is configured.
func (c Config) Enabled() bool {
	return len(c.Alertmanager.URLs) > 0 || c.SMTP.Host != "" || len(c.Webhooks) > 0
}

// Validate checks every key; errors name the key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf(keyPrefix+key+": "+format, a...))
	}
	seen := map[string]bool{}
	for i, u := range c.Alertmanager.URLs {
		if err := checkHTTPURL(u); err != nil {
			bad(fmt.Sprintf("alertmanager.urls[%d]", i), "%v", err)
		} else if seen[u] {
			bad(fmt.Sprintf("alertmanager.urls[%d]", i), "%q listed twice", u)
		}
		seen[u] = true
	}
	if c.Alertmanager.ResendInterval < time.Second {
		bad("alertmanager.resend_interval", "must be at least 1s, got %v", c.Alertmanager.ResendInterval)
	}
	s := c.SMTP
	switch s.TLS {
	case SMTPStartTLS, SMTPTLS, SMTPNone:
	default:
		bad("smtp.tls", "must be starttls, tls or none, got %q", s.TLS)
	}
	if s.Port < 1 || s.Port > 65535 {
		bad("smtp.port", "must be 1-65535, got %d", s.Port)
	}
	if s.Password != "" && s.PasswordFile != "" {
		bad("smtp.password_file", "set password or password_file, not both")
	}
	if (s.Password != "" || s.PasswordFile != "") && s.Username == "" {
		bad("smtp.username", "a password needs a username")
	}
	if err := checkSubject(s.Subject); err != nil {
		bad("smtp.subject", "%v", err)
	}
	if s.Host != "" {
		if strings.ContainsAny(s.Host, ":/ ") && !strings.HasPrefix(s.Host, "[") {
			bad("smtp.host", "a host name or address without port, got %q", s.Host)
		}
		if _, err := mail.ParseAddress(s.From); err != nil {
			bad("smtp.from", "%v", err)
		}
		if len(s.To) == 0 {
			bad("smtp.to", "at least one recipient when smtp.host is set")
		}
		for i, to := range s.To {
			if _, err := mail.ParseAddress(to); err != nil {
				bad(fmt.Sprintf("smtp.to[%d]", i), "%v", err)
			}
		}
	}
	names := map[string]bool{}
	for i, w := range c.Webhooks {
		k := fmt.Sprintf("webhooks[%d]", i)
		if err := checkHTTPURL(w.URL); err != nil {
			bad(k+".url", "%v", err)
		}
		if w.Secret != "" && w.SecretFile != "" {
			bad(k+".secret_file", "set secret or secret_file, not both")
		}
		n := w.receiverName()
		if names[n] {
			bad(k+".name", "receiver name %q used twice (give each webhook a name)", n)
		}
		names[n] = true
	}
	for i, l := range c.GroupBy {
		if !validLabelName(l) {
			bad(fmt.Sprintf("group_by[%d]", i), "not a label name: %q", l)
		}
	}
	if c.GroupWait < 0 || c.GroupWait > time.Hour {
		bad("group_wait", "must be 0-1h, got %v", c.GroupWait)
	}
	if c.RepeatInterval != 0 && c.RepeatInterval < time.Minute {
		bad("repeat_interval", "must be 0 (never) or at least 1m, got %v", c.RepeatInterval)
	}
	if c.Timeout < 100*time.Millisecond {
		bad("timeout", "must be at least 100ms, got %v", c.Timeout)
	}
	if c.StopTimeout < 0 {
		bad("stop_timeout", "must not be negative, got %v", c.StopTimeout)
	}
	o := c.Outbox
	if o.Size < 1 || o.Size > 1_000_000 {
		bad("outbox.size", "must be 1-1000000, got %d", o.Size)
	}
	if o.MaxAttempts < 1 {
		bad("outbox.max_attempts", "must be at least 1, got %d", o.MaxAttempts)
	}
	if o.BackoffMin <= 0 {
		bad("outbox.backoff_min", "must be positive, got %v", o.BackoffMin)
	}
	if o.BackoffMax < o.BackoffMin {
		bad("outbox.backoff_max", "must be at least outbox.backoff_min (%v), got %v", o.BackoffMin, o.BackoffMax)
	}
	if c.ExternalURL != "" {
		if err := checkHTTPURL(c.ExternalURL); err != nil {
			bad("external_url", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// checkSubject parses the subject template and runs it on a sample message.
func checkSubject(subject string) error {
	if strings.TrimSpace(subject) == "" {
		return errors.New("must not be empty")
	}
	t, err := template.New("subject").Option("missingkey=zero").Parse(subject)
	if err != nil {
		return err
	}
	m := Message{Receiver: "smtp", GroupLabels: map[string]string{}, Firing: []Alert{{Rule: "r", Severity: "P1", State: StateFiring}}}
	m.finish()
	return t.Execute(io.Discard, &m)
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("must be an http or https URL, got %q", s)
	}
	if u.Host == "" {
		return fmt.Errorf("no host in %q", s)
	}
	return nil
}

// validLabelName is Prometheus' label name rule: [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func (w WebhookConfig) receiverName() string {
	if w.Name != "" {
		return "webhook:" + w.Name
	}
	if u, err := url.Parse(w.URL); err == nil && u.Host != "" {
		return "webhook:" + u.Host
	}
	return "webhook:" + w.URL
}

// readSecret returns value, or the trimmed content of file when set.
func readSecret(key, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf(keyPrefix+"%s: %w", key, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Redacted returns a copy with the secrets that are set (smtp.password,
// webhooks[].secret, the password of a URL's user info in
// alertmanager.urls and webhooks[].url) replaced by mask, for dumping the
// configuration.
func (c Config) Redacted(mask string) Config {
	if c.SMTP.Password != "" {
		c.SMTP.Password = mask
	}
	if c.Alertmanager.URLs != nil {
		urls := make([]string, len(c.Alertmanager.URLs))
		for i, u := range c.Alertmanager.URLs {
			urls[i] = redactURL(u, mask)
		}
		c.Alertmanager.URLs = urls
	}
	hooks := make([]WebhookConfig, len(c.Webhooks))
	for i, w := range c.Webhooks {
		if w.Secret != "" {
			w.Secret = mask
		}
		w.URL = redactURL(w.URL, mask)
		hooks[i] = w
	}
	if c.Webhooks != nil {
		c.Webhooks = hooks
	}
	return c
}

// redactURL masks the password of a URL's user info (unparsable URLs are
// left as they are: Validate refuses them).
func redactURL(raw, mask string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); !ok {
		return raw
	}
	u.User = url.UserPassword(u.User.Username(), "x")
	return strings.Replace(u.String(), ":x@", ":"+mask+"@", 1)
}
