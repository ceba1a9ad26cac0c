package alert

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vmflow/vmflow/aggregate"
)

// DefaultRules is the built-in rule pack, used when alert.rules_file is "".
//
//go:embed default_rules.yaml
var DefaultRules []byte

// File is a rules file: a list of rules (see README "Alerts").
type File struct {
	Rules []RuleSpec `yaml:"rules"`
}

// RuleSpec is one rule as written in the rules file. Which parameters a
// rule takes depends on its kind; a parameter the kind does not take is an
// error.
type RuleSpec struct {
	Name     string `yaml:"name" json:"name"`
	Kind     string `yaml:"kind" json:"kind"`
	Severity string `yaml:"severity" json:"severity"`
	Disabled bool   `yaml:"disabled" json:"disabled,omitempty"`
	// Subject and Signal for threshold and baseline rules.
	Subject string `yaml:"subject" json:"subject,omitempty"`
	Signal  string `yaml:"signal" json:"signal,omitempty"`
	// For is the number of consecutive windows the condition must hold
	// before the alert fires (default 1).
	For *int `yaml:"for" json:"for,omitempty"`
	// Threshold fires, Clear resolves (hysteresis; default = Threshold).
	Threshold *float64 `yaml:"threshold" json:"threshold,omitempty"`
	Clear     *float64 `yaml:"clear" json:"clear,omitempty"`
	// Op: above (default) or below (threshold rules).
	Op string `yaml:"op" json:"op,omitempty"`
	// Baseline parameters.
	Alpha       *float64 `yaml:"alpha" json:"alpha,omitempty"`
	Deviations  *float64 `yaml:"deviations" json:"deviations,omitempty"`
	MinRelative *float64 `yaml:"min_relative" json:"min_relative,omitempty"`
	MinAbsolute *float64 `yaml:"min_absolute" json:"min_absolute,omitempty"`
	Warmup      *int     `yaml:"warmup" json:"warmup,omitempty"`
	Direction   string   `yaml:"direction" json:"direction,omitempty"`
	// fan_out: by peers, ports or flows; flows with MaxBytesPerFlow.
	By              string   `yaml:"by" json:"by,omitempty"`
	MaxBytesPerFlow *float64 `yaml:"max_bytes_per_flow" json:"max_bytes_per_flow,omitempty"`
	// failing_connections: minimum share of SYNs left unanswered.
	Ratio *float64 `yaml:"ratio" json:"ratio,omitempty"`
	// new_peer: learning period; Hold: quiet windows before resolving.
	Learning *time.Duration `yaml:"learning" json:"learning,omitempty"`
	Hold     *int           `yaml:"hold" json:"hold,omitempty"`
	// pair_absent: required pairs "SRC -> DST" (VM names or IPs).
	Pairs []string `yaml:"pairs" json:"pairs,omitempty"`
	// exporter_silent: windows without a datagram.
	Windows *int `yaml:"windows" json:"windows,omitempty"`
	// self_drops: metric names (regular expression).
	Metrics string `yaml:"metrics" json:"metrics,omitempty"`

	Labels  map[string]string `yaml:"labels" json:"labels,omitempty"`
	Summary string            `yaml:"summary" json:"summary,omitempty"`
	Match   Filter            `yaml:"match" json:"match,omitzero"`
	Exclude Exclusion         `yaml:"exclude" json:"exclude,omitzero"`

	line  int
	lines map[string]int
}

// Filter selects the subjects a rule watches. Lists match any of their
// values; a pair matches tenant/host/vm when either side does.
type Filter struct {
	Tenant   []string `yaml:"tenant" json:"tenant,omitempty"`
	Host     []string `yaml:"host" json:"host,omitempty"`
	VM       []string `yaml:"vm" json:"vm,omitempty"` // shell patterns (path.Match)
	Protocol []string `yaml:"protocol" json:"protocol,omitempty"`
	Port     []int    `yaml:"port" json:"port,omitempty"`
	Source   string   `yaml:"source" json:"source,omitempty"`
	lines    map[string]int
}

