package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// Series routes. Points are computed here from the store's windows, for
// memory and InfluxDB history alike (store.Tiered merges the two): a point
// is one window, or with ?step= the sum of the windows whose end falls in
// a step bucket (a, a+step] aligned to the Unix epoch, labelled a+step.
// Doing it over windows (rather than with Flux aggregateWindow on the
// history part) keeps one code path, exact merges at the memory/history
// boundary (a bucket may hold windows of both), the per-window choice of
// ?source=auto, exact confidence intervals (variances add) and IP
// endpoints. The cost: the history part is read as whole windows (every
// pair of every window in the range), as /pairs does, rather than one
// filtered series per step.

// bucketer assigns windows to points.
type bucketer struct {
	step time.Duration // 0: one point per window
	// covered is the span of the range's windows (first start, last end):
	// a bucket's rate is over its overlap with it, so a bucket cut by the
	// range start or end is not diluted, and windows with no traffic at
	// all (not stored in InfluxDB) count as silence.
	coveredFrom, coveredTo time.Time
}

func newBucketer(step time.Duration, windows []*aggregate.Window) bucketer {
	b := bucketer{step: step}
	if len(windows) > 0 {
		b.coveredFrom, b.coveredTo = windows[0].Start, windows[len(windows)-1].End
	}
	return b
}

// label is the time of the point window w belongs to.
func (b bucketer) label(w *aggregate.Window) time.Time {
	if b.step == 0 {
		return w.End
	}
	return stepEnd(w.End, b.step)
}

// stepEnd rounds t up to a multiple of step since the Unix epoch.
func stepEnd(t time.Time, step time.Duration) time.Time { return store.StepEnd(t, step) }

// duration is what a point's rates are computed over.
func (b bucketer) duration(label time.Time, w *aggregate.Window) time.Duration {
	if b.step == 0 {
		return w.End.Sub(w.Start)
	}
	lo, hi := label.Add(-b.step), label
	if b.coveredFrom.After(lo) {
		lo = b.coveredFrom
	}
	if b.coveredTo.Before(hi) {
		hi = b.coveredTo
	}
	return hi.Sub(lo)
}

// windowSize is the configured window length, else the longest window of
// the range (0 when there is none).
func (s *Server) windowSize(windows []*aggregate.Window) time.Duration {
	if s.deps.WindowSize > 0 {
		return s.deps.WindowSize
	}
	var d time.Duration
	for _, w := range windows {
		d = max(d, w.End.Sub(w.Start))
	}
	return d
}

// stepString is the step applied, as a Go duration ("" when it is one
// point per window and the window size is unknown).
func stepString(step, windowSize time.Duration) string {
	if step == 0 {
		step = windowSize
	}
	if step <= 0 {
		return ""
	}
	return step.String()
}

// seriesWindows parses the common series parameters, reads the windows and
// checks the step against the window size. It answers the request itself
// and returns ok=false on any error.
func (s *Server) seriesWindows(c *gin.Context, q *query, keep store.Match) (from, to time.Time, step time.Duration, source string, windows []*aggregate.Window, ok bool) {
	from, to, step, windows, ok = s.stepWindows(c, q, time.Hour, func() (err error) {
		source, err = q.source()
		return err
	}, keep)
	return from, to, step, source, windows, ok
}

func (s *Server) handleSeries(c *gin.Context) {
	srcTok, dstTok := c.Param("src"), c.Param("dst")
	sm, dm := newEndpointMatcher(srcTok), newEndpointMatcher(dstTok)
	keep := func(k *aggregate.PairKey, src, dst *aggregate.Endpoint) bool {
		return sm.match(*src, k.Src) && dm.match(*dst, k.Dst)
	}
	from, to, step, source, windows, ok := s.seriesWindows(c, newQuery(c), keep)
	if !ok {
		return
	}
	out := seriesOut{From: from, To: to, Step: stepString(step, s.windowSize(windows)), Source: source, Points: []pointOut{}}
	sel := newLatencySelector(source)
	sel.prepare(windows)
	bk := newBucketer(step, windows)
	var (
		a     acc
		label time.Time
		dur   time.Duration
	)
	flush := func() {
		if a.windows == 0 {
			return
		}
		out.Src, out.Dst = a.endpoints()
		out.Points = append(out.Points, pointOut{
			Time: label, Bytes: a.stats.Bytes, Packets: a.stats.Packets,
			BPS: rate(a.stats.Bytes*8, dur), PPS: rate(a.stats.Packets, dur),
			Samples: a.stats.Samples, Flows: a.stats.Flows,
			BytesCI95: ci95Bytes(&a.stats), PacketsCI95: ci95Packets(&a.stats),
			Latency: latencyResult(a.stats.Lat),
		})
		a = acc{}
	}
	for _, w := range windows {
		if l := bk.label(w); !l.Equal(label) {
			flush()
			label, dur = l, 0
		}
		dur = max(dur, bk.duration(label, w))
		sel.each(w, func(p *aggregate.Pair) {
			if sm.match(p.Src, p.Key.Src) && dm.match(p.Dst, p.Key.Dst) {
				a.add(p, w.End)
			}
		})
	}
	flush()
	if len(out.Points) == 0 {
		c.JSON(http.StatusNotFound, errorBody{Error: "no traffic from " + srcTok + " to " + dstTok + " in the range"})
		return
	}
	c.JSON(http.StatusOK, out)
}

