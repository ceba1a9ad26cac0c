package store

import (
	"container/heap"
	"context"
	"errors"
	"sort"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// ErrNotCovered is returned by a Querier whose fast path cannot answer the
// range (store.Tiered when it reaches before memory); the caller reads
// windows instead.
var ErrNotCovered = errors.New("store: range not covered by the in-memory store")

// Match selects pairs by their key and endpoints (never by statistics), so
// the store can decide once per dictionary entry.
type Match func(key *aggregate.PairKey, src, dst *aggregate.Endpoint) bool

// SortKey is what TopPairs ranks by (descending).
type SortKey uint8

// Sort keys. A rate ranks like its total: every pair of a range shares
// the range's duration.
const (
	SortBytes SortKey = iota
	SortPackets
	SortFlows
	SortSamples
)

// PairQuery asks for the top pairs (PairID: directed, regardless of export
// protocol) of the windows ending in (From, To].
type PairQuery struct {
	From, To time.Time
	// Auto chooses, per pair over the whole range, its most precise export
	// protocol (IPFIX > NetFlow v9 > sFlow) and counts only that one's
	// rows; otherwise only Source's rows count.
	Auto   bool
	Source decoder.Source
	Match  Match // nil: every pair
	Sort   SortKey
	Limit  int // pairs returned at most (ties broken by source then destination name)
}

// PairGroup is one pair's result over the range.
type PairGroup struct {
	// Latest is the key and endpoints of the pair's latest row (what the
	// API shows); its Stats are zero.
	Latest  aggregate.Pair
	Stats   aggregate.Stats // merged over the counted rows
	Sources uint8           // bit 1<<Source of the protocols counted
	Windows int             // aggregation windows merged
}

// PairResult is TopPairs' answer.
type PairResult struct {
	Windows                int // aggregation windows in the range (merged ones count what they hold)
	CoveredFrom, CoveredTo time.Time
	Total                  int // pairs with traffic in the range
	Pairs                  []PairGroup
}

// Querier answers the pair routes without handing every window over.
type Querier interface {
	// TopPairs returns the Limit first pairs by q.Sort.
	TopPairs(ctx context.Context, q PairQuery) (*PairResult, error)
	// WindowsWhere returns the windows ending in (from, to], oldest first,
	// holding only the pairs keep selects (nil: all).
	WindowsWhere(ctx context.Context, from, to time.Time, keep Match) ([]*aggregate.Window, error)
}

// snapshot is a consistent read view: segments and the dictionary prefix
// they refer to.
type snapshot struct {
	d      *dict
	nEnt   int
	nGroup int
	nEP    int
	segs   []*segment // the range's, oldest first
}

func (m *Memory) snapshot(from, to time.Time) snapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	lo := sort.Search(len(m.segs), func(i int) bool { return m.segs[i].end.After(from) })
	hi := sort.Search(len(m.segs), func(i int) bool { return m.segs[i].end.After(to) })
	s := snapshot{d: m.d, nEnt: len(m.d.entries), nGroup: len(m.d.groupRep), nEP: len(m.d.epIDs)}
	if hi > lo {
		s.segs = append([]*segment(nil), m.segs[lo:hi]...)
	}
	return s
}

// Windows returns the windows whose End is in (from, to], oldest first,
// rebuilt from the store's segments (a merged bucket is one window from
// its first window's start to its last one's end). The returned windows
// are the caller's.
func (m *Memory) Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	return m.WindowsWhere(ctx, from, to, nil)
}

// matcher caches Match per entry: 0 not asked yet, 1 yes, 2 no.
type matcher struct {
	d     *dict
	fn    Match
	cache []uint8
}

func newMatcher(s snapshot, fn Match) *matcher {
	if fn == nil {
		return nil
	}
	return &matcher{d: s.d, fn: fn, cache: make([]uint8, s.nEnt)}
}

