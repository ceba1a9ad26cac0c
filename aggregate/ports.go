package aggregate

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// PortKey identifies one exporter interface: the sFlow agent, its
// sub-agent and the interface's ifIndex on that agent's host.
type PortKey struct {
	Agent    netip.Addr
	SubAgent uint32
	IfIndex  uint32
}

// PortStats is one switch port's interface counters in one window: the
// counter increases (deltas) of the sFlow counter samples received in the
// window, each against the previous sample of the same port, and the time
// they cover (Seconds: the sum of the intervals between those samples).
// Rates are delta/Seconds, so windows and buckets merge exactly by adding
// both; a window without a counter sample of the port has no PortStats.
//
// Directions are the switch port's (sFlow's): In is what the switch
// received from the interface, i.e. what the VM behind a tap sent; Out is
// what the switch sent to it (the VM received).
type PortStats struct {
	Key  PortKey
	Name string // OVS port name (0:1005), when sent
	// Host, VM, UUID and Tenant are resolved from the inventory at window
	// close: Host from the agent (exporter identity), VM from the port name
	// as a tap (or OVS port) of a VM on that host.
	Host, VM, UUID, Tenant string
	VMID                   enrich.VMID // 0: no VM resolved

	IfSpeed  uint64 // bits/s, latest (0: unknown)
	IfStatus uint32 // latest ifAdminStatus (bit 0) / ifOperStatus (bit 1)

	Seconds float64 // time covered by the deltas
	Samples uint32  // counter samples that gave a delta
	Resets  uint32  // samples that restarted the baseline (agent restart, port reset)

	InOctets, OutOctets     uint64
	InPackets, OutPackets   uint64 // unicast + multicast + broadcast
	InErrors, OutErrors     uint64
	InDiscards, OutDiscards uint64
}

// Merge adds o (a later window of the same port) into s.
func (s *PortStats) Merge(o *PortStats) {
	s.Seconds += o.Seconds
	s.Samples += o.Samples
	s.Resets += o.Resets
	s.InOctets += o.InOctets
	s.OutOctets += o.OutOctets
	s.InPackets += o.InPackets
	s.OutPackets += o.OutPackets
	s.InErrors += o.InErrors
	s.OutErrors += o.OutErrors
	s.InDiscards += o.InDiscards
	s.OutDiscards += o.OutDiscards
	if o.IfSpeed != 0 {
		s.IfSpeed = o.IfSpeed
	}
	s.IfStatus = o.IfStatus
	if o.VMID != 0 {
		s.VMID = o.VMID
	}
	for _, p := range [...]struct {
		dst *string
		v   string
	}{
		{&s.Name, o.Name}, {&s.Host, o.Host}, {&s.VM, o.VM}, {&s.UUID, o.UUID}, {&s.Tenant, o.Tenant},
	} {
		if p.v != "" {
			*p.dst = p.v
		}
	}
}

// Rate returns v per second over the covered time (0 when none).
func (s *PortStats) Rate(v uint64) float64 {
	if s.Seconds <= 0 {
		return 0
	}
	return float64(v) / s.Seconds
}

// Utilisation returns the bit rate of octets against IfSpeed (0..1; -1
// when the speed is unknown).
func (s *PortStats) Utilisation(octets uint64) float64 {
	if s.IfSpeed == 0 || s.Seconds <= 0 {
		return -1
	}
	return float64(octets) * 8 / s.Seconds / float64(s.IfSpeed)
}

// MergePorts merges the ports of b into a copy of a, by key (b later).
func MergePorts(a, b []PortStats) []PortStats {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]PortStats, len(a), len(a)+len(b))
	copy(out, a)
	at := make(map[PortKey]int, len(out))
	for i := range out {
		at[out[i].Key] = i
	}
	for i := range b {
		if j, ok := at[b[i].Key]; ok {
			out[j].Merge(&b[i])
		} else {
			at[b[i].Key] = len(out)
			out = append(out, b[i])
		}
	}
	return out
}

