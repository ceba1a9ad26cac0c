package aggregate

import (
	"net/netip"
	"slices"
	"sync"
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
//   - a sample not newer than the baseline (duplicate, reordered) is
//     ignored.
const (
	wrap32Max  = 1 << 31
	unknown32  = 0xffffffff
	unknown64  = ^uint64(0)
	uptimeSlop = 2000 // ms of slack when telling an uptime wrap from a restart
)

// portSnap is the baseline of a port: its last sample. The 32-bit packet
// counters (unicast, multicast, broadcast) are kept apart so that each
// wraps on its own; errors and discards are in portState.errDisc.
type portSnap struct {
	received  int64
	uptime    uint32
	seq       uint32
	inOctets  uint64
	outOctets uint64
	in32      [3]uint32
	out32     [3]uint32
}

type portState struct {
	key     PortKey
	base    portSnap
	has     bool
	errDisc [4]uint32 // inErrors, inDiscards, outErrors, outDiscards of base
	name    string
	seen    int64 // unix ns of the last sample
	cur     PortStats
}

// portTable computes per-window port counter deltas from sFlow counter
// samples. It is shared by all collector workers (a port's samples may
// arrive on any of them), behind one mutex: counter samples are rare (one
// per port per polling interval). State per port: one portState (about
// 300 bytes with its map entry; the port name string is allocated only
// when it changes).
type portTable struct {
	mu     sync.Mutex
	m      map[PortKey]*portState
	max    int
	expiry time.Duration

	mResets  *prometheus.CounterVec
	mWraps   prometheus.Counter
	mDropped prometheus.Counter
	mIgnored prometheus.Counter
}

func newPortTable(max int, expiry time.Duration) *portTable {
	return &portTable{
		m: map[PortKey]*portState{}, max: max, expiry: expiry,
		mResets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_aggregate_port_resets_total",
			Help: "Port counter samples that restarted the baseline instead of giving a delta, by reason (uptime, sequence, counter)."}, []string{"reason"}),
		mWraps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_port_counter_wraps_total", Help: "32-bit port counters that wrapped (delta taken modulo 2^32)."}),
		mDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_port_state_dropped_total", Help: "Counter samples of new ports not tracked because aggregate.max_ports was reached."}),
		mIgnored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_port_samples_ignored_total", Help: "Counter samples not newer than the port's previous one (duplicates, reordered)."}),
	}
}

func (t *portTable) collectors() []prometheus.Collector {
	return []prometheus.Collector{t.mResets, t.mWraps, t.mDropped, t.mIgnored, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmflow_aggregate_port_states", Help: "Ports whose counters are tracked for per-window deltas.",
	}, func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return float64(len(t.m))
	})}
}

func snapOf(c *decoder.Counters) (s portSnap, ed [4]uint32) {
	s.received, s.uptime, s.seq = c.Received, c.Uptime, c.SampleSeq
	s.inOctets, s.outOctets = c.InOctets, c.OutOctets
	s.in32 = [3]uint32{uint32(c.InUcast), uint32(c.InMcast), uint32(c.InBcast)}
	s.out32 = [3]uint32{uint32(c.OutUcast), uint32(c.OutMcast), uint32(c.OutBcast)}
	ed = [4]uint32{uint32(c.InErrors), uint32(c.InDiscard), uint32(c.OutErrors), uint32(c.OutDiscard)}
	return s, ed
}

// add takes a batch's counter samples. No allocation for known ports.
func (t *portTable) add(cs []decoder.Counters) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range cs {
		c := &cs[i]
		if !c.HasIf {
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
			ps = &portState{key: k}
			t.m[k] = ps
		}
		if n := c.PortName[:c.PortNameLen]; len(n) > 0 && string(n) != ps.name {
			ps.name = string(n)
		}
		t.update(ps, c)
	}
}

func (t *portTable) update(ps *portState, c *decoder.Counters) {
	snap, ed := snapOf(c)
	ps.cur.IfSpeed, ps.cur.IfStatus = c.IfSpeed, c.IfStatus
	if !ps.has {
		ps.base, ps.errDisc, ps.has, ps.seen = snap, ed, true, snap.received
		return
	}
	b := &ps.base
	dt := snap.received - b.received
	if dt <= 0 || snap.seq == b.seq {
		t.mIgnored.Inc()
		return
	}
	ps.seen = snap.received
	reason := ""
	switch {
	case snap.uptime < b.uptime && uint64(snap.uptime-b.uptime) > uint64(dt/1e6)+uptimeSlop:
		reason = "uptime"
	case snap.seq-b.seq > wrap32Max:
		reason = "sequence"
	case backwards64(b.inOctets, snap.inOctets) || backwards64(b.outOctets, snap.outOctets):
		reason = "counter"
	}
	if reason != "" {
		t.mResets.WithLabelValues(reason).Inc()
		ps.cur.Resets++
		ps.base, ps.errDisc = snap, ed
		return
	}
	cur := &ps.cur
	cur.Seconds += float64(dt) / 1e9
	cur.Samples++
	cur.InOctets += delta64(b.inOctets, snap.inOctets)
	cur.OutOctets += delta64(b.outOctets, snap.outOctets)
	for j := 0; j < 3; j++ {
		cur.InPackets += t.delta32(b.in32[j], snap.in32[j])
		cur.OutPackets += t.delta32(b.out32[j], snap.out32[j])
	}
	cur.InErrors += t.delta32(ps.errDisc[0], ed[0])
	cur.InDiscards += t.delta32(ps.errDisc[1], ed[1])
	cur.OutErrors += t.delta32(ps.errDisc[2], ed[2])
	cur.OutDiscards += t.delta32(ps.errDisc[3], ed[3])
	ps.base, ps.errDisc = snap, ed
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

func (t *portTable) delta32(prev, cur uint32) uint64 {
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
	cutoff := end.Add(-t.expiry).UnixNano()
	for k, ps := range t.m {
		if ps.cur.Samples > 0 || ps.cur.Resets > 0 {
			st := ps.cur
			st.Key = k
			st.Name = ps.name
			resolvePort(&st, idx)
			out = append(out, st)
		}
		ps.cur = PortStats{IfSpeed: ps.cur.IfSpeed, IfStatus: ps.cur.IfStatus}
		if ps.seen < cutoff {
			delete(t.m, k)
		}
	}
	sortPortStats(out)
	return out
}

// resolvePort fills host and VM from the inventory index.
func resolvePort(st *PortStats, idx *enrich.Index) {
	if idx == nil {
		return
	}
	h, ok := idx.HostOfObservation(st.Key.Agent, st.Key.SubAgent)
	if !ok {
		return
	}
	st.Host = h
	if st.Name == "" {
		return
	}
	if p, ok := idx.ByTap(h, st.Name); ok {
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
