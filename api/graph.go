package api

import (
	"container/heap"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
)

// GET /api/v1/graph: who talks to whom over a range, as nodes and weighted
// directed edges. Endpoints are grouped by hypervisor or tenant; at
// level=group every group is one node except those listed in ?expand=;
// only the top N edges by the chosen metric are returned and the rest is
// summed into an "other" bucket, so the answer stays small whatever the
// cloud's size. Cost: one pass over the range's pairs, then one map entry
// per distinct directed pair and per node.

var (
	graphGroups  = []string{"host", "tenant"}
	graphLevels  = []string{"vm", "group"}
	graphMetrics = []string{"bps", "pps", "flows"}
)

// MaxGraphEdges bounds ?top= of /graph.
const MaxGraphEdges = 5000

type graphNode struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Kind   string `json:"kind"` // vm, ip, group
	Group  string `json:"group"`
	Host   string `json:"host"`
	Tenant string `json:"tenant"`
	// Members is the number of endpoints a group node stands for (1 otherwise).
	Members     int     `json:"members"`
	BPSOut      float64 `json:"bps_out"`
	BPSIn       float64 `json:"bps_in"`
	PPSOut      float64 `json:"pps_out"`
	PPSIn       float64 `json:"pps_in"`
	InternalBPS float64 `json:"internal_bps"`
}

type graphEdge struct {
	Src     string  `json:"src"`
	Dst     string  `json:"dst"`
	Bytes   float64 `json:"bytes"`
	Packets float64 `json:"packets"`
	BPS     float64 `json:"bps"`
	PPS     float64 `json:"pps"`
	Flows   uint64  `json:"flows"`
}

type graphOther struct {
	Edges   int     `json:"edges"`
	Bytes   float64 `json:"bytes"`
	Packets float64 `json:"packets"`
	BPS     float64 `json:"bps"`
	PPS     float64 `json:"pps"`
	Flows   uint64  `json:"flows"`
}

type graphOut struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Source   string    `json:"source"`
	Group    string    `json:"group"`
	Level    string    `json:"level"`
	Metric   string    `json:"metric"`
	Top      int       `json:"top"`
	Expanded []string  `json:"expanded"`
	Windows  int       `json:"windows"`
	// WindowSeconds is the aggregation window (0 when unknown).
	WindowSeconds float64     `json:"window_seconds"`
	CoveredFrom   *time.Time  `json:"covered_from"`
	CoveredTo     *time.Time  `json:"covered_to"`
	TotalNodes    int         `json:"total_nodes"`
	TotalEdges    int         `json:"total_edges"`
	Groups        []string    `json:"groups"`
	Nodes         []graphNode `json:"nodes"`
	Edges         []graphEdge `json:"edges"`
	Other         graphOther  `json:"other"`
}

type gnode struct {
	graphNode
	bytesOut, bytesIn, pktsOut, pktsIn, internal float64
	members                                      map[string]struct{}
}

type edgeKey struct{ src, dst string }

// eacc sums one edge.
type eacc struct {
	bytes, pkts float64
	flows       uint64
}

