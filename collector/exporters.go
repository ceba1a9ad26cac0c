package collector

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// exporterKey identifies an exporter: protocol, UDP source IP, sFlow agent
// and sub-agent, IPFIX/NetFlow observation domain (source ID).
type exporterKey struct {
	proto     Protocol
	src       netip.Addr
	agent     netip.Addr
	subAgent  uint32
	obsDomain uint32
}

type exporter struct {
	mu   sync.Mutex
	key  exporterKey
	dead bool // removed from the table; workers drop their cached pointer

	addr         netip.AddrPort // last UDP source
	kind         SeqKind
	datagrams    uint64
	samples      uint64
	decodeErrors uint64
	first, last  int64 // unix ns
	trk          seqTracker
}

// exporterTable holds every exporter's state. Workers look exporters up in
// their own unlocked cache first; the table's lock is taken only for a new
// exporter, expiry and reads. Each exporter has its own mutex, held for a
// few counter updates per datagram.
type exporterTable struct {
	mu    sync.Mutex
	m     map[exporterKey]*exporter
	max   int
	epoch atomic.Uint64 // bumped when exporters are removed

	untracked atomic.Uint64
	// loss of removed exporters, per protocol, so the loss gauge does not
	// fall when an exporter expires
	goneLost [4]uint64
}

func newExporterTable(max int) *exporterTable {
	return &exporterTable{m: make(map[exporterKey]*exporter), max: max}
}

// get returns the exporter for k, creating it; nil when the table is full.
func (t *exporterTable) get(k exporterKey) *exporter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[k]; e != nil {
		return e
	}
	if len(t.m) >= t.max {
		return nil
	}
	e := &exporter{key: k}
	t.m[k] = e
	return e
}

// expire removes exporters not seen since before cutoff (unix ns).
func (t *exporterTable) expire(cutoff int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, e := range t.m {
		e.mu.Lock()
		if e.last < cutoff {
			e.dead = true
			if int(k.proto) < len(t.goneLost) {
				t.goneLost[k.proto] += e.trk.lostDatagrams(e.kind)
			}
			delete(t.m, k)
			n++
		}
		e.mu.Unlock()
	}
	if n > 0 {
		t.epoch.Add(1)
	}
	return n
}

// lost returns the estimated lost datagrams per protocol, including
// exporters already removed.
func (t *exporterTable) lost(p Protocol) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	if int(p) < len(t.goneLost) {
		n = t.goneLost[p]
	}
	for k, e := range t.m {
		if k.proto != p {
			continue
		}
		e.mu.Lock()
		n += e.trk.lostDatagrams(e.kind)
		e.mu.Unlock()
	}
	return float64(n)
}

func (t *exporterTable) count(p Protocol) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k := range t.m {
		if k.proto == p {
			n++
		}
	}
	return float64(n)
}

func (t *exporterTable) snapshot() []ExporterStatus {
	t.mu.Lock()
	es := make([]*exporter, 0, len(t.m))
	for _, e := range t.m {
		es = append(es, e)
	}
	t.mu.Unlock()
	out := make([]ExporterStatus, 0, len(es))
	for _, e := range es {
		e.mu.Lock()
		st := ExporterStatus{
			Protocol:      e.key.proto.String(),
			Address:       e.addr.String(),
			SubAgent:      e.key.subAgent,
			ObsDomain:     e.key.obsDomain,
			Datagrams:     e.datagrams,
			Samples:       e.samples,
			DecodeErrors:  e.decodeErrors,
			LostDatagrams: e.trk.lostDatagrams(e.kind),
			Reordered:     e.trk.reordered,
			Restarts:      e.trk.restarts,
			LastSequence:  e.trk.lastSeq,
			FirstSeen:     time.Unix(0, e.first).UTC(),
			LastSeen:      time.Unix(0, e.last).UTC(),
		}
		if e.kind == SeqRecords {
			st.LostRecords = e.trk.lost
		}
		if e.key.agent.IsValid() {
			st.Agent = e.key.agent.String()
		}
		e.mu.Unlock()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b ExporterStatus) int {
		return cmp.Or(
			cmp.Compare(a.Protocol, b.Protocol),
			cmp.Compare(a.Address, b.Address),
			cmp.Compare(a.Agent, b.Agent),
			cmp.Compare(a.SubAgent, b.SubAgent),
			cmp.Compare(a.ObsDomain, b.ObsDomain),
		)
	})
	return out
}

// exporterCache is one worker's unlocked view of the table.
type exporterCache struct {
	t     *exporterTable
	m     map[exporterKey]*exporter
	epoch uint64
}

func newExporterCache(t *exporterTable) *exporterCache {
	return &exporterCache{t: t, m: make(map[exporterKey]*exporter)}
}

// sweep drops removed exporters from the cache when the table changed.
func (c *exporterCache) sweep() {
	ep := c.t.epoch.Load()
	if ep == c.epoch {
		return
	}
	c.epoch = ep
	for k, e := range c.m {
		e.mu.Lock()
		dead := e.dead
		e.mu.Unlock()
		if dead {
			delete(c.m, k)
		}
	}
}

// record updates the exporter of datagram d with what the handler found.
func (c *exporterCache) record(d *Datagram, m *Meta, failed bool, arrival uint64) {
	k := exporterKey{
		proto:     d.Proto,
		src:       d.From.Addr(),
		agent:     m.Agent,
		subAgent:  m.SubAgent,
		obsDomain: m.ObsDomain,
	}
	for range 2 {
		e := c.m[k]
		if e == nil {
			e = c.t.get(k)
			if e == nil {
				c.t.untracked.Add(1)
				return
			}
			c.m[k] = e
		}
		e.mu.Lock()
		if e.dead {
			e.mu.Unlock()
			delete(c.m, k)
			continue
		}
		e.addr = d.From
		e.datagrams++
		if e.first == 0 {
			e.first = d.Received
		}
		if d.Received > e.last {
			e.last = d.Received
		}
		if failed {
			e.decodeErrors++
		} else {
			e.samples += uint64(max(m.Samples, 0))
			if m.SeqKind != SeqNone {
				e.kind = m.SeqKind
				e.trk.update(m.SeqKind, m.Sequence, m.Records, m.Uptime, arrival)
			}
		}
		e.mu.Unlock()
		return
	}
}
