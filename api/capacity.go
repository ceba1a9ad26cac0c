package api

import (
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
)

// GET /api/v1/capacity: capacity planning per VM or per pair over a range
// (7 or 30 days in the console; whatever the store holds: InfluxDB history
// when enabled, memory otherwise). Each subject's traffic is cut into step
// buckets (bit/s per bucket, 0 where it was silent within the covered
// range); from those: peak, 95th percentile, mean, a least-squares trend
// line, its forecast one range ahead, and the date the trend reaches the
// capacity ("runout"). The biggest risers and fallers are the steepest
// trends. State per subject: one float64 per bucket (two for a VM).

var (
	capacityKinds = []string{"vm", "pair"}
	capacitySorts = []string{"runout", "peak", "p95", "growth"}
)

type capItem struct {
	Subject         string     `json:"subject"`
	VM              string     `json:"vm,omitempty"`
	Src             string     `json:"src,omitempty"`
	Dst             string     `json:"dst,omitempty"`
	Host            string     `json:"host"`
	Tenant          string     `json:"tenant"`
	PeakBPS         float64    `json:"peak_bps"`
	P95BPS          float64    `json:"p95_bps"`
	MeanBPS         float64    `json:"mean_bps"`
	TrendBPS        float64    `json:"trend_bps"`
	SlopeBPSPerDay  float64    `json:"slope_bps_per_day"`
	GrowthPctPerDay float64    `json:"growth_pct_per_day"`
	ForecastBPS     float64    `json:"forecast_bps"`
	Runout          *time.Time `json:"runout"`
	Exceeded        bool       `json:"exceeded"`
	BPS             []float64  `json:"bps"`
}

type capacityOut struct {
	From        time.Time   `json:"from"`
	To          time.Time   `json:"to"`
	Kind        string      `json:"kind"`
	Step        string      `json:"step"`
	Source      string      `json:"source"`
	Sort        string      `json:"sort"`
	CapacityBPS float64     `json:"capacity_bps"`
	ForecastAt  time.Time   `json:"forecast_at"`
	Windows     int         `json:"windows"`
	CoveredFrom *time.Time  `json:"covered_from"`
	CoveredTo   *time.Time  `json:"covered_to"`
	Times       []time.Time `json:"times"`
	Total       int         `json:"total_subjects"`
	Items       []capItem   `json:"items"`
	Risers      []capItem   `json:"risers"`
	Fallers     []capItem   `json:"fallers"`
}

