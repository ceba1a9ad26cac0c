package decoder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// IPFIX (RFC 7011) and NetFlow v9 (RFC 3954) decoding.
//
// The wire format is parsed here directly: message and set headers, template
// and options template records, and data records through a field table built
// from each validated template. goflow2's decoders/netflow is the
// differential reference in the tests (flow_goflow2_test.go), not the hot
// path: its record decoding allocates per field and it has the hazards listed
// in NOTES.md (a zero-field template followed by data loops forever). Every
// template is validated on arrival (field count, minimum record length > 0,
// limits), so a data set is always consumed by at least one byte per record.

// SamplingRateRule sets the sampling rate of the IPFIX/NetFlow exporters whose
// address is in Exporter (a CIDR, or a bare address) and, when
// ObservationDomain is set, of that observation domain / source id only.
type SamplingRateRule struct {
	Exporter          string  `mapstructure:"exporter" yaml:"exporter"`
	ObservationDomain *uint32 `mapstructure:"observation_domain" yaml:"observation_domain,omitempty"`
	Rate              uint32  `mapstructure:"rate" yaml:"rate"`
}

// FlowConfig configures IPFIX and NetFlow v9 decoding (config key decoder.flow).
type FlowConfig struct {
	// DefaultSamplingRate is used when neither an options record nor a
	// sampling_rates rule gives the rate (counted in
	// vmflow_decoder_sampling_rate_unknown_total).
	DefaultSamplingRate uint32 `mapstructure:"default_sampling_rate" yaml:"default_sampling_rate"`
	// SamplingRates: the first matching rule wins. OVS sends no sampling
	// options, so its rate must be configured here.
	SamplingRates []SamplingRateRule `mapstructure:"sampling_rates" yaml:"sampling_rates"`
	// TemplateLifetime: a template not re-sent for this long is forgotten.
	// 0 keeps templates until withdrawn or replaced.
	TemplateLifetime time.Duration `mapstructure:"template_lifetime" yaml:"template_lifetime"`
	// MaxExporters bounds the (exporter address, version, observation
	// domain) template scopes kept.
	MaxExporters int `mapstructure:"max_exporters" yaml:"max_exporters"`
	// MaxTemplates bounds the templates kept per exporter and domain.
	MaxTemplates int `mapstructure:"max_templates" yaml:"max_templates"`
	// MaxTemplatesTotal bounds the templates kept over all exporters
	// (memory: about 30 bytes per template field).
	MaxTemplatesTotal int `mapstructure:"max_templates_total" yaml:"max_templates_total"`
	// MaxTemplateFields rejects templates with more fields.
	MaxTemplateFields int `mapstructure:"max_template_fields" yaml:"max_template_fields"`
	// MaxRecords bounds the flow records decoded from one datagram; the
	// rest are counted as dropped.
	MaxRecords int `mapstructure:"max_records" yaml:"max_records"`
	// Directions keeps the records whose flowDirection (IE 61) is
	// "ingress", "egress" or "both". OVS exports every sampled packet
	// twice, once at bridge ingress and once per output port (egress), so
	// the default "ingress" counts each packet once. Records without
	// flowDirection are always kept.
	Directions string `mapstructure:"directions" yaml:"directions"`
	// TrustDropped keeps droppedPacketDeltaCount/droppedOctetDeltaCount
	// (IE 133/132). Off by default: OVS 3.1 reports every packet of a flow
	// but the first (the one that went through the slow path) as dropped
	// in its ingress records, although they were delivered (see the
	// ovs-lab-1 capture: 20,014 of 20,015 delivered UDP packets "dropped"),
	// so showing them as drops would be false. Turn it on for exporters
	// whose drop counters are real.
	TrustDropped bool `mapstructure:"trust_dropped" yaml:"trust_dropped"`
	// AssumeOVSTemplates decodes an IPFIX data set whose template is
	// unknown with the template Open vSwitch 3.1 uses for that id, when
	// the set's records fit it exactly (counted in
	// vmflow_decoder_flow_assumed_template_total). OVS re-sends its
	// templates only every 10 minutes, so without this a vmflow that
	// starts or restarts after OVS sent them skips OVS's records for up
	// to 10 minutes. Turn it off for non-OVS IPFIX exporters whose
	// templates could fit OVS's ids by accident.
	AssumeOVSTemplates bool `mapstructure:"assume_ovs_templates" yaml:"assume_ovs_templates"`
}

