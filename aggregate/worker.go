package aggregate

import (
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"sync"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
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
}

// shard is one worker's pairs for one window. Its maps and slices are
// cleared and reused, so a steady state allocates nothing.
type shard struct {
	pairs    map[PairKey]int32
	slots    []slot
	flows    map[uint64]struct{}
	flowList []flowEntry
}

func newShard() *shard {
	return &shard{
		pairs: make(map[PairKey]int32, 64),
		slots: make([]slot, 0, 64),
		flows: make(map[uint64]struct{}, 256),
	}
}

func (s *shard) reset() {
	clear(s.pairs)
	clear(s.flows)
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
}

// Worker aggregates on one collector worker goroutine. Its lock is only
// contended when a window closes (or at a metrics scrape).
type Worker struct {
	a     *Aggregator
	mu    sync.Mutex
	cur   *shard
	spare *shard
	cnt   counters

	preferIP   bool
	countAll   bool
	maxPairs   int
	graceNanos int64
}

// Add attributes and sums one record. idx is the index the caller loaded
// for this datagram (Enricher.Index()).
func (w *Worker) Add(idx *enrich.Index, r *decoder.Record) {
	w.mu.Lock()
	w.add(idx, r)
	w.mu.Unlock()
}

// AddBatch adds every record of a decoded datagram under one lock.
func (w *Worker) AddBatch(idx *enrich.Index, recs []decoder.Record) {
	w.mu.Lock()
	for i := range recs {
		w.add(idx, &recs[i])
	}
	w.mu.Unlock()
}

func (w *Worker) endpoint(idx *enrich.Index, mac [6]byte, ip netip.Addr, vni uint32) (EndpointKey, *enrich.VM) {
	hasMAC := mac != [6]byte{}
	if !w.preferIP && hasMAC {
		if p, ok := idx.ByMAC(mac); ok {
			return EndpointKey{VM: p.VM.ID}, p.VM
		}
	}
	if ip.IsValid() {
		ip = ip.Unmap()
		if p, ok := idx.ByIP(vni, ip); ok {
			return EndpointKey{VM: p.VM.ID}, p.VM
		}
	}
	if w.preferIP && hasMAC {
		if p, ok := idx.ByMAC(mac); ok {
			return EndpointKey{VM: p.VM.ID}, p.VM
		}
	}
	return EndpointKey{IP: ip}, nil
}

func (w *Worker) add(idx *enrich.Index, r *decoder.Record) {
	var srcIP, dstIP netip.Addr
	if r.Flags&decoder.FlagL3 != 0 {
		srcIP, dstIP = r.SrcIP, r.DstIP
	}
	srcKey, srcVM := w.endpoint(idx, r.SrcMAC, srcIP, r.VNI)
	dstKey, dstVM := w.endpoint(idx, r.DstMAC, dstIP, r.VNI)

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
	i, ok := sh.pairs[key]
	if !ok {
		if len(sh.slots) >= w.maxPairs {
			w.cnt.overflow++
			key = PairKey{Src: EndpointKey{VM: OverflowVM}, Dst: EndpointKey{VM: OverflowVM}, Source: r.Source}
			i, ok = sh.pairs[key]
		}
		if !ok {
			i = int32(len(sh.slots))
			sh.slots = append(sh.slots, slot{key: key})
			sh.pairs[key] = i
		}
	}
	st := &sh.slots[i].st
	st.add(r, float64(n))

	if r.Flags&decoder.FlagL3 != 0 {
		h := flowHash(&key, r)
		if _, seen := sh.flows[h]; !seen {
			sh.flows[h] = struct{}{}
			sh.flowList = append(sh.flowList, flowEntry{h: h, slot: i})
			st.Flows++
		}
	}
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
	host, ok := idx.HostOfObservation(obs, domain)
	if !ok {
		w.cnt.unmappedExporter++
		return true
	}
	if src != nil && src.Host != "" && idx.HostObserved(src.Host) {
		return w.onHost(src, host, r.Received)
	}
	if dst != nil && dst.Host != "" && idx.HostObserved(dst.Host) {
		return w.onHost(dst, host, r.Received)
	}
	return true
}

func (w *Worker) onHost(vm *enrich.VM, host string, t int64) bool {
	if vm.Host == host {
		return true
	}
	return w.graceNanos > 0 && vm.PrevHost == host && !vm.MovedAt.IsZero() &&
		t-vm.MovedAt.UnixNano() < w.graceNanos
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
	// fmix64 finaliser.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
