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

	bk := newBucketer(step, v.ws)
	// Groups by dense index: the protocols, or the tenants/hosts met
	// (decided once per entry).
	type gacc struct {
		key         string
		bytes, pkts float64
		b, p        []float64 // per point: bytes, packets
	}
	var groups []*gacc
	gidx := map[string]int32{}
	groupOf := func(key string) int32 {
		i, ok := gidx[key]
		if !ok {
			i = int32(len(groups))
			gidx[key] = i
			groups = append(groups, &gacc{key: key})
		}
		return i
	}
	var entGroup []int32
	if group == "protocol" {
		for _, k := range protocolNames {
			groupOf(k)
		}
	} else {
		entGroup = make([]int32, v.entries())
		for i := range entGroup {
			entGroup[i] = -1
		}
	}
	addGroup := func(gi int32, i int, b, p float64) {
		g := groups[gi]
		for len(g.b) <= i {
			g.b, g.p = append(g.b, 0), append(g.p, 0)
		}
		g.b[i] += b
		g.p[i] += p
		g.bytes += b
		g.pkts += p
	}
	// Talkers (tx) and listeners (rx) by dense endpoint id; first[]: the
	// entry that named the endpoint (the first counted row), -1: unseen.
	nEP := v.endpoints()
	txB, txP, rxB, rxP := make([]float64, nEP), make([]float64, nEP), make([]float64, nEP), make([]float64, nEP)
	txFirst, rxFirst := make([]int32, nEP), make([]int32, nEP)
	for i := range txFirst {
		txFirst[i], rxFirst[i] = -1, -1
	}
	txPeers, rxPeers := make([]int32, nEP), make([]int32, nEP)
	counted := make([]bool, v.groups())
	ef := newEntryFilter(&f, v)
	var durs []time.Duration
	var st aggregate.Stats
	last := len(v.ws) - 1
	for wi, w := range v.ws {
		l := bk.label(w)
		if n := len(out.Times); n == 0 || !l.Equal(out.Times[n-1]) {
			out.Times = append(out.Times, l)
			durs = append(durs, 0)
		}
		i := len(out.Times) - 1
		durs[i] = max(durs[i], bk.duration(l, w))
		var nowB, nowP float64
		err := v.each(c, wi, func(r *store.Row) {
			b, pk, decoded, ok := ef.values(wi, r, &st, group == "protocol")
			if !ok {
				return
			}
			out.Totals.Bytes += b
			out.Totals.Packets += pk
			out.Totals.Flows += r.Flows
			if wi == last {
				nowB += b
				nowP += pk
				out.Now.Pairs++
			}
			if group == "protocol" {
				if !decoded {
					v.stats(wi, r, &st)
				}
				for pi, x := range [...][2]float64{{st.TCPBytes, st.TCPPackets}, {st.UDPBytes, st.UDPPackets},
					{st.ICMPBytes, st.ICMPPackets}, {st.OtherBytes, st.OtherPackets}} {
					if (f.proto == "" || f.proto == protocolNames[pi]) && (x[0] != 0 || x[1] != 0) {
						if f.port >= 0 && st.Bytes > 0 { // port filter: prorate
							x[0], x[1] = x[0]*b/st.Bytes, x[1]*b/st.Bytes
						}
						addGroup(int32(pi), i, x[0], x[1])
					}
				}
			} else {
				gi := entGroup[r.Entry]
				if gi < 0 {
					_, src, dst := v.entry(r.Entry)
					gi = groupOf(groupKey(group, src, dst))
					entGroup[r.Entry] = gi
				}
				addGroup(gi, i, b, pk)
			}
			txB[r.Src] += b
			txP[r.Src] += pk
			rxB[r.Dst] += b
			rxP[r.Dst] += pk
			if txFirst[r.Src] < 0 {
				txFirst[r.Src] = int32(r.Entry)
			}
			if rxFirst[r.Dst] < 0 {
				rxFirst[r.Dst] = int32(r.Entry)
			}
			if !counted[r.Group] {
				counted[r.Group] = true
				txPeers[r.Src]++
				rxPeers[r.Dst]++
			}
		})
		if err != nil {
			c.JSON(http.StatusInternalServerError, errorBody{Error: "read windows: " + err.Error()})
			return
		}
		if wi == last {
			d := w.End.Sub(w.Start)
			out.Now.BPS, out.Now.PPS = rate(nowB*8, d), rate(nowP, d)
			end := w.End
			out.Now.Time = &end
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
		if g.b == nil {
			continue // a protocol never seen
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
	tx, rx := talkers(txFirst, txB, txP, txPeers, false), talkers(rxFirst, rxB, rxP, rxPeers, true)
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
