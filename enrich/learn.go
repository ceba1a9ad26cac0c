package enrich

import (
	"container/list"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/internal/hashmix"
)

// Learning IP addresses from traffic.
//
// The hot path (one LearnFilter per collector worker) looks at the source
// side of every record whose source MAC is a known VM interface. When the
// record's source IP is a unicast address (link-local only with
// enrich.learn.link_local; never 0.0.0.0, ::, loopback, multicast or
// broadcast) that the interface does not have in the current Index, or has
// only as a learned address, the filter hands Observation{VM, MAC, IP} to
// the Learner through a bounded channel without blocking: when the channel
// is full the report is dropped and counted in
// vmflow_enrich_learn_dropped_total. The filter remembers recently reported
// (VM, MAC, IP) triples in a small direct-mapped cache so that steady
// traffic costs one cache probe: a missing address is reported again at
// most every 2 × enrich.learn.interval (in case a report was dropped), an
// already learned one at most every enrich.learn.expiry / 4 (to keep its
// last-seen time fresh). Addresses the interface has from any other source
// cost nothing. The filter allocates nothing.
//
// The Learner keeps each (VM, MAC, IP) with its last-seen time (the
// Enricher's clock when the report is processed), forgets it after
// enrich.learn.expiry without a report, keeps at most enrich.learn.max
// addresses overall and enrich.learn.max_per_interface per interface
// (dropping the least recently seen, counted in
// vmflow_enrich_learn_evicted_total). Additions, expiries and evictions are
// merged into a new Index at most every enrich.learn.interval; last-seen
// refreshes alone at most every min(expiry/4, 1m). In the Index a learned
// address is Addr{Source: "learned", LastSeen} on the interface of its MAC
// when that interface still belongs to the same VM; how it competes with
// other VMs' addresses for ByIP is in doc.go.

// Observation is one hot-path report: VM interface (VM id and MAC) seen
// sending from IP.
type Observation struct {
	VM  VMID
	MAC [6]byte
	IP  netip.Addr
}

// Learner receives Observations from the hot path. Its methods are safe for
// concurrent use; Report never blocks.
type Learner struct {
	ch        chan Observation
	dropped   prometheus.Counter
	linkLocal bool
	retry     int64 // ns between reports of a missing address
	refresh   int64 // ns between reports of a learned address
}

// Report hands o to the learner without blocking. It returns false when the
// queue was full (the report is dropped and counted).
func (l *Learner) Report(o Observation) bool {
	select {
	case l.ch <- o:
		return true
	default:
		l.dropped.Inc()
		return false
	}
}

// Learnable reports whether a source address may be learned: a unicast
// address, link-local only when configured.
func (l *Learner) Learnable(ip netip.Addr) bool {
	if ip.IsGlobalUnicast() {
		return true
	}
	return l.linkLocal && ip.IsLinkLocalUnicast()
}

// NewFilter returns a per-worker front end (not safe for concurrent use).
func (l *Learner) NewFilter() *LearnFilter { return &LearnFilter{l: l} }

const learnSlots = 4096 // per-worker cache entries (a power of two; 192 KiB)

type learnSlot struct {
	mac uint64
	vm  VMID
	ip  netip.Addr
	at  int64
}

// LearnFilter decides on the hot path whether a VM interface sending from a
// source IP is worth reporting to the Learner, and rate-limits repeats.
// One per collector worker; not safe for concurrent use; allocates nothing.
type LearnFilter struct {
	l     *Learner
	slots [learnSlots]learnSlot
}

// Saw is called for a record whose source MAC is the interface p.Iface of
// p.VM, with the record's source IP (unmapped) and receive time (unix ns).
func (f *LearnFilter) Saw(p Port, ip netip.Addr, now int64) {
	if p.Iface == nil || p.VM == nil {
		return
	}
	l := f.l
	learned := false
	addrs := p.Iface.Addrs
	for i := range addrs {
		if addrs[i].IP == ip {
			if addrs[i].Source != AddrLearned {
				return // known from inventory: nothing to learn
			}
			learned = true
			break
		}
	}
	limit := l.refresh
	if !learned {
		if !l.Learnable(ip) {
			return
		}
		limit = l.retry
	}
	mk := macKey(p.Iface.MAC)
	a := ip.As16()
	h := hashmix.Mix64(mk ^ uint64(p.VM.ID)<<48 ^ le64(a[:8])*0x9E3779B97F4A7C15 ^ le64(a[8:]))
	s := &f.slots[h&(learnSlots-1)]
	if s.mac == mk && s.vm == p.VM.ID && s.ip == ip {
		if d := now - s.at; d >= 0 && d < limit {
			return
		}
	}
	s.mac, s.vm, s.ip, s.at = mk, p.VM.ID, ip, now
	l.Report(Observation{VM: p.VM.ID, MAC: p.Iface.MAC, IP: ip})
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// learnKey identifies one learned address.
type learnKey struct {
	vm  VMID
	mac [6]byte
	ip  netip.Addr
}

type learnIface struct {
	vm  VMID
	mac [6]byte
}

type learnEntry struct {
	key  learnKey
	last time.Time
	elem *list.Element
}

// learnedAddr is a learned address handed to build.
type learnedAddr struct {
	vm   VMID
	ip   netip.Addr
	last time.Time
}

// learnStore is the Learner's state, owned by the Enricher (off the hot
// path).
type learnStore struct {
	cfg LearnConfig

	mu      sync.Mutex
	byKey   map[learnKey]*learnEntry
	byIface map[learnIface][]*learnEntry
	lru     *list.List // front: least recently seen
	// changed: entries added or removed since the last export;
	// refreshed: only last-seen times moved.
	changed, refreshed bool
	lastExport         time.Time

	reports, expired prometheus.Counter
	evicted          *prometheus.CounterVec
	entries          prometheus.Gauge
}

func newLearnStore(cfg LearnConfig) *learnStore {
	s := &learnStore{
		cfg:     cfg,
		byKey:   map[learnKey]*learnEntry{},
		byIface: map[learnIface][]*learnEntry{},
		lru:     list.New(),
		reports: prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_enrich_learn_reports_total", Help: "Source addresses reported by the hot path and processed by the learner."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_enrich_learn_expired_total", Help: "Learned addresses forgotten after enrich.learn.expiry without traffic."}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_enrich_learn_evicted_total", Help: "Learned addresses dropped to stay within enrich.learn.max (reason max) or enrich.learn.max_per_interface (reason max_per_interface)."}, []string{"reason"}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmflow_enrich_learned_addresses", Help: "Learned addresses currently remembered."}),
	}
	s.evicted.WithLabelValues("max")
	s.evicted.WithLabelValues("max_per_interface")
	return s
}

