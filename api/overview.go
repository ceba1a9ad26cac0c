package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/store"
)

// GET /api/v1/overview: the whole cloud's traffic over a range, as step
// points stacked by tenant, protocol or host (top groups + "other"), the
// latest window's rates, and the top talkers and listeners. One pass over
// the range's windows; state is per group and per endpoint seen.

var overviewGroups = []string{"tenant", "protocol", "host"}

// OtherKey names the bucket of everything beyond the top N.
const OtherKey = "other"

type overviewGroup struct {
	Key     string    `json:"key"`
	Bytes   float64   `json:"bytes"`
	Packets float64   `json:"packets"`
	BPS     []float64 `json:"bps"`
	PPS     []float64 `json:"pps"`
}

type overviewTotals struct {
	Bytes   float64 `json:"bytes"`
	Packets float64 `json:"packets"`
	BPS     float64 `json:"bps"`
	PPS     float64 `json:"pps"`
	Flows   uint64  `json:"flows"`
}

type overviewNow struct {
	Time  *time.Time `json:"time"`
	BPS   float64    `json:"bps"`
	PPS   float64    `json:"pps"`
	Pairs int        `json:"pairs"`
}

type talkerOut struct {
	Name    string  `json:"name"`
	VM      bool    `json:"vm"`
	Host    string  `json:"host"`
	Tenant  string  `json:"tenant"`
	Bytes   float64 `json:"bytes"`
	Packets float64 `json:"packets"`
	BPS     float64 `json:"bps"`
	Peers   int     `json:"peers"`
}

type overviewOut struct {
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	Step        string          `json:"step"`
	Source      string          `json:"source"`
	Group       string          `json:"group"`
	Windows     int             `json:"windows"`
	CoveredFrom *time.Time      `json:"covered_from"`
	CoveredTo   *time.Time      `json:"covered_to"`
	Totals      overviewTotals  `json:"totals"`
	Now         overviewNow     `json:"now"`
	Times       []time.Time     `json:"times"`
	Groups      []overviewGroup `json:"groups"`
	Talkers     []talkerOut     `json:"top_talkers"`
	Listeners   []talkerOut     `json:"top_listeners"`
	ActiveVMs   int             `json:"active_vms"`
}

// talker is one endpoint's traffic in one direction.
type talker struct {
	name         string
	vm           bool
	host, tenant string
	bytes, pkts  float64
	peers        int // distinct peers (pairs with traffic in the range)
}

// maxPeersCounted caps the distinct peers counted per talker (memory bound).
const maxPeersCounted = 10_000

func groupKey(group string, src, dst *aggregate.Endpoint) string {
	pick := func(a, b string) string {
		if a != "" {
			return a
		}
		if b != "" {
			return b
		}
		return "external"
	}
	switch group {
	case "host":
		return pick(src.Host, dst.Host)
	default:
		return pick(src.Tenant, dst.Tenant)
	}
}