// Counter wrap and reset rules (see README "Errors and drops per VM port"):
//   - the first sample of a port only sets the baseline;
//   - the agent's uptime going back (not a 2^32 ms wrap), the counter
//     sample sequence going back, or a 64-bit octet counter going back is
//     a restart or port reset: the sample becomes the new baseline and
//     gives no delta (Resets counts it), so no spike;
//   - a 32-bit counter (packets, errors, discards) below its previous value
//     has wrapped: the delta is taken modulo 2^32, unless that delta is
//     above 2^31 (implausible: treated as a reset of that counter, 0);
//   - a value of all ones is sFlow's "unknown": no delta for that counter;
//   - a sample not newer than the baseline (reordered), or repeating it
//     (same sequence, uptime and octets: a duplicate), is ignored.
const (
	wrap32Max  = 1 << 31
	unknown32  = 0xffffffff
	unknown64  = ^uint64(0)
	uptimeSlop = 2000 // ms of slack when telling an uptime wrap from a restart
)

// portState is one port: its latest record (the Ports view, and the
// baseline of the next delta) and the open window's deltas. The 32-bit
// counters (unicast, multicast, broadcast packets, errors, discards) each
// wrap on their own.
type portState struct {
	last     PortCounters
	uptime   uint32
	seq      uint32
	received int64  // unix ns of last's generic counters (0: no baseline yet)
	idle     uint32 // windows closed since the last record
	cur      PortStats
	// learnedMAC is the MAC of a VM seen entering the bridge through this
	// port (sFlow flow samples' input ifIndex), for ports without a name.
	learnedMAC [6]byte
	learnMiss  uint16 // flow samples through the port that named no VM of its host
}

// portTable keeps the latest interface counters of every port (sFlow
// counter samples) and computes the per-window deltas. It is shared by all
// collector workers (a port's samples may arrive on any of them), behind
// one mutex: counter samples are rare (one per port per polling interval).
// State per port: one portState (about 500 bytes with its map entry; the
// port name string is allocated only when it changes).
type portTable struct {
	mu      sync.Mutex
	unnamed atomic.Int32 // ports with counters but no name nor learned MAC (set at close)
	m       map[PortKey]*portState
	max     int
	maxIdle uint32 // windows without a record before a port is forgotten

	mStored  prometheus.Counter
	mDropped prometheus.Counter
	mResets  *prometheus.CounterVec
	mWraps   prometheus.Counter
	mIgnored prometheus.Counter
}

func newPortTable(maxPorts int, expiry, window time.Duration) *portTable {
	return &portTable{
		m: map[PortKey]*portState{}, max: maxPorts, maxIdle: uint32(max(1, int64(expiry/window))),
		mStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_counter_samples_total", Help: "Interface counter records (sFlow counter samples) stored for the port view."}),
		mDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_ports_dropped_total", Help: "Interface counter records of new ports not stored because aggregate.max_ports was reached."}),
		mResets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_aggregate_port_resets_total",
			Help: "Port counter samples that restarted the baseline instead of giving a delta, by reason (uptime, sequence, counter)."}, []string{"reason"}),
		mWraps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_port_counter_wraps_total", Help: "32-bit port counters that wrapped (delta taken modulo 2^32)."}),
		mIgnored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_port_samples_ignored_total", Help: "Counter samples not newer than the port's previous one (duplicates, reordered)."}),
	}
}

func (t *portTable) collectors() []prometheus.Collector {
	return []prometheus.Collector{t.mStored, t.mDropped, t.mResets, t.mWraps, t.mIgnored, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmflow_aggregate_ports", Help: "Interface counter entries kept (ports).",
	}, func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return float64(len(t.m))
	})}
}