// Exclusion removes subjects from a rule.
type Exclusion struct {
	VM    []string `yaml:"vm" json:"vm,omitempty"`
	Pair  []string `yaml:"pair" json:"pair,omitempty"`
	CIDR  []string `yaml:"cidr" json:"cidr,omitempty"`
	Port  []int    `yaml:"port" json:"port,omitempty"`
	lines map[string]int
}

// UnmarshalYAML decodes strictly and keeps the line of every key.
func (r *RuleSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain RuleSpec
	lines, err := strictKeys(n, reflect.TypeOf(plain{}), "rule")
	if err != nil {
		return err
	}
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*r = RuleSpec(p)
	r.line, r.lines = n.Line, lines
	return nil
}

// UnmarshalYAML decodes strictly.
func (f *Filter) UnmarshalYAML(n *yaml.Node) error {
	type plain Filter
	lines, err := strictKeys(n, reflect.TypeOf(plain{}), "match")
	if err != nil {
		return err
	}
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*f = Filter(p)
	f.lines = lines
	return nil
}

// UnmarshalYAML decodes strictly.
func (e *Exclusion) UnmarshalYAML(n *yaml.Node) error {
	type plain Exclusion
	lines, err := strictKeys(n, reflect.TypeOf(plain{}), "exclude")
	if err != nil {
		return err
	}
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*e = Exclusion(p)
	e.lines = lines
	return nil
}

// strictKeys refuses keys that t has no yaml tag for, and duplicates.
func strictKeys(n *yaml.Node, t reflect.Type, what string) (map[string]int, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: %s must be a mapping", n.Line, what)
	}
	known := map[string]bool{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			known[tag] = true
			names = append(names, tag)
		}
	}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			return nil, fmt.Errorf("line %d: unknown key %q in %s (known: %s)", k.Line, k.Value, what, strings.Join(names, ", "))
		}
		if _, dup := lines[k.Value]; dup {
			return nil, fmt.Errorf("line %d: key %q given twice in %s", k.Line, k.Value, what)
		}
		lines[k.Value] = k.Line
	}
	return lines, nil
}

// Kinds of rules.
const (
	KindThreshold   = "threshold"
	KindBaseline    = "baseline"
	KindNewPeer     = "new_peer"
	KindFanOut      = "fan_out"
	KindFanIn       = "fan_in"
	KindFailing     = "failing_connections"
	KindRSTStorm    = "rst_storm"
	KindICMPBurst   = "icmp_unreachable"
	KindPairAbsent  = "pair_absent"
	KindExpSilent   = "exporter_silent"
	KindSelfDrops   = "self_drops"
	subjectPair     = "pair"
	subjectVM       = "vm"
	subjectExporter = "exporter"
	subjectSelf     = "self"
)

// Kinds lists every rule kind.
var Kinds = []string{KindThreshold, KindBaseline, KindNewPeer, KindFanOut, KindFanIn, KindFailing,
	KindRSTStorm, KindICMPBurst, KindPairAbsent, KindExpSilent, KindSelfDrops}

// Signals by subject.
var (
	pairSignals = []string{"bytes", "packets", "bps", "pps", "flows", "syn", "synack", "syn_unanswered", "rst", "rst_in", "icmp_errors",
		"conn_failure", "conn_failure_lo", "conn_refused"}
	vmSignals = []string{"tx_bytes", "rx_bytes", "tx_bps", "rx_bps", "tx_pps", "rx_pps", "peers", "sources", "dst_ports", "flows",
		"port_in_errors", "port_out_errors", "port_in_discards", "port_out_discards", "port_errors", "port_in_util", "port_out_util"}
	expSignals = []string{"datagrams", "lost_datagrams", "decode_errors", "silent_windows"}
)

