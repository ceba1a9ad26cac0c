package alert

import (
	"math"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/internal/hashmix"
)

// baseState is one dynamic-baseline series: EWMA of the level and of the
// absolute deviation, windows learned, last update (unix s). 16 bytes,
// plus its 8-byte key in the series map.
type baseState struct {
	level, dev float32
	n          uint32
	last       uint32
}

// pview is one pair of the window as a selection sees it.
type pview struct {
	i        int32
	src, dst uint64 // identity hashes (names / addresses)
	synAns   float64
	rstIn    float64
	// The pair's statistics most rules read (statSignal), copied once per
	// window so that each rule reads this dense array rather than every
	// Pair (cache misses on 200,000 pairs × rules were most of the cost).
	bytes, packets, syn, rst, icmpErr float64
	flows                             uint64
}

// newPview is pair i's view with the copies of its hot statistics.
func newPview(i int32, src, dst uint64, p *aggregate.Pair) pview {
	return pview{i: i, src: src, dst: dst,
		bytes: p.Stats.Bytes, packets: p.Stats.Packets, syn: p.Stats.SYN, rst: p.Stats.RST,
		icmpErr: p.Stats.ICMPErrors, flows: p.Stats.Flows}
}

// vmAgg is what one VM did in the window (per selection).
type vmAgg struct {
	seen             uint64
	txB, rxB         float64
	txP, rxP         float64
	flows, flowBytes float64
	peers, sources   int32
	pair             int32 // a pair where the VM is the source (or -1)
	rpair            int32 // a pair where it is the destination (or -1)
	ident            uint64
	dstPorts         float64 // distinct (protocol, destination port): aggregate's per-VM sketch
	// Switch port counters of the VM's ports in the window (per second;
	// utilisation 0..1, the busiest port), and one of its ports (or -1)
	// for VMs seen by their ports only (ports_signals.go).
	portErr  [4]float64 // in errors, out errors, in discards, out discards
	portUtil [2]float64
	port     int32
}

// selection is the window's pairs seen through one export protocol.
type selection struct {
	name     string
	pairs    []pview
	latPairs []pview  // the probe's pairs (latency signals, latency.go)
	vms      []vmAgg  // by VMID
	touched  []uint32 // VMIDs with traffic
}

type nameCache struct {
	name string
	h    uint64
}

// evalState is the evaluation goroutine's own state (never touched by the
// API; the API sees the alerts under Engine.mu).
type evalState struct {
	seq                         uint64
	short                       bool // this window is shorter than the configured one
	sels                        map[string]*selection
	use                         map[string]*selection // this window's selection of each source name (auto+tcp may be auto's)
	best                        map[uint64]int32      // logical pair → best precision (auto)
	rev                         map[uint64]int32      // (src, dst, source) → pair index, pairs with SYN-ACK or RST
	revWant                     map[uint64]struct{}   // reverse pairs asked for
	names                       []nameCache           // by VMID
	series                      *seriesStore
	peers                       map[uint64]uint32 // (rule, vm, peer) → last seen (unix s)
	vmFirst                     map[uint64]uint32 // (rule, vm) → first seen (unix s)
	exps                        map[string]*expState
	self                        map[string]float64
	absent                      map[uint64]bool // required pairs seen at least once
	expLatest                   map[string]time.Time
	seriesDropped, peersDropped uint64
}

type expState struct {
	Key                      string    `json:"key"`
	Protocol, Agent, Address string    `json:"-"`
	LastSeen                 time.Time `json:"last_seen"`
	Datagrams                uint64    `json:"datagrams"`
	Lost, Errors             uint64    `json:"-"`
	dDatagrams, dLost, dErr  float64
	primed                   bool
	agentKey                 string // Protocol + "/" + Agent: the exporter, over its domains
}

func newEvalState() *evalState {
	return &evalState{
		sels:    map[string]*selection{},
		use:     map[string]*selection{},
		best:    map[uint64]int32{},
		rev:     map[uint64]int32{},
		revWant: map[uint64]struct{}{},
		series:  newSeriesStore(0),
		peers:   map[uint64]uint32{},
		vmFirst: map[uint64]uint32{},
		exps:    map[string]*expState{},
		self:    map[string]float64{},
		absent:  map[uint64]bool{},
	}
}

func epKey(e aggregate.EndpointKey) uint64 {
	if e.VM != 0 {
		return uint64(e.VM) | 1<<63
	}
	b := e.IP.As16()
	var h uint64
	for i := 0; i < 16; i += 8 {
		h = combine(h, uint64(b[i])<<56|uint64(b[i+1])<<48|uint64(b[i+2])<<40|uint64(b[i+3])<<32|
			uint64(b[i+4])<<24|uint64(b[i+5])<<16|uint64(b[i+6])<<8|uint64(b[i+7]))
	}
	return h &^ (1 << 63)
}

// ident is the restart-stable identity hash of an endpoint.
func (s *evalState) ident(k aggregate.EndpointKey, ep *aggregate.Endpoint) uint64 {
	if k.VM == 0 {
		if !k.IP.IsValid() {
			return hashString("(non-ip)")
		}
		return hashmix.Mix64(epKey(k) ^ 0x5bd1e995)
	}
	id := int(k.VM)
	if id >= len(s.names) {
		n := make([]nameCache, id+1+id/4)
		copy(n, s.names)
		s.names = n
	}
	c := &s.names[id]
	if c.name != ep.VM || c.h == 0 {
		c.name, c.h = ep.VM, hashString("vm:"+ep.VM)
	}
	return c.h
}

