package store

import (
	"math"
	"time"
	"unsafe"

	"github.com/vmflow/vmflow/aggregate"
)

// A segment is one window of the memory store in compact, columnar form:
// an aggregation window as the aggregator closed it (tier 0), or several
// consecutive ones merged into one bucket (tiers 1 and 2). Segments are
// immutable once published; readers use them without locks.
//
// One row per dictionary entry (pair key + endpoints, see dict), rows
// sorted by entry id. The columns a query scans (entry, bytes, packets,
// samples, flows, windows merged) are plain slices; the rest of the
// statistics is in cold, a byte string per row holding only the non-zero
// fields (see encodeCold).
//
// Merging rows is exact for every sum (estimates, variances, samples,
// sampled bytes, per-protocol and TCP flag counts, drops); flows add up
// and stay an upper bound of the distinct 5-tuples of the bucket (a flow
// spanning two windows is counted in both); First/Last span both. Top
// ports are approximate: the union of both rows' top ports, the
// aggregate.TopPortsN largest kept (as the aggregator merges its shards),
// so a port outside a window's top list misses that window's bytes. The
// last-seen addressing of aggregate.Stats (SrcIP, DstIP, MACs, VNI) is not
// kept per row: the entry's endpoints (Endpoint.IP/MAC) show it.
type segment struct {
	start, end time.Time
	tier       int
	nwin       int   // aggregation windows merged into this segment
	sources    uint8 // bit 1<<Source of every row's protocol

	ents    []uint32 // entry id, ascending
	bytes   []float64
	packets []float64
	samples []uint64
	flows   []uint64
	wins    []uint16 // aggregation windows merged into the row
	off     []uint32 // cold[off[i]:off[i+1]] is row i's cold part
	cold    []byte

	// ports are the window's (or bucket's) port counter deltas, as the
	// aggregator gave them (merged by key in buckets); immutable.
	ports []aggregate.PortStats

	// proto is the protocol split of all rows (tcp, udp, icmp, other:
	// bytes, packets), summed in row order as Scan.Accumulate would.
	proto [4][2]float64
}

func (s *segment) rows() int { return len(s.ents) }