// DefaultFlowConfig returns the defaults.
func DefaultFlowConfig() FlowConfig {
	return FlowConfig{
		DefaultSamplingRate: 1,
		TemplateLifetime:    30 * time.Minute,
		MaxExporters:        1024,
		MaxTemplates:        512,
		MaxTemplatesTotal:   32768,
		MaxTemplateFields:   256,
		MaxRecords:          4096,
		Directions:          "ingress",
		AssumeOVSTemplates:  true,
	}
}

const flowKeyPrefix = "decoder.flow."

// Validate checks the configuration; errors name the key.
func (c FlowConfig) Validate() error {
	var errs []error
	if c.DefaultSamplingRate < 1 {
		errs = append(errs, fmt.Errorf("%sdefault_sampling_rate: must be >= 1", flowKeyPrefix))
	}
	if c.TemplateLifetime < 0 {
		errs = append(errs, fmt.Errorf("%stemplate_lifetime: must be >= 0", flowKeyPrefix))
	}
	if c.MaxExporters < 1 {
		errs = append(errs, fmt.Errorf("%smax_exporters: must be >= 1", flowKeyPrefix))
	}
	if c.MaxTemplates < 1 {
		errs = append(errs, fmt.Errorf("%smax_templates: must be >= 1", flowKeyPrefix))
	}
	if c.MaxTemplatesTotal < 1 {
		errs = append(errs, fmt.Errorf("%smax_templates_total: must be >= 1", flowKeyPrefix))
	}
	if c.MaxTemplateFields < 1 || c.MaxTemplateFields > 16383 {
		errs = append(errs, fmt.Errorf("%smax_template_fields: must be between 1 and 16383", flowKeyPrefix))
	}
	if c.MaxRecords < 1 {
		errs = append(errs, fmt.Errorf("%smax_records: must be >= 1", flowKeyPrefix))
	}
	if _, ok := parseDirections(c.Directions); !ok {
		errs = append(errs, fmt.Errorf("%sdirections: must be ingress, egress or both, not %q", flowKeyPrefix, c.Directions))
	}
	for i, r := range c.SamplingRates {
		if _, err := parseExporterPrefix(r.Exporter); err != nil {
			errs = append(errs, fmt.Errorf("%ssampling_rates[%d].exporter: invalid CIDR %q", flowKeyPrefix, i, r.Exporter))
		}
		if r.Rate < 1 {
			errs = append(errs, fmt.Errorf("%ssampling_rates[%d].rate: must be >= 1", flowKeyPrefix, i))
		}
	}
	return errors.Join(errs...)
}

func parseDirections(s string) ([2]bool, bool) {
	switch s {
	case "ingress":
		return [2]bool{true, false}, true
	case "egress":
		return [2]bool{false, true}, true
	case "both":
		return [2]bool{true, true}, true
	}
	return [2]bool{}, false
}

func parseExporterPrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

type rateRule struct {
	prefix    netip.Prefix
	hasDomain bool
	domain    uint32
	rate      uint32
}

// domainKey identifies one template scope: templates are per exporter
// address, protocol version and observation domain (NetFlow v9 source id).
type domainKey struct {
	addr    netip.Addr
	version uint16
	domain  uint32
}

type flowDomain struct {
	mu        sync.RWMutex
	templates map[uint16]*flowTemplate
	lastSeen  atomic.Int64
	optRate   atomic.Uint32 // from a sampling options record, 0 if none
	cfgRate   uint32        // from config rules or the default
	cfgKnown  bool          // cfgRate came from a rule
	dead      bool          // swept out of the map (under mu): do not add to it
	// gen changes (under mu) with every change of templates: a Batch's
	// cached template of this scope is valid while gen is unchanged
	gen atomic.Uint64
}

