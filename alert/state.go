package alert

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vmflow/vmflow/alert/notify"
	"github.com/vmflow/vmflow/internal/hashmix"
)

// Alert states.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// active is one alert (rule + subject) that is pending or firing.
type active struct {
	fp       uint64
	rule     *Rule
	state    string
	count    int // consecutive windows the fire condition held (pending)
	quiet    int // windows without the subject (new_peer hold)
	seen     uint64
	activeAt time.Time // first window of the condition
	startsAt time.Time // firing since
	lastEval time.Time
	value    float64
	peak     float64
	limit    float64 // threshold, or baseline upper/lower edge
	baseline float64 // learned level (baseline rules), else 0
	labels   map[string]string
	summary  string
	link     string
}

// AlertView is an alert as the API shows it.
type AlertView struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Kind        string            `json:"kind"`
	Severity    string            `json:"severity"`
	State       string            `json:"state"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	ActiveAt    time.Time         `json:"active_at"`
	StartsAt    time.Time         `json:"starts_at,omitzero"`
	EndsAt      time.Time         `json:"ends_at,omitzero"`
	LastEval    time.Time         `json:"last_eval"`
	Value       float64           `json:"value"`
	Peak        float64           `json:"peak"`
	Threshold   float64           `json:"threshold"`
	Baseline    float64           `json:"baseline,omitempty"`
	Link        string            `json:"link"`
	Silenced    bool              `json:"silenced"`
	Inhibited   bool              `json:"inhibited"`
}

func fpString(fp uint64) string { return fmt.Sprintf("%016x", fp) }

func (a *active) view(ends time.Time, state string) AlertView {
	v := AlertView{
		Fingerprint: fpString(a.fp), Rule: a.rule.Name(), Kind: a.rule.kind, Severity: a.rule.Severity(),
		State: state, Labels: a.labels, ActiveAt: a.activeAt, StartsAt: a.startsAt, EndsAt: ends,
		LastEval: a.lastEval, Value: a.value, Peak: a.peak, Threshold: a.limit, Baseline: a.baseline, Link: a.link,
	}
	v.Annotations = a.annotations()
	return v
}

func (a *active) annotations() map[string]string {
	m := map[string]string{
		"summary": a.summary,
		"value":   fmtNum(a.value),
		"peak":    fmtNum(a.peak),
		"link":    a.link,
	}
	if a.rule.kind == KindBaseline {
		m["baseline"] = fmtNum(a.baseline)
		m["threshold"] = fmtNum(a.limit)
	} else {
		m["threshold"] = fmtNum(a.limit)
	}
	m["description"] = fmt.Sprintf("%s: %s (rule %s, %s)", a.rule.Severity(), a.summary, a.rule.Name(), a.rule.kind)
	return m
}

func fmtNum(v float64) string {
	av := v
	if av < 0 {
		av = -av
	}
	switch {
	case av >= 1e9:
		return fmt.Sprintf("%.3gG", v/1e9)
	case av >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case av >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case av == float64(int64(av)):
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.3g", v)
}

func (v AlertView) toNotify() notify.Alert {
	st := notify.StateFiring
	if v.State == StateResolved {
		st = notify.StateResolved
	}
	return notify.Alert{
		Fingerprint: v.Fingerprint, Rule: v.Rule, Kind: v.Kind, Severity: v.Severity, State: st,
		Labels: v.Labels, Annotations: v.Annotations, StartsAt: v.StartsAt, EndsAt: v.EndsAt,
		Value: v.Value, Peak: v.Peak, GeneratorURL: v.Link, Silenced: v.Silenced, Inhibited: v.Inhibited,
	}
}

// Matcher matches one label, as in Alertmanager: equal or regular
// expression (anchored), or their negations.
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual,omitempty"` // default true
	re      *regexp.Regexp
}

func (m *Matcher) compile() error {
	if !labelName.MatchString(m.Name) {
		return fmt.Errorf("matcher name %q is not a label name", m.Name)
	}
	if m.IsRegex {
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return fmt.Errorf("matcher %s: %w", m.Name, err)
		}
		m.re = re
	}
	return nil
}

