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

// lite is a pair's sums over the range (only what the graph needs).
type lite struct {
	p           *aggregate.Pair // latest
	last        time.Time
	bytes, pkts float64
	flows       uint64
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
	from, to, _, windows, ok := s.rangeWindows(c, q, 5*time.Minute, func() (err error) {
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
		Expanded: []string{}, Windows: len(windows), WindowSeconds: s.windowSize(windows).Seconds(), Groups: []string{}, Nodes: []graphNode{}, Edges: []graphEdge{}}
	var covered time.Duration
	out.CoveredFrom, out.CoveredTo, covered = coveredSpan(windows)
	for g := range expand {
		out.Expanded = append(out.Expanded, g)
	}
	sort.Strings(out.Expanded)

	// Pass 1: sum each directed pair over the range.
	pairs := map[endpoints]*lite{}
	sel := newSelector(source)
	sel.prepare(windows)
	for _, w := range windows {
		sel.each(w, func(p *aggregate.Pair) {
			b, pk, ok := f.values(p)
			if !ok {
				return
			}
			k := visitKey(p)
			a := pairs[k]
			if a == nil {
				a = &lite{}
				pairs[k] = a
			}
			a.bytes += b
			a.pkts += pk
			a.flows += p.Stats.Flows
			if a.p == nil || !w.End.Before(a.last) {
				a.p, a.last = p, w.End
			}
		})
	}

	// Pass 2: map pairs to nodes and edges.
	nodes := map[string]*gnode{}
	groupsSeen := map[string]struct{}{}
	nodeOf := func(e *aggregate.Endpoint, k aggregate.EndpointKey) *gnode {
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
		groupsSeen[g] = struct{}{}
		name := nodeName(e, k)
		var id string
		collapsed := level == "group" && !expand[g]
		switch {
		case collapsed:
			id = "group:" + g
		case isVM(e, k):
			id = "vm:" + name
		default:
			id = "ip:" + name
		}
		n := nodes[id]
		if n == nil {
			n = &gnode{graphNode: graphNode{ID: id, Name: name, Kind: "vm", Group: g, Host: e.Host, Tenant: e.Tenant}}
			switch {
			case collapsed:
				n.Kind, n.Name, n.Host, n.Tenant = "group", g, "", ""
				n.members = map[string]struct{}{}
			case !isVM(e, k):
				n.Kind = "ip"
			}
			nodes[id] = n
		}
		if n.members != nil && len(n.members) < maxPeersCounted {
			n.members[name] = struct{}{}
		}
		return n
	}
	edges := map[edgeKey]*eacc{}
	for _, a := range pairs {
		p := a.p
		sn, dn := nodeOf(&p.Src, p.Key.Src), nodeOf(&p.Dst, p.Key.Dst)
		sn.bytesOut += a.bytes
		sn.pktsOut += a.pkts
		dn.bytesIn += a.bytes
		dn.pktsIn += a.pkts
		if sn == dn {
			sn.internal += a.bytes
			if sn.Kind == "group" {
				continue // traffic inside a collapsed group: shown on the node
			}
		}
		k := edgeKey{sn.ID, dn.ID}
		e := edges[k]
		if e == nil {
			e = &eacc{}
			edges[k] = e
		}
		e.bytes += a.bytes
		e.pkts += a.pkts
		e.flows += a.flows
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
	for k, e := range edges {
		it := edgeItem{k: k, e: e, w: weight(e)}
		if h.Len() < top {
			heap.Push(h, it)
		} else if it.less((*h)[0]) {
			continue
		} else {
			(*h)[0] = it
			heap.Fix(h, 0)
		}
	}
	kept := make(map[edgeKey]bool, h.Len())
	for _, it := range *h {
		kept[it.k] = true
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
	for k, e := range edges {
		if !kept[k] {
			out.Other.Edges++
			out.Other.Bytes += e.bytes
			out.Other.Packets += e.pkts
			out.Other.Flows += e.flows
		}
	}
	out.Other.BPS, out.Other.PPS = rate(out.Other.Bytes*8, covered), rate(out.Other.Packets, covered)

	// Nodes: those of the kept edges, and every group node (a collapsed
	// group's internal traffic has no edge).
	want := map[string]bool{}
	for _, e := range out.Edges {
		want[e.Src], want[e.Dst] = true, true
	}
	for id, n := range nodes {
		if !want[id] && n.Kind != "group" {
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