// flowDecoder decodes IPFIX and NetFlow v9. It is safe for concurrent use
// and must be shared by all workers of a protocol, since templates are state.
type flowDecoder struct {
	cfg     FlowConfig
	rules   []rateRule
	keepDir [2]bool // by flowDirection: ingress, egress
	// now is an injectable clock for template expiry (tests); nil: the
	// datagram's receive time (time.Now when not given)
	now func() time.Time

	mu      sync.RWMutex
	domains map[domainKey]*flowDomain
	// scopeGen changes (under mu) whenever a scope is removed: a Batch's
	// cached scopes are valid while it is unchanged
	scopeGen atomic.Uint64

	lastSweep atomic.Int64
	total     atomic.Int64 // templates held, all scopes
	m         flowMetrics
	pm        probeMetrics // probe_decode.go
}

func newFlowDecoder(cfg FlowConfig, reg prometheus.Registerer) (*flowDecoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &flowDecoder{
		cfg:     cfg,
		domains: make(map[domainKey]*flowDomain),
	}
	f.keepDir, _ = parseDirections(cfg.Directions)
	for _, r := range cfg.SamplingRates {
		p, _ := parseExporterPrefix(r.Exporter)
		rr := rateRule{prefix: p, rate: r.Rate}
		if r.ObservationDomain != nil {
			rr.hasDomain, rr.domain = true, *r.ObservationDomain
		}
		f.rules = append(f.rules, rr)
	}
	if err := f.m.init(f, reg); err != nil {
		return nil, err
	}
	if err := f.pm.init(reg); err != nil {
		return nil, err
	}
	return f, nil
}

// Decode decodes one IPFIX (src == SourceIPFIX) or NetFlow v9
// (src == SourceNetFlow9) datagram into b, which it resets first. Templates
// and options are learned; data records become Records. Data sets whose
// template is unknown (or expired) are counted and reported in
// b.Header.Skipped, not errors. A malformed datagram returns an error
// (errors.Is: ErrTruncated, ErrBadVersion, ErrBadLength, ErrMalformed) and b
// may hold what decoded before the fault (see Decoder.Decode for the policy).
func (f *flowDecoder) Decode(src Source, from netip.AddrPort, data []byte, received int64, b *Batch) error {
	b.Reset()
	now := received
	if f.now != nil {
		now = f.now().UnixNano()
	} else if now <= 0 {
		now = time.Now().UnixNano()
	}
	f.maybeSweep(now)
	var err error
	switch src {
	case SourceIPFIX:
		err = f.decodeIPFIX(from, data, received, now, b)
		if err != nil {
			return fmt.Errorf("decode ipfix: %w", err)
		}
	case SourceNetFlow9:
		err = f.decodeNetFlow9(from, data, received, now, b)
		if err != nil {
			return fmt.Errorf("decode netflow9: %w", err)
		}
	default:
		return fmt.Errorf("decode flow: source %v: %w", src, ErrUnknownSource)
	}
	return nil
}

// flowError is a malformed-datagram error with its metric reason.
type flowError struct {
	reason errReason
	msg    string
}

func (e *flowError) Error() string { return e.msg }

// Unwrap maps the reason to the package's error kinds (metrics.go), so that
// errors.Is works and the front's vmflow_decoder_errors_total classifies it.
func (e *flowError) Unwrap() error {
	switch e.reason {
	case errShort, errSetLength, errRecordTruncated:
		return ErrTruncated
	case errVersion:
		return ErrBadVersion
	case errLength:
		return ErrBadLength
	}
	return ErrMalformed
}

