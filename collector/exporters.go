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
	// IPFIX/NetFlow v9: the session of all domains of the exporter's
	// address (immutable; nil for sFlow).
	sess *session

	addr         netip.AddrPort // last UDP source
	kind         SeqKind
	datagrams    uint64
	samples      uint64
	decodeErrors uint64
	first, last  int64 // unix ns
	trk          seqTracker
}

// A session is one exporting process (protocol and source address) across
// all its observation domains. RFC 7011 (and RFC 3954 for NetFlow v9) gives
// each observation domain its own sequence counter, and the exporter state
// follows it. Open vSwitch does not: it numbers every data message of an
// exporter with one counter, whatever its domain, and sends its exporting
// process statistics in domain 0 (one options record, each time it sends
// templates), so each domain's sequence skips the numbers the other domains
// used, and domain 0's skips nearly all of them. The session tracker
// follows the messages of all domains as one stream. When it explains the
// sequence better (fewer lost units, restarts and duplicates) than the
// domains' own trackers together, the counter is shared: its loss,
// reordering and restarts are the session's (which domain a lost message
// belonged to cannot be known; they are shown on the domain with the most
// records) and the domains' own trackers are not used.
type session struct {
	mu   sync.Mutex
	kind SeqKind
	trk  seqTracker
	// what an expired domain already showed of the session's figures
	// (its loss is in goneLost): not to be shown again
	gone seqFigures

	// under exporterTable.mu
	key     exporterKey
	members int // domains in the table
	domains int // domains ever seen
}

// seqFigures are what an exporter shows of the sequence accounting.
type seqFigures struct {
	lostDatagrams, lostRecords, reordered, restarts uint64
	session                                         bool // the session's (shared counter)
}

// exporterTable holds every exporter's state. Workers look exporters up in
// their own unlocked cache first; the table's lock is taken only for a new
// exporter, expiry and reads. Each exporter has its own mutex, held for a
// few counter updates per datagram.
type exporterTable struct {
	mu    sync.Mutex
	m     map[exporterKey]*exporter
	sess  map[exporterKey]*session // by exporter key without domain
	max   int
	epoch atomic.Uint64 // bumped when exporters are removed

	untracked atomic.Uint64
	// loss of removed exporters, per protocol, so the loss gauge does not
	// fall when an exporter expires
	goneLost [4]uint64
}

func newExporterTable(max int) *exporterTable {
	return &exporterTable{m: make(map[exporterKey]*exporter), sess: make(map[exporterKey]*session), max: max}
}

func sessionKey(k exporterKey) exporterKey {
	k.obsDomain = 0
	return k
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
	if k.proto != ProtoSFlow {
		sk := sessionKey(k)
		se := t.sess[sk]
		if se == nil {
			se = &session{key: sk}
			t.sess[sk] = se
		}
		se.members++
		se.domains++
		e.sess = se
	}
	t.m[k] = e
	return e
}

// figures returns what each of es shows of the sequence accounting: its own
// tracker's figures, or for a session with a shared counter the session's
// (on its busiest domain). Called with t.mu held.
func (t *exporterTable) figures(es []*exporter) []seqFigures {
	out := make([]seqFigures, len(es))
	type group struct {
		score   uint64 // the domains' anomalies together
		busiest int
		records uint64
		members []int
	}
	var groups map[*session]*group
	for i, e := range es {
		e.mu.Lock()
		out[i] = seqFigures{
			lostDatagrams: e.trk.lostDatagrams(e.kind),
			reordered:     e.trk.reordered,
			restarts:      e.trk.restarts,
		}
		if e.kind == SeqRecords {
			out[i].lostRecords = e.trk.lost
		}
		score := e.trk.lost + e.trk.restarts + e.trk.dups
		records := e.trk.records + e.datagrams
		e.mu.Unlock()
		if e.sess == nil || e.sess.domains < 2 {
			continue
		}
		if groups == nil {
			groups = make(map[*session]*group)
		}
		g := groups[e.sess]
		if g == nil {
			g = &group{busiest: i, records: records}
			groups[e.sess] = g
		} else if b := es[g.busiest]; records > g.records || (records == g.records && e.key.obsDomain < b.key.obsDomain) {
			g.busiest, g.records = i, records
		}
		g.score += score
		g.members = append(g.members, i)
	}
	for se, g := range groups {
		se.mu.Lock()
		tr := &se.trk
		shared := tr.lost+tr.restarts+tr.dups < g.score
		f := seqFigures{
			session:       true,
			lostDatagrams: tr.lostDatagrams(se.kind),
			reordered:     tr.reordered,
			restarts:      tr.restarts,
		}
		if se.kind == SeqRecords {
			f.lostRecords = tr.lost
		}
		f.lostDatagrams -= min(f.lostDatagrams, se.gone.lostDatagrams)
		f.lostRecords -= min(f.lostRecords, se.gone.lostRecords)
		f.reordered -= min(f.reordered, se.gone.reordered)
		f.restarts -= min(f.restarts, se.gone.restarts)
		se.mu.Unlock()
		if !shared {
			continue
		}
		for _, i := range g.members {
			out[i] = seqFigures{}
		}
		out[g.busiest] = f
	}
	return out
}