// find returns the row of entry e, or -1.
func (s *segment) find(e uint32) int {
	lo, hi := 0, len(s.ents)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.ents[m] < e {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(s.ents) && s.ents[lo] == e {
		return lo
	}
	return -1
}

// bytesUsed is the heap the segment holds (capacities).
func (s *segment) bytesUsed() int {
	return cap(s.ents)*4 + cap(s.bytes)*8 + cap(s.packets)*8 + cap(s.samples)*8 + cap(s.flows)*8 +
		cap(s.wins)*2 + cap(s.off)*4 + cap(s.cold) + 200 + cap(s.ports)*portStatsSize
}

// portStatsSize is the size of one aggregate.PortStats (its strings are
// the inventory's, shared).
const portStatsSize = int(unsafe.Sizeof(aggregate.PortStats{}))

func newSegment(n, coldHint int) *segment {
	return &segment{
		ents:    make([]uint32, 0, n),
		bytes:   make([]float64, 0, n),
		packets: make([]float64, 0, n),
		samples: make([]uint64, 0, n),
		flows:   make([]uint64, 0, n),
		wins:    make([]uint16, 0, n),
		off:     append(make([]uint32, 0, n+1), 0),
		cold:    make([]byte, 0, coldHint),
	}
}

// appendRow adds a row (entries must come in ascending order).
func (s *segment) appendRow(e uint32, st *aggregate.Stats, wins uint16) {
	s.ents = append(s.ents, e)
	s.bytes = append(s.bytes, st.Bytes)
	s.packets = append(s.packets, st.Packets)
	s.samples = append(s.samples, st.Samples)
	s.flows = append(s.flows, st.Flows)
	s.wins = append(s.wins, wins)
	s.cold = encodeCold(s.cold, st)
	s.off = append(s.off, uint32(len(s.cold)))
	s.proto[0][0] += st.TCPBytes
	s.proto[1][0] += st.UDPBytes
	s.proto[2][0] += st.ICMPBytes
	s.proto[3][0] += st.OtherBytes
	s.proto[0][1] += st.TCPPackets
	s.proto[1][1] += st.UDPPackets
	s.proto[2][1] += st.ICMPPackets
	s.proto[3][1] += st.OtherPackets
}

// copyRow adds row i of o unchanged (no decoding).
func (s *segment) copyRow(o *segment, i int) {
	s.ents = append(s.ents, o.ents[i])
	s.bytes = append(s.bytes, o.bytes[i])
	s.packets = append(s.packets, o.packets[i])
	s.samples = append(s.samples, o.samples[i])
	s.flows = append(s.flows, o.flows[i])
	s.wins = append(s.wins, o.wins[i])
	s.cold = append(s.cold, o.cold[o.off[i]:o.off[i+1]]...)
	s.off = append(s.off, uint32(len(s.cold)))
	s.protoSplit(len(s.ents)-1, &s.proto)
}

// stats decodes row i.
func (s *segment) stats(i int, st *aggregate.Stats) {
	*st = aggregate.Stats{Bytes: s.bytes[i], Packets: s.packets[i], Samples: s.samples[i], Flows: s.flows[i]}
	decodeCold(s.cold[s.off[i]:s.off[i+1]], st)
}

// The cold fields, in encoding order (bit i of the presence mask).
const nCold = 23

func coldFields(st *aggregate.Stats) [nCold]uint64 {
	f := math.Float64bits
	return [nCold]uint64{
		f(st.BytesVar), f(st.PacketsVar), st.SampledBytes, st.SampledPackets,
		f(st.TCPPackets), f(st.UDPPackets), f(st.ICMPPackets), f(st.OtherPackets),
		f(st.TCPBytes), f(st.UDPBytes), f(st.ICMPBytes), f(st.OtherBytes),
		f(st.SYN), f(st.SYNACK), f(st.RST), f(st.FIN),
		f(st.ICMPErrors), f(st.DroppedPackets), f(st.DroppedBytes),
		uint64(st.First), uint64(st.Last),
		f(st.SYNACKIn), f(st.RSTIn),
	}
}

func setColdFields(st *aggregate.Stats, v *[nCold]uint64) {
	f := math.Float64frombits
	st.BytesVar, st.PacketsVar, st.SampledBytes, st.SampledPackets = f(v[0]), f(v[1]), v[2], v[3]
	st.TCPPackets, st.UDPPackets, st.ICMPPackets, st.OtherPackets = f(v[4]), f(v[5]), f(v[6]), f(v[7])
	st.TCPBytes, st.UDPBytes, st.ICMPBytes, st.OtherBytes = f(v[8]), f(v[9]), f(v[10]), f(v[11])
	st.SYN, st.SYNACK, st.RST, st.FIN = f(v[12]), f(v[13]), f(v[14]), f(v[15])
	st.ICMPErrors, st.DroppedPackets, st.DroppedBytes = f(v[16]), f(v[17]), f(v[18])
	st.First, st.Last = int64(v[19]), int64(v[20])
	st.SYNACKIn, st.RSTIn = f(v[21]), f(v[22])
}

// encodeCold and decodeCold: coldcodec.go.

// mergeSegments merges b into a (a older than b): rows of the same entry
// are merged exactly (Stats.Merge), the others copied as they are.
func mergeSegments(a, b *segment, tier int) *segment {
	out := newSegment(max(a.rows(), b.rows())+min(a.rows(), b.rows())/8, len(a.cold)+len(b.cold)/4)
	out.start, out.end, out.tier = a.start, b.end, tier
	if b.start.Before(out.start) {
		out.start = b.start
	}
	if a.end.After(out.end) {
		out.end = a.end
	}
	out.nwin = a.nwin + b.nwin
	out.ports = aggregate.MergePorts(a.ports, b.ports)
	out.sources = a.sources | b.sources
	var sa, sb aggregate.Stats
	i, j := 0, 0
	for i < a.rows() || j < b.rows() {
		switch {
		case j >= b.rows() || (i < a.rows() && a.ents[i] < b.ents[j]):
			out.copyRow(a, i)
			i++
		case i >= a.rows() || b.ents[j] < a.ents[i]:
			out.copyRow(b, j)
			j++
		default:
			a.stats(i, &sa)
			b.stats(j, &sb)
			sa.Merge(&sb)
			w := uint32(a.wins[i]) + uint32(b.wins[j])
			out.appendRow(a.ents[i], &sa, uint16(min(w, math.MaxUint16)))
			i++
			j++
		}
	}
	return out
}