func (f *flowDecoder) fail(si int, reason errReason, format string, args ...any) error {
	f.m.errors[si][reason].Inc()
	return &flowError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// msgCtx carries what one message's records need.
type msgCtx struct {
	src        Source
	si         int
	version    uint16
	exporter   netip.Addr
	domain     uint32
	received   int64
	exportNs   int64  // export time, unix ns
	sysUptime  uint32 // NetFlow v9 only
	now        int64
	key        domainKey
	d          *flowDomain
	rate       uint32
	rateKnown  bool
	rateCached bool

	// metric counts, added once per message
	nRecords, nOptions, nRateUnknown, nDirSkipped int
}

const (
	ipfixHeaderLen = 16
	nf9HeaderLen   = 20
)

func (f *flowDecoder) decodeIPFIX(from netip.AddrPort, data []byte, received, now int64, b *Batch) error {
	const si = 0
	if len(data) < ipfixHeaderLen {
		return f.fail(si, errShort, "message of %d bytes is shorter than the header", len(data))
	}
	if v := binary.BigEndian.Uint16(data); v != 10 {
		return f.fail(si, errVersion, "version %d, want 10", v)
	}
	mlen := int(binary.BigEndian.Uint16(data[2:]))
	if mlen < ipfixHeaderLen || mlen > len(data) {
		return f.fail(si, errLength, "message length %d, datagram %d bytes", mlen, len(data))
	}
	data = data[:mlen]
	addr := from.Addr().Unmap()
	c := msgCtx{
		src: SourceIPFIX, si: si, version: 10,
		exporter: addr,
		domain:   binary.BigEndian.Uint32(data[12:]),
		received: received,
		exportNs: int64(binary.BigEndian.Uint32(data[4:])) * 1e9,
		now:      now,
	}
	c.key = domainKey{addr: addr, version: 10, domain: c.domain}
	b.Header = Header{
		Source: SourceIPFIX, Version: 10, Exporter: from, Agent: addr,
		ObsDomain: c.domain, Sequence: binary.BigEndian.Uint32(data[8:]),
	}
	return f.decodeSets(&c, data[ipfixHeaderLen:], b)
}

func (f *flowDecoder) decodeNetFlow9(from netip.AddrPort, data []byte, received, now int64, b *Batch) error {
	const si = 1
	if len(data) < nf9HeaderLen {
		return f.fail(si, errShort, "packet of %d bytes is shorter than the header", len(data))
	}
	if v := binary.BigEndian.Uint16(data); v != 9 {
		return f.fail(si, errVersion, "version %d, want 9", v)
	}
	addr := from.Addr().Unmap()
	c := msgCtx{
		src: SourceNetFlow9, si: si, version: 9,
		exporter:  addr,
		domain:    binary.BigEndian.Uint32(data[16:]),
		received:  received,
		sysUptime: binary.BigEndian.Uint32(data[4:]),
		exportNs:  int64(binary.BigEndian.Uint32(data[8:])) * 1e9,
		now:       now,
	}
	c.key = domainKey{addr: addr, version: 9, domain: c.domain}
	b.Header = Header{
		Source: SourceNetFlow9, Version: 9, Exporter: from, Agent: addr,
		ObsDomain: c.domain, Sequence: binary.BigEndian.Uint32(data[12:]),
		Uptime: c.sysUptime,
	}
	return f.decodeSets(&c, data[nf9HeaderLen:], b)
}

// decodeSets walks the sets (FlowSets) of one message.
func (f *flowDecoder) decodeSets(c *msgCtx, body []byte, b *Batch) error {
	err := f.walkSets(c, body, b)
	f.count(c, b)
	return err
}

func (f *flowDecoder) walkSets(c *msgCtx, body []byte, b *Batch) error {
	c.d = f.scopeOf(c.key, b)
	if c.d != nil && c.now > c.d.lastSeen.Load() {
		// a store only when the clock moved (datagrams of one read
		// batch share their receive time)
		c.d.lastSeen.Store(c.now)
	}
	tmplSet, optSet := uint16(2), uint16(3)
	if c.version == 9 {
		tmplSet, optSet = 0, 1
	}
	var err error
	for len(body) > 0 {
		if len(body) < 4 {
			if c.version == 9 && flowAllZero(body) {
				break // trailing padding
			}
			return f.fail(c.si, errSetLength, "%d trailing bytes after the last set", len(body))
		}
		id := binary.BigEndian.Uint16(body)
		slen := int(binary.BigEndian.Uint16(body[2:]))
		if slen < 4 || slen > len(body) {
			return f.fail(c.si, errSetLength, "set %d: length %d, %d bytes left", id, slen, len(body))
		}
		set := body[4:slen]
		body = body[slen:]
		switch {
		case id == tmplSet:
			err = f.templateSet(c, set, false)
		case id == optSet:
			err = f.templateSet(c, set, true)
		case id >= 256:
			err = f.dataSet(c, id, set, b)
		default:
			f.m.errors[c.si][errReservedSet].Inc()
			b.Header.Skipped++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func flowAllZero(p []byte) bool {
	for _, v := range p {
		if v != 0 {
			return false
		}
	}
	return true
}

// domain returns the template scope for k, or nil.
func (f *flowDecoder) domain(k domainKey) *flowDomain {
	f.mu.RLock()
	d := f.domains[k]
	f.mu.RUnlock()
	return d
}

// domainForTemplates returns the template scope for c.key, creating it
// within the exporter limit (nil when refused).
func (f *flowDecoder) domainForTemplates(c *msgCtx) *flowDomain {
	if c.d != nil {
		return c.d
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.domains[c.key]; d != nil {
		c.d = d
		return d
	}
	if len(f.domains) >= f.cfg.MaxExporters {
		return nil
	}
	d := &flowDomain{templates: make(map[uint16]*flowTemplate)}
	d.lastSeen.Store(c.now)
	d.cfgRate, d.cfgKnown = f.configuredRate(c.exporter, c.domain)
	f.domains[c.key] = d
	c.d = d
	return d
}

func (f *flowDecoder) configuredRate(addr netip.Addr, domain uint32) (uint32, bool) {
	for _, r := range f.rules {
		if r.prefix.Contains(addr) && (!r.hasDomain || r.domain == domain) {
			return r.rate, true
		}
	}
	return f.cfg.DefaultSamplingRate, false
}

func (f *flowDecoder) expired(t *flowTemplate, now int64) bool {
	lt := int64(f.cfg.TemplateLifetime)
	return lt > 0 && now-t.lastSeen.Load() > lt
}

// maybeSweep drops expired templates and idle empty scopes, at most every
// sweep interval (a quarter of the lifetime, between 1 s and 1 min).
func (f *flowDecoder) maybeSweep(now int64) {
	lt := int64(f.cfg.TemplateLifetime)
	if lt <= 0 {
		return
	}
	every := min(max(lt/4, int64(time.Second)), int64(time.Minute))
	last := f.lastSweep.Load()
	if last == 0 {
		f.lastSweep.CompareAndSwap(0, now)
		return
	}
	if now-last < every || !f.lastSweep.CompareAndSwap(last, now) {
		return
	}
	f.sweep(now)
}

func (f *flowDecoder) sweep(now int64) {
	lt := int64(f.cfg.TemplateLifetime)
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, d := range f.domains {
		si := 0
		if k.version == 9 {
			si = 1
		}
		d.mu.Lock()
		for id, t := range d.templates {
			if f.expired(t, now) {
				delete(d.templates, id)
				d.gen.Add(1)
				f.total.Add(-1)
				f.m.templates[si][evExpired].Inc()
			}
		}
		if len(d.templates) == 0 && lt > 0 && now-d.lastSeen.Load() > lt {
			d.dead = true
			delete(f.domains, k)
			f.scopeGen.Add(1)
		}
		d.mu.Unlock()
	}
}

// samplingRate resolves the rate for the records of this message.
func (f *flowDecoder) samplingRate(c *msgCtx) (uint32, bool) {
	if c.rateCached {
		return c.rate, c.rateKnown
	}
	c.rateCached = true
	if c.d != nil {
		if r := c.d.optRate.Load(); r > 0 {
			c.rate, c.rateKnown = r, true
		} else {
			c.rate, c.rateKnown = c.d.cfgRate, c.d.cfgKnown
		}
	} else {
		c.rate, c.rateKnown = f.configuredRate(c.exporter, c.domain)
	}
	return c.rate, c.rateKnown
}

// counts of templates and scopes, for the gauges.
func (f *flowDecoder) stats() (domains, templates int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, d := range f.domains {
		d.mu.RLock()
		templates += len(d.templates)
		d.mu.RUnlock()
	}
	return len(f.domains), templates
}

// ---- metrics ----

type errReason int

const (
	errShort errReason = iota
	errVersion
	errLength
	errSetLength
	errTemplateMalformed
	errRecordTruncated
	errReservedSet
	errRecordsLimit
	numErrReasons
)

var errReasonNames = [numErrReasons]string{
	"short", "version", "length", "set_length", "template_malformed",
	"record_truncated", "reserved_set", "records_limit",
}

type rejectReason int

const (
	rejNoFields rejectReason = iota
	rejTooManyFields
	rejZeroLength
	rejBadID
	rejBadScope
	rejBadFieldLength
	rejTemplateLimit
	rejExporterLimit
	numRejectReasons
)

var rejectReasonNames = [numRejectReasons]string{
	"no_fields", "too_many_fields", "zero_length", "bad_id", "bad_scope",
	"bad_field_length", "template_limit", "exporter_limit",
}

type tmplEvent int

const (
	evAdded tmplEvent = iota
	evRefreshed
	evReplaced
	evWithdrawn
	evExpired
	numTmplEvents
)

var tmplEventNames = [numTmplEvents]string{"added", "refreshed", "replaced", "withdrawn", "expired"}

var flowSourceNames = [2]string{"ipfix", "netflow9"}

type flowMetrics struct {
	records         [2]prometheus.Counter
	optionsRecords  [2]prometheus.Counter
	unknownTemplate [2]prometheus.Counter
	assumedTemplate [2]prometheus.Counter
	rateUnknown     [2]prometheus.Counter
	dirSkipped      [2]prometheus.Counter
	errors          [2][numErrReasons]prometheus.Counter
	rejected        [2][numRejectReasons]prometheus.Counter
	templates       [2][numTmplEvents]prometheus.Counter
}

func registerOrReuse[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *flowMetrics) init(f *flowDecoder, reg prometheus.Registerer) error {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		if err != nil {
			return nil
		}
		var v *prometheus.CounterVec
		v, err = registerOrReuse(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
		return v
	}
	records := vec("vmflow_decoder_flow_records_total", "IPFIX/NetFlow v9 flow data records decoded.", "source")
	opts := vec("vmflow_decoder_flow_options_records_total", "IPFIX/NetFlow v9 options data records decoded (sampling options are used, others skipped).", "source")
	unknown := vec("vmflow_decoder_flow_unknown_template_total", "IPFIX/NetFlow v9 data sets skipped because their template is unknown or expired.", "source")
	assumed := vec("vmflow_decoder_flow_assumed_template_total", "IPFIX data sets whose template was unknown, decoded with Open vSwitch's built-in template of that id because they fit it exactly (decoder.flow.assume_ovs_templates).", "source")
	rate := vec("vmflow_decoder_sampling_rate_unknown_total", "Flow records given the default sampling rate because neither an options record nor a sampling_rates rule gave one.", "source")
	dir := vec("vmflow_decoder_flow_direction_skipped_total", "IPFIX/NetFlow v9 flow records skipped because their flowDirection is not in decoder.flow.directions (OVS reports each packet at ingress and again at egress).", "source")
	errs := vec("vmflow_decoder_flow_errors_total", "IPFIX/NetFlow v9 malformed input by reason (datagram errors, skipped reserved sets, records over the per-datagram limit).", "source", "reason")
	rej := vec("vmflow_decoder_flow_templates_rejected_total", "IPFIX/NetFlow v9 templates rejected on arrival by reason.", "source", "reason")
	ev := vec("vmflow_decoder_flow_template_events_total", "IPFIX/NetFlow v9 template events (added, refreshed, replaced, withdrawn, expired).", "source", "event")
	if err != nil {
		return fmt.Errorf("decoder flow metrics: %w", err)
	}
	for si, s := range flowSourceNames {
		m.records[si] = records.WithLabelValues(s)
		m.optionsRecords[si] = opts.WithLabelValues(s)
		m.unknownTemplate[si] = unknown.WithLabelValues(s)
		m.assumedTemplate[si] = assumed.WithLabelValues(s)
		m.rateUnknown[si] = rate.WithLabelValues(s)
		m.dirSkipped[si] = dir.WithLabelValues(s)
		for r := range m.errors[si] {
			m.errors[si][r] = errs.WithLabelValues(s, errReasonNames[r])
		}
		for r := range m.rejected[si] {
			m.rejected[si][r] = rej.WithLabelValues(s, rejectReasonNames[r])
		}
		for e := range m.templates[si] {
			m.templates[si][e] = ev.WithLabelValues(s, tmplEventNames[e])
		}
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vmflow_decoder_flow_exporters",
			Help: "IPFIX/NetFlow v9 template scopes (exporter, version, observation domain) held.",
		}, func() float64 { d, _ := f.stats(); return float64(d) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vmflow_decoder_flow_templates",
			Help: "IPFIX/NetFlow v9 templates held.",
		}, func() float64 { _, t := f.stats(); return float64(t) }),
	}
	for _, g := range gauges {
		if err := reg.Register(g); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("decoder flow metrics: %w", err)
			}
		}
	}
	return nil
}
