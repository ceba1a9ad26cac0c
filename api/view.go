package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/store"
)

// rangeView is what the console's aggregate routes (overview, graph,
// capacity) read: the counted rows of a range (aggregate.Select's choice
// for ?source=), window by window, each with dense ids (entry: key and
// endpoints; group: directed pair; source and destination endpoint), so
// the routes accumulate in flat arrays indexed by those ids and compute
// anything derived from an entry's endpoints once per entry.
//
// From the memory store (store.Scanner) it is the store's own columns: no
// window is rebuilt, a row costs a few nanoseconds. Otherwise (a range
// reaching into InfluxDB history) the windows are read and numbered here:
// one entry per pair row, groups and endpoints by the per-visit identity
// (visitKey, visitID); the routes then merge by name where tiers may
// disagree, as before.
type rangeView struct {
	ws []*aggregate.Window // the range's windows, oldest first (memory: spans only)

	sc *store.Scan // memory

	rows   [][]store.Row     // history: the counted rows per window
	pairs  []*aggregate.Pair // history: entry → pair
	ids    [][3]uint32       // history: entry → group, src, dst
	gEP    [][2]uint32       // history: group → src, dst
	nGroup int
	nEP    int
}

// entryIDs returns entry e's group and endpoint ids.
func (v *rangeView) entryIDs(e uint32) (group, src, dst uint32) {
	if v.sc != nil {
		return v.sc.EntryIDs(e)
	}
	x := v.ids[e]
	return x[0], x[1], x[2]
}

// groupEndpoints returns group g's endpoint ids.
func (v *rangeView) groupEndpoints(g uint32) (src, dst uint32) {
	if v.sc != nil {
		return v.sc.GroupEndpoints(g)
	}
	return v.gEP[g][0], v.gEP[g][1]
}

// accumulate adds window i's counted rows to a, as store.Scan.Accumulate
// does (its tight loop when the filter needs only the hot columns), with
// the console filter's protocol and port parts applied (a row's bytes and
// packets are what consoleFilter.values counts; the protocol split keeps
// the filtered protocol only, prorated to the port's bytes).
func (v *rangeView) accumulate(c *gin.Context, i int, a *store.Acc, ef *entryFilter) error {
	if v.sc != nil && !ef.needStats {
		return v.sc.Accumulate(c.Request.Context(), i, a)
	}
	f := ef.f
	var st aggregate.Stats
	return v.each(c, i, func(r *store.Row) {
		if a.Skip != nil && a.Skip[r.Entry] {
			return
		}
		b, pk := r.Bytes, r.Packets
		decoded := false
		if ef.needStats {
			v.stats(i, r, &st)
			decoded = true
			var ok bool
			if b, pk, ok = f.statValues(&st); !ok {
				return
			}
		}
		a.Rows++
		a.Bytes += b
		a.Packets += pk
		a.Flows += r.Flows
		g := r.Group
		if a.GroupBytes != nil {
			a.GroupBytes[g] += b
			a.GroupPackets[g] += pk
			a.GroupFlows[g] += r.Flows
			a.GroupLatest[g] = r.Entry + 1
			a.GroupSeg[g] = int32(i)
		}
		if a.A != nil {
			if x := a.A[r.Entry]; x >= 0 {
				a.ABytes[int(x)+a.Off] += b
				if a.APackets != nil {
					a.APackets[int(x)+a.Off] += pk
				}
			}
		}
		if a.B != nil {
			if x := a.B[r.Entry]; x >= 0 {
				a.BBytes[int(x)+a.Off] += b
				if a.BPackets != nil {
					a.BPackets[int(x)+a.Off] += pk
				}
			}
		}
		if a.Proto != nil {
			if !decoded {
				v.stats(i, r, &st)
			}
			for pi, x := range [...][2]float64{{st.TCPBytes, st.TCPPackets}, {st.UDPBytes, st.UDPPackets},
				{st.ICMPBytes, st.ICMPPackets}, {st.OtherBytes, st.OtherPackets}} {
				if f.proto != "" && f.proto != protocolNames[pi] {
					continue
				}
				if f.port >= 0 && st.Bytes > 0 { // port filter: prorate
					x[0], x[1] = x[0]*b/st.Bytes, x[1]*b/st.Bytes
				}
				a.Proto[pi][0] += x[0]
				a.Proto[pi][1] += x[1]
			}
		}
	})
}

// groupAcc is a store.Acc summing per group (graph, overview, capacity).
func groupAcc(v *rangeView, skip []bool) store.Acc {
	n := v.groups()
	return store.Acc{Skip: skip, GroupBytes: make([]float64, n), GroupPackets: make([]float64, n), GroupFlows: make([]uint64, n),
		GroupLatest: make([]uint32, n), GroupSeg: make([]int32, n)}
}

func (v *rangeView) entries() int {
	if v.sc != nil {
		return v.sc.Entries()
	}
	return len(v.pairs)
}

