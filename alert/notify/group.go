package notify

import (
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Message is one notification of one alert group, as the e-mail subject
// template and the webhook payload see it.
type Message struct {
	// Receiver is the receiver's name (smtp, webhook:NAME).
	Receiver string
	// Status is "firing" when any alert of the message fires, else "resolved".
	Status string
	// Severity is the most urgent severity among the message's alerts.
	Severity string
	// GroupKey identifies the group: {label="value", ...} of GroupBy.
	GroupKey    string
	GroupLabels map[string]string
	// CommonLabels/CommonAnnotations are those all the alerts share.
	CommonLabels      map[string]string
	CommonAnnotations map[string]string
	Firing            []Alert
	Resolved          []Alert
	// Summary: the first alert's summary annotation, "(+N more)" when
	// the message carries several alerts.
	Summary string
	// Repeat is true for a repeat_interval reminder (no change).
	Repeat bool
	// ExternalURL is alert.notify.external_url.
	ExternalURL string
}

// StatusUpper is Status in capitals (FIRING, RESOLVED).
func (m Message) StatusUpper() string { return strings.ToUpper(m.Status) }

// Alerts are the firing alerts, then the resolved ones.
func (m Message) Alerts() []Alert { return append(append([]Alert(nil), m.Firing...), m.Resolved...) }

// groupAlert is one alert in a group with what was last notified of it.
type groupAlert struct {
	a        Alert
	notified bool   // a firing notification included it
	seen     uint64 // evaluation that last mentioned it
}

// group is one aggregation group of the grouped receivers (SMTP, webhooks).
type group struct {
	key     string
	labels  map[string]string
	alerts  map[string]*groupAlert
	flushAt time.Time // zero: nothing pending
	lastOut time.Time // last notification
}

// labelValue is the value of label k as delivered (see deliveredLabels),
// without building the label map.
func labelValue(a *Alert, k string) string {
	if v := a.Labels[k]; v != "" {
		return v
	}
	switch k {
	case "alertname":
		if a.Rule != "" {
			return a.Rule
		}
		if a.Kind != "" {
			return a.Kind
		}
		return "vmflow"
	case "rule":
		return a.Rule
	case "kind":
		return a.Kind
	case "severity":
		return a.Severity
	}
	return ""
}

// groupKeyBytes writes an alert's group key ({label="value", ...} of
// GroupBy) into d.keyBuf (d.mu held; no allocation once the buffer grew).
func (d *Notifier) groupKeyBytes(a *Alert) []byte {
	b := append(d.keyBuf[:0], '{')
	for i, k := range d.cfg.GroupBy {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, k...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, labelValue(a, k))
	}
	b = append(b, '}')
	d.keyBuf = b
	return b
}

// groupLabels are the GroupBy labels of an alert (empty values left out).
func (d *Notifier) groupLabels(a *Alert) map[string]string {
	gl := make(map[string]string, len(d.cfg.GroupBy))
	for _, k := range d.cfg.GroupBy {
		if v := labelValue(a, k); v != "" {
			gl[k] = v
		}
	}
	return gl
}

// keep stores the latest copy of an alert, cloning its maps only when
// they changed (the caller may reuse its maps after Notify).
func keep(dst *Alert, src *Alert) {
	labels, ann := dst.Labels, dst.Annotations
	*dst = *src
	if labels == nil || !maps.Equal(labels, src.Labels) {
		labels = maps.Clone(src.Labels)
	}
	if ann == nil || !maps.Equal(ann, src.Annotations) {
		ann = maps.Clone(src.Annotations)
	}
	dst.Labels, dst.Annotations = labels, ann
}

// groupUpdate applies one evaluation to the groups. Called with d.mu held.
// It returns the messages due now (group_wait 0).
func (d *Notifier) groupUpdate(clock time.Time, gen uint64, alerts []Alert) []Message {
	for i := range alerts {
		a := &alerts[i]
		if !deliverable(a) {
			continue
		}
		kb := d.groupKeyBytes(a)
		g := d.groups[string(kb)]
		var ga *groupAlert
		if g != nil {
			ga = g.alerts[a.Fingerprint]
		}
		if ga == nil {
			// a restart restored that this alert was notified firing
			key := string(kb)
			wasNotified, last := d.restoredNotified(key, a.Fingerprint)
			if a.State == StateResolved && !wasNotified {
				continue // never notified: nothing to tell
			}
			if g == nil {
				g = &group{key: key, labels: d.groupLabels(a), alerts: map[string]*groupAlert{}, lastOut: last}
				d.groups[key] = g
			}
			ga = &groupAlert{notified: wasNotified}
			g.alerts[a.Fingerprint] = ga
		}
		keep(&ga.a, a)
		ga.seen = gen
		change := false
		switch a.State {
		case StateFiring:
			change = !ga.notified
		case StateResolved:
			if !ga.notified {
				delete(g.alerts, a.Fingerprint) // fired and resolved unseen
			} else {
				change = true
			}
		}
		if change && g.flushAt.IsZero() {
			g.flushAt = clock.Add(d.cfg.GroupWait)
		}
	}
	if gen > restoreEvaluations {
		d.restore = nil
	}
	// alerts no longer handed over (silenced, inhibited, rule gone) leave
	// their group without a notification
	for key, g := range d.groups {
		for fp, ga := range g.alerts {
			// a resolved alert is mentioned once: keep it until notified
			if ga.seen != gen && ga.a.State != StateResolved {
				delete(g.alerts, fp)
			}
		}
		if len(g.alerts) == 0 {
			delete(d.groups, key)
		}
	}
	return d.groupsDue(clock, false)
}