// endpointName is a VM's name, else the endpoint's address (from the key
// when the endpoint does not carry it).
func endpointName(ep *aggregate.Endpoint, k aggregate.EndpointKey) string {
	if ep.VM != "" {
		return ep.VM
	}
	if ep.IP != "" {
		return ep.IP
	}
	if k.IP.IsValid() {
		return k.IP.String()
	}
	return "(non-ip)"
}

func precision(p *aggregate.Pair) int32 { return int32(aggregate.Precision(p.Key.Source)) }

// selectAutoTCP is "auto" for the rules that read TCP flags (SYN,
// SYN-ACK, RST): per pair the most precise protocol that reports flags.
// Flow records without any flag on TCP traffic (OVS's IPFIX has no
// per-flow tcpControlBits, only exporter-wide totals) rank below sFlow
// packet samples, whose headers always carry them.
const selectAutoTCP = "auto+tcp"

func tcpPrecision(p *aggregate.Pair) int32 {
	s := &p.Stats
	if p.Key.Source != decoder.SourceSFlow && s.TCPPackets > 0 && s.SYN+s.SYNACK+s.RST+s.FIN == 0 {
		return int32(aggregate.Precision(p.Key.Source))
	}
	return int32(aggregate.Precision(p.Key.Source)) + 10
}

// tcpFlagSignal: the pair signals made of TCP flag counts.
func tcpFlagSignal(sig string) bool {
	switch sig {
	case "syn", "synack", "syn_unanswered", "rst", "rst_in", "conn_failure", "conn_failure_lo", "conn_refused":
		return true
	}
	return false
}

// prepare builds the selections the rules need.
func (e *Engine) prepare(w *aggregate.Window, rules []*Rule, needVM, needRev bool, revMin float64) {
	st := e.st
	var mask uint8
	for i := range w.Pairs {
		if w.Pairs[i].Key.Source != decoder.SourceProbe { // latency only (latency.go)
			mask |= 1 << w.Pairs[i].Key.Source
		}
	}
	for _, sel := range st.sels {
		sel.pairs = sel.pairs[:0]
		sel.latPairs = sel.latPairs[:0]
		sel.touched = sel.touched[:0]
	}
	want, wantVM := map[string]bool{}, map[string]bool{}
	for _, r := range rules {
		if r.Spec.Disabled {
			continue
		}
		n := e.sourceOf(r)
		want[n] = true
		wantVM[n] = wantVM[n] || r.subject == subjectVM
	}
	// A window of one protocol: auto+tcp is auto.
	single := mask&(mask-1) == 0
	aliasTCP := single && want[selectAutoTCP]
	if aliasTCP {
		delete(want, selectAutoTCP)
		want[aggregate.SelectAuto] = true
	}
	// Reverse lookup (SYN-ACK and RST answers come on the reverse pair).
	// Only pairs that could reach a threshold look their reverse up, and
	// only reverse pairs someone asks for are indexed.
	clear(st.rev)
	clear(st.revWant)
	cand := func(p *aggregate.Pair) bool {
		if revMin < 0 {
			return p.Stats.SYN > 0 || p.Stats.TCPPackets > 0
		}
		return p.Stats.SYN > revMin
	}
	if needRev {
		for i := range w.Pairs {
			if p := &w.Pairs[i]; cand(p) {
				st.revWant[combine(combine(epKey(p.Key.Dst), epKey(p.Key.Src)), uint64(p.Key.Source))] = struct{}{}
			}
		}
		needRev = len(st.revWant) > 0
	}
	if needRev {
		for i := range w.Pairs {
			p := &w.Pairs[i]
			if p.Stats.SYNACK > 0 || p.Stats.RST > 0 {
				k := combine(combine(epKey(p.Key.Src), epKey(p.Key.Dst)), uint64(p.Key.Source))
				if _, ok := st.revWant[k]; ok {
					st.rev[k] = int32(i)
				}
			}
		}
	}
	for name := range want {
		tcp := name == selectAutoTCP
		sel := st.sels[name]
		if sel == nil {
			sel = &selection{name: name}
			st.sels[name] = sel
		}
		var src decoder.Source
		switch name {
		case aggregate.SelectSFlow:
			src = decoder.SourceSFlow
		case aggregate.SelectIPFIX:
			src = decoder.SourceIPFIX
		case aggregate.SelectNetFlow9:
			src = decoder.SourceNetFlow9
		}
		prec := precision
		if tcp {
			prec = tcpPrecision
		}
		if src == 0 && !single {
			clear(st.best)
			for i := range w.Pairs {
				k := combine(epKey(w.Pairs[i].Key.Src), epKey(w.Pairs[i].Key.Dst))
				if p := prec(&w.Pairs[i]); p > st.best[k] {
					st.best[k] = p
				}
			}
		}
		for i := range w.Pairs {
			p := &w.Pairs[i]
			if p.Key.Source == decoder.SourceProbe {
				sel.latPairs = append(sel.latPairs, pview{i: int32(i), src: st.ident(p.Key.Src, &p.Src), dst: st.ident(p.Key.Dst, &p.Dst)})
				continue
			}
			if src != 0 && p.Key.Source != src {
				continue
			}
			if src == 0 && !single && prec(p) != st.best[combine(epKey(p.Key.Src), epKey(p.Key.Dst))] {
				continue
			}
			v := newPview(int32(i), st.ident(p.Key.Src, &p.Src), st.ident(p.Key.Dst, &p.Dst), p)
			if needRev && cand(p) {
				if j, ok := st.rev[combine(combine(epKey(p.Key.Dst), epKey(p.Key.Src)), uint64(p.Key.Source))]; ok {
					v.synAns = w.Pairs[j].Stats.SYNACK
					v.rstIn = w.Pairs[j].Stats.RST
				}
			}
			sel.pairs = append(sel.pairs, v)
		}
		if needVM && wantVM[name] {
			e.aggregateVMs(w, sel)
		}
	}
	clear(st.use)
	for name := range want {
		st.use[name] = st.sels[name]
	}
	if aliasTCP {
		st.use[selectAutoTCP] = st.sels[aggregate.SelectAuto]
	}
}