func (s *Server) handleGraph(c *gin.Context) {
	q := newQuery(c)
	var (
		source, group, level, metric string
		top                          int
		expand                       map[string]bool
		f                            consoleFilter
	)
	from, to, _, v, ok := s.rangeView(c, q, 5*time.Minute, &source, func() (err error) {
		if source, err = q.source(); err != nil {
			return err
		}
		if group, err = q.enumParam("group", graphGroups, "host"); err != nil {
			return err
		}
		if level, err = q.enumParam("level", graphLevels, "vm"); err != nil {
			return err
		}
		if metric, err = q.enumParam("metric", graphMetrics, "bps"); err != nil {
			return err
		}
		if top, err = q.intParam("top", 300, 1, MaxGraphEdges); err != nil {
			return err
		}
		ex, _, err := q.get("expand")
		if err != nil {
			return err
		}
		expand = map[string]bool{}
		for _, g := range strings.Split(ex, ",") {
			if g = strings.TrimSpace(g); g != "" {
				expand[g] = true
			}
		}
		f, err = q.consoleFilter()
		return err
	})
	if !ok {
		return
	}
	out := graphOut{From: from, To: to, Source: source, Group: group, Level: level, Metric: metric, Top: top,
		Expanded: []string{}, Windows: len(v.ws), WindowSeconds: s.windowSize(v.ws).Seconds(), Groups: []string{}, Nodes: []graphNode{}, Edges: []graphEdge{}}
	var covered time.Duration
	out.CoveredFrom, out.CoveredTo, covered = coveredSpan(v.ws)
	for g := range expand {
		out.Expanded = append(out.Expanded, g)
	}
	sort.Strings(out.Expanded)

	// Pass 1: sum each directed pair (group) over the range; latest[g] is
	// 1 + the entry of its latest row (names), 0: no traffic.
	ef := newEntryFilter(&f, v)
	acc := groupAcc(v, ef.skip())
	for wi := range v.ws {
		if err := v.accumulate(c, wi, &acc, ef); err != nil {
			c.JSON(http.StatusInternalServerError, errorBody{Error: "read windows: " + err.Error()})
			return
		}
	}
	gB, gP, gF, latest := acc.GroupBytes, acc.GroupPackets, acc.GroupFlows, acc.GroupLatest

	// Pass 2: map pairs to nodes and edges. A node is decided once per
	// endpoint (its id string built once) unless its group is collapsed
	// (then by the group's name).
	var nodes []*gnode
	byID := map[string]int32{}
	groupNode := map[string]int32{} // group name → its collapsed node
	groupsSeen := map[string]struct{}{}
	epNode := make([]int32, v.endpoints())
	epMember := make([]int32, v.endpoints()) // 1 + the group node it was counted in
	for i := range epNode {
		epNode[i] = -1
	}
	merged := false // two endpoints share a node (same name)
	node := func(id string, mk func() *gnode) int32 {
		n, ok := byID[id]
		if !ok {
			n = int32(len(nodes))
			byID[id] = n
			nodes = append(nodes, mk())
		}
		return n
	}
	nodeOf := func(e *aggregate.Endpoint, k aggregate.EndpointKey, ep uint32) int32 {
		g := e.Host
		if group == "tenant" {
			g = e.Tenant
		}
		if g == "" {
			g = "external"
			if isVM(e, k) {
				g = "unknown"
			}
		}
		if _, ok := groupsSeen[g]; !ok {
			groupsSeen[g] = struct{}{}
		}
		if level == "group" && !expand[g] {
			n, ok := groupNode[g]
			if !ok {
				n = node("group:"+g, func() *gnode {
					return &gnode{graphNode: graphNode{ID: "group:" + g, Name: g, Kind: "group", Group: g}, members: map[string]struct{}{}}
				})
				groupNode[g] = n
			}
			if epMember[ep] != n+1 {
				epMember[ep] = n + 1
				if m := nodes[n].members; len(m) < maxPeersCounted {
					m[nodeName(e, k)] = struct{}{}
				}
			}
			return n
		}
		if n := epNode[ep]; n >= 0 {
			return n
		}
		name := nodeName(e, k)
		id, kind := "vm:"+name, "vm"
		if !isVM(e, k) {
			id, kind = "ip:"+name, "ip"
		}
		before := len(nodes)
		n := node(id, func() *gnode {
			return &gnode{graphNode: graphNode{ID: id, Name: name, Kind: kind, Group: g, Host: e.Host, Tenant: e.Tenant}}
		})
		merged = merged || len(nodes) == before
		epNode[ep] = n
		return n
	}
	type edge struct {
		src, dst int32
		eacc
	}
	nPairs := 0
	for _, l := range latest {
		if l != 0 {
			nPairs++
		}
	}
	edges := make([]edge, 0, nPairs)
	var edgeIdx map[uint64]int32
	gSrc, gDst := make([]int32, 0, nPairs), make([]int32, 0, nPairs)
	for g := range latest {
		if latest[g] == 0 {
			continue
		}
		key, src, dst := v.entry(latest[g] - 1)
		se, de := v.groupEndpoints(uint32(g))
		sn, dn := nodeOf(src, key.Src, se), nodeOf(dst, key.Dst, de)
		gSrc, gDst = append(gSrc, sn), append(gDst, dn)
		a, b := nodes[sn], nodes[dn]
		a.bytesOut += gB[g]
		a.pktsOut += gP[g]
		b.bytesIn += gB[g]
		b.pktsIn += gP[g]
		if sn == dn {
			a.internal += gB[g]
		}
	}
	// Edges: one per pair while no two endpoints share a node and no group
	// is collapsed (the common vm level), else summed per node pair.
	oneToOne := !merged && level == "vm"
	if !oneToOne {
		edgeIdx = map[uint64]int32{}
	}
	k := 0
	for g := range latest {
		if latest[g] == 0 {
			continue
		}
		sn, dn := gSrc[k], gDst[k]
		k++
		if sn == dn && nodes[sn].Kind == "group" {
			continue // traffic inside a collapsed group: shown on the node
		}
		if !oneToOne {
			ek := uint64(sn)<<32 | uint64(uint32(dn))
			if i, ok := edgeIdx[ek]; ok {
				e := &edges[i]
				e.bytes += gB[g]
				e.pkts += gP[g]
				e.flows += gF[g]
				continue
			}
			edgeIdx[ek] = int32(len(edges))
		}
		edges = append(edges, edge{src: sn, dst: dn, eacc: eacc{bytes: gB[g], pkts: gP[g], flows: gF[g]}})
	}
	out.TotalNodes, out.TotalEdges = len(nodes), len(edges)
	for g := range groupsSeen {
		out.Groups = append(out.Groups, g)
	}
	sort.Strings(out.Groups)

	// Top N edges by the metric (a bounded heap: O(E log N)).
	weight := func(e *eacc) float64 {
		switch metric {
		case "pps":
			return e.pkts
		case "flows":
			return float64(e.flows)
		}
		return e.bytes
	}
	h := &edgeHeap{}
	for i := range edges {
		e := &edges[i]
		it := edgeItem{k: edgeKey{nodes[e.src].ID, nodes[e.dst].ID}, e: &e.eacc, w: weight(&e.eacc), i: int32(i)}
		if h.Len() < top {
			heap.Push(h, it)
		} else if it.less((*h)[0]) {
			continue
		} else {
			(*h)[0] = it
			heap.Fix(h, 0)
		}
	}
	kept := make([]bool, len(edges))
	want := make([]bool, len(nodes))
	for _, it := range *h {
		kept[it.i] = true
		want[edges[it.i].src], want[edges[it.i].dst] = true, true
		e := it.e
		out.Edges = append(out.Edges, graphEdge{Src: it.k.src, Dst: it.k.dst, Bytes: e.bytes, Packets: e.pkts,
			BPS: rate(e.bytes*8, covered), PPS: rate(e.pkts, covered), Flows: e.flows})
	}
	sort.Slice(out.Edges, func(i, j int) bool {
		a, b := &out.Edges[i], &out.Edges[j]
		wa, wb := graphWeight(a, metric), graphWeight(b, metric)
		if wa != wb {
			return wa > wb
		}
		if a.Src != b.Src {
			return a.Src < b.Src
		}
		return a.Dst < b.Dst
	})
	for i := range edges {
		if !kept[i] {
			e := &edges[i]
			out.Other.Edges++
			out.Other.Bytes += e.bytes
			out.Other.Packets += e.pkts
			out.Other.Flows += e.flows
		}
	}
	out.Other.BPS, out.Other.PPS = rate(out.Other.Bytes*8, covered), rate(out.Other.Packets, covered)

	// Nodes: those of the kept edges, and every group node (a collapsed
	// group's internal traffic has no edge).
	for i, n := range nodes {
		if !want[i] && n.Kind != "group" {
			continue
		}
		n.BPSOut, n.BPSIn = rate(n.bytesOut*8, covered), rate(n.bytesIn*8, covered)
		n.PPSOut, n.PPSIn = rate(n.pktsOut, covered), rate(n.pktsIn, covered)
		n.InternalBPS = rate(n.internal*8, covered)
		n.Members = 1
		if n.members != nil {
			n.Members = len(n.members)
		}
		out.Nodes = append(out.Nodes, n.graphNode)
	}
	sort.Slice(out.Nodes, func(i, j int) bool {
		a, b := &out.Nodes[i], &out.Nodes[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.ID < b.ID
	})
	c.JSON(http.StatusOK, out)
}

func graphWeight(e *graphEdge, metric string) float64 {
	switch metric {
	case "pps":
		return e.Packets
	case "flows":
		return float64(e.Flows)
	}
	return e.Bytes
}

// edgeItem is a candidate edge of the top N; the heap's root is the
// smallest kept (ties broken by key so the answer is deterministic).
type edgeItem struct {
	k edgeKey
	e *eacc
	w float64
	i int32 // index in the route's edges
}

func (a edgeItem) less(b edgeItem) bool {
	if a.w != b.w {
		return a.w < b.w
	}
	if a.k.src != b.k.src {
		return a.k.src > b.k.src
	}
	return a.k.dst > b.k.dst
}

type edgeHeap []edgeItem

func (h edgeHeap) Len() int           { return len(h) }
func (h edgeHeap) Less(i, j int) bool { return h[i].less(h[j]) }
func (h edgeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *edgeHeap) Push(x any)        { *h = append(*h, x.(edgeItem)) }
func (h *edgeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