// params each kind accepts besides the common ones.
var kindParams = map[string][]string{
	KindThreshold:  {"subject", "signal", "for", "threshold", "clear", "op"},
	KindBaseline:   {"subject", "signal", "for", "alpha", "deviations", "min_relative", "min_absolute", "warmup", "direction"},
	KindNewPeer:    {"learning", "hold"},
	KindFanOut:     {"by", "for", "threshold", "clear", "max_bytes_per_flow"},
	KindFanIn:      {"for", "threshold", "clear"},
	KindFailing:    {"for", "threshold", "ratio"},
	KindRSTStorm:   {"for", "threshold", "clear"},
	KindICMPBurst:  {"for", "threshold", "clear"},
	KindPairAbsent: {"pairs", "for"},
	KindExpSilent:  {"windows"},
	KindSelfDrops:  {"metrics", "for", "threshold"},
}

var commonKeys = []string{"name", "kind", "severity", "disabled", "labels", "summary", "match", "exclude"}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ParseRules reads a rules file strictly. Errors name the line. An empty
// rule list is valid (no alerts).
func ParseRules(data []byte) ([]*Rule, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var errs []error
	seen := map[string]int{}
	out := make([]*Rule, 0, len(f.Rules))
	for i := range f.Rules {
		s := f.Rules[i]
		if l, dup := seen[s.Name]; dup && s.Name != "" {
			errs = append(errs, fmt.Errorf("line %d: rule name %q already used at line %d", s.lineOf("name"), s.Name, l))
			continue
		}
		seen[s.Name] = s.line
		r, err := compile(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return out, nil
}

func (s *RuleSpec) lineOf(key string) int {
	if l, ok := s.lines[key]; ok {
		return l
	}
	return s.line
}

// Rule is a compiled rule.
type Rule struct {
	Spec RuleSpec

	kind      string
	subject   string
	signal    string
	latency   bool // a latency signal: evaluated on the probe's pairs (latency.go)
	sevRank   int
	forN      int
	thr, clr  float64
	below     bool
	ratio     float64
	maxBPF    float64
	alpha     float64
	k         float64
	minRel    float64
	minAbs    float64
	warmup    int
	dir       int // +1 up, -1 down, 0 both
	learning  time.Duration
	hold      int
	windows   int
	metrics   *regexp.Regexp
	required  [][2]string
	source    string // "" = engine default
	nameHash  uint64
	flt       compiledFilter
	summaryTp string
}

type compiledFilter struct {
	tenant, host map[string]bool
	vm           []string
	protoMask    uint8 // 1 tcp, 2 udp, 4 icmp, 8 other
	ports        map[uint16]bool
	exVM         []string
	exPair       map[[2]string]bool
	exCIDR       []netip.Prefix
	exPort       map[uint16]bool
}

func (f *compiledFilter) pairScoped() bool {
	return f.protoMask != 0 || len(f.ports) > 0 || len(f.exPair) > 0 || len(f.exCIDR) > 0 || len(f.exPort) > 0
}

func compile(s RuleSpec) (*Rule, error) {
	fail := func(key, format string, args ...any) error {
		return fmt.Errorf("line %d (rule %q): %s: %s", s.lineOf(key), s.Name, key, fmt.Sprintf(format, args...))
	}
	if s.Name == "" {
		return nil, fail("name", "required")
	}
	if !labelName.MatchString(strings.ReplaceAll(s.Name, "-", "_")) {
		return nil, fail("name", "must be letters, digits, '_' or '-', got %q", s.Name)
	}
	allowed, ok := kindParams[s.Kind]
	if !ok {
		return nil, fail("kind", "must be one of %s, got %q", strings.Join(Kinds, ", "), s.Kind)
	}
	for key := range s.lines {
		if !slices.Contains(commonKeys, key) && !slices.Contains(allowed, key) {
			return nil, fail(key, "not a parameter of kind %s (it takes: %s)", s.Kind, strings.Join(allowed, ", "))
		}
	}
	r := &Rule{Spec: s, kind: s.Kind, forN: 1, nameHash: hashString(s.Name)}
	rank, ok := severityRank(s.Severity)
	if !ok {
		return nil, fail("severity", "must be P0, P1, P2, P3 or P4, got %q", s.Severity)
	}
	r.sevRank = rank
	for k := range s.Labels {
		if !labelName.MatchString(k) {
			return nil, fail("labels", "label name %q is not a valid label name", k)
		}
		switch k {
		case "alertname", "severity", "rule", "kind", "tenant", "host", "vm", "src", "dst", "exporter", "peer":
			return nil, fail("labels", "label %q is set by vmflow", k)
		}
	}
	if s.For != nil {
		if *s.For < 1 || *s.For > 10000 {
			return nil, fail("for", "must be 1..10000 windows, got %d", *s.For)
		}
		r.forN = *s.For
	}
	pos := func(key string, p *float64, def float64, min float64) (float64, error) {
		if p == nil {
			return def, nil
		}
		if *p < min || *p != *p {
			return 0, fail(key, "must be >= %v, got %v", min, *p)
		}
		return *p, nil
	}
	needThr := func(def float64, hasDef bool) error {
		if s.Threshold == nil && !hasDef {
			return fail("threshold", "required for kind %s", s.Kind)
		}
		var err error
		if r.thr, err = pos("threshold", s.Threshold, def, 0); err != nil {
			return err
		}
		r.clr = r.thr
		if s.Clear != nil {
			r.clr = *s.Clear
			if r.below && r.clr < r.thr || !r.below && r.clr > r.thr {
				return fail("clear", "must be on the normal side of threshold %v (hysteresis), got %v", r.thr, r.clr)
			}
		}
		return nil
	}
	var err error
	switch s.Kind {
	case KindThreshold:
		r.subject = s.Subject
		switch s.Op {
		case "", "above":
		case "below":
			r.below = true
		default:
			return nil, fail("op", "must be above or below, got %q", s.Op)
		}
		if err := r.checkSignal(s, fail, true); err != nil {
			return nil, err
		}
		if err := needThr(0, false); err != nil {
			return nil, err
		}
	case KindBaseline:
		r.subject = s.Subject
		if err := r.checkSignal(s, fail, false); err != nil {
			return nil, err
		}
		if r.alpha, err = pos("alpha", s.Alpha, 0.05, 0); err != nil {
			return nil, err
		}
		if r.alpha <= 0 || r.alpha > 1 {
			return nil, fail("alpha", "must be in (0, 1], got %v", r.alpha)
		}
		if r.k, err = pos("deviations", s.Deviations, 6, 0); err != nil {
			return nil, err
		}
		if r.minRel, err = pos("min_relative", s.MinRelative, 1, 0); err != nil {
			return nil, err
		}
		if r.minAbs, err = pos("min_absolute", s.MinAbsolute, 0, 0); err != nil {
			return nil, err
		}
		r.warmup = 30
		if s.Warmup != nil {
			if *s.Warmup < 1 || *s.Warmup > 100000 {
				return nil, fail("warmup", "must be 1..100000 windows, got %d", *s.Warmup)
			}
			r.warmup = *s.Warmup
		}
		switch s.Direction {
		case "", "up":
			r.dir = 1
		case "down":
			r.dir = -1
		case "both":
			r.dir = 0
		default:
			return nil, fail("direction", "must be up, down or both, got %q", s.Direction)
		}
	case KindNewPeer:
		r.subject = subjectVM
		r.learning = time.Hour
		if s.Learning != nil {
			if *s.Learning < 0 {
				return nil, fail("learning", "must be >= 0, got %s", *s.Learning)
			}
			r.learning = *s.Learning
		}
		r.hold = 3
		if s.Hold != nil {
			if *s.Hold < 1 || *s.Hold > 10000 {
				return nil, fail("hold", "must be 1..10000 windows, got %d", *s.Hold)
			}
			r.hold = *s.Hold
		}
	case KindFanOut:
		r.subject = subjectVM
		switch s.By {
		case "", "peers":
			r.signal = "peers"
		case "ports":
			r.signal = "dst_ports"
		case "flows":
			r.signal = "flows"
		default:
			return nil, fail("by", "must be peers, ports or flows, got %q", s.By)
		}
		if s.MaxBytesPerFlow != nil && r.signal != "flows" {
			return nil, fail("max_bytes_per_flow", "only with by: flows")
		}
		if r.maxBPF, err = pos("max_bytes_per_flow", s.MaxBytesPerFlow, 0, 0); err != nil {
			return nil, err
		}
		if err := needThr(0, false); err != nil {
			return nil, err
		}
	case KindFanIn:
		r.subject, r.signal = subjectVM, "sources"
		if err := needThr(0, false); err != nil {
			return nil, err
		}
	case KindFailing:
		r.subject, r.signal = subjectPair, "syn_unanswered"
		if err := needThr(10, true); err != nil {
			return nil, err
		}
		if r.ratio, err = pos("ratio", s.Ratio, 0.5, 0); err != nil {
			return nil, err
		}
		if r.ratio > 1 {
			return nil, fail("ratio", "must be 0..1, got %v", r.ratio)
		}
	case KindRSTStorm:
		r.subject, r.signal = subjectPair, "rst"
		if err := needThr(0, false); err != nil {
			return nil, err
		}
	case KindICMPBurst:
		r.subject, r.signal = subjectPair, "icmp_errors"
		if err := needThr(0, false); err != nil {
			return nil, err
		}
	case KindPairAbsent:
		r.subject, r.signal, r.forN = subjectPair, "bytes", 3
		if s.For != nil {
			r.forN = *s.For
		}
		if len(s.Pairs) == 0 {
			return nil, fail("pairs", "required: a list of \"SRC -> DST\"")
		}
		for _, p := range s.Pairs {
			a, b, ok := splitPair(p)
			if !ok {
				return nil, fail("pairs", "want \"SRC -> DST\", got %q", p)
			}
			r.required = append(r.required, [2]string{a, b})
		}
	case KindExpSilent:
		r.subject, r.signal, r.windows = subjectExporter, "silent_windows", 3
		if s.Windows != nil {
			if *s.Windows < 1 || *s.Windows > 100000 {
				return nil, fail("windows", "must be 1..100000, got %d", *s.Windows)
			}
			r.windows = *s.Windows
		}
		r.thr, r.clr = float64(r.windows), float64(r.windows)
	case KindSelfDrops:
		r.subject, r.signal = subjectSelf, "increase"
		re := `^vmflow_.*(dropped|drops|overflow).*_total$`
		if s.Metrics != "" {
			re = s.Metrics
		}
		if r.metrics, err = regexp.Compile(re); err != nil {
			return nil, fail("metrics", "bad regular expression: %v", err)
		}
		if err := needThr(0, true); err != nil {
			return nil, err
		}
	}
	if err := r.compileFilter(s, fail); err != nil {
		return nil, err
	}
	r.summaryTp = s.Summary
	return r, nil
}

func (r *Rule) checkSignal(s RuleSpec, fail func(key, format string, args ...any) error, exporters bool) error {
	var sigs []string
	switch s.Subject {
	case subjectPair:
		sigs = pairSignals
	case subjectVM:
		sigs = vmSignals
	case subjectExporter:
		if !exporters {
			return fail("subject", "must be pair or vm for kind %s, got %q", s.Kind, s.Subject)
		}
		sigs = expSignals
	default:
		if exporters {
			return fail("subject", "must be pair, vm or exporter, got %q", s.Subject)
		}
		return fail("subject", "must be pair or vm, got %q", s.Subject)
	}
	if s.Subject == subjectVM {
		sigs = append(slices.Clip(sigs), resourceSignals...) // resource_signals.go
	}
	if !slices.Contains(sigs, s.Signal) {
		return fail("signal", "must be one of %s for subject %s, got %q", strings.Join(sigs, ", "), s.Subject, s.Signal)
	}
	r.signal = s.Signal
	r.latency = s.Subject == subjectPair && slices.Contains(latencySignals, s.Signal)
	return nil
}

func (r *Rule) compileFilter(s RuleSpec, fail func(key, format string, args ...any) error) error {
	m, x := s.Match, s.Exclude
	at := func(lines map[string]int, key string) string { return key }
	_ = at
	f := &r.flt
	set := func(vals []string) map[string]bool {
		if len(vals) == 0 {
			return nil
		}
		out := map[string]bool{}
		for _, v := range vals {
			out[v] = true
		}
		return out
	}
	f.tenant, f.host = set(m.Tenant), set(m.Host)
	for _, p := range append(slices.Clone(m.VM), x.VM...) {
		if _, err := path.Match(p, ""); err != nil {
			return fail("match", "bad vm pattern %q: %v", p, err)
		}
	}
	f.vm, f.exVM = m.VM, x.VM
	for _, p := range m.Protocol {
		switch strings.ToLower(p) {
		case "tcp":
			f.protoMask |= 1
		case "udp":
			f.protoMask |= 2
		case "icmp":
			f.protoMask |= 4
		case "other":
			f.protoMask |= 8
		default:
			return fail("match", "protocol must be tcp, udp, icmp or other, got %q", p)
		}
	}
	ports := func(key string, vals []int) (map[uint16]bool, error) {
		if len(vals) == 0 {
			return nil, nil
		}
		out := map[uint16]bool{}
		for _, p := range vals {
			if p < 1 || p > 65535 {
				return nil, fail(key, "port must be 1..65535, got %d", p)
			}
			out[uint16(p)] = true
		}
		return out, nil
	}
	var err error
	if f.ports, err = ports("match", m.Port); err != nil {
		return err
	}
	if f.exPort, err = ports("exclude", x.Port); err != nil {
		return err
	}
	switch m.Source {
	case "":
	case aggregate.SelectAuto, aggregate.SelectSFlow, aggregate.SelectIPFIX, aggregate.SelectNetFlow9:
		r.source = m.Source
	default:
		return fail("match", "source must be auto, sflow, ipfix or netflow9, got %q", m.Source)
	}
	for _, p := range x.Pair {
		a, b, ok := splitPair(p)
		if !ok {
			return fail("exclude", "pair: want \"SRC -> DST\", got %q", p)
		}
		if f.exPair == nil {
			f.exPair = map[[2]string]bool{}
		}
		f.exPair[[2]string{a, b}] = true
	}
	for _, c := range x.CIDR {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, err2 := netip.ParseAddr(c)
			if err2 != nil {
				return fail("exclude", "cidr: %v", err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		f.exCIDR = append(f.exCIDR, p.Masked())
	}
	if r.subject != subjectPair && f.pairScoped() {
		return fail("match", "protocol, port and the pair, cidr and port exclusions apply to pair rules only (this rule watches %ss)", r.subject)
	}
	if (r.subject == subjectExporter || r.subject == subjectSelf) && (f.tenant != nil || f.host != nil || f.vm != nil || f.exVM != nil || r.source != "") {
		return fail("match", "filters do not apply to %s rules", r.subject)
	}
	return nil
}

func splitPair(s string) (string, string, bool) {
	a, b, ok := strings.Cut(s, "->")
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	return a, b, ok && a != "" && b != ""
}

func severityRank(s string) (int, bool) {
	if len(s) == 2 && (s[0] == 'P' || s[0] == 'p') && s[1] >= '0' && s[1] <= '4' {
		return int(s[1] - '0'), true
	}
	return 0, false
}

// Severity is "P0".."P4".
func (r *Rule) Severity() string { return "P" + strconv.Itoa(r.sevRank) }

// Name of the rule.
func (r *Rule) Name() string { return r.Spec.Name }

// Kind of the rule.
func (r *Rule) Kind() string { return r.kind }