func (e *Engine) aggregateVMs(w *aggregate.Window, sel *selection) {
	st := e.st
	seq := st.seq
	touch := func(id uint32) *vmAgg {
		if int(id) >= len(sel.vms) {
			n := make([]vmAgg, int(id)+1+int(id)/4)
			copy(n, sel.vms)
			sel.vms = n
		}
		a := &sel.vms[id]
		if a.seen != seq {
			*a = vmAgg{seen: seq, pair: -1, rpair: -1, port: -1}
			sel.touched = append(sel.touched, id)
		}
		return a
	}
	for k := range sel.pairs {
		pv := &sel.pairs[k]
		p := &w.Pairs[pv.i]
		if id := uint32(p.Key.Src.VM); id != 0 {
			a := touch(id)
			a.txB += p.Stats.Bytes
			a.txP += p.Stats.Packets
			a.flows += float64(p.Stats.Flows)
			a.flowBytes += p.Stats.Bytes
			a.peers++
			if a.pair < 0 {
				a.pair, a.ident = pv.i, pv.src
			}
		}
		if id := uint32(p.Key.Dst.VM); id != 0 {
			a := touch(id)
			a.rxB += p.Stats.Bytes
			a.rxP += p.Stats.Packets
			a.sources++
			if a.rpair < 0 {
				a.rpair = pv.i
				if a.pair < 0 {
					a.ident = pv.dst
				}
			}
		}
	}
	e.aggregatePorts(w, touch) // ports_signals.go
	// Distinct destination ports: counted by the aggregator over every
	// distinct flow of the window, per source VM and protocol; auto takes
	// the protocol that saw the most (IPFIX 1-in-1 sees every flow).
	var want decoder.Source
	switch sel.name {
	case aggregate.SelectSFlow:
		want = decoder.SourceSFlow
	case aggregate.SelectIPFIX:
		want = decoder.SourceIPFIX
	case aggregate.SelectNetFlow9:
		want = decoder.SourceNetFlow9
	}
	for i := range w.DstPorts {
		dp := &w.DstPorts[i]
		id := uint32(dp.VM)
		if want != 0 && dp.Source != want || int(id) >= len(sel.vms) {
			continue
		}
		if a := &sel.vms[id]; a.seen == seq && float64(dp.Ports) > a.dstPorts {
			a.dstPorts = float64(dp.Ports)
		}
	}
}

func (e *Engine) sourceOf(r *Rule) string {
	s := r.source
	if s == "" {
		s = e.cfg.Source
	}
	if s == aggregate.SelectAuto && r.subject == subjectPair && tcpFlagSignal(r.signal) {
		return selectAutoTCP
	}
	return s
}

// statSignal is, for the traffic signals (read from the pair view's copies
// of the statistics and its reverse-pair answers), the function that reads
// one; nil for the others (pairSignal). Resolved once per rule and window:
// a string switch per pair was a third of the evaluation at 200,000 pairs.
func statSignal(sig string) func(pv *pview, secs float64) float64 {
	switch sig {
	case "bytes":
		return func(pv *pview, _ float64) float64 { return pv.bytes }
	case "packets":
		return func(pv *pview, _ float64) float64 { return pv.packets }
	case "bps":
		return func(pv *pview, secs float64) float64 { return pv.bytes * 8 / secs }
	case "pps":
		return func(pv *pview, secs float64) float64 { return pv.packets / secs }
	case "flows":
		return func(pv *pview, _ float64) float64 { return float64(pv.flows) }
	case "syn":
		return func(pv *pview, _ float64) float64 { return pv.syn }
	case "rst":
		return func(pv *pview, _ float64) float64 { return pv.rst }
	case "icmp_errors":
		return func(pv *pview, _ float64) float64 { return pv.icmpErr }
	case "syn_unanswered":
		return func(pv *pview, _ float64) float64 { return math.Max(0, pv.syn-pv.synAns) }
	case "synack":
		return func(pv *pview, _ float64) float64 { return pv.synAns }
	case "rst_in":
		return func(pv *pview, _ float64) float64 { return pv.rstIn }
	}
	return nil
}

// pairSignal is a pair's value of a latency or connection-health signal
// (the traffic signals are statSignal's).
func pairSignal(sig string, p *aggregate.Pair) float64 {
	if slices.Contains(latencySignals, sig) {
		return latencySignal(sig, p.Stats.Lat)
	}
	return healthSignal(sig, &p.Stats)
}

