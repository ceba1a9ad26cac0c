package influx

import (
	"sort"
	"strconv"
	"time"
)

// MeasurementAlert holds alert transitions (README "InfluxDB schema"):
// one point when an alert starts firing (at its start) and one when it
// resolves (at its end). Grafana shows them as annotations.
const MeasurementAlert = "alert"

// AlertEvent is one alert transition. (influx does not import alert/:
// the app converts.)
type AlertEvent struct {
	Time        time.Time // firing: the alert's start; resolved: its end
	State       string    // firing or resolved
	Fingerprint string
	Rule        string
	Kind        string
	Severity    string
	Labels      map[string]string // vm, tenant, src, dst, exporter, ... are kept
	Summary     string
	Value, Peak float64
	Threshold   string // as the alert's annotation shows it (threshold or baseline limit)
	StartsAt    time.Time
}

// alertTags are the labels kept as tags (besides rule, kind, severity,
// state and fingerprint); the other labels go to the `labels` field.
var alertTags = []string{"tenant", "host", "vm"}

// WriteAlerts records alert transitions.
func (w *Writer) WriteAlerts(evs []AlertEvent) {
	w.life.RLock()
	defer w.life.RUnlock()
	if len(evs) == 0 || w.state.Load() == 2 {
		return
	}
	w.encMu.Lock()
	defer w.encMu.Unlock()
	var n int
	w.cur, n = appendAlerts(w.cur, evs, w.cfg.Instance)
	w.addPointsLocked(n)
}

// appendAlerts appends one alert point per event.
func appendAlerts(b []byte, evs []AlertEvent, instance string) ([]byte, int) {
	for i := range evs {
		e := &evs[i]
		b = append(b, MeasurementAlert...)
		b = appendTag(b, "fingerprint", e.Fingerprint)
		b = appendTag(b, "host", orNone(e.Labels["host"]))
		b = appendTag(b, "instance", instance)
		b = appendTag(b, "kind", e.Kind)
		b = appendTag(b, "rule", e.Rule)
		b = appendTag(b, "severity", e.Severity)
		b = appendTag(b, "state", e.State)
		b = appendTag(b, "tenant", orNone(e.Labels["tenant"]))
		b = appendTag(b, "vm", orNone(e.Labels["vm"]))
		f := fieldWriter{b: b, first: true}
		f.str("summary", e.Summary)
		f.float("value", e.Value)
		f.float("peak", e.Peak)
		f.str("threshold", e.Threshold)
		for _, k := range []string{"src", "dst", "exporter", "peer"} {
			f.str(k, e.Labels[k])
		}
		if !e.StartsAt.IsZero() {
			f.int("starts_at", e.StartsAt.Unix())
		}
		var other []string
		for k := range e.Labels {
			switch k {
			case "alertname", "rule", "kind", "severity", "src", "dst", "exporter", "peer":
				continue
			}
			skip := false
			for _, t := range alertTags {
				skip = skip || k == t
			}
			if !skip {
				other = append(other, k+"="+e.Labels[k])
			}
		}
		sort.Strings(other)
		if len(other) > 0 {
			s := ""
			for j, o := range other {
				if j > 0 {
					s += ","
				}
				s += o
			}
			f.str("labels", s)
		}
		b = append(f.b, ' ')
		b = strconv.AppendInt(b, e.Time.UnixNano(), 10)
		b = append(b, '\n')
	}
	return b, len(evs)
}