func (v *rangeView) groups() int {
	if v.sc != nil {
		return v.sc.Groups()
	}
	return v.nGroup
}

func (v *rangeView) endpoints() int {
	if v.sc != nil {
		return v.sc.Endpoints()
	}
	return v.nEP
}

// entry returns the key and endpoints of entry e (shared, read only).
func (v *rangeView) entry(e uint32) (*aggregate.PairKey, *aggregate.Endpoint, *aggregate.Endpoint) {
	if v.sc != nil {
		return v.sc.Entry(e)
	}
	p := v.pairs[e]
	return &p.Key, &p.Src, &p.Dst
}

// each visits the counted rows of window i.
func (v *rangeView) each(c *gin.Context, i int, fn func(r *store.Row)) error {
	if v.sc != nil {
		return v.sc.Each(c.Request.Context(), i, fn)
	}
	for k := range v.rows[i] {
		fn(&v.rows[i][k])
	}
	return nil
}

// stats decodes every statistic of row r of window i.
func (v *rangeView) stats(i int, r *store.Row, st *aggregate.Stats) {
	if v.sc != nil {
		v.sc.Stats(i, r.Index, st)
		return
	}
	*st = v.pairs[r.Entry].Stats
}

// readView reads the range as a rangeView, answering the request itself
// on failure (503 without a store, 500 on a store error).
func (s *Server) readView(c *gin.Context, from, to time.Time, source string) (*rangeView, bool) {
	if s.deps.Store == nil {
		c.JSON(http.StatusServiceUnavailable, errorBody{Error: "no store configured"})
		return nil, false
	}
	if sr, ok := s.deps.Store.(store.Scanner); ok {
		want, auto := sourceOf(source)
		sc, err := sr.Scan(c.Request.Context(), store.ScanQuery{From: from, To: to, Auto: auto, Source: want})
		switch {
		case err == nil:
			v := &rangeView{sc: sc, ws: make([]*aggregate.Window, sc.Segments())}
			for i := range v.ws {
				st, en, _ := sc.Segment(i)
				v.ws[i] = &aggregate.Window{Start: st, End: en}
			}
			return v, true
		case !errors.Is(err, store.ErrNotCovered):
			c.JSON(http.StatusInternalServerError, errorBody{Error: "read windows: " + err.Error()})
			return nil, false
		}
	}
	ws, ok := s.readWindows(c, from, to, nil)
	if !ok {
		return nil, false
	}
	return windowView(ws, source), true
}

// windowView numbers the selected pairs of windows (the history path).
func windowView(ws []*aggregate.Window, source string) *rangeView {
	v := &rangeView{ws: ws, rows: make([][]store.Row, len(ws))}
	groups := map[endpoints]uint32{}
	eps := map[endpointID]uint32{}
	ep := func(id endpointID) uint32 {
		n, ok := eps[id]
		if !ok {
			n = uint32(len(eps))
			eps[id] = n
		}
		return n
	}
	sel := newSelector(source)
	sel.prepare(ws)
	for wi, w := range ws {
		sel.each(w, func(p *aggregate.Pair) {
			k := visitKey(p)
			g, ok := groups[k]
			if !ok {
				g = uint32(len(groups))
				groups[k] = g
			}
			sid, did := ep(k.src), ep(k.dst)
			if !ok {
				v.gEP = append(v.gEP, [2]uint32{sid, did})
			}
			v.rows[wi] = append(v.rows[wi], store.Row{Entry: uint32(len(v.pairs)), Group: g, Src: sid, Dst: did,
				Bytes: p.Stats.Bytes, Packets: p.Stats.Packets, Samples: p.Stats.Samples, Flows: p.Stats.Flows, Windows: 1})
			v.pairs = append(v.pairs, p)
			v.ids = append(v.ids, [3]uint32{g, sid, did})
		})
	}
	v.nGroup, v.nEP = len(groups), len(eps)
	return v
}

// entryFilter is the console filter over a rangeView: its endpoint part
// decided once per entry (skip), its protocol and port parts per row.
type entryFilter struct {
	f *consoleFilter
	v *rangeView
	// needStats: the filter needs more than the hot columns (protocol, port).
	needStats bool
}

func newEntryFilter(f *consoleFilter, v *rangeView) *entryFilter {
	return &entryFilter{f: f, v: v, needStats: f.proto != "" || f.port >= 0}
}

// skip is the per-entry store.Acc.Skip of the filter's endpoint part
// (nil: no endpoint filter).
func (ef *entryFilter) skip() []bool {
	if ef.f.filter == (filter{}) {
		return nil
	}
	sk := make([]bool, ef.v.entries())
	for e := range sk {
		_, src, dst := ef.v.entry(uint32(e))
		sk[e] = !ef.f.matchEndpoints(src, dst)
	}
	return sk
}