// add takes a batch's counter samples. No allocation for known ports.
func (t *portTable) add(cs []decoder.Counters) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range cs {
		c := &cs[i]
		if !c.HasIf && !c.HasOFPort && c.PortNameLen == 0 {
			continue
		}
		agent := c.Agent
		if !agent.IsValid() {
			agent = c.Exporter
		}
		k := PortKey{Agent: agent, SubAgent: c.SubAgent, IfIndex: c.IfIndex}
		ps, ok := t.m[k]
		if !ok {
			if len(t.m) >= t.max {
				t.mDropped.Inc()
				continue
			}
			ps = &portState{last: PortCounters{Agent: agent, SubAgent: c.SubAgent, IfIndex: c.IfIndex}}
			t.m[k] = ps
		}
		t.mStored.Inc()
		ps.idle = 0
		l := &ps.last
		l.Exporter = c.Exporter
		l.Updated = time.Unix(0, c.Received)
		if c.HasOFPort {
			l.HasOFPort, l.DatapathID, l.OFPort = true, c.DatapathID, c.OFPort
		}
		if n := c.PortName[:c.PortNameLen]; len(n) > 0 && string(n) != l.Name {
			l.Name = string(n)
		}
		if c.HasIf {
			t.update(ps, c)
		}
	}
}

// setIf copies the generic interface counters into the latest record.
func (l *PortCounters) setIf(c *decoder.Counters) {
	l.IfType, l.IfSpeed, l.IfStatus = c.IfType, c.IfSpeed, c.IfStatus
	l.InOctets, l.InUcast, l.InMcast, l.InBcast = c.InOctets, c.InUcast, c.InMcast, c.InBcast
	l.InDiscard, l.InErrors = c.InDiscard, c.InErrors
	l.OutOctets, l.OutUcast, l.OutMcast, l.OutBcast = c.OutOctets, c.OutUcast, c.OutMcast, c.OutBcast
	l.OutDiscard, l.OutErrors = c.OutDiscard, c.OutErrors
}

func (t *portTable) update(ps *portState, c *decoder.Counters) {
	ps.cur.IfSpeed, ps.cur.IfStatus = c.IfSpeed, c.IfStatus
	b := &ps.last // the previous sample until setIf below
	dt := c.Received - ps.received
	if ps.received != 0 {
		dup := c.SampleSeq == ps.seq && c.Uptime == ps.uptime && c.InOctets == b.InOctets && c.OutOctets == b.OutOctets
		if dt <= 0 || dup {
			t.mIgnored.Inc()
			return
		}
		t.delta(ps, c, dt)
	}
	b.setIf(c)
	ps.uptime, ps.seq, ps.received = c.Uptime, c.SampleSeq, c.Received
}

// delta adds the increase from the previous sample (ps.last) to c into
// the open window, or counts a reset.
func (t *portTable) delta(ps *portState, c *decoder.Counters, dt int64) {
	b := &ps.last
	reason := ""
	switch {
	case c.Uptime < ps.uptime && uint64(c.Uptime-ps.uptime) > uint64(dt/1e6)+uptimeSlop:
		reason = "uptime"
	case c.SampleSeq-ps.seq > wrap32Max:
		reason = "sequence"
	case backwards64(b.InOctets, c.InOctets) || backwards64(b.OutOctets, c.OutOctets):
		reason = "counter"
	}
	cur := &ps.cur
	if reason != "" {
		t.mResets.WithLabelValues(reason).Inc()
		cur.Resets++
		return
	}
	cur.Seconds += float64(dt) / 1e9
	cur.Samples++
	cur.InOctets += delta64(b.InOctets, c.InOctets)
	cur.OutOctets += delta64(b.OutOctets, c.OutOctets)
	cur.InPackets += t.delta32(b.InUcast, c.InUcast) + t.delta32(b.InMcast, c.InMcast) + t.delta32(b.InBcast, c.InBcast)
	cur.OutPackets += t.delta32(b.OutUcast, c.OutUcast) + t.delta32(b.OutMcast, c.OutMcast) + t.delta32(b.OutBcast, c.OutBcast)
	cur.InErrors += t.delta32(b.InErrors, c.InErrors)
	cur.InDiscards += t.delta32(b.InDiscard, c.InDiscard)
	cur.OutErrors += t.delta32(b.OutErrors, c.OutErrors)
	cur.OutDiscards += t.delta32(b.OutDiscard, c.OutDiscard)
}

func backwards64(prev, cur uint64) bool {
	return prev != unknown64 && cur != unknown64 && cur < prev
}

func delta64(prev, cur uint64) uint64 {
	if prev == unknown64 || cur == unknown64 || cur < prev {
		return 0
	}
	return cur - prev
}