func (s *Server) handleCapacity(c *gin.Context) {
	q := newQuery(c)
	var (
		source, kind, sortKey string
		top                   int
		capBPS                float64
		f                     consoleFilter
	)
	from, to, step, v, ok := s.rangeView(c, q, 7*24*time.Hour, &source, func() (err error) {
		if source, err = q.source(); err != nil {
			return err
		}
		if kind, err = q.enumParam("kind", capacityKinds, "vm"); err != nil {
			return err
		}
		if sortKey, err = q.enumParam("sort", capacitySorts, "runout"); err != nil {
			return err
		}
		if top, err = q.intParam("top", 20, 1, 500); err != nil {
			return err
		}
		capBPS = s.cfg.CapacityBPS
		if v, ok, err := q.get("capacity_bps"); err != nil {
			return err
		} else if ok {
			x, perr := strconv.ParseFloat(v, 64)
			if perr != nil || !(x > 0) || math.IsInf(x, 0) {
				return badParam("capacity_bps", "must be a number > 0: %q", v)
			}
			capBPS = x
		}
		f, err = q.consoleFilter()
		return err
	})
	if !ok {
		return
	}
	windows := v.ws
	out := capacityOut{From: from, To: to, Kind: kind, Step: step.String(), Source: source, Sort: sortKey, CapacityBPS: capBPS,
		ForecastAt: to.Add(to.Sub(from)), Windows: len(windows), Times: []time.Time{},
		Items: []capItem{}, Risers: []capItem{}, Fallers: []capItem{}}
	out.CoveredFrom, out.CoveredTo, _ = coveredSpan(windows)

	// Buckets: labels and durations, from the windows alone.
	bk := newBucketer(step, windows)
	idx := make([]int, len(windows))
	var durs []time.Duration
	for i, w := range windows {
		l := bk.label(w)
		if n := len(out.Times); n == 0 || !l.Equal(out.Times[n-1]) {
			out.Times = append(out.Times, l)
			durs = append(durs, 0)
		}
		idx[i] = len(out.Times) - 1
		durs[idx[i]] = max(durs[idx[i]], bk.duration(l, w))
	}
	nb := len(out.Times)

	// Per subject (a pair group, or a VM endpoint per direction): bytes
	// per bucket in one flat array, and the entry that names it.
	nSub := v.groups()
	if kind == "vm" {
		nSub = v.endpoints()
	}
	ef := newEntryFilter(&f, v)
	acc := groupAcc(v, ef.skip())
	acc.A = make([]int32, v.entries())
	acc.ABytes = make([]float64, nSub*nb)
	if kind == "vm" {
		acc.B = make([]int32, v.entries())
		acc.BBytes = make([]float64, nSub*nb)
	}
	for e := range acc.A {
		g, se, de := v.entryIDs(uint32(e))
		if kind == "pair" {
			acc.A[e] = int32(int(g) * nb)
			continue
		}
		acc.A[e], acc.B[e] = -1, -1
		key, src, dst := v.entry(uint32(e))
		if isVM(src, key.Src) && (f.vm == "" || src.VM == f.vm) {
			acc.A[e] = int32(int(se) * nb)
		}
		if isVM(dst, key.Dst) && (f.vm == "" || dst.VM == f.vm) {
			acc.B[e] = int32(int(de) * nb)
		}
	}
	for wi := range windows {
		acc.Off = idx[wi]
		if err := v.accumulate(c, wi, &acc, ef); err != nil {
			c.JSON(http.StatusInternalServerError, errorBody{Error: "read windows: " + err.Error()})
			return
		}
	}
	tx, rx := acc.ABytes, acc.BBytes
	// The subjects met, each named after its latest row's entry.
	name := make([]uint32, nSub) // 1 + the entry naming the subject
	side := make([]uint8, nSub)  // kind=vm: 0 src, 1 dst of that entry
	nameSeg := make([]int32, nSub)
	for g, l := range acc.GroupLatest {
		if l == 0 {
			continue
		}
		if kind == "pair" {
			name[g] = l
			continue
		}
		seg := acc.GroupSeg[g]
		se, de := v.groupEndpoints(uint32(g))
		if acc.A[l-1] >= 0 && (name[se] == 0 || seg > nameSeg[se]) {
			name[se], side[se], nameSeg[se] = l, 0, seg
		}
		if acc.B[l-1] >= 0 && (name[de] == 0 || seg > nameSeg[de]) {
			name[de], side[de], nameSeg[de] = l, 1, seg
		}
	}

	// One subject per identity. From history, the tiers' keys of one
	// subject are merged by name; in memory a subject is already one
	// identity (a pair group or an endpoint), so no merge is needed (two
	// VMs sharing a name stay apart there). Subjects are ranked on compact
	// records (no pointers: nothing for the GC to scan at 200,000 pairs);
	// full items are built for the ones returned only.
	type capSubj struct {
		entry            uint32 // names the subject
		side             uint8  // kind=vm: 0 src, 1 dst of entry
		peak, p95, slope float64
		runout           int64
	}
	nItems := 0
	for _, e := range name {
		if e != 0 {
			nItems++
		}
	}
	subs := make([]capSubj, 0, nItems)
	vals := make([]float64, 0, nItems*nb) // nb per subject
	var byName map[string]int32
	if v.sc == nil {
		byName = map[string]int32{}
	}
	names := func(su *capSubj) (src, dst string, e *aggregate.Endpoint) {
		key, se, de := v.entry(su.entry)
		if kind == "pair" {
			return nodeName(se, key.Src), nodeName(de, key.Dst), se
		}
		if su.side == 1 {
			return nodeName(de, key.Dst), "", de
		}
		return nodeName(se, key.Src), "", se
	}
	for sub, e := range name {
		if e == 0 {
			continue
		}
		su := capSubj{entry: e - 1, side: side[sub]}
		i := int32(-1)
		if byName != nil {
			sn, dn, _ := names(&su)
			k := sn
			if kind == "pair" {
				k = sn + pairSep + dn
			}
			if j, ok := byName[k]; ok {
				i = j
			} else {
				byName[k] = int32(len(subs))
			}
		}
		if i < 0 {
			i = int32(len(subs))
			subs = append(subs, su)
			vals = append(vals, make([]float64, nb)...)
		}
		vs := vals[int(i)*nb : int(i+1)*nb]
		for j := range vs {
			b := tx[sub*nb+j]
			if kind == "vm" {
				// The busier direction (a vNIC's capacity is per direction);
				// tiers of one VM rarely coexist; if they do, their busier
				// sides add (an upper bound).
				b = max(b, rx[sub*nb+j])
			}
			vs[j] += b
		}
	}
	scratch := make([]float64, nb)
	series := func(i int) []float64 { return vals[i*nb : (i+1)*nb : (i+1)*nb] }
	var tmp capItem
	for i := range subs {
		bps := series(i)
		for j := range bps {
			bps[j] = rate(bps[j]*8, durs[j])
		}
		tmp = capItem{}
		capStats(&tmp, bps, out.Times, to, out.ForecastAt, capBPS, scratch)
		su := &subs[i]
		su.peak, su.p95, su.slope, su.runout = tmp.PeakBPS, tmp.P95BPS, tmp.SlopeBPSPerDay, runoutKey(&tmp)
	}
	out.Total = len(subs)
	subject := func(su *capSubj) [3]string {
		sn, dn, _ := names(su)
		if kind == "pair" {
			return [3]string{sn, pairSep, dn}
		}
		return [3]string{sn}
	}
	less := func(key string) func(a, b *capSubj) bool {
		return func(a, b *capSubj) bool {
			var x, y float64
			switch key {
			case "peak":
				x, y = a.peak, b.peak
			case "p95":
				x, y = a.p95, b.p95
			case "growth":
				x, y = a.slope, b.slope
			case "fall":
				x, y = -a.slope, -b.slope
			case "runout": // soonest runout first, then highest peak
				if a.runout != b.runout {
					return a.runout < b.runout
				}
				x, y = a.peak, b.peak
			}
			if x != y {
				return x > y
			}
			return partsCmp(subject(a), subject(b)) < 0
		}
	}
	// pick: the n first by key among those keep selects (a sorted list of
	// at most n, so O(subjects · log n) rather than sorting them all).
	pick := func(key string, n int, keep func(*capSubj) bool) []capItem {
		l := less(key)
		var sel []int32
		for i := range subs {
			it := &subs[i]
			if keep != nil && !keep(it) {
				continue
			}
			if len(sel) == n && !l(it, &subs[sel[n-1]]) {
				continue
			}
			at := sort.Search(len(sel), func(j int) bool { return l(it, &subs[sel[j]]) })
			if len(sel) < n {
				sel = append(sel, 0)
			}
			copy(sel[at+1:], sel[at:len(sel)-1])
			sel[at] = int32(i)
		}
		res := make([]capItem, len(sel))
		for j, i := range sel {
			su := &subs[i]
			sn, dn, e := names(su)
			it := capItem{Subject: sn, VM: sn, Host: e.Host, Tenant: e.Tenant}
			if kind == "pair" {
				it = capItem{Subject: sn + pairSep + dn, Src: sn, Dst: dn, Host: e.Host, Tenant: e.Tenant}
			}
			bps := series(int(i))
			capStats(&it, bps, out.Times, to, out.ForecastAt, capBPS, scratch)
			it.BPS = bps
			res[j] = it
		}
		return res
	}
	out.Risers = pick("growth", 5, func(it *capSubj) bool { return it.slope > 0 })
	out.Fallers = pick("fall", 5, func(it *capSubj) bool { return it.slope < 0 })
	out.Items = pick(sortKey, top, nil)
	c.JSON(http.StatusOK, out)
}

