package aggregate

import (
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"sync"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/hashmix"
)

// OverflowVM is the VMID of the overflow endpoint: records of new pairs
// beyond aggregate.max_pairs are summed into the pair (overflow, overflow)
// of their protocol. It is never assigned to a real VM.
const OverflowVM enrich.VMID = math.MaxUint32

// slot is one pair's statistics in a shard.
type slot struct {
	key PairKey
	st  Stats
}

// flowEntry remembers a distinct 5-tuple of a shard slot, so that flows
// can be counted exactly across shards when the window closes.
type flowEntry struct {
	h    uint64
	slot int32
	port uint32 // proto<<16 | destination port (TCP, UDP, SCTP), else 0
}

// shard is one worker's pairs for one window. Its tables and slices are
// cleared and reused, so a steady state allocates nothing.
type shard struct {
	pairs    pairTable // pair -> slot (table.go)
	slots    []slot
	flows    flowSet // distinct flow hashes
	flowList []flowEntry
}

func newShard() *shard {
	return &shard{slots: make([]slot, 0, 64)}
}

// find looks a pair up.
func (s *shard) find(k *PairKey) (int32, bool) {
	return s.pairs.lookup(pairHash(k), s.slots, k)
}

// insert adds a new pair (not present) and returns its slot.
func (s *shard) insert(k *PairKey) int32 {
	return s.insertHash(pairHash(k), k)
}

func (s *shard) insertHash(h uint64, k *PairKey) int32 {
	i := int32(len(s.slots))
	s.slots = append(s.slots, slot{key: *k})
	s.pairs.add(h, i, s.slots)
	return i
}

func (s *shard) reset() {
	s.pairs.reset()
	s.flows.reset()
	s.slots = s.slots[:0]
	s.flowList = s.flowList[:0]
}

// counters are a worker's cumulative hot-path counters, read at scrape.
type counters struct {
	records          [4]uint64 // by decoder.Source
	suppressed       uint64    // duplicate_observation
	rateMissing      uint64
	overflow         uint64
	nonIP            uint64
	unmappedExporter uint64
	unknownSrc       uint64
	unknownDst       uint64
	measurements     uint64 // probe measurements (latency.go)
}

// Worker aggregates on one collector worker goroutine. Its lock is only
// contended when a window closes (or at a metrics scrape).
type Worker struct {
	a     *Aggregator
	mu    sync.Mutex
	cur   *shard
	spare *shard
	cnt   counters

	obsCache obsCache

	// learn reports VM interfaces seen sending from addresses the index
	// does not have (nil: learning off); set up on first use.
	learn     *enrich.LearnFilter
	learnInit bool

	preferIP   bool
	countAll   bool
	maxPairs   int
	graceNanos int64
}

// Add attributes and sums one record. idx is the index the caller loaded
// for this datagram (Enricher.Index()).
func (w *Worker) Add(idx *enrich.Index, r *decoder.Record) {
	w.mu.Lock()
	if !w.learnInit {
		w.initLearn()
	}
	w.add(idx, r)
	w.mu.Unlock()
}

// AddBatch adds every record of a decoded datagram under one lock.
func (w *Worker) AddBatch(idx *enrich.Index, recs []decoder.Record) {
	w.mu.Lock()
	if !w.learnInit {
		w.initLearn()
	}
	for i := range recs {
		w.add(idx, &recs[i])
	}
	w.mu.Unlock()
}

// initLearn picks up the enricher's address learner (w.mu held).
func (w *Worker) initLearn() {
	w.learnInit = true
	if w.a != nil && w.a.enr != nil {
		if l := w.a.enr.Learner(); l != nil {
			w.learn = l.NewFilter()
		}
	}
}