func vmSignal(sig string, a *vmAgg, secs float64) float64 {
	switch sig {
	case "tx_bytes":
		return a.txB
	case "rx_bytes":
		return a.rxB
	case "tx_bps":
		return a.txB * 8 / secs
	case "rx_bps":
		return a.rxB * 8 / secs
	case "tx_pps":
		return a.txP / secs
	case "rx_pps":
		return a.rxP / secs
	case "peers":
		return float64(a.peers)
	case "sources":
		return float64(a.sources)
	case "dst_ports":
		return a.dstPorts
	case "flows":
		return a.flows
	}
	return portSignal(sig, a)
}

func globAny(pats []string, s string) bool {
	for _, p := range pats {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

func (f *compiledFilter) endpointOK(ep *aggregate.Endpoint) (match bool) {
	if f.tenant != nil && !f.tenant[ep.Tenant] && !(ep.TenantName != "" && f.tenant[ep.TenantName]) {
		return false
	}
	if f.host != nil && !f.host[ep.Host] {
		return false
	}
	if f.vm != nil && (ep.VM == "" || !globAny(f.vm, ep.VM)) {
		return false
	}
	return true
}

func (f *compiledFilter) plain() bool {
	return f.tenant == nil && f.host == nil && f.vm == nil && f.exVM == nil && !f.pairScoped()
}

func (f *compiledFilter) pairOK(p *aggregate.Pair) bool {
	if f.tenant != nil || f.host != nil || f.vm != nil {
		if !f.endpointOK(&p.Src) && !f.endpointOK(&p.Dst) {
			return false
		}
	}
	if f.exVM != nil && (p.Src.VM != "" && globAny(f.exVM, p.Src.VM) || p.Dst.VM != "" && globAny(f.exVM, p.Dst.VM)) {
		return false
	}
	if f.protoMask != 0 {
		s := &p.Stats
		var m uint8
		if s.TCPPackets > 0 {
			m |= 1
		}
		if s.UDPPackets > 0 {
			m |= 2
		}
		if s.ICMPPackets > 0 {
			m |= 4
		}
		if s.OtherPackets > 0 {
			m |= 8
		}
		if m&f.protoMask == 0 {
			return false
		}
	}
	if f.ports != nil {
		ok := false
		for _, tp := range p.Stats.TopPorts {
			if tp.Port != 0 && f.ports[tp.Port] {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if f.exPort != nil && p.Stats.TopPorts[0].Port != 0 && f.exPort[p.Stats.TopPorts[0].Port] {
		return false
	}
	if f.exPair != nil && f.exPair[[2]string{endpointName(&p.Src, p.Key.Src), endpointName(&p.Dst, p.Key.Dst)}] {
		return false
	}
	for _, c := range f.exCIDR {
		if c.Contains(p.Stats.SrcIP) || c.Contains(p.Stats.DstIP) {
			return false
		}
	}
	return true
}

func (f *compiledFilter) vmOK(ep *aggregate.Endpoint) bool {
	if !f.endpointOK(ep) {
		return false
	}
	return f.exVM == nil || !globAny(f.exVM, ep.VM)
}

// cond is one subject's outcome for a rule in this window.
type cond struct {
	fp          uint64
	value       float64
	limit, base float64
	fire, hold  bool
	subject     func() subjectInfo
}

type subjectInfo struct {
	labels  map[string]string
	summary string
	link    string
}

// evalWindow evaluates every rule on one window. The caller holds e.mu.
func (e *Engine) evalWindow(w *aggregate.Window, exps []collector.ExporterStatus, gathered map[string]float64) (changed []*active, resolved []AlertView) {
	st := e.st
	st.seq++
	now := w.End
	secs := w.End.Sub(w.Start).Seconds()
	if secs <= 0 {
		secs = 1
	}
	// A window cut short (the first after a start, the last at a stop)
	// holds a fraction of every count: it may fire or keep alerts but
	// never resolves or drops them, and baselines do not learn it, so
	// a restart neither ends a firing alert nor skews a baseline.
	st.short = e.deps.Window > 0 && w.End.Sub(w.Start) < e.deps.Window*9/10
	rules := e.rules
	needVM, needRev := false, false
	revMin := math.Inf(1) // pairs with more SYNs than this need their answers
	for _, r := range rules {
		if r.Spec.Disabled {
			continue
		}
		if r.subject == subjectVM {
			needVM = true
		}
		if r.subject != subjectPair {
			continue
		}
		switch {
		case r.signal == "syn_unanswered" && r.kind != KindBaseline && !r.below:
			needRev = true
			revMin = math.Min(revMin, math.Min(r.thr, r.clr))
		case r.signal == "syn_unanswered" || r.signal == "synack" || r.signal == "rst_in":
			needRev, revMin = true, -1
		}
	}
	e.prepare(w, rules, needVM, needRev, revMin)
	if exps != nil {
		e.updateExporters(now, exps, secs)
	}
	for _, r := range rules {
		if r.Spec.Disabled {
			continue
		}
		t0 := time.Now()
		sel := st.use[e.sourceOf(r)]
		switch {
		case r.kind == KindNewPeer:
			e.evalNewPeer(r, w, sel, now)
		case r.kind == KindPairAbsent:
			e.evalAbsent(r, w, sel, now)
		case r.subject == subjectPair:
			e.evalPairs(r, w, sel, now, secs)
		case r.subject == subjectVM && isResourceSignal(r.signal):
			e.evalResources(r, now, secs) // resource_signals.go
		case r.subject == subjectVM:
			e.evalVMs(r, w, sel, now, secs)
		case r.subject == subjectExporter:
			e.evalExporters(r, now, secs)
		case r.subject == subjectSelf:
			e.evalSelf(r, now, gathered)
		}
		resolved = append(resolved, e.sweep(r, now)...)
		rs := e.status[r.Name()]
		if rs != nil {
			rs.LastEval = now
			rs.EvalSeconds = time.Since(t0).Seconds()
		}
	}
	return nil, resolved
}

// step applies one subject's outcome to its alert (creating it when the
// condition starts).
func (e *Engine) step(r *Rule, c *cond, now time.Time) {
	a := e.alerts[c.fp]
	if a == nil {
		if !c.fire {
			return
		}
		if len(e.alerts) >= e.cfg.MaxAlerts {
			e.m.alertsDropped.Inc()
			return
		}
		info := c.subject()
		a = &active{fp: c.fp, rule: r, state: StatePending, activeAt: now, labels: info.labels, summary: info.summary, link: info.link}
		e.alerts[c.fp] = a
		e.byRule[r.Name()][c.fp] = a
	}
	a.seen = e.st.seq
	a.quiet = 0
	a.lastEval = now
	a.value, a.limit = c.value, c.limit
	a.baseline = c.base
	if c.fire {
		a.count++
	} else if a.state == StatePending && !e.st.short {
		a.count = 0
	}
	if a.state == StatePending {
		if !c.fire {
			if !e.st.short {
				e.drop(a)
			}
			return
		}
		if a.count >= r.forN {
			a.state, a.startsAt, a.peak = StateFiring, now, c.value
			e.m.transitions.WithLabelValues(r.Severity(), StateFiring).Inc()
		}
		return
	}
	if !c.hold && !c.fire {
		if !e.st.short {
			a.seen = 0 // resolved by sweep
		}
		return
	}
	if r.below {
		a.peak = math.Min(a.peak, c.value)
	} else {
		a.peak = math.Max(a.peak, c.value)
	}
}

func (e *Engine) drop(a *active) {
	delete(e.alerts, a.fp)
	delete(e.byRule[a.rule.Name()], a.fp)
}

// sweep resolves the rule's alerts whose subject was not seen holding the
// condition in this evaluation.
func (e *Engine) sweep(r *Rule, now time.Time) []AlertView {
	var out []AlertView
	for _, a := range e.byRule[r.Name()] {
		if a.seen == e.st.seq || e.st.short {
			continue
		}
		if a.state == StatePending {
			e.drop(a)
			continue
		}
		if r.kind == KindNewPeer {
			a.quiet++
			if a.quiet < r.hold {
				continue
			}
		}
		out = append(out, e.resolve(a, now))
	}
	return out
}

func (e *Engine) resolve(a *active, now time.Time) AlertView {
	e.drop(a)
	v := a.view(now, StateResolved)
	e.addRecent(v)
	e.m.transitions.WithLabelValues(a.rule.Severity(), StateResolved).Inc()
	return v
}

func (e *Engine) evalPairs(r *Rule, w *aggregate.Window, sel *selection, now time.Time, secs float64) {
	plain := r.flt.plain()
	var c cond
	views := sel.pairs
	if r.latency {
		views = sel.latPairs
	}
	var get func(*pview, float64) float64
	if !r.latency {
		get = statSignal(r.signal) // the common signals from the dense copies, no string switch per pair
	}
	for k := range views {
		pv := &views[k]
		p := &w.Pairs[pv.i]
		if !plain && !r.flt.pairOK(p) {
			continue
		}
		var v float64
		if get != nil {
			v = get(pv, secs)
		} else {
			v = pairSignal(r.signal, p)
		}
		fp := combine(combine(r.nameHash, pv.src), pv.dst)
		if r.kind == KindBaseline {
			if !e.baseline(r, fp, v, now, &c) {
				continue
			}
		} else {
			c = r.threshold(v)
			if r.kind == KindFailing && c.hold {
				syn := pv.syn
				ok := syn > 0 && v/syn >= r.ratio
				c.fire = c.fire && ok
				c.hold = c.hold && ok
			}
			if !c.hold {
				continue
			}
		}
		c.fp = fp
		c.subject = func() subjectInfo { return pairInfo(r, p, c.value, c.limit, c.base) }
		e.step(r, &c, now)
	}
}

// threshold is a static threshold's outcome for value v: fire beyond the
// threshold, hold (keep firing) beyond the clear threshold.
func (r *Rule) threshold(v float64) cond {
	c := cond{value: v, limit: r.thr}
	if r.below {
		c.fire, c.hold = v < r.thr, v < r.clr
	} else {
		c.fire, c.hold = v > r.thr, v > r.clr
	}
	return c
}

// baseline updates one series and fills c; false when there is nothing
// to do for the alert state (no alert and no anomaly).
func (e *Engine) baseline(r *Rule, fp uint64, v float64, now time.Time, c *cond) bool {
	st := e.st
	if st.short {
		return false // neither learned nor judged (a short window's counts are partial)
	}
	b := st.series.get(fp)
	if b == nil {
		if st.series.len() >= e.cfg.MaxSeries {
			st.seriesDropped++
			e.m.seriesDropped.Inc()
			return false
		}
		st.series.add(fp, baseState{level: float32(v), n: 1, last: uint32(now.Unix())})
		return false
	}
	level, dev := float64(b.level), float64(b.dev)
	band := math.Max(r.k*dev, math.Max(r.minRel*level, r.minAbs))
	up, down := v > level+band, v < level-band
	anomalous := r.dir > 0 && up || r.dir < 0 && down || r.dir == 0 && (up || down)
	if int(b.n) < r.warmup {
		anomalous = false
	}
	if !anomalous {
		alpha := r.alpha
		if f := 1 / float64(b.n+1); f > alpha {
			alpha = f
		}
		d := math.Abs(v - level)
		level += alpha * (v - level)
		dev += alpha * (d - dev)
		b.level, b.dev = float32(level), float32(dev)
		if b.n < math.MaxUint32 {
			b.n++
		}
	}
	b.last = uint32(now.Unix())
	limit := level + band
	if r.dir < 0 || r.dir == 0 && down {
		limit = level - band
	}
	*c = cond{value: v, limit: limit, base: level, fire: anomalous, hold: anomalous}
	return anomalous
}

func (e *Engine) evalVMs(r *Rule, w *aggregate.Window, sel *selection, now time.Time, secs float64) {
	plain := r.flt.plain()
	var c cond
	for _, id := range sel.touched {
		a := &sel.vms[id]
		var ep *aggregate.Endpoint
		switch {
		case a.pair >= 0:
			ep = &w.Pairs[a.pair].Src
		case a.rpair >= 0:
			ep = &w.Pairs[a.rpair].Dst
		default:
			ep = portEndpoint(&w.Ports[a.port])
		}
		if !plain && !r.flt.vmOK(ep) {
			continue
		}
		v := vmSignal(r.signal, a, secs)
		fp := combine(r.nameHash, a.ident)
		if r.kind == KindBaseline {
			if !e.baseline(r, fp, v, now, &c) {
				continue
			}
		} else {
			c = r.threshold(v)
			if r.maxBPF > 0 && c.hold && a.flows > 0 && a.flowBytes/a.flows > r.maxBPF {
				c.fire, c.hold = false, false
			}
			if !c.hold {
				continue
			}
		}
		c.fp = fp
		c.subject = func() subjectInfo { return vmInfo(r, ep, c.value, c.limit, c.base) }
		e.step(r, &c, now)
	}
}

func (e *Engine) evalNewPeer(r *Rule, w *aggregate.Window, sel *selection, now time.Time) {
	st := e.st
	ts := uint32(now.Unix())
	learnUntil := uint32(0)
	active := len(e.byRule[r.Name()]) > 0
	var lastVM uint64
	learning := false
	for k := range sel.pairs {
		pv := &sel.pairs[k]
		p := &w.Pairs[pv.i]
		if p.Key.Src.VM == 0 {
			continue
		}
		if !r.flt.plain() && !r.flt.pairOK(p) {
			continue
		}
		if pv.src != lastVM {
			lastVM = pv.src
			vk := combine(r.nameHash, pv.src)
			first, ok := st.vmFirst[vk]
			if !ok {
				first = ts
				st.vmFirst[vk] = ts
			}
			learnUntil = first + uint32(r.learning/time.Second)
			learning = ts < learnUntil
		}
		pk := combine(combine(r.nameHash, pv.src), pv.dst)
		last, known := st.peers[pk]
		if known {
			if ts-last >= 3600 {
				st.peers[pk] = ts
			}
			if active {
				if a := e.alerts[pk]; a != nil {
					a.seen, a.quiet, a.lastEval = st.seq, 0, now
					a.value = p.Stats.Bytes
					a.peak = math.Max(a.peak, a.value)
				}
			}
			continue
		}
		if len(st.peers) >= e.cfg.MaxPeers {
			st.peersDropped++
			e.m.peersDropped.Inc()
			continue
		}
		st.peers[pk] = ts
		if learning {
			continue
		}
		c := cond{fp: pk, value: p.Stats.Bytes, fire: true, hold: true}
		c.subject = func() subjectInfo { return pairInfo(r, p, c.value, 0, 0) }
		e.step(r, &c, now)
	}
}

func (e *Engine) evalAbsent(r *Rule, w *aggregate.Window, sel *selection, now time.Time) {
	st := e.st
	present := map[[2]string]bool{}
	want := map[[2]string]bool{}
	for _, rp := range r.required {
		want[rp] = true
	}
	for k := range sel.pairs {
		p := &w.Pairs[sel.pairs[k].i]
		key := [2]string{endpointName(&p.Src, p.Key.Src), endpointName(&p.Dst, p.Key.Dst)}
		if p.Stats.Bytes > 0 && want[key] {
			present[key] = true
		}
	}
	for _, rp := range r.required {
		fp := combine(combine(r.nameHash, hashString(rp[0])), hashString(rp[1]))
		if present[rp] {
			st.absent[fp] = true
			continue
		}
		if !st.absent[fp] {
			continue // never seen: not yet expected
		}
		rp := rp
		c := cond{fp: fp, value: 0, limit: 0, fire: true, hold: true}
		c.subject = func() subjectInfo {
			l := baseLabels(r)
			l["src"], l["dst"] = rp[0], rp[1]
			return subjectInfo{labels: l, link: "/#/pair/" + rp[0] + "/" + rp[1],
				summary: summary(r, "required pair "+rp[0]+" → "+rp[1]+" absent", 0, 0)}
		}
		e.step(r, &c, now)
	}
}

func (e *Engine) updateExporters(now time.Time, rows []collector.ExporterStatus, secs float64) {
	st := e.st
	for i := range rows {
		x := &rows[i]
		ip := x.Address
		if h, _, ok := strings.Cut(ip, "]:"); ok {
			ip = strings.TrimPrefix(h, "[")
		} else if j := strings.LastIndexByte(ip, ':'); j >= 0 {
			ip = ip[:j]
		}
		id := x.Agent
		if id == "" {
			id = ip
		}
		dom := x.SubAgent
		if x.Protocol != "sflow" {
			dom = x.ObsDomain
		}
		key := x.Protocol + "/" + id + "/" + strconv.FormatUint(uint64(dom), 10)
		s := st.exps[key]
		if s == nil {
			if len(st.exps) >= 100000 {
				continue
			}
			s = &expState{Key: key}
			st.exps[key] = s
		}
		if s.Protocol != x.Protocol || s.Agent != id || s.agentKey == "" {
			s.agentKey = x.Protocol + "/" + id
		}
		s.Protocol, s.Agent, s.Address = x.Protocol, id, x.Address
		if s.primed {
			s.dDatagrams = delta(x.Datagrams, s.Datagrams)
			s.dLost = delta(x.LostDatagrams, s.Lost)
			s.dErr = delta(x.DecodeErrors, s.Errors)
		}
		s.primed = true
		s.Datagrams, s.Lost, s.Errors = x.Datagrams, x.LostDatagrams, x.DecodeErrors
		if x.LastSeen.After(s.LastSeen) {
			s.LastSeen = x.LastSeen
		}
	}
	for k, s := range st.exps {
		if now.Sub(s.LastSeen) > e.cfg.SeriesExpiry {
			delete(st.exps, k)
		}
	}
}

func delta(now, prev uint64) float64 {
	if now < prev {
		return float64(now) // counter reset (collector forgot the exporter)
	}
	return float64(now - prev)
}

func (e *Engine) evalExporters(r *Rule, now time.Time, secs float64) {
	winLen := time.Duration(secs * float64(time.Second))
	// Silence is per exporter (protocol and agent), over all its
	// observation domains / sub-agents: OVS, for one, sends a datagram or
	// two on IPFIX domain 0 at start and then only on its configured
	// domain, which is no silence.
	latest := e.st.expLatest
	if r.signal == "silent_windows" {
		if latest == nil {
			latest = map[string]time.Time{}
			e.st.expLatest = latest
		}
		clear(latest)
		for _, s := range e.st.exps {
			if s.agentKey == "" {
				s.agentKey = s.Protocol + "/" + s.Agent
			}
			if s.Datagrams > 0 && s.LastSeen.After(latest[s.agentKey]) {
				latest[s.agentKey] = s.LastSeen
			}
		}
	}
	for _, s := range e.st.exps {
		var v float64
		switch r.signal {
		case "datagrams":
			v = s.dDatagrams
		case "lost_datagrams":
			v = s.dLost
		case "decode_errors":
			v = s.dErr
		case "silent_windows":
			last, ok := latest[s.agentKey]
			if !ok || last.IsZero() || !s.LastSeen.Equal(last) {
				continue // never sent, or another domain of the exporter is the latest
			}
			delete(latest, s.agentKey) // once per exporter
			v = math.Floor(float64(now.Sub(last)) / float64(winLen))
			if v < 0 {
				v = 0
			}
		}
		c := r.threshold(v)
		c.fp = combine(r.nameHash, hashString(s.Key))
		if r.signal == "silent_windows" {
			c.fp = combine(r.nameHash, hashString(s.agentKey))
		}
		if r.kind == KindExpSilent {
			c.fire, c.hold = v >= r.thr, v >= r.thr
		}
		if !c.hold {
			continue
		}
		s := s
		c.subject = func() subjectInfo {
			l := baseLabels(r)
			l["exporter"], l["protocol"] = s.Agent, s.Protocol
			what := r.signal + " " + fmtNum(c.value)
			if r.kind == KindExpSilent {
				what = "silent for " + fmtNum(c.value) + " windows (last datagram " + s.LastSeen.UTC().Format(time.RFC3339) + ")"
			}
			return subjectInfo{labels: l, link: "/#/exporters",
				summary: summary(r, "exporter "+s.Protocol+" "+s.Agent+" "+what, c.value, c.limit)}
		}
		e.step(r, &c, now)
	}
}

func (e *Engine) evalSelf(r *Rule, now time.Time, gathered map[string]float64) {
	st := e.st
	for name, v := range gathered {
		if !r.metrics.MatchString(metricName(name)) {
			continue
		}
		prev, ok := st.self[name]
		inc := 0.0
		if ok && v > prev {
			inc = v - prev
		}
		c := cond{value: inc, limit: r.thr, fire: inc > r.thr, hold: inc > r.thr, fp: combine(r.nameHash, hashString(name))}
		if !c.hold {
			continue
		}
		name := name
		c.subject = func() subjectInfo {
			l := baseLabels(r)
			l["metric"] = name
			return subjectInfo{labels: l, link: "/metrics",
				summary: summary(r, name+" rose by "+fmtNum(c.value), c.value, c.limit)}
		}
		e.step(r, &c, now)
	}
}

func metricName(series string) string {
	if i := strings.IndexByte(series, '{'); i >= 0 {
		return series[:i]
	}
	return series
}

func baseLabels(r *Rule) map[string]string {
	l := make(map[string]string, 12)
	for k, v := range r.Spec.Labels {
		l[k] = v
	}
	l["alertname"], l["rule"], l["kind"], l["severity"] = r.Name(), r.Name(), r.kind, r.Severity()
	return l
}

func summary(r *Rule, text string, value, limit float64) string {
	if r.summaryTp == "" {
		return text
	}
	return strings.NewReplacer("{{subject}}", text, "{{value}}", fmtNum(value), "{{threshold}}", fmtNum(limit)).Replace(r.summaryTp)
}

func setEndpoint(l map[string]string, prefix string, ep *aggregate.Endpoint) {
	if ep.Tenant != "" {
		l[prefix+"tenant"] = ep.Tenant
	}
	if ep.Host != "" {
		l[prefix+"host"] = ep.Host
	}
}

func pairInfo(r *Rule, p *aggregate.Pair, value, limit, base float64) subjectInfo {
	l := baseLabels(r)
	src, dst := endpointName(&p.Src, p.Key.Src), endpointName(&p.Dst, p.Key.Dst)
	l["src"], l["dst"] = src, dst
	if p.Src.VM != "" {
		l["vm"] = p.Src.VM
		setEndpoint(l, "", &p.Src)
	} else if p.Dst.VM != "" {
		l["vm"] = p.Dst.VM
		setEndpoint(l, "", &p.Dst)
	}
	if p.Dst.Tenant != "" && p.Dst.Tenant != l["tenant"] {
		l["dst_tenant"] = p.Dst.Tenant
	}
	var text string
	switch r.kind {
	case KindNewPeer:
		l["peer"] = dst
		text = "new peer " + src + " → " + dst
	case KindBaseline:
		text = r.signal + " " + src + " → " + dst + " " + fmtNum(value) + " outside baseline " + fmtNum(base) + " (limit " + fmtNum(limit) + ")"
	case KindFailing:
		text = "failing connections " + src + " → " + dst + ": " + fmtNum(value) + " SYNs unanswered"
	case KindRSTStorm:
		text = "RST storm " + src + " → " + dst + ": " + fmtNum(value) + " RSTs"
	case KindICMPBurst:
		text = "ICMP errors " + src + " → " + dst + ": " + fmtNum(value)
	default:
		text = r.signal + " " + src + " → " + dst + " " + fmtNum(value) + " (threshold " + fmtNum(limit) + ")"
	}
	return subjectInfo{labels: l, link: "/#/pair/" + src + "/" + dst, summary: summary(r, text, value, limit)}
}

func vmInfo(r *Rule, ep *aggregate.Endpoint, value, limit, base float64) subjectInfo {
	l := baseLabels(r)
	name := endpointName(ep, aggregate.EndpointKey{})
	l["vm"] = name
	setEndpoint(l, "", ep)
	var text string
	switch {
	case r.kind == KindFanOut && r.signal == "peers":
		text = "fan-out " + name + " → " + fmtNum(value) + " peers"
	case r.kind == KindFanOut && r.signal == "dst_ports":
		text = "fan-out " + name + " → " + fmtNum(value) + " destination ports"
	case r.kind == KindFanOut:
		text = "fan-out " + name + " → " + fmtNum(value) + " small flows"
	case r.kind == KindFanIn:
		text = "fan-in " + name + " ← " + fmtNum(value) + " sources"
	case r.kind == KindBaseline:
		text = r.signal + " of " + name + " " + fmtNum(value) + " outside baseline " + fmtNum(base) + " (limit " + fmtNum(limit) + ")"
	default:
		text = r.signal + " of " + name + " " + fmtNum(value) + " (threshold " + fmtNum(limit) + ")"
	}
	return subjectInfo{labels: l, link: "/#/vm/" + name, summary: summary(r, text, value, limit)}
}

var _ = netip.Addr{}

// seriesStore holds the baseline series: a map from the series' hash to
// its slot in a slab, so that a window costs one map lookup per series.
// Per series: the 16-byte state, plus 16 bytes of map slot (8-byte key,
// 4-byte index, padding) and the map's control bytes and spare capacity.
type seriesStore struct {
	idx  map[uint64]int32
	slab []baseState
	free []int32
}

func newSeriesStore(n int) *seriesStore {
	return &seriesStore{idx: make(map[uint64]int32, n)}
}

func (s *seriesStore) len() int { return len(s.idx) }

func (s *seriesStore) get(fp uint64) *baseState {
	if i, ok := s.idx[fp]; ok {
		return &s.slab[i]
	}
	return nil
}

func (s *seriesStore) add(fp uint64, b baseState) {
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
		s.slab[i] = b
	} else {
		i = int32(len(s.slab))
		s.slab = append(s.slab, b)
	}
	s.idx[fp] = i
}

// expire deletes the series last updated before cut.
func (s *seriesStore) expire(cut uint32) {
	for fp, i := range s.idx {
		if s.slab[i].last < cut {
			delete(s.idx, fp)
			s.slab[i] = baseState{}
			s.free = append(s.free, i)
		}
	}
}

func (s *seriesStore) each(f func(fp uint64, b *baseState)) {
	for fp, i := range s.idx {
		f(fp, &s.slab[i])
	}
}