func (s *Server) handleOverview(c *gin.Context) {
	q := newQuery(c)
	var (
		source, group string
		top           int
		f             consoleFilter
	)
	from, to, step, v, ok := s.rangeView(c, q, time.Hour, &source, func() (err error) {
		if source, err = q.source(); err != nil {
			return err
		}
		if group, err = q.enumParam("group", overviewGroups, "tenant"); err != nil {
			return err
		}
		if top, err = q.intParam("top", 10, 1, 100); err != nil {
			return err
		}
		f, err = q.consoleFilter()
		return err
	})
	if !ok {
		return
	}
	out := overviewOut{From: from, To: to, Step: step.String(), Source: source, Group: group, Windows: len(v.ws),
		Times: []time.Time{}, Groups: []overviewGroup{}, Talkers: []talkerOut{}, Listeners: []talkerOut{}}
	var covered time.Duration
	out.CoveredFrom, out.CoveredTo, covered = coveredSpan(v.ws)

	// Points: each window's index, labels and durations.
	bk := newBucketer(step, v.ws)
	pt := make([]int, len(v.ws))
	var durs []time.Duration
	for wi, w := range v.ws {
		l := bk.label(w)
		if n := len(out.Times); n == 0 || !l.Equal(out.Times[n-1]) {
			out.Times = append(out.Times, l)
			durs = append(durs, 0)
		}
		pt[wi] = len(out.Times) - 1
		durs[pt[wi]] = max(durs[pt[wi]], bk.duration(l, w))
	}
	nPt := len(out.Times)

	// Groups (stacks) by dense index: the protocols, or the tenants/hosts
	// of the entries (decided once per entry).
	type gacc struct {
		key         string
		bytes, pkts float64
		b, p        []float64 // per point: bytes, packets
		seen        bool
	}
	var groups []*gacc
	gidx := map[string]int32{}
	groupOf := func(key string) int32 {
		i, ok := gidx[key]
		if !ok {
			i = int32(len(groups))
			gidx[key] = i
			groups = append(groups, &gacc{key: key, b: make([]float64, nPt), p: make([]float64, nPt)})
		}
		return i
	}
	ef := newEntryFilter(&f, v)
	acc := groupAcc(v, ef.skip())
	if group == "protocol" {
		for _, k := range protocolNames {
			groupOf(k)
		}
		acc.Proto = &[4][2]float64{}
	} else {
		acc.A = make([]int32, v.entries())
		for e := range acc.A {
			if acc.Skip != nil && acc.Skip[e] {
				continue
			}
			_, src, dst := v.entry(uint32(e))
			acc.A[e] = groupOf(groupKey(group, src, dst))
		}
	}
	nCls := len(groups)
	acc.ABytes, acc.APackets = make([]float64, nCls*nPt), make([]float64, nCls*nPt)
	last := len(v.ws) - 1
	for wi, w := range v.ws {
		acc.Off = pt[wi] * nCls
		if acc.Proto != nil {
			*acc.Proto = [4][2]float64{}
		}
		var before store.Acc
		if wi == last { // the latest window on its own: "now"
			before = acc
			acc.Rows, acc.Bytes, acc.Packets = 0, 0, 0
		}
		if err := v.accumulate(c, wi, &acc, ef); err != nil {
			c.JSON(http.StatusInternalServerError, errorBody{Error: "read windows: " + err.Error()})
			return
		}
		if acc.Proto != nil {
			for pi, x := range acc.Proto {
				acc.ABytes[pi+acc.Off] += x[0]
				acc.APackets[pi+acc.Off] += x[1]
			}
		}
		if wi == last {
			d := w.End.Sub(w.Start)
			out.Now.BPS, out.Now.PPS = rate(acc.Bytes*8, d), rate(acc.Packets, d)
			out.Now.Pairs = acc.Rows
			end := w.End
			out.Now.Time = &end
			acc.Rows += before.Rows
			acc.Bytes += before.Bytes
			acc.Packets += before.Packets
		}
	}
	out.Totals.Bytes, out.Totals.Packets, out.Totals.Flows = acc.Bytes, acc.Packets, acc.Flows
	for gi, g := range groups {
		for i := 0; i < nPt; i++ {
			b, p := acc.ABytes[i*nCls+gi], acc.APackets[i*nCls+gi]
			g.b[i], g.p[i] = b, p
			g.bytes += b
			g.pkts += p
			g.seen = g.seen || b != 0 || p != 0
		}
	}
	if group != "protocol" {
		// A tenant or host is shown once it had a counted row (with
		// traffic, or the latest of its pair's).
		for _, l := range acc.GroupLatest {
			if l != 0 {
				groups[acc.A[l-1]].seen = true
			}
		}
	}

	// Talkers (tx) and listeners (rx) by dense endpoint id, from the
	// groups; named after the entry of their latest row (its segment).
	nEP := v.endpoints()
	txB, txP, rxB, rxP := make([]float64, nEP), make([]float64, nEP), make([]float64, nEP), make([]float64, nEP)
	txName, rxName := make([]int32, nEP), make([]int32, nEP)
	txSeg, rxSeg := make([]int32, nEP), make([]int32, nEP)
	for i := range txName {
		txName[i], rxName[i] = -1, -1
	}
	txPeers, rxPeers := make([]int32, nEP), make([]int32, nEP)
	for g, l := range acc.GroupLatest {
		if l == 0 {
			continue
		}
		s, d := v.groupEndpoints(uint32(g))
		b, p, seg := acc.GroupBytes[g], acc.GroupPackets[g], acc.GroupSeg[g]
		txB[s] += b
		txP[s] += p
		rxB[d] += b
		rxP[d] += p
		txPeers[s]++
		rxPeers[d]++
		if txName[s] < 0 || seg > txSeg[s] {
			txName[s], txSeg[s] = int32(l-1), seg
		}
		if rxName[d] < 0 || seg > rxSeg[d] {
			rxName[d], rxSeg[d] = int32(l-1), seg
		}
	}
	out.Totals.BPS, out.Totals.PPS = rate(out.Totals.Bytes*8, covered), rate(out.Totals.Packets, covered)

	// Groups: top N by bytes, the rest summed into "other".
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		if a.bytes != b.bytes {
			return a.bytes > b.bytes
		}
		return a.key < b.key
	})
	n := len(out.Times)
	mk := func(key string) overviewGroup {
		return overviewGroup{Key: key, BPS: make([]float64, n), PPS: make([]float64, n)}
	}
	var other *overviewGroup
	gi := 0
	for _, g := range groups {
		if !g.seen {
			continue // a protocol (or a filtered-out group) never seen
		}
		var og *overviewGroup
		if gi < top && !(g.key == OtherKey && group != "protocol") {
			out.Groups = append(out.Groups, mk(g.key))
			og = &out.Groups[len(out.Groups)-1]
		} else {
			if other == nil {
				o := mk(OtherKey)
				other = &o
			}
			og = other
		}
		gi++
		og.Bytes += g.bytes
		og.Packets += g.pkts
		for i := range g.b {
			og.BPS[i] += rate(g.b[i]*8, durs[i])
			og.PPS[i] += rate(g.p[i], durs[i])
		}
	}
	if other != nil {
		out.Groups = append(out.Groups, *other)
	}
	talkers := func(first []int32, b, p []float64, peers []int32, dst bool) []*talker {
		var ts []*talker
		for ep, e := range first {
			if e < 0 {
				continue
			}
			key, src, dstE := v.entry(uint32(e))
			en, k := src, key.Src
			if dst {
				en, k = dstE, key.Dst
			}
			ts = append(ts, &talker{name: nodeName(en, k), vm: isVM(en, k), host: en.Host, tenant: en.Tenant,
				bytes: b[ep], pkts: p[ep], peers: int(min(peers[ep], maxPeersCounted))})
		}
		return ts
	}
	tx, rx := talkers(txName, txB, txP, txPeers, false), talkers(rxName, rxB, rxP, rxPeers, true)
	out.Talkers = topTalkers(tx, top, covered)
	out.Listeners = topTalkers(rx, top, covered)
	vms := map[string]struct{}{}
	for _, m := range [][]*talker{tx, rx} {
		for _, t := range m {
			if t.vm {
				vms[t.name] = struct{}{}
			}
		}
	}
	out.ActiveVMs = len(vms)
	c.JSON(http.StatusOK, out)
}

// topTalkers merges the accumulators of one endpoint (memory ids and
// history names) by name and returns the top n by bytes.
func topTalkers(m []*talker, n int, covered time.Duration) []talkerOut {
	byName := make(map[string]*talkerOut, len(m))
	peers := make(map[string]int, len(m))
	for _, t := range m {
		o := byName[t.name]
		if o == nil {
			o = &talkerOut{Name: t.name, VM: t.vm, Host: t.host, Tenant: t.tenant}
			byName[t.name] = o
		}
		o.Bytes += t.bytes
		o.Packets += t.pkts
		peers[t.name] += t.peers // ids of one endpoint's tiers rarely coexist; an upper bound if they do
	}
	out := make([]talkerOut, 0, len(byName))
	for name, o := range byName {
		o.BPS = rate(o.Bytes*8, covered)
		o.Peers = peers[name]
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
