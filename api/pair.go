package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// GET /api/v1/pairs/{src}/{dst}: one directed pair summed over a range
// (protocol mix, TCP flags, ICMP errors, top ports, as in /pairs) with the
// chosen source, plus what each export protocol saw of it on its own (the
// sFlow vs IPFIX view of the pair detail page).

type pairSourceOut struct {
	Source    string     `json:"source"`
	Bytes     float64    `json:"bytes"`
	Packets   float64    `json:"packets"`
	Samples   uint64     `json:"samples"`
	Flows     uint64     `json:"flows"`
	BPS       float64    `json:"bps"`
	BytesCI95 [2]float64 `json:"bytes_ci95"`
	Windows   int        `json:"windows"`
}

type pairDetailOut struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Source  string    `json:"source"`
	Windows int       `json:"windows"`
	// WindowSeconds is the aggregation window (what ?step= of the series
	// must be a multiple of); 0 when unknown.
	WindowSeconds float64         `json:"window_seconds"`
	CoveredFrom   *time.Time      `json:"covered_from"`
	CoveredTo     *time.Time      `json:"covered_to"`
	Pair          pairOut         `json:"pair"`
	BySource      []pairSourceOut `json:"by_source"`
}

func (s *Server) handlePair(c *gin.Context) {
	srcTok, dstTok := c.Param("src"), c.Param("dst")
	q := newQuery(c)
	from, to, err := q.timeRange(s.deps.Now(), time.Hour)
	if err != nil {
		writeError(c, err)
		return
	}
	source, err := q.source()
	if err != nil {
		writeError(c, err)
		return
	}
	if err := q.finish(); err != nil {
		writeError(c, err)
		return
	}
	sm, dm := newEndpointMatcher(srcTok), newEndpointMatcher(dstTok)
	keep := func(k *aggregate.PairKey, src, dst *aggregate.Endpoint) bool {
		return sm.match(*src, k.Src) && dm.match(*dst, k.Dst)
	}
	windows, ok := s.readWindows(c, from, to, keep)
	if !ok {
		return
	}
	out := pairDetailOut{From: from, To: to, Source: source, Windows: len(windows), BySource: []pairSourceOut{},
		WindowSeconds: s.windowSize(windows).Seconds()}
	var covered time.Duration
	out.CoveredFrom, out.CoveredTo, covered = coveredSpan(windows)
	match := func(p *aggregate.Pair) bool { return sm.match(p.Src, p.Key.Src) && dm.match(p.Dst, p.Key.Dst) }

	var chosen acc
	sel := newLatencySelector(source)
	sel.prepare(windows)
	for _, w := range windows {
		sel.each(w, func(p *aggregate.Pair) {
			if match(p) {
				chosen.add(p, w.End)
			}
		})
	}
	if chosen.windows == 0 {
		c.JSON(http.StatusNotFound, errorBody{Error: "no traffic from " + srcTok + " to " + dstTok + " in the range"})
		return
	}
	out.Pair = pairResult(&chosen, covered)

	per := map[decoder.Source]*acc{}
	for _, w := range windows {
		for i := range w.Pairs {
			p := &w.Pairs[i]
			if !match(p) || isProbe(p) {
				continue
			}
			a := per[p.Key.Source]
			if a == nil {
				a = &acc{}
				per[p.Key.Source] = a
			}
			a.add(p, w.End)
		}
	}
	for src, a := range per {
		st := &a.stats
		out.BySource = append(out.BySource, pairSourceOut{Source: src.String(), Bytes: st.Bytes, Packets: st.Packets,
			Samples: st.Samples, Flows: st.Flows, BPS: rate(st.Bytes*8, covered), BytesCI95: ci95Bytes(st), Windows: a.windows})
	}
	sort.Slice(out.BySource, func(i, j int) bool { return out.BySource[i].Source < out.BySource[j].Source })
	c.JSON(http.StatusOK, out)
}