func (t *portTable) delta32(prev64, cur64 uint64) uint64 {
	prev, cur := uint32(prev64), uint32(cur64)
	if prev == unknown32 || cur == unknown32 {
		return 0
	}
	d := cur - prev // modulo 2^32
	if cur < prev {
		if d > wrap32Max {
			return 0 // not a plausible wrap: a reset of this counter
		}
		t.mWraps.Inc()
	}
	return uint64(d)
}

// close returns the window's port stats (ports with a sample in it),
// resolved with idx, resets the accumulators and forgets ports not heard
// of for expiry.
func (t *portTable) close(end time.Time, idx *enrich.Index) []PortStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []PortStats
	unnamed := int32(0)
	for k, ps := range t.m {
		if ps.last.Name == "" && ps.learnedMAC == ([6]byte{}) {
			unnamed++
		}
		if ps.cur.Samples > 0 || ps.cur.Resets > 0 {
			st := ps.cur
			st.Key = k
			st.Name = ps.last.Name
			resolvePort(&st, idx, ps.learnedMAC)
			out = append(out, st)
		}
		ps.cur = PortStats{IfSpeed: ps.cur.IfSpeed, IfStatus: ps.cur.IfStatus}
		if ps.idle++; ps.idle > t.maxIdle {
			delete(t.m, k)
		}
	}
	t.unnamed.Store(unnamed)
	sortPortStats(out)
	return out
}

// learnGiveUp is how many flow samples through an unnamed port may name
// no VM of its host before the port stops being learned (an uplink).
const learnGiveUp = 256

// noVM marks a port given up on (learnedMAC; a multicast address, never a
// VM's).
var noVM = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// learnIfIndex attributes ports that have no name (agents that send no
// port-name record) from flow samples: a sample entering through ifIndex
// i of an agent with the source MAC of a VM running on that agent's host
// names port (agent, i) as that VM's. The uplink, where other hosts' VMs
// enter, never matches and is given up after learnGiveUp samples. Only
// called while such ports exist (unnamed > 0).
func (t *portTable) learnIfIndex(idx *enrich.Index, rs []decoder.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range rs {
		r := &rs[i]
		if r.Source != decoder.SourceSFlow || r.InIf == 0 {
			continue
		}
		ps, ok := t.m[PortKey{Agent: r.Agent, SubAgent: r.SubAgent, IfIndex: r.InIf}]
		if !ok || ps.last.Name != "" || ps.learnedMAC != ([6]byte{}) {
			continue
		}
		h, okH := idx.HostOfObservation(r.Agent, r.SubAgent)
		if p, okV := idx.ByMAC(r.SrcMAC); okH && okV && p.VM.Host == h {
			ps.learnedMAC = r.SrcMAC
		} else if ps.learnMiss++; ps.learnMiss >= learnGiveUp {
			ps.learnedMAC = noVM
		}
	}
}

// resolvePort fills host and VM from the inventory index: by the port name
// as a tap of the host, else by the MAC learned from flow samples when
// that VM runs on the host.
func resolvePort(st *PortStats, idx *enrich.Index, learned [6]byte) {
	if idx == nil {
		return
	}
	h, ok := idx.HostOfObservation(st.Key.Agent, st.Key.SubAgent)
	if !ok {
		return
	}
	st.Host = h
	var p enrich.Port
	switch {
	case st.Name != "":
		p, ok = idx.ByTap(h, st.Name)
	case learned != [6]byte{} && learned != noVM:
		p, ok = idx.ByMAC(learned)
		ok = ok && p.VM.Host == h
	default:
		ok = false
	}
	if ok {
		st.VM, st.UUID, st.Tenant, st.VMID = p.VM.Name, p.VM.UUID, p.VM.Tenant, p.VM.ID
	}
}

func sortPortStats(ps []PortStats) {
	slices.SortFunc(ps, func(a, b PortStats) int {
		if c := a.Key.Agent.Compare(b.Key.Agent); c != 0 {
			return c
		}
		if a.Key.SubAgent != b.Key.SubAgent {
			return cmpU32(a.Key.SubAgent, b.Key.SubAgent)
		}
		return cmpU32(a.Key.IfIndex, b.Key.IfIndex)
	})
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