type vmPointOut struct {
	Time      time.Time `json:"time"`
	TxBytes   float64   `json:"tx_bytes"`
	TxPackets float64   `json:"tx_packets"`
	RxBytes   float64   `json:"rx_bytes"`
	RxPackets float64   `json:"rx_packets"`
	TxBPS     float64   `json:"tx_bps"`
	RxBPS     float64   `json:"rx_bps"`
	// Port is the VM's switch ports' counters in the point (ports.go);
	// absent without a counter sample in it.
	Port *portRates `json:"port,omitempty"`
}

type vmSeriesOut struct {
	VM     string       `json:"vm"`
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	Step   string       `json:"step"`
	Source string       `json:"source"`
	Points []vmPointOut `json:"points"`
	// Resources are the VM's resource points in the range (libvirt stats
	// or hsflowd; api/resources.go), absent without figures.
	Resources []enrich.ResourcePoint `json:"resources,omitempty"`
}

// vmMatcher matches the VM endpoints of one VM by name or UUID.
type vmMatcher string

func (m vmMatcher) match(e *aggregate.Endpoint, k aggregate.EndpointKey) bool {
	if e.VM == "" || (k.VM == 0 && k.IP.IsValid()) {
		return false // not a VM endpoint
	}
	return e.VM == string(m) || (e.UUID != "" && strings.EqualFold(e.UUID, string(m)))
}

// inventoryVM finds a VM of the current inventory by name or UUID.
func (s *Server) inventoryVM(tok string) *enrich.VM {
	if s.deps.Inventory == nil {
		return nil
	}
	idx := s.deps.Inventory.Index()
	if idx == nil {
		return nil
	}
	for _, vm := range idx.VMs() {
		if vm != nil && (vm.Name == tok || (vm.UUID != "" && strings.EqualFold(vm.UUID, tok))) {
			return vm
		}
	}
	return nil
}

// handleVMSeries: what one VM sent (pairs where it is the source) and
// received (where it is the destination), per window or step. External
// peers are included; a pair from the VM to itself counts both ways.
func (s *Server) handleVMSeries(c *gin.Context) {
	tok := c.Param("name")
	m := vmMatcher(tok)
	keep := func(k *aggregate.PairKey, src, dst *aggregate.Endpoint) bool {
		return m.match(src, k.Src) || m.match(dst, k.Dst)
	}
	from, to, step, source, windows, ok := s.seriesWindows(c, newQuery(c), keep)
	if !ok {
		return
	}
	out := vmSeriesOut{VM: tok, From: from, To: to, Step: stepString(step, s.windowSize(windows)), Source: source, Points: []vmPointOut{}}
	inv := s.inventoryVM(tok)
	if inv != nil {
		out.VM = inv.Name
	}
	sel := newSelector(source)
	sel.prepare(windows)
	bk := newBucketer(step, windows)
	var (
		pt     vmPointOut
		ports  vmPortAcc
		seen   bool // the VM had traffic in the current point
		found  bool // ... in the range
		dur    time.Duration
		latest string
	)
	flush := func() {
		if seen {
			pt.TxBPS, pt.RxBPS = rate(pt.TxBytes*8, dur), rate(pt.RxBytes*8, dur)
			pt.Port = ports.out()
			out.Points = append(out.Points, pt)
		}
		pt, seen = vmPointOut{}, false
		ports.ports = ports.ports[:0]
	}
	for _, w := range windows {
		if l := bk.label(w); !l.Equal(pt.Time) {
			flush()
			pt.Time, dur = l, 0
		}
		dur = max(dur, bk.duration(pt.Time, w))
		if ports.add(w, tok) {
			seen = true
		}
		sel.each(w, func(p *aggregate.Pair) {
			if m.match(&p.Src, p.Key.Src) {
				pt.TxBytes += p.Stats.Bytes
				pt.TxPackets += p.Stats.Packets
				seen, latest = true, p.Src.VM
			}
			if m.match(&p.Dst, p.Key.Dst) {
				pt.RxBytes += p.Stats.Bytes
				pt.RxPackets += p.Stats.Packets
				seen, latest = true, p.Dst.VM
			}
		})
		found = found || seen
	}
	flush()
	if !found && inv == nil {
		c.JSON(http.StatusNotFound, errorBody{Error: "unknown VM " + tok + ": not in the inventory and no traffic in the range"})
		return
	}
	if inv == nil && latest != "" {
		out.VM = latest // found by UUID in the traffic only
	}
	out.Resources = s.resourceSeries(tok, from, to)
	c.JSON(http.StatusOK, out)
}
