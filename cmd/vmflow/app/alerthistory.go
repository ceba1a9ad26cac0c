package app

import (
	"time"

	"github.com/vmflow/vmflow/alert/notify"
	"github.com/vmflow/vmflow/store/influx"
)

// alertHistory is the alert engine's dispatcher when InfluxDB is on: it
// writes every transition (an alert starting to fire, an alert resolved)
// to the influx `alert` measurement, then hands the evaluation on to next
// (the notifier, or nil).
type alertHistory struct {
	w      interface{ WriteAlerts([]influx.AlertEvent) } // *influx.Writer
	next   notify.Dispatcher
	firing map[string]bool // fingerprints firing after the last evaluation
}

func newAlertHistory(w interface{ WriteAlerts([]influx.AlertEvent) }, next notify.Dispatcher) *alertHistory {
	return &alertHistory{w: w, next: next, firing: map[string]bool{}}
}

// Notify is called by the engine's evaluation goroutine only.
func (h *alertHistory) Notify(now time.Time, alerts []notify.Alert) {
	var evs []influx.AlertEvent
	seen := make(map[string]bool, len(h.firing))
	for i := range alerts {
		a := &alerts[i]
		ev := influx.AlertEvent{State: string(a.State), Fingerprint: a.Fingerprint, Rule: a.Rule, Kind: a.Kind,
			Severity: a.Severity, Labels: a.Labels, Summary: a.Annotations["summary"], Value: a.Value, Peak: a.Peak,
			Threshold: a.Annotations["threshold"], StartsAt: a.StartsAt}
		switch a.State {
		case notify.StateFiring:
			seen[a.Fingerprint] = true
			if h.firing[a.Fingerprint] {
				continue
			}
			// New (or restored after a restart: the same point again,
			// which InfluxDB overwrites).
			ev.Time = a.StartsAt
		case notify.StateResolved:
			ev.Time = a.EndsAt
		default:
			continue
		}
		if ev.Time.IsZero() {
			ev.Time = now
		}
		evs = append(evs, ev)
	}
	h.firing = seen
	h.w.WriteAlerts(evs)
	if h.next != nil {
		h.next.Notify(now, alerts)
	}
}