func (m *Matcher) matches(labels map[string]string) bool {
	v := labels[m.Name]
	var ok bool
	if m.re != nil {
		ok = m.re.MatchString(v)
	} else {
		ok = v == m.Value
	}
	if m.IsEqual != nil && !*m.IsEqual {
		return !ok
	}
	return ok
}

// Silence mutes the alerts whose labels match all its matchers between
// StartsAt and EndsAt.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	// State is active, pending (StartsAt in the future) or expired.
	State string `json:"state"`
}

// MaxSilences bounds the silences kept (expired ones are dropped first).
const MaxSilences = 10000

func (s *Silence) validate(now time.Time) error {
	var errs []error
	if len(s.Matchers) == 0 {
		errs = append(errs, errors.New("matchers: at least one required"))
	}
	allNegOrEmpty := true
	for i := range s.Matchers {
		if err := s.Matchers[i].compile(); err != nil {
			errs = append(errs, fmt.Errorf("matchers[%d]: %w", i, err))
		}
		m := s.Matchers[i]
		if (m.IsEqual == nil || *m.IsEqual) && !(m.re != nil && m.re.MatchString("")) && !(m.re == nil && m.Value == "") {
			allNegOrEmpty = false
		}
	}
	if len(s.Matchers) > 0 && allNegOrEmpty {
		errs = append(errs, errors.New("matchers: at least one must not match the empty string (it would silence everything)"))
	}
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	if s.EndsAt.IsZero() {
		errs = append(errs, errors.New("endsAt: required"))
	} else if !s.EndsAt.After(s.StartsAt) {
		errs = append(errs, errors.New("endsAt: must be after startsAt"))
	} else if !s.EndsAt.After(now) {
		errs = append(errs, errors.New("endsAt: already in the past"))
	}
	if strings.TrimSpace(s.Comment) == "" {
		errs = append(errs, errors.New("comment: required"))
	}
	if len(s.Comment) > 4096 || len(s.CreatedBy) > 256 {
		errs = append(errs, errors.New("comment or createdBy too long"))
	}
	return errors.Join(errs...)
}

func (s *Silence) activeAt(t time.Time) bool { return !t.Before(s.StartsAt) && t.Before(s.EndsAt) }

func (s *Silence) matches(labels map[string]string) bool {
	for i := range s.Matchers {
		if !s.Matchers[i].matches(labels) {
			return false
		}
	}
	return true
}

func (s Silence) withState(now time.Time) Silence {
	switch {
	case !now.Before(s.EndsAt):
		s.State = "expired"
	case now.Before(s.StartsAt):
		s.State = "pending"
	default:
		s.State = "active"
	}
	return s
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AlertFilter selects alerts for the API ("" = any).
type AlertFilter struct {
	State, Severity, Tenant, VM string
}

func (f AlertFilter) match(v *AlertView) bool {
	if f.State != "" && v.State != f.State {
		return false
	}
	if f.Severity != "" && !strings.EqualFold(v.Severity, f.Severity) {
		return false
	}
	if f.Tenant != "" && v.Labels["tenant"] != f.Tenant && v.Labels["src_tenant"] != f.Tenant && v.Labels["dst_tenant"] != f.Tenant {
		return false
	}
	if f.VM != "" && v.Labels["vm"] != f.VM && v.Labels["src"] != f.VM && v.Labels["dst"] != f.VM && v.Labels["peer"] != f.VM {
		return false
	}
	return true
}

func sortViews(vs []AlertView) {
	sort.SliceStable(vs, func(i, j int) bool {
		ti, tj := vs[i].latest(), vs[j].latest()
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		return vs[i].Fingerprint < vs[j].Fingerprint
	})
}

// latest is when the alert last changed state.
func (v *AlertView) latest() time.Time {
	switch {
	case !v.EndsAt.IsZero():
		return v.EndsAt
	case !v.StartsAt.IsZero():
		return v.StartsAt
	}
	return v.ActiveAt
}

// Hashing. Identities that survive restarts are hashed from names and
// addresses (VM ids are process-local).
func hashString(s string) uint64 { return xxhash.Sum64String(s) }

func combine(a, b uint64) uint64 { return hashmix.Mix64(a*0x9e3779b97f4a7c15 ^ b) }

// Matches tells whether the filter selects v (the API's tenant views
// filter masked alerts with it).
func (f AlertFilter) Matches(v *AlertView) bool { return f.match(v) }
