package api

import (
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// Output shapes of the pair routes. Keep openapi.go in step (a test
// compares the two).

type tcpFlags struct {
	SYN    float64 `json:"syn"`
	SYNACK float64 `json:"synack"`
	RST    float64 `json:"rst"`
	FIN    float64 `json:"fin"`
}

type protoCount struct {
	Bytes   float64 `json:"bytes"`
	Packets float64 `json:"packets"`
}

type protocols struct {
	TCP   protoCount `json:"tcp"`
	UDP   protoCount `json:"udp"`
	ICMP  protoCount `json:"icmp"`
	Other protoCount `json:"other"`
}

type pairOut struct {
	Src            aggregate.Endpoint    `json:"src"`
	Dst            aggregate.Endpoint    `json:"dst"`
	Bytes          float64               `json:"bytes"`
	Packets        float64               `json:"packets"`
	Samples        uint64                `json:"samples"`
	Flows          uint64                `json:"flows"`
	BPS            float64               `json:"bps"`
	PPS            float64               `json:"pps"`
	BytesCI95      [2]float64            `json:"bytes_ci95"`
	PacketsCI95    [2]float64            `json:"packets_ci95"`
	TCP            tcpFlags              `json:"tcp"`
	Protocols      protocols             `json:"protocols"`
	ICMPErrors     float64               `json:"icmp_errors"`
	DroppedPackets float64               `json:"dropped_packets"`
	DroppedBytes   float64               `json:"dropped_bytes"`
	TopPorts       []aggregate.PortCount `json:"top_ports"`
	Source         string                `json:"source"`
	Windows        int                   `json:"windows"`
	// ConnHealth: failure ratio from the sampled TCP flags (health.go).
	ConnHealth *connHealthOut `json:"conn_health,omitempty"`
	// Latency: the probe's measurements of the pair (latency.go); absent
	// without a probe.
	Latency *latencyOut `json:"latency,omitempty"`
}

type pairsOut struct {
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	Source      string     `json:"source"`
	Sort        string     `json:"sort"`
	Windows     int        `json:"windows"`
	CoveredFrom *time.Time `json:"covered_from"`
	CoveredTo   *time.Time `json:"covered_to"`
	TotalPairs  int        `json:"total_pairs"`
	Pairs       []pairOut  `json:"pairs"`
}

type pointOut struct {
	Time        time.Time   `json:"time"`
	Bytes       float64     `json:"bytes"`
	Packets     float64     `json:"packets"`
	BPS         float64     `json:"bps"`
	PPS         float64     `json:"pps"`
	Samples     uint64      `json:"samples"`
	Flows       uint64      `json:"flows"`
	BytesCI95   [2]float64  `json:"bytes_ci95"`
	PacketsCI95 [2]float64  `json:"packets_ci95"`
	Latency     *latencyOut `json:"latency,omitempty"`
}

type seriesOut struct {
	Src    aggregate.Endpoint `json:"src"`
	Dst    aggregate.Endpoint `json:"dst"`
	From   time.Time          `json:"from"`
	To     time.Time          `json:"to"`
	Step   string             `json:"step"`
	Source string             `json:"source"`
	Points []pointOut         `json:"points"`
}

// acc accumulates one directed pair over several windows.
type acc struct {
	latest  *aggregate.Pair // endpoints shown come from the latest window (windows are immutable)
	last    time.Time
	stats   aggregate.Stats
	sources uint8 // bit per decoder.Source
	windows int
}

func (a *acc) add(p *aggregate.Pair, end time.Time) {
	if addLatency(a, p, end) { // latency.go
		return
	}
	if a.windows == 0 {
		a.stats = withLatency(p.Stats, a.stats.Lat)
	} else {
		mergeStats(&a.stats, &p.Stats)
	}
	if a.windows == 0 || !end.Before(a.last) {
		a.latest, a.last = p, end
	}
	a.sources |= 1 << (p.Key.Source & 7)
	a.windows++
}

// merge adds another accumulation of the same pair.
func (a *acc) merge(b *acc) {
	if b.windows == 0 {
		return
	}
	if a.windows == 0 {
		lat := a.stats.Lat
		*a = *b
		a.stats = withLatency(a.stats, lat)
		return
	}
	mergeStats(&a.stats, &b.stats)
	if !b.last.Before(a.last) {
		a.latest, a.last = b.latest, b.last
	}
	a.sources |= b.sources
	a.windows += b.windows
}

func (a *acc) endpoints() (src, dst aggregate.Endpoint) {
	p := a.latest
	return endpointOut(p.Src, p.Key.Src), endpointOut(p.Dst, p.Key.Dst)
}

// endpointOut makes sure a non-VM endpoint shows its IP.
func endpointOut(e aggregate.Endpoint, k aggregate.EndpointKey) aggregate.Endpoint {
	if e.IP == "" && k.IP.IsValid() {
		e.IP = k.IP.String()
	}
	if k.VM == 0 && k.IP.IsValid() {
		e.VM = "" // never a VM name on an IP-keyed endpoint
	}
	return e
}

func sourcesString(bits uint8) string {
	var names []string
	for _, s := range []decoder.Source{decoder.SourceIPFIX, decoder.SourceNetFlow9, decoder.SourceSFlow, decoder.SourceUnknown} {
		if bits&(1<<(s&7)) != 0 {
			names = append(names, s.String())
		}
	}
	return strings.Join(names, "+")
}

func rate(v float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return v / d.Seconds()
}

// filter is ?vm=, ?tenant=, ?host=: each matches either side; all must hold.
type filter struct{ vm, tenant, host string }

func (f filter) match(p *aggregate.Pair) bool { return f.matchEndpoints(&p.Src, &p.Dst) }

func (f filter) matchEndpoints(src, dst *aggregate.Endpoint) bool {
	if f.vm != "" && src.VM != f.vm && dst.VM != f.vm {
		return false
	}
	if f.tenant != "" && src.Tenant != f.tenant && dst.Tenant != f.tenant {
		return false
	}
	if f.host != "" && src.Host != f.host && dst.Host != f.host {
		return false
	}
	return true
}

func (s *Server) handlePairs(c *gin.Context) {
	q := newQuery(c)
	from, to, err := q.timeRange(s.deps.Now(), 5*time.Minute)
	if err != nil {
		writeError(c, err)
		return
	}
	limit, err := q.limit(s.cfg.MaxLimit)
	if err != nil {
		writeError(c, err)
		return
	}
	sortKey, err := q.sortKey()
	if err != nil {
		writeError(c, err)
		return
	}
	source, err := q.source()
	if err != nil {
		writeError(c, err)
		return
	}
	f, err := q.filter()
	if err != nil {
		writeError(c, err)
		return
	}
	if err := q.finish(); err != nil {
		writeError(c, err)
		return
	}
	if s.deps.Store == nil {
		c.JSON(http.StatusServiceUnavailable, errorBody{Error: "no store configured"})
		return
	}
	out := pairsOut{From: from, To: to, Source: source, Sort: sortKey, Pairs: []pairOut{}}
	if ok, err := s.fastPairs(c.Request.Context(), &out, pairQuery(from, to, source, sortKey, limit, f)); err != nil {
		c.JSON(http.StatusInternalServerError, errorBody{Error: "read pairs: " + err.Error()})
		return
	} else if ok {
		sortPairs(out.Pairs, sortKey)
		c.JSON(http.StatusOK, out)
		return
	}
	windows, ok := s.readWindows(c, from, to, nil)
	if !ok {
		return
	}
	out.Windows = len(windows)
	var covered time.Duration
	if len(windows) > 0 {
		cf, ct := windows[0].Start, windows[len(windows)-1].End
		out.CoveredFrom, out.CoveredTo = &cf, &ct
		covered = ct.Sub(cf)
	}
	accs := map[endpoints]*acc{}
	sel := newLatencySelector(source)
	sel.prepare(windows)
	for _, w := range windows {
		sel.each(w, func(p *aggregate.Pair) {
			if !f.match(p) {
				return
			}
			k := visitKey(p)
			a := accs[k]
			if a == nil {
				a = &acc{}
				accs[k] = a
			}
			a.add(p, w.End)
		})
	}
	for _, a := range mergeByID(accs) {
		out.Pairs = append(out.Pairs, pairResult(a, covered))
	}
	out.TotalPairs = len(out.Pairs)
	sortPairs(out.Pairs, sortKey)
	if len(out.Pairs) > limit {
		out.Pairs = out.Pairs[:limit]
	}
	c.JSON(http.StatusOK, out)
}

func pairResult(a *acc, covered time.Duration) pairOut {
	st := &a.stats
	src, dst := a.endpoints()
	o := pairOut{
		Src: src, Dst: dst,
		Bytes: st.Bytes, Packets: st.Packets, Samples: st.Samples, Flows: st.Flows,
		BPS: rate(st.Bytes*8, covered), PPS: rate(st.Packets, covered),
		BytesCI95: ci95Bytes(st), PacketsCI95: ci95Packets(st),
		TCP: tcpFlags{SYN: st.SYN, SYNACK: st.SYNACK, RST: st.RST, FIN: st.FIN},
		Protocols: protocols{
			TCP:   protoCount{st.TCPBytes, st.TCPPackets},
			UDP:   protoCount{st.UDPBytes, st.UDPPackets},
			ICMP:  protoCount{st.ICMPBytes, st.ICMPPackets},
			Other: protoCount{st.OtherBytes, st.OtherPackets},
		},
		ICMPErrors:     st.ICMPErrors,
		DroppedPackets: st.DroppedPackets,
		DroppedBytes:   st.DroppedBytes,
		TopPorts:       []aggregate.PortCount{},
		Source:         sourcesString(a.sources),
		Windows:        a.windows,
		ConnHealth:     connHealthOf(st),
		Latency:        latencyResult(st.Lat),
	}
	for _, p := range st.TopPorts {
		if p.Bytes > 0 || p.Port != 0 {
			o.TopPorts = append(o.TopPorts, p)
		}
	}
	return o
}

func endpointName(e aggregate.Endpoint) string {
	if e.VM != "" {
		return e.VM
	}
	return e.IP
}

func sortPairs(ps []pairOut, key string) {
	val := func(p *pairOut) float64 {
		switch key {
		case "packets":
			return p.Packets
		case "flows":
			return float64(p.Flows)
		case "samples":
			return float64(p.Samples)
		case "bps":
			return p.BPS
		case "pps":
			return p.PPS
		}
		return p.Bytes
	}
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := val(&ps[i]), val(&ps[j])
		if a != b {
			return a > b
		}
		if x, y := endpointName(ps[i].Src), endpointName(ps[j].Src); x != y {
			return x < y
		}
		return endpointName(ps[i].Dst) < endpointName(ps[j].Dst)
	})
}

// endpointMatcher matches a path segment: a VM name or UUID, or an IP.
type endpointMatcher struct {
	tok string
	ip  netip.Addr
}

func newEndpointMatcher(tok string) endpointMatcher {
	m := endpointMatcher{tok: tok}
	if ip, err := netip.ParseAddr(tok); err == nil {
		m.ip = ip.Unmap()
	}
	return m
}

func (m endpointMatcher) match(e aggregate.Endpoint, k aggregate.EndpointKey) bool {
	if e.VM != "" && (e.VM == m.tok || e.UUID == m.tok) {
		return true
	}
	if !m.ip.IsValid() {
		return false
	}
	if k.VM == 0 && k.IP.IsValid() && k.IP.Unmap() == m.ip {
		return true
	}
	if ip, err := netip.ParseAddr(e.IP); err == nil && ip.Unmap() == m.ip {
		return true
	}
	return false
}