func (mt *matcher) ok(e uint32) bool {
	if mt == nil {
		return true
	}
	switch mt.cache[e] {
	case 1:
		return true
	case 2:
		return false
	}
	en := &mt.d.entries[e]
	if mt.fn(&en.key, &en.src, &en.dst) {
		mt.cache[e] = 1
		return true
	}
	mt.cache[e] = 2
	return false
}

// WindowsWhere implements Querier. With keep, each entry is asked once
// and only the matching entries' rows are looked up (binary search per
// window), so one pair's series costs a scan of the dictionary plus a few
// lookups per window.
func (m *Memory) WindowsWhere(ctx context.Context, from, to time.Time, keep Match) ([]*aggregate.Window, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := m.snapshot(from, to)
	if len(s.segs) == 0 {
		return nil, nil
	}
	var ids []uint32
	if keep != nil {
		for e := 0; e < s.nEnt; e++ {
			en := &s.d.entries[e]
			if keep(&en.key, &en.src, &en.dst) {
				ids = append(ids, uint32(e))
			}
		}
	}
	out := make([]*aggregate.Window, 0, len(s.segs))
	for _, seg := range s.segs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		w := &aggregate.Window{Start: seg.start, End: seg.end, Ports: seg.ports}
		add := func(r int) {
			p := s.d.pair(seg.ents[r])
			seg.stats(r, &p.Stats)
			w.Pairs = append(w.Pairs, p)
		}
		switch {
		case keep == nil:
			w.Pairs = make([]aggregate.Pair, 0, seg.rows())
			for r := range seg.ents {
				add(r)
			}
		case len(ids)*16 < seg.rows():
			for _, e := range ids {
				if r := seg.find(e); r >= 0 {
					add(r)
				}
			}
		default:
			j := 0
			for r, e := range seg.ents { // both ascending
				for j < len(ids) && ids[j] < e {
					j++
				}
				if j < len(ids) && ids[j] == e {
					add(r)
				}
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// TopPairs implements Querier. It reads the hot columns of every row in
// the range, in two or three passes of a few nanoseconds per row,
// accumulating per pair in flat arrays indexed by the dictionary's dense
// ids (no maps, no per-row decoding); only the rows of the Limit pairs
// returned are decoded and merged. The result is exact: it is what merging
// every window's pairs and sorting would give.
func (m *Memory) TopPairs(ctx context.Context, q PairQuery) (*PairResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := m.snapshot(q.From, q.To)
	res := &PairResult{}
	if len(s.segs) == 0 {
		return res, nil
	}
	res.CoveredFrom, res.CoveredTo = s.segs[0].start, s.segs[len(s.segs)-1].end
	var union uint8
	for _, seg := range s.segs {
		res.Windows += seg.nwin
		union |= seg.sources
	}
	mt := newMatcher(s, q.Match)
	entGroup, entSource := s.d.entGroup[:s.nEnt], s.d.entSource[:s.nEnt]
	// chosen[g] = 1 + the source counted for group g (0: none).
	chosen := make([]decoder.Source, s.nGroup)
	val := make([]float64, s.nGroup)
	single := !q.Auto || union&(union-1) == 0 // at most one protocol to count per pair
	want := q.Source
	if q.Auto && single {
		want = lowestSource(union)
	}
	if !single {
		// Pass 1 (auto with several protocols): each pair's best protocol.
		for _, seg := range s.segs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for _, e := range seg.ents {
				if !mt.ok(e) {
					continue
				}
				g := entGroup[e]
				if c := entSource[e] + 1; chosen[g] == 0 || aggregate.Precision(c-1) > aggregate.Precision(chosen[g]-1) {
					chosen[g] = c
				}
			}
		}
	}
	// Pass 2: the sort value of every pair.
	for _, seg := range s.segs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		col := seg.bytes
		switch q.Sort {
		case SortPackets:
			col = seg.packets
		}
		for r, e := range seg.ents {
			src := entSource[e]
			if single && src != want {
				continue
			}
			g := entGroup[e]
			if !single && chosen[g] != src+1 {
				continue
			}
			if !mt.ok(e) {
				continue
			}
			chosen[g] = src + 1
			switch q.Sort {
			case SortFlows:
				val[g] += float64(seg.flows[r])
			case SortSamples:
				val[g] += float64(seg.samples[r])
			default:
				val[g] += col[r]
			}
		}
	}
	// Select the Limit first.
	h := &topHeap{d: s.d, val: val}
	for g := range chosen {
		if chosen[g] == 0 {
			continue
		}
		res.Total++
		if q.Limit <= 0 {
			continue
		}
		if h.Len() < q.Limit {
			heap.Push(h, uint32(g))
		} else if h.before(uint32(g), h.gs[0]) {
			h.gs[0] = uint32(g)
			heap.Fix(h, 0)
		}
	}
	top := h.gs
	sort.Slice(top, func(i, j int) bool { return h.before(top[i], top[j]) })
	// Pass 3: merge the rows of the selected pairs; val[g] < 0 marks them.
	res.Pairs = make([]PairGroup, len(top))
	lastEnd := make([]time.Time, len(top))
	for k, g := range top {
		val[g] = -1 - float64(k)
	}
	var st aggregate.Stats
	for _, seg := range s.segs {
		for r, e := range seg.ents {
			g := entGroup[e]
			if val[g] >= 0 || !mt.ok(e) {
				continue
			}
			if chosen[g] != entSource[e]+1 {
				if entSource[e] == decoder.SourceProbe { // latency joins the pair (latency.go)
					seg.stats(r, &st)
					res.Pairs[int(-val[g]-1)].Stats.MergeLatency(&st)
				}
				continue
			}
			k := int(-val[g] - 1)
			pg := &res.Pairs[k]
			seg.stats(r, &st)
			if pg.Windows == 0 {
				lat := pg.Stats.Lat
				pg.Stats = st
				pg.Stats.MergeLatency(&aggregate.Stats{Lat: lat})
			} else {
				pg.Stats.Merge(&st)
			}
			pg.Windows += int(seg.wins[r])
			pg.Sources |= 1 << (entSource[e] & 7)
			if !seg.end.Before(lastEnd[k]) {
				pg.Latest, lastEnd[k] = s.d.pair(e), seg.end
			}
		}
	}
	return res, nil
}

func lowestSource(mask uint8) decoder.Source {
	for s := decoder.Source(0); s < 8; s++ {
		if mask&(1<<s) != 0 {
			return s
		}
	}
	return decoder.SourceUnknown
}

// topHeap is a min-heap of groups under "before" (the worst on top).
type topHeap struct {
	d   *dict
	val []float64
	gs  []uint32
}

// before orders groups as the API lists them: value descending, then
// source name, then destination name.
func (h *topHeap) before(a, b uint32) bool {
	if h.val[a] != h.val[b] {
		return h.val[a] > h.val[b]
	}
	ea, eb := &h.d.entries[h.d.groupRep[a]], &h.d.entries[h.d.groupRep[b]]
	if x, y := EndpointName(&ea.src, ea.key.Src), EndpointName(&eb.src, eb.key.Src); x != y {
		return x < y
	}
	return EndpointName(&ea.dst, ea.key.Dst) < EndpointName(&eb.dst, eb.key.Dst)
}

func (h *topHeap) Len() int           { return len(h.gs) }
func (h *topHeap) Less(i, j int) bool { return h.before(h.gs[j], h.gs[i]) }
func (h *topHeap) Swap(i, j int)      { h.gs[i], h.gs[j] = h.gs[j], h.gs[i] }
func (h *topHeap) Push(x any)         { h.gs = append(h.gs, x.(uint32)) }
func (h *topHeap) Pop() any {
	x := h.gs[len(h.gs)-1]
	h.gs = h.gs[:len(h.gs)-1]
	return x
}