// expire removes exporters not seen since before cutoff (unix ns).
func (t *exporterTable) expire(cutoff int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var old []*exporter
	for _, e := range t.m {
		e.mu.Lock()
		if e.last < cutoff {
			old = append(old, e)
		}
		e.mu.Unlock()
	}
	if len(old) == 0 {
		return 0
	}
	all := make([]*exporter, 0, len(t.m))
	for _, e := range t.m {
		all = append(all, e)
	}
	fig := t.figures(all)
	figOf := make(map[*exporter]seqFigures, len(all))
	for i, e := range all {
		figOf[e] = fig[i]
	}
	n := 0
	for _, e := range old {
		k := e.key
		e.mu.Lock()
		if e.last >= cutoff { // seen again meanwhile
			e.mu.Unlock()
			continue
		}
		e.dead = true
		e.mu.Unlock()
		f := figOf[e]
		if int(k.proto) < len(t.goneLost) {
			t.goneLost[k.proto] += f.lostDatagrams
		}
		if se := e.sess; se != nil {
			if f.session {
				// the session's loss is counted now: another
				// domain must not show it again
				se.mu.Lock()
				se.gone.lostDatagrams += f.lostDatagrams
				se.gone.lostRecords += f.lostRecords
				se.gone.reordered += f.reordered
				se.gone.restarts += f.restarts
				se.mu.Unlock()
			}
			se.members--
			if se.members == 0 {
				delete(t.sess, se.key)
			}
		}
		delete(t.m, k)
		n++
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
	var es []*exporter
	for k, e := range t.m {
		if k.proto == p {
			es = append(es, e)
		}
	}
	for _, f := range t.figures(es) {
		n += f.lostDatagrams
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
	fig := t.figures(es)
	t.mu.Unlock()
	out := make([]ExporterStatus, 0, len(es))
	for i, e := range es {
		e.mu.Lock()
		st := ExporterStatus{
			Protocol:      e.key.proto.String(),
			Address:       e.addr.String(),
			SubAgent:      e.key.subAgent,
			ObsDomain:     e.key.obsDomain,
			Datagrams:     e.datagrams,
			Samples:       e.samples,
			DecodeErrors:  e.decodeErrors,
			LostDatagrams: fig[i].lostDatagrams,
			LostRecords:   fig[i].lostRecords,
			Reordered:     fig[i].reordered,
			Restarts:      fig[i].restarts,
			LastSequence:  e.trk.lastSeq,
			FirstSeen:     time.Unix(0, e.first).UTC(),
			LastSeen:      time.Unix(0, e.last).UTC(),
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
	// recent are the exporters used last, looked at before m (a reader
	// sees a few exporters interleaved; comparing keys is cheaper than
	// hashing one)
	recent [4]*exporter
	// pend are the updates of the datagrams handled since the last flush,
	// in arrival order: each run of one exporter's datagrams takes its
	// exporter's (and session's) lock once
	pend []pendingUpdate
}

// pendingUpdate is what one handled datagram changes of its exporter.
type pendingUpdate struct {
	k        exporterKey
	from     netip.AddrPort
	received int64
	m        Meta
	failed   bool
	arrival  uint64
}

// pendMax bounds the updates held before a flush.
const pendMax = 256

// lookup returns the cached exporter of k, or nil.
func (c *exporterCache) lookup(k exporterKey) *exporter {
	for i, e := range c.recent {
		if e != nil && e.key == k {
			if i > 0 {
				copy(c.recent[1:i+1], c.recent[:i])
				c.recent[0] = e
			}
			return e
		}
	}
	e := c.m[k]
	if e != nil {
		copy(c.recent[1:], c.recent[:len(c.recent)-1])
		c.recent[0] = e
	}
	return e
}

// forget drops k from the cache.
func (c *exporterCache) forget(k exporterKey) {
	delete(c.m, k)
	c.recent = [len(c.recent)]*exporter{}
}

func newExporterCache(t *exporterTable) *exporterCache {
	return &exporterCache{t: t, m: make(map[exporterKey]*exporter), pend: make([]pendingUpdate, 0, pendMax)}
}

// sweep drops removed exporters from the cache when the table changed.
func (c *exporterCache) sweep() {
	ep := c.t.epoch.Load()
	if ep == c.epoch {
		return
	}
	c.epoch = ep
	c.recent = [len(c.recent)]*exporter{}
	for k, e := range c.m {
		e.mu.Lock()
		dead := e.dead
		e.mu.Unlock()
		if dead {
			delete(c.m, k)
		}
	}
}

// record notes what the handler found of datagram d for its exporter; flush
// applies it (record does when pendMax updates are held).
func (c *exporterCache) record(d *Datagram, m *Meta, failed bool, arrival uint64) {
	c.pend = append(c.pend, pendingUpdate{
		k: exporterKey{
			proto:     d.Proto,
			src:       d.From.Addr(),
			agent:     m.Agent,
			subAgent:  m.SubAgent,
			obsDomain: m.ObsDomain,
		},
		from: d.From, received: d.Received, m: *m, failed: failed, arrival: arrival,
	})
	if len(c.pend) == cap(c.pend) {
		c.flush()
	}
}

// flush applies the held updates, in order, one run of an exporter's
// datagrams at a time.
func (c *exporterCache) flush() {
	p := c.pend
	for i := 0; i < len(p); {
		j := i + 1
		for j < len(p) && p[j].k == p[i].k {
			j++
		}
		c.apply(p[i:j])
		i = j
	}
	c.pend = p[:0]
}

// apply updates the exporter of run (datagrams of one exporter, in order).
func (c *exporterCache) apply(run []pendingUpdate) {
	k := run[0].k
	for range 2 {
		e := c.lookup(k)
		if e == nil {
			e = c.t.get(k)
			if e == nil {
				c.t.untracked.Add(uint64(len(run)))
				return
			}
			c.m[k] = e
		}
		e.mu.Lock()
		if e.dead {
			e.mu.Unlock()
			c.forget(k)
			continue
		}
		tracked := 0
		for i := range run {
			u := &run[i]
			e.addr = u.from
			e.datagrams++
			if e.first == 0 {
				e.first = u.received
			}
			if u.received > e.last {
				e.last = u.received
			}
			if u.failed {
				e.decodeErrors++
				continue
			}
			e.samples += uint64(max(u.m.Samples, 0))
			if u.m.SeqKind != SeqNone {
				e.kind = u.m.SeqKind
				e.trk.update(u.m.SeqKind, u.m.Sequence, u.records(), u.m.Uptime, u.arrival)
				tracked++
			}
		}
		e.mu.Unlock()
		if se := e.sess; se != nil && tracked > 0 {
			se.mu.Lock()
			for i := range run {
				if u := &run[i]; !u.failed && u.m.SeqKind != SeqNone {
					se.kind = u.m.SeqKind
					se.trk.update(u.m.SeqKind, u.m.Sequence, u.records(), u.m.Uptime, u.arrival)
				}
			}
			se.mu.Unlock()
		}
		return
	}
}

// records is what the datagram's sequence counts (-1: unknown).
func (u *pendingUpdate) records() int {
	if u.m.RecordsUnknown {
		return -1
	}
	return u.m.Records
}