// endpoint resolves one side of a record: the key and, for a known VM, the
// index entry (VM and interface) that matched.
func (w *Worker) endpoint(idx *enrich.Index, mac [6]byte, ip netip.Addr, vni uint32) (EndpointKey, enrich.Port) {
	hasMAC := mac != [6]byte{}
	if !w.preferIP && hasMAC {
		if p, ok := idx.ByMAC(mac); ok {
			return EndpointKey{VM: p.VM.ID}, p
		}
	}
	if ip.IsValid() {
		ip = ip.Unmap()
		if p, ok := idx.ByIP(vni, ip); ok {
			return EndpointKey{VM: p.VM.ID}, p
		}
	}
	if w.preferIP && hasMAC {
		if p, ok := idx.ByMAC(mac); ok {
			return EndpointKey{VM: p.VM.ID}, p
		}
	}
	return EndpointKey{IP: ip}, enrich.Port{}
}

// learnSrc hands the source side to the address learner: the interface
// owning the source MAC, seen sending from the source IP. The filter skips
// addresses the interface has and rate-limits the rest (enrich/learn.go).
func (w *Worker) learnSrc(idx *enrich.Index, r *decoder.Record, sp enrich.Port) {
	if sp.Iface == nil || sp.Iface.MAC != r.SrcMAC {
		if !w.preferIP {
			return // the MAC lookup came first and missed: no VM interface
		}
		var ok bool
		if sp, ok = idx.ByMAC(r.SrcMAC); !ok {
			return
		}
	}
	w.learn.Saw(sp, r.SrcIP.Unmap(), r.Received)
}

func (w *Worker) add(idx *enrich.Index, r *decoder.Record) {
	var srcIP, dstIP netip.Addr
	if r.Flags&decoder.FlagL3 != 0 {
		srcIP, dstIP = r.SrcIP, r.DstIP
	}
	srcKey, sp := w.endpoint(idx, r.SrcMAC, srcIP, r.VNI)
	dstKey, dp := w.endpoint(idx, r.DstMAC, dstIP, r.VNI)
	srcVM, dstVM := sp.VM, dp.VM
	if w.learn != nil && srcIP.IsValid() && r.SrcMAC != ([6]byte{}) {
		w.learnSrc(idx, r, sp)
	}

	if !w.countAll && !w.counted(idx, r, srcVM, dstVM) {
		w.cnt.suppressed++
		return
	}
	if srcVM == nil {
		w.cnt.unknownSrc++
		if !srcKey.IP.IsValid() {
			w.cnt.nonIP++
		}
	}
	if dstVM == nil {
		w.cnt.unknownDst++
		if !dstKey.IP.IsValid() {
			w.cnt.nonIP++
		}
	}
	n := r.SamplingRate
	if n == 0 {
		n = 1
		w.cnt.rateMissing++
	}
	w.cnt.records[r.Source&3]++

	sh := w.cur
	key := PairKey{Src: srcKey, Dst: dstKey, Source: r.Source}
	i := w.slot(&key)
	st := &sh.slots[i].st
	st.add(r, float64(n))

	if r.Flags&decoder.FlagL3 != 0 {
		h := flowHash(&key, r)
		if sh.flows.add(h) {
			sh.flowList = append(sh.flowList, flowEntry{h: h, slot: i, port: flowPort(r)})
			st.Flows++
		}
	}
}

// slot returns the current shard's slot of key (which it may set to the
// overflow pair of its protocol when the shard is full), inserting it.
func (w *Worker) slot(key *PairKey) int32 {
	sh := w.cur
	h := pairHash(key)
	i, ok := sh.pairs.lookup(h, sh.slots, key)
	if !ok {
		if len(sh.slots) >= w.maxPairs {
			w.cnt.overflow++
			*key = PairKey{Src: EndpointKey{VM: OverflowVM}, Dst: EndpointKey{VM: OverflowVM}, Source: key.Source}
			h = pairHash(key)
			i, ok = sh.pairs.lookup(h, sh.slots, key)
		}
		if !ok {
			i = sh.insertHash(h, key)
		}
	}
	return i
}

