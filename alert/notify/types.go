// Package notify delivers alerts to receivers (Prometheus Alertmanager,
// e-mail over SMTP, webhooks) through a bounded outbox with retries. The
// alert engine (package alert) evaluates rules and hands every evaluation's
// result to a Dispatcher; what each receiver sends, and when, is decided
// here.
package notify

import "time"

// State is an alert's state as delivered.
type State string

const (
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Alert is one alert (one rule and one subject) as the engine hands it to
// delivery. Labels identify it (alertname, severity, rule, kind and the
// subject's tenant, host, vm, src, dst, exporter as they apply);
// Annotations describe it (summary, description, value, threshold or
// baseline, link).
type Alert struct {
	// Fingerprint is stable for a rule and subject: the dedup key.
	Fingerprint string
	Rule        string
	Kind        string
	// Severity is "P0" (most urgent) to "P4".
	Severity    string
	State       State
	Labels      map[string]string
	Annotations map[string]string
	// StartsAt is when the alert started firing; EndsAt when it resolved
	// (zero while firing: receivers compute their own expiry).
	StartsAt time.Time
	EndsAt   time.Time
	// Value is the last evaluated value, Peak the highest since StartsAt.
	Value, Peak float64
	// GeneratorURL links to the console view of the subject.
	GeneratorURL string
	// Silenced or Inhibited alerts are not delivered by vmflow's own
	// receivers (nor to Alertmanager while silenced in vmflow).
	Silenced  bool
	Inhibited bool
}

// Dispatcher takes the engine's result after every evaluation.
type Dispatcher interface {
	// Notify is called after each evaluation with every alert that is
	// firing and every alert that resolved in this evaluation. It never
	// blocks on a receiver: delivery happens in the background.
	Notify(now time.Time, alerts []Alert)
}
