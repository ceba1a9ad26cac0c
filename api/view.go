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
	nGroup int
	nEP    int
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
			v.rows[wi] = append(v.rows[wi], store.Row{Entry: uint32(len(v.pairs)), Group: g, Src: ep(k.src), Dst: ep(k.dst),
				Bytes: p.Stats.Bytes, Packets: p.Stats.Packets, Samples: p.Stats.Samples, Flows: p.Stats.Flows, Windows: 1})
			v.pairs = append(v.pairs, p)
		})
	}
	v.nGroup, v.nEP = len(groups), len(eps)
	return v
}

// entryFilter decides the console filter's endpoint part once per entry.
type entryFilter struct {
	f     *consoleFilter
	v     *rangeView
	cache []uint8 // 0 not asked, 1 yes, 2 no
	// needStats: the filter needs more than the hot columns (protocol, port).
	needStats bool
}

func newEntryFilter(f *consoleFilter, v *rangeView) *entryFilter {
	ef := &entryFilter{f: f, v: v, needStats: f.proto != "" || f.port >= 0}
	if f.filter != (filter{}) {
		ef.cache = make([]uint8, v.entries())
	}
	return ef
}

func (ef *entryFilter) match(e uint32) bool {
	if ef.cache == nil {
		return true
	}
	switch ef.cache[e] {
	case 1:
		return true
	case 2:
		return false
	}
	_, src, dst := ef.v.entry(e)
	if ef.f.matchEndpoints(src, dst) {
		ef.cache[e] = 1
		return true
	}
	ef.cache[e] = 2
	return false
}

// values is consoleFilter.values for a row: what it counts for, ok=false
// when it does not match. st is filled when the statistics had to be
// decoded (decoded reports it).
func (ef *entryFilter) values(i int, r *store.Row, st *aggregate.Stats, decode bool) (b, pk float64, decoded, ok bool) {
	if !ef.match(r.Entry) {
		return 0, 0, false, false
	}
	if !ef.needStats && !decode {
		return r.Bytes, r.Packets, false, true
	}
	ef.v.stats(i, r, st)
	b, pk, ok = ef.f.statValues(st)
	return b, pk, true, ok
}