// counted applies the "count each packet once" rule (see doc.go).
func (w *Worker) counted(idx *enrich.Index, r *decoder.Record, src, dst *enrich.VM) bool {
	obs := r.Agent
	domain := r.SubAgent
	if r.Source != decoder.SourceSFlow || !obs.IsValid() {
		domain = r.ObsDomain
		if !obs.IsValid() {
			obs = r.Exporter
		}
	}
	// Records of one datagram share their exporter: cache the last answer.
	c := &w.obsCache
	if c.idx != idx || c.addr != obs || c.domain != domain {
		c.idx, c.addr, c.domain = idx, obs, domain
		c.host, c.ok = idx.HostOfObservation(obs, domain)
	}
	if !c.ok {
		w.cnt.unmappedExporter++
		return true
	}
	host := c.host
	if src != nil && src.Host != "" {
		if src.Host == host {
			return true
		}
		if idx.HostObserved(src.Host) {
			return w.inGrace(src, host, r.Received)
		}
	}
	if dst != nil && dst.Host != "" {
		if dst.Host == host {
			return true
		}
		if idx.HostObserved(dst.Host) {
			return w.inGrace(dst, host, r.Received)
		}
	}
	return true
}

// inGrace: an observation on the VM's previous host within the migration
// grace still counts.
func (w *Worker) inGrace(vm *enrich.VM, host string, t int64) bool {
	return w.graceNanos > 0 && vm.PrevHost == host && !vm.MovedAt.IsZero() &&
		t-vm.MovedAt.UnixNano() < w.graceNanos
}

// obsCache remembers the host of the last exporter identity looked up.
type obsCache struct {
	idx    *enrich.Index
	addr   netip.Addr
	domain uint32
	host   string
	ok     bool
}

// Hash is the pair key's 64-bit hash (the shards' own; no allocation).
func (k *PairKey) Hash() uint64 { return pairHash(k) }

// pairHash hashes a pair key to 64 bits without allocating.
func pairHash(k *PairKey) uint64 {
	h := uint64(0x13198A2E03707344)
	h = hmix(h, uint64(k.Src.VM)<<32|uint64(k.Dst.VM))
	h = hmix(h, uint64(k.Source))
	if k.Src.VM == 0 {
		a := k.Src.IP.As16()
		h = hmix(h, binary.LittleEndian.Uint64(a[:8])^uint64(k.Src.IP.BitLen()))
		h = hmix(h, binary.LittleEndian.Uint64(a[8:]))
	}
	if k.Dst.VM == 0 {
		a := k.Dst.IP.As16()
		h = hmix(h, binary.LittleEndian.Uint64(a[:8])^uint64(k.Dst.IP.BitLen()))
		h = hmix(h, binary.LittleEndian.Uint64(a[8:]))
	}
	return hashmix.Mix64(h)
}

const (
	hashK1 = 0x9E3779B97F4A7C15
	hashK2 = 0xC2B2AE3D27D4EB4F
)

func hmix(h, v uint64) uint64 {
	h ^= v * hashK2
	h = bits.RotateLeft64(h, 31) * hashK1
	return h
}

// flowHash hashes (pair, 5-tuple, VNI) to 64 bits without allocating.
// flowPort is a record's (protocol, destination port) for the distinct
// destination ports of its source VM (see dstPorts), 0 when it has none.
func flowPort(r *decoder.Record) uint32 {
	if r.Flags&decoder.FlagL4 != 0 && (r.Proto == 6 || r.Proto == 17 || r.Proto == 132) {
		return uint32(r.Proto)<<16 | uint32(r.DstPort)
	}
	return 0
}

func flowHash(k *PairKey, r *decoder.Record) uint64 {
	h := uint64(0x243F6A8885A308D3)
	h = hmix(h, uint64(k.Src.VM)<<32|uint64(k.Dst.VM))
	h = hmix(h, uint64(k.Source)<<56|uint64(r.Proto)<<48|uint64(r.SrcPort)<<16|uint64(r.DstPort))
	h = hmix(h, uint64(r.VNI))
	s := r.SrcIP.As16()
	d := r.DstIP.As16()
	h = hmix(h, binary.LittleEndian.Uint64(s[:8]))
	h = hmix(h, binary.LittleEndian.Uint64(s[8:]))
	h = hmix(h, binary.LittleEndian.Uint64(d[:8]))
	h = hmix(h, binary.LittleEndian.Uint64(d[8:]))
	return hashmix.Mix64(h)
}
