package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// resolvedRetention: a resolved alert is re-sent to Alertmanager at every
// resend interval for this long (as Prometheus does), so an Alertmanager
// that missed the first resolve still learns of it.
const resolvedRetention = 15 * time.Minute

// amBatch is the most alerts in one POST (Prometheus sends 64).
const amBatch = 256

// amAlert is Alertmanager API v2's postableAlert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// amEntry is what the dispatcher remembers of an alert sent to Alertmanager.
type amEntry struct {
	alert      Alert
	lastSent   time.Time
	resolvedAt time.Time // zero while firing
	seen       uint64    // evaluation that last mentioned it
}

// deliveredLabels are the labels sent for an alert: its own, plus
// alertname, severity, rule and kind from its fields when missing; empty
// values are left out (Prometheus: an empty label is no label).
func deliveredLabels(a *Alert) map[string]string {
	l := make(map[string]string, len(a.Labels)+4)
	for k, v := range a.Labels {
		if v != "" {
			l[labelName(k)] = strings.ToValidUTF8(v, "\uFFFD")
		}
	}
	fill := func(k, v string) {
		if _, ok := l[k]; !ok && v != "" {
			l[k] = v
		}
	}
	fill("alertname", a.Rule)
	fill("alertname", a.Kind)
	fill("severity", a.Severity)
	fill("rule", a.Rule)
	fill("kind", a.Kind)
	fill("alertname", "vmflow") // Alertmanager refuses an alert without labels
	return l
}

// labelName makes k a valid Prometheus label name (Alertmanager rejects
// the whole post otherwise): other characters become '_'.
func labelName(k string) string {
	if validLabelName(k) {
		return k
	}
	b := []byte(k)
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// deliveredAnnotations are the alert's annotations plus value and peak
// (formatted) when the engine did not set them.
func deliveredAnnotations(a *Alert) map[string]string {
	an := make(map[string]string, len(a.Annotations)+2)
	for k, v := range a.Annotations {
		an[labelName(k)] = strings.ToValidUTF8(v, "\uFFFD")
	}
	if _, ok := an["value"]; !ok {
		an["value"] = formatValue(a.Value)
	}
	if _, ok := an["peak"]; !ok && a.Peak != 0 {
		an["peak"] = formatValue(a.Peak)
	}
	return an
}

func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// absURL makes a relative link absolute against base ("" leaves it).
func absURL(base, link string) string {
	if base == "" || link == "" {
		return link
	}
	u, err := url.Parse(link)
	if err != nil || u.IsAbs() {
		return link
	}
	b, err := url.Parse(base)
	if err != nil {
		return link
	}
	if !strings.HasSuffix(b.Path, "/") {
		b.Path += "/"
	}
	return b.ResolveReference(&url.URL{Path: strings.TrimPrefix(u.Path, "/"), RawQuery: u.RawQuery, Fragment: u.Fragment}).String()
}

// toAM maps an alert to Alertmanager's shape. A firing alert expires at
// expiry unless re-sent; a resolved one ends at its EndsAt.
func (d *Notifier) toAM(a *Alert, resolvedAt, expiry time.Time) amAlert {
	out := amAlert{
		Labels:       deliveredLabels(a),
		Annotations:  deliveredAnnotations(a),
		StartsAt:     a.StartsAt.UTC(),
		GeneratorURL: absURL(d.cfg.ExternalURL, a.GeneratorURL),
	}
	if resolvedAt.IsZero() {
		out.EndsAt = expiry.UTC()
	} else {
		out.EndsAt = resolvedAt.UTC()
	}
	return out
}

// amExpiry is how long Alertmanager keeps a firing alert that is not
// re-sent: 4 × max(window, resend interval), as Prometheus.
func (d *Notifier) amExpiry() time.Duration {
	return 4 * max(d.cfg.Window, d.cfg.Alertmanager.ResendInterval)
}

// amSelect updates the Alertmanager state with one evaluation and returns
// the alerts to post now. Called with d.mu held.
func (d *Notifier) amSelect(now time.Time, gen uint64, alerts []Alert) []amAlert {
	resend := d.cfg.Alertmanager.ResendInterval
	// tolerance: evaluations a few ms early still count as a full interval
	due := func(last time.Time) bool { return last.IsZero() || now.Sub(last)+resend/20 >= resend }
	var out []amAlert
	expiry := now.Add(d.amExpiry())
	for i := range alerts {
		a := &alerts[i]
		if !deliverable(a) {
			continue
		}
		e := d.amMap[a.Fingerprint]
		switch a.State {
		case StateFiring:
			if e == nil || !e.resolvedAt.IsZero() {
				e = &amEntry{}
				d.amMap[a.Fingerprint] = e
			}
			e.seen = gen
			if due(e.lastSent) {
				e.lastSent = now
				// kept only when posted: the copy is not needed in between
				keep(&e.alert, a)
				out = append(out, d.toAM(&e.alert, time.Time{}, expiry))
			}
		case StateResolved:
			end := a.EndsAt
			if end.IsZero() {
				end = now
			}
			if e == nil {
				e = &amEntry{}
				d.amMap[a.Fingerprint] = e
			}
			first := e.resolvedAt.IsZero()
			keep(&e.alert, a)
			e.seen, e.resolvedAt = gen, end
			if first || due(e.lastSent) {
				e.lastSent = now
				out = append(out, d.toAM(&e.alert, end, expiry))
			}
		}
	}
	for fp, e := range d.amMap {
		if e.seen == gen {
			continue
		}
		if e.resolvedAt.IsZero() {
			// no longer handed over (silenced or inhibited in vmflow, rule
			// removed): stop re-sending; Alertmanager expires it at endsAt
			delete(d.amMap, fp)
			continue
		}
		if now.Sub(e.resolvedAt) > resolvedRetention {
			delete(d.amMap, fp)
			continue
		}
		if due(e.lastSent) {
			e.lastSent = now
			out = append(out, d.toAM(&e.alert, e.resolvedAt, expiry))
		}
	}
	return out
}

// amSender posts to one Alertmanager.
type amSender struct {
	url    string // .../api/v2/alerts
	token  string
	client *http.Client
}

func newAMSender(base, token string, client *http.Client) *amSender {
	return &amSender{url: strings.TrimRight(base, "/") + "/api/v2/alerts", token: token, client: client}
}

func (s *amSender) deliver(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vmflow")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	return doHTTP(s.client, req)
}

// doHTTP sends req: 2xx is success, 4xx (but 408 and 429) is permanent,
// anything else is retried.
func doHTTP(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("%s %s: status %d: %s", req.Method, req.URL.Redacted(), resp.StatusCode, bytes.TrimSpace(msg))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return permanent(err)
	}
	return err
}

func encodeAM(alerts []amAlert) ([]byte, error) { return json.Marshal(alerts) }