// groupsDue returns the messages of groups whose wait is over (all that
// have something pending when force), and repeat reminders.
func (d *Notifier) groupsDue(clock time.Time, force bool) []Message {
	var out []Message
	keys := make([]string, 0, len(d.groups))
	for k := range d.groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := d.groups[k]
		switch {
		case !g.flushAt.IsZero() && (force || !clock.Before(g.flushAt)):
			out = append(out, d.flushGroup(g, clock, false))
		case g.flushAt.IsZero() && d.cfg.RepeatInterval > 0 && !g.lastOut.IsZero() && clock.Sub(g.lastOut) >= d.cfg.RepeatInterval:
			out = append(out, d.flushGroup(g, clock, true))
		}
		if len(g.alerts) == 0 {
			delete(d.groups, k)
		}
	}
	return out
}

// flushGroup builds a group's message and records it as notified.
func (d *Notifier) flushGroup(g *group, clock time.Time, repeat bool) Message {
	m := Message{GroupKey: g.key, GroupLabels: maps.Clone(g.labels), Repeat: repeat, ExternalURL: d.cfg.ExternalURL}
	fps := make([]string, 0, len(g.alerts))
	for fp := range g.alerts {
		fps = append(fps, fp)
	}
	// oldest first, then by fingerprint: a stable order for readers
	sort.Slice(fps, func(i, j int) bool {
		a, b := g.alerts[fps[i]].a, g.alerts[fps[j]].a
		if !a.StartsAt.Equal(b.StartsAt) {
			return a.StartsAt.Before(b.StartsAt)
		}
		return fps[i] < fps[j]
	})
	for _, fp := range fps {
		ga := g.alerts[fp]
		if ga.a.State == StateResolved {
			m.Resolved = append(m.Resolved, ga.a)
			delete(g.alerts, fp)
			continue
		}
		m.Firing = append(m.Firing, ga.a)
		ga.notified = true
	}
	g.flushAt = time.Time{}
	g.lastOut = clock
	m.finish()
	return m
}

// finish computes Status, Severity, common labels and Summary.
func (m *Message) finish() {
	all := m.Alerts()
	m.Status = string(StateResolved)
	if len(m.Firing) > 0 {
		m.Status = string(StateFiring)
	}
	sevFrom := m.Firing
	if len(sevFrom) == 0 {
		sevFrom = m.Resolved
	}
	for _, a := range sevFrom {
		if s := severityOf(&a); m.Severity == "" || s < m.Severity {
			m.Severity = s // "P0" < "P1" < ...
		}
	}
	for i, a := range all {
		l, an := deliveredLabels(&a), deliveredAnnotations(&a)
		if i == 0 {
			m.CommonLabels, m.CommonAnnotations = l, an
			continue
		}
		intersect(m.CommonLabels, l)
		intersect(m.CommonAnnotations, an)
	}
	if len(all) > 0 {
		m.Summary = summaryOf(&all[0])
		if len(all) > 1 {
			m.Summary += " (+" + strconv.Itoa(len(all)-1) + " more)"
		}
	}
}

func intersect(common, other map[string]string) {
	for k, v := range common {
		if other[k] != v {
			delete(common, k)
		}
	}
}

func severityOf(a *Alert) string {
	if a.Severity != "" {
		return a.Severity
	}
	return a.Labels["severity"]
}

// summaryOf is the alert's summary annotation, or its rule and subject.
func summaryOf(a *Alert) string {
	if s := a.Annotations["summary"]; s != "" {
		return s
	}
	name := a.Rule
	if name == "" {
		name = a.Labels["alertname"]
	}
	parts := []string{name}
	switch {
	case a.Labels["src"] != "" || a.Labels["dst"] != "":
		parts = append(parts, a.Labels["src"]+" → "+a.Labels["dst"])
	case a.Labels["vm"] != "":
		parts = append(parts, a.Labels["vm"])
	case a.Labels["exporter"] != "":
		parts = append(parts, a.Labels["exporter"])
	}
	return strings.Join(parts, " ")
}