func (s *learnStore) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.reports, s.expired, s.evicted, s.entries}
}

// observe records one report at time now.
func (s *learnStore) observe(o Observation, now time.Time) {
	s.reports.Inc()
	k := learnKey{vm: o.VM, mac: o.MAC, ip: o.IP.Unmap()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byKey[k]; ok {
		e.last = now
		s.lru.MoveToBack(e.elem)
		s.refreshed = true
		return
	}
	ik := learnIface{vm: o.VM, mac: o.MAC}
	if list := s.byIface[ik]; len(list) >= s.cfg.MaxPerInterface {
		oldest := list[0]
		for _, e := range list[1:] {
			if e.last.Before(oldest.last) {
				oldest = e
			}
		}
		s.remove(oldest)
		s.evicted.WithLabelValues("max_per_interface").Inc()
	}
	for len(s.byKey) >= s.cfg.Max {
		s.remove(s.lru.Front().Value.(*learnEntry))
		s.evicted.WithLabelValues("max").Inc()
	}
	e := &learnEntry{key: k, last: now}
	e.elem = s.lru.PushBack(e)
	s.byKey[k] = e
	s.byIface[ik] = append(s.byIface[ik], e)
	s.changed = true
	s.entries.Set(float64(len(s.byKey)))
}

// remove deletes e (s.mu held).
func (s *learnStore) remove(e *learnEntry) {
	s.lru.Remove(e.elem)
	delete(s.byKey, e.key)
	ik := learnIface{vm: e.key.vm, mac: e.key.mac}
	l := s.byIface[ik]
	for i := range l {
		if l[i] == e {
			l[i] = l[len(l)-1]
			l[len(l)-1] = nil
			l = l[:len(l)-1]
			break
		}
	}
	if len(l) == 0 {
		delete(s.byIface, ik)
	} else {
		s.byIface[ik] = l
	}
	s.changed = true
	s.entries.Set(float64(len(s.byKey)))
}

// expire forgets addresses not seen for cfg.Expiry.
func (s *learnStore) expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		f := s.lru.Front()
		if f == nil {
			return
		}
		e := f.Value.(*learnEntry)
		if now.Sub(e.last) < s.cfg.Expiry {
			return
		}
		s.remove(e)
		s.expired.Inc()
	}
}

// needsRebuild: something to merge into the index at time now.
func (s *learnStore) needsRebuild(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed {
		return true
	}
	return s.refreshed && now.Sub(s.lastExport) >= s.refreshRebuild()
}

func (s *learnStore) refreshRebuild() time.Duration {
	d := s.cfg.Expiry / 4
	if d > time.Minute {
		d = time.Minute
	}
	if d < s.cfg.Interval {
		d = s.cfg.Interval
	}
	return d
}

// export returns the learned addresses by MAC (sorted by VM, IP) for build
// and clears the change flags.
func (s *learnStore) export(now time.Time) map[[6]byte][]learnedAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changed, s.refreshed, s.lastExport = false, false, now
	if len(s.byKey) == 0 {
		return nil
	}
	out := make(map[[6]byte][]learnedAddr, len(s.byIface))
	for ik, l := range s.byIface {
		for _, e := range l {
			out[ik.mac] = append(out[ik.mac], learnedAddr{vm: ik.vm, ip: e.key.ip, last: e.last})
		}
	}
	for _, l := range out {
		sort.Slice(l, func(a, b int) bool {
			if l[a].vm != l[b].vm {
				return l[a].vm < l[b].vm
			}
			return l[a].ip.Less(l[b].ip)
		})
	}
	return out
}

// len returns the number of learned addresses.
func (s *learnStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}
