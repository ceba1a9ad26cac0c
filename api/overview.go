package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
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

// talker accumulates one endpoint's traffic in one direction.
type talker struct {
	name         string
	vm           bool
	host, tenant string
	bytes, pkts  float64
	peers        map[endpointID]struct{}
}

func (t *talker) add(e *aggregate.Endpoint, k aggregate.EndpointKey, peer endpointID, b, p float64) {
	if t.name == "" {
		t.name, t.vm, t.host, t.tenant = nodeName(e, k), isVM(e, k), e.Host, e.Tenant
	}
	t.bytes += b
	t.pkts += p
	if len(t.peers) < maxPeersCounted {
		t.peers[peer] = struct{}{}
	}
}

// maxPeersCounted caps the distinct peers counted per talker (memory bound).
const maxPeersCounted = 10_000

func groupKey(group string, p *aggregate.Pair) string {
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
		return pick(p.Src.Host, p.Dst.Host)
	default:
		return pick(p.Src.Tenant, p.Dst.Tenant)
	}
}

func (s *Server) handleOverview(c *gin.Context) {
	q := newQuery(c)
	var (
		source, group string
		top           int
		f             consoleFilter
	)
	from, to, step, windows, ok := s.rangeWindows(c, q, time.Hour, func() (err error) {
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
	out := overviewOut{From: from, To: to, Step: step.String(), Source: source, Group: group, Windows: len(windows),
		Times: []time.Time{}, Groups: []overviewGroup{}, Talkers: []talkerOut{}, Listeners: []talkerOut{}}
	var covered time.Duration
	out.CoveredFrom, out.CoveredTo, covered = coveredSpan(windows)

	sel := newSelector(source)
	sel.prepare(windows)
	bk := newBucketer(step, windows)
	type gacc struct {
		bytes, pkts float64
		b, p        []float64 // per point: bytes, packets
	}
	groups := map[string]*gacc{}
	var durs []time.Duration
	addGroup := func(key string, i int, b, p float64) {
		g := groups[key]
		if g == nil {
			g = &gacc{}
			groups[key] = g
		}
		for len(g.b) <= i {
			g.b, g.p = append(g.b, 0), append(g.p, 0)
		}
		g.b[i] += b
		g.p[i] += p
		g.bytes += b
		g.pkts += p
	}
	tx := map[endpointID]*talker{}
	rx := map[endpointID]*talker{}
	get := func(m map[endpointID]*talker, k endpointID) *talker {
		t := m[k]
		if t == nil {
			t = &talker{peers: map[endpointID]struct{}{}}
			m[k] = t
		}
		return t
	}
	last := len(windows) - 1
	for wi, w := range windows {
		l := bk.label(w)
		if n := len(out.Times); n == 0 || !l.Equal(out.Times[n-1]) {
			out.Times = append(out.Times, l)
			durs = append(durs, 0)
		}
		i := len(out.Times) - 1
		durs[i] = max(durs[i], bk.duration(l, w))
		var nowB, nowP float64
		sel.each(w, func(p *aggregate.Pair) {
			b, pk, ok := f.values(p)
			if !ok {
				return
			}
			out.Totals.Bytes += b
			out.Totals.Packets += pk
			out.Totals.Flows += p.Stats.Flows
			if wi == last {
				nowB += b
				nowP += pk
				out.Now.Pairs++
			}
			if group == "protocol" {
				st := &p.Stats
				for _, x := range [...]struct {
					k    string
					b, p float64
				}{{"tcp", st.TCPBytes, st.TCPPackets}, {"udp", st.UDPBytes, st.UDPPackets},
					{"icmp", st.ICMPBytes, st.ICMPPackets}, {"other", st.OtherBytes, st.OtherPackets}} {
					if (f.proto == "" || f.proto == x.k) && (x.b != 0 || x.p != 0) {
						if f.port >= 0 && st.Bytes > 0 { // port filter: prorate
							x.b, x.p = x.b*b/st.Bytes, x.p*b/st.Bytes
						}
						addGroup(x.k, i, x.b, x.p)
					}
				}
			} else {
				addGroup(groupKey(group, p), i, b, pk)
			}
			sk, dk := visitID(&p.Src, p.Key.Src), visitID(&p.Dst, p.Key.Dst)
			get(tx, sk).add(&p.Src, p.Key.Src, dk, b, pk)
			get(rx, dk).add(&p.Dst, p.Key.Dst, sk, b, pk)
		})
		if wi == last {
			d := w.End.Sub(w.Start)
			out.Now.BPS, out.Now.PPS = rate(nowB*8, d), rate(nowP, d)
			end := w.End
			out.Now.Time = &end
		}
	}
	out.Totals.BPS, out.Totals.PPS = rate(out.Totals.Bytes*8, covered), rate(out.Totals.Packets, covered)

	// Groups: top N by bytes, the rest summed into "other".
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := groups[keys[i]], groups[keys[j]]
		if a.bytes != b.bytes {
			return a.bytes > b.bytes
		}
		return keys[i] < keys[j]
	})
	n := len(out.Times)
	mk := func(key string) overviewGroup {
		return overviewGroup{Key: key, BPS: make([]float64, n), PPS: make([]float64, n)}
	}
	var other *overviewGroup
	for gi, k := range keys {
		g := groups[k]
		var og *overviewGroup
		if gi < top && !(k == OtherKey && group != "protocol") {
			out.Groups = append(out.Groups, mk(k))
			og = &out.Groups[len(out.Groups)-1]
		} else {
			if other == nil {
				o := mk(OtherKey)
				other = &o
			}
			og = other
		}
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
	out.Talkers = topTalkers(tx, top, covered)
	out.Listeners = topTalkers(rx, top, covered)
	vms := map[string]struct{}{}
	for _, m := range []map[endpointID]*talker{tx, rx} {
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
func topTalkers(m map[endpointID]*talker, n int, covered time.Duration) []talkerOut {
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
		peers[t.name] += len(t.peers) // ids of one endpoint's tiers rarely coexist; an upper bound if they do
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
