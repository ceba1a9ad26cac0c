package store

import (
	"context"
	"encoding/binary"
	"math"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// Scan is a read view of the memory store over a range, for the console's
// aggregate routes (overview, graph): they visit the counted rows' hot
// columns with dense ids (entry, pair group, source and destination
// endpoint) and accumulate in flat arrays, instead of rebuilding every
// window's pairs and keying maps by endpoint. Rows are visited segment by
// segment, oldest first; the cold statistics of a row are decoded only on
// request (Stats).
//
// Selection is aggregate.Select's: one protocol (Source), or with Auto
// each pair's most precise protocol over the whole range (as the API's
// selector and TopPairs choose).
type Scan struct {
	s      snapshot
	single bool
	want   decoder.Source
	chosen []decoder.Source // 1 + the protocol counted per group (auto, several protocols)

	Windows                int // aggregation windows in the range
	CoveredFrom, CoveredTo time.Time
}

// ScanQuery is the range and the protocol selection of a Scan.
type ScanQuery struct {
	From, To time.Time
	Auto     bool
	Source   decoder.Source
}

// Scanner is implemented by the stores that answer Scan (Memory, and
// Tiered over a range memory covers; otherwise ErrNotCovered).
type Scanner interface {
	Scan(ctx context.Context, q ScanQuery) (*Scan, error)
}

// Row is one counted row of a Scan's segment.
type Row struct {
	Index    int    // row in the segment (for Stats)
	Entry    uint32 // dense entry id (key and endpoints: Scan.Entry)
	Group    uint32 // dense PairID id
	Src, Dst uint32 // dense EndpointID ids
	Bytes    float64
	Packets  float64
	Samples  uint64
	Flows    uint64
	Windows  uint16 // aggregation windows merged into the row
}

var (
	_ Scanner = (*Memory)(nil)
	_ Scanner = Tiered{}
)

// Scan implements Scanner.
func (m *Memory) Scan(ctx context.Context, q ScanQuery) (*Scan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sc := &Scan{s: m.snapshot(q.From, q.To)}
	if len(sc.s.segs) == 0 {
		sc.single = true
		return sc, nil
	}
	sc.CoveredFrom, sc.CoveredTo = sc.s.segs[0].start, sc.s.segs[len(sc.s.segs)-1].end
	var union uint8
	for _, seg := range sc.s.segs {
		sc.Windows += seg.nwin
		union |= seg.sources
	}
	sc.single = !q.Auto || union&(union-1) == 0
	sc.want = q.Source
	if q.Auto && sc.single {
		sc.want = lowestSource(union)
	}
	if !sc.single {
		entGroup, entSource := sc.s.d.entGroup, sc.s.d.entSource
		sc.chosen = make([]decoder.Source, sc.s.nGroup)
		for _, seg := range sc.s.segs {
			for _, e := range seg.ents {
				g := entGroup[e]
				if c := entSource[e] + 1; sc.chosen[g] == 0 || aggregate.Precision(c-1) > aggregate.Precision(sc.chosen[g]-1) {
					sc.chosen[g] = c
				}
			}
		}
	}
	return sc, nil
}

// Scan answers from memory when memory covers the range, else
// ErrNotCovered.
func (t Tiered) Scan(ctx context.Context, q ScanQuery) (*Scan, error) {
	if t.Recent == nil || !t.covered(ctx, q.From) {
		return nil, ErrNotCovered
	}
	return t.Recent.Scan(ctx, q)
}

// Segments is the number of segments (windows, merged buckets) in range.
func (sc *Scan) Segments() int { return len(sc.s.segs) }

// Segment returns segment i's span and the aggregation windows it holds.
func (sc *Scan) Segment(i int) (start, end time.Time, windows int) {
	seg := sc.s.segs[i]
	return seg.start, seg.end, seg.nwin
}

// Entries, Groups and Endpoints bound the dense ids a Scan's rows carry.
func (sc *Scan) Entries() int   { return sc.s.nEnt }
func (sc *Scan) Groups() int    { return sc.s.nGroup }
func (sc *Scan) Endpoints() int { return sc.s.nEP }

// Entry returns the key and endpoints of entry e (shared: do not modify).
func (sc *Scan) Entry(e uint32) (key *aggregate.PairKey, src, dst *aggregate.Endpoint) {
	en := &sc.s.d.entries[e]
	return &en.key, &en.src, &en.dst
}

// EndpointID returns the identity of dense endpoint id n.
func (sc *Scan) EndpointID(n uint32) EndpointID { return sc.s.d.epIDs[n] }

// Each calls fn for every counted row of segment i (r is reused).
func (sc *Scan) Each(ctx context.Context, i int, fn func(r *Row)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	seg := sc.s.segs[i]
	d := sc.s.d
	entGroup, entSource, entSrc, entDst := d.entGroup, d.entSource, d.entSrc, d.entDst
	var r Row
	for k, e := range seg.ents {
		src := entSource[e]
		g := entGroup[e]
		if sc.single {
			if src != sc.want {
				continue
			}
		} else if sc.chosen[g] != src+1 {
			continue
		}
		r = Row{Index: k, Entry: e, Group: g, Src: entSrc[e], Dst: entDst[e],
			Bytes: seg.bytes[k], Packets: seg.packets[k], Samples: seg.samples[k], Flows: seg.flows[k], Windows: seg.wins[k]}
		fn(&r)
	}
	return nil
}

// Stats decodes every statistic of row k of segment i.
func (sc *Scan) Stats(i, k int, st *aggregate.Stats) { sc.s.segs[i].stats(k, st) }

// Acc is what Scan.Accumulate adds a segment's counted rows to. Every
// slice is optional (nil: not accumulated); per-entry slices are indexed
// by entry id (Scan.Entries long), per-group ones by group id.
type Acc struct {
	Skip []bool // per entry: its rows are not counted at all (a filter)

	// Per group over the range: sums, and 1 + the entry of the group's
	// latest counted row (its names) with the segment it was in.
	GroupBytes, GroupPackets []float64
	GroupFlows               []uint64
	GroupLatest              []uint32
	GroupSeg                 []int32

	// Per entry, up to two targets: a row of entry e adds its bytes and
	// packets at A[e]+Off of ABytes/APackets (when A[e] >= 0), and at
	// B[e]+Off of BBytes/BPackets.
	A, B             []int32
	Off              int
	ABytes, APackets []float64
	BBytes, BPackets []float64
	Proto            *[4][2]float64 // per protocol (tcp, udp, icmp, other): bytes, packets

	Rows           int // counted rows
	Bytes, Packets float64
	Flows          uint64
}

// Accumulate adds the counted rows of segment i to a in one tight loop
// over the segment's columns (the protocol split reads only those fields
// of the cold part).
func (sc *Scan) Accumulate(ctx context.Context, i int, a *Acc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	seg := sc.s.segs[i]
	d := sc.s.d
	entGroup, entSource := d.entGroup, d.entSource
	// The protocol split: the segment's precomputed total (segment.proto,
	// summed in row order, so bit-identical to splitting the rows here)
	// when every row with a split is counted and a.Proto starts at zero;
	// else row by row.
	pre := a.Proto != nil && a.Skip == nil && *a.Proto == [4][2]float64{}
	split := a.Proto != nil && !pre
	for k, e := range seg.ents {
		src := entSource[e]
		g := entGroup[e]
		if sc.single {
			if src != sc.want {
				if pre && seg.hasProto(k) {
					pre, split = false, true
					sc.splitCounted(seg, k, a.Proto)
				}
				continue
			}
		} else if sc.chosen[g] != src+1 {
			if pre && seg.hasProto(k) {
				pre, split = false, true
				sc.splitCounted(seg, k, a.Proto)
			}
			continue
		}
		if a.Skip != nil && a.Skip[e] {
			continue
		}
		b, p := seg.bytes[k], seg.packets[k]
		a.Rows++
		a.Bytes += b
		a.Packets += p
		a.Flows += seg.flows[k]
		if a.GroupBytes != nil {
			a.GroupBytes[g] += b
			a.GroupPackets[g] += p
			a.GroupFlows[g] += seg.flows[k]
			a.GroupLatest[g] = e + 1
			a.GroupSeg[g] = int32(i)
		}
		if a.A != nil {
			if x := a.A[e]; x >= 0 {
				a.ABytes[int(x)+a.Off] += b
				if a.APackets != nil {
					a.APackets[int(x)+a.Off] += p
				}
			}
		}
		if a.B != nil {
			if x := a.B[e]; x >= 0 {
				a.BBytes[int(x)+a.Off] += b
				if a.BPackets != nil {
					a.BPackets[int(x)+a.Off] += p
				}
			}
		}
		if split {
			seg.protoSplit(k, a.Proto)
		}
	}
	if pre {
		*a.Proto = seg.proto
	}
	return nil
}

// splitCounted adds the protocol split of the counted rows before row n
// of seg (no Skip: Accumulate's precomputed total gave up at row n).
func (sc *Scan) splitCounted(seg *segment, n int, out *[4][2]float64) {
	d := sc.s.d
	for k, e := range seg.ents[:n] {
		src := d.entSource[e]
		if sc.single && src == sc.want || !sc.single && sc.chosen[d.entGroup[e]] == src+1 {
			seg.protoSplit(k, out)
		}
	}
}

// GroupEndpoints returns the dense endpoint ids of group g.
func (sc *Scan) GroupEndpoints(g uint32) (src, dst uint32) {
	e := sc.s.d.groupRep[g]
	return sc.s.d.entSrc[e], sc.s.d.entDst[e]
}

// hasProto tells whether row k has a protocol split.
func (s *segment) hasProto(k int) bool {
	mask, _ := binary.Uvarint(s.cold[s.off[k]:s.off[k+1]])
	return mask&0xff0 != 0
}

// protoSplit adds row k's per-protocol bytes and packets (cold fields 4..11,
// see coldFields) to out, reading only those fields.
func (s *segment) protoSplit(k int, out *[4][2]float64) {
	r := newColdReader(s.cold[s.off[k]:s.off[k+1]])
	if r.mask&0xff0 == 0 {
		return
	}
	var v [nCold]uint64
	for f := 0; f < 12; f++ {
		v[f] = r.field(f, &v)
	}
	if !r.ok {
		return
	}
	for f := 4; f < 12; f++ {
		x := math.Float64frombits(v[f])
		if f < 8 {
			out[f-4][1] += x
		} else {
			out[f-8][0] += x
		}
	}
}

// EntryIDs returns entry e's group and dense endpoint ids.
func (sc *Scan) EntryIDs(e uint32) (group, src, dst uint32) {
	d := sc.s.d
	return d.entGroup[e], d.entSrc[e], d.entDst[e]
}