// pairSep joins a pair's names in its subject.
const pairSep = " → "

// partsCmp compares the concatenations of pa and pb as strings, without
// building them (a pair's subject is src, pairSep, dst).
func partsCmp(pa, pb [3]string) int {
	var i, j, ia, ib int
	for {
		for i < 3 && ia >= len(pa[i]) {
			i, ia = i+1, 0
		}
		for j < 3 && ib >= len(pb[j]) {
			j, ib = j+1, 0
		}
		switch {
		case i == 3 && j == 3:
			return 0
		case i == 3:
			return -1
		case j == 3:
			return 1
		}
		if x, y := pa[i][ia], pb[j][ib]; x != y {
			if x < y {
				return -1
			}
			return 1
		}
		ia++
		ib++
	}
}

func runoutKey(it *capItem) int64 {
	if it.Runout == nil {
		return math.MaxInt64
	}
	return it.Runout.UnixNano()
}

// maxRunout is how far ahead a runout date is still reported.
const maxRunout = 10 * 365 * 24 * time.Hour

// capStats fills peak, p95, mean, trend, forecast and runout from the
// per-bucket rates (times are the bucket labels; now is the range end).
// It sorts a copy of bps in buf.
func capStats(it *capItem, bps []float64, times []time.Time, now, forecastAt time.Time, capBPS float64, buf []float64) {
	n := len(bps)
	if n == 0 {
		return
	}
	sorted := append(buf[:0], bps...)
	sort.Float64s(sorted)
	it.PeakBPS = sorted[n-1]
	it.P95BPS = sorted[int(math.Ceil(0.95*float64(n)))-1] // nearest rank
	var sx, sy, sxx, sxy float64
	for i, y := range bps {
		x := times[i].Sub(now).Seconds()
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	fn := float64(n)
	it.MeanBPS = sy / fn
	var slope float64
	if d := fn*sxx - sx*sx; n > 1 && d > 0 {
		slope = (fn*sxy - sx*sy) / d
	}
	intercept := (sy - slope*sx) / fn // trend at now (x = 0)
	it.TrendBPS = math.Max(0, intercept)
	it.SlopeBPSPerDay = slope * 86400
	if it.MeanBPS > 0 {
		it.GrowthPctPerDay = 100 * it.SlopeBPSPerDay / it.MeanBPS
	}
	it.ForecastBPS = math.Max(0, intercept+slope*forecastAt.Sub(now).Seconds())
	switch {
	case intercept >= capBPS:
		it.Exceeded = true
		t := now
		it.Runout = &t
	case slope > 0:
		secs := (capBPS - intercept) / slope
		if secs <= maxRunout.Seconds() {
			t := now.Add(time.Duration(secs * float64(time.Second))).UTC()
			it.Runout = &t
		}
	}
}
