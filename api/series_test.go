package api

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/store"
)

type jSeriesStep struct {
	jSeries
	Step   string `json:"step"`
	Source string `json:"source"`
}

// TestSeriesStep: with ?step=, each point sums the windows whose end falls
// in an epoch-aligned bucket (a, a+step], stamped a+step; rates are over
// the bucket's overlap with the covered range.
func TestSeriesStep(t *testing.T) {
	for _, configured := range []bool{false, true} {
		e := newEnv(t, func(d *Deps, _ *Config) {
			if configured {
				d.WindowSize = 10 * time.Second
			}
		})
		var s jSeriesStep
		require.Equal(t, 200, e.get(t, "/api/v1/pairs/web-1/db-1/series?since=1h", &s))
		assert.Equal(t, "10s", s.Step, "default step: the window size (configured=%v)", configured)
		assert.Len(t, s.Points, nWindows)

		cases := []struct {
			step    string
			buckets [][2]int // window index ranges [lo, hi] per point
			ends    []time.Duration
			covered []float64 // seconds the rate is computed over
		}{
			{"10s", [][2]int{{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}, []time.Duration{10, 20, 30, 40, 50, 60}, []float64{10, 10, 10, 10, 10, 10}},
			{"20s", [][2]int{{0, 1}, {2, 3}, {4, 5}}, []time.Duration{20, 40, 60}, []float64{20, 20, 20}},
			{"30s", [][2]int{{0, 2}, {3, 5}}, []time.Duration{30, 60}, []float64{30, 30}},
			// 40 s buckets: (T, T+40] and (T+40, T+80]; the second is cut at
			// the last window's end, T+60: its rate is over 20 s.
			{"40s", [][2]int{{0, 3}, {4, 5}}, []time.Duration{40, 80}, []float64{40, 20}},
			{"1m", [][2]int{{0, 5}}, []time.Duration{60}, []float64{60}},
			{"1h", [][2]int{{0, 5}}, []time.Duration{3600}, []float64{60}},
		}
		for _, c := range cases {
			require.Equal(t, 200, e.get(t, "/api/v1/pairs/web-1/db-1/series?since=1h&step="+c.step, &s), c.step)
			d, _ := time.ParseDuration(c.step)
			assert.Equal(t, d.String(), s.Step)
			require.Len(t, s.Points, len(c.buckets), c.step)
			for i, p := range s.Points {
				lo, hi := c.buckets[i][0], c.buckets[i][1]
				bytes, packets, _, n := expected(web1, db1, decoder.SourceIPFIX, lo, hi)
				assert.Equal(t, T.Add(c.ends[i]*time.Second), p.Time.UTC(), "step %s point %d time", c.step, i)
				near(t, bytes, p.Bytes, "step %s point %d bytes", c.step, i)
				near(t, packets, p.Packets, "step %s point %d packets", c.step, i)
				near(t, bytes*8/c.covered[i], p.BPS, "step %s point %d bps", c.step, i)
				near(t, packets/c.covered[i], p.PPS, "step %s point %d pps", c.step, i)
				assert.EqualValues(t, 2*n, p.Flows, "flows add up over the bucket's windows")
			}
		}

		// sFlow view: the interval comes from the variances summed over the bucket.
		require.Equal(t, 200, e.get(t, "/api/v1/pairs/db-1/web-1/series?since=1h&step=30s&source=sflow", &s))
		require.Len(t, s.Points, 2, "windows 2 and 3 fall in different 30 s buckets")
		require.Equal(t, 200, e.get(t, "/api/v1/pairs/db-1/web-1/series?since=1h&step=40s&source=sflow", &s))
		require.Len(t, s.Points, 1)
		bytes, _, v, _ := expected(db1, web1, decoder.SourceSFlow, 0, 5)
		want := ci(bytes, v, 600)
		near(t, bytes, s.Points[0].Bytes, "bytes")
		near(t, want[0], s.Points[0].BytesCI95[0], "ci lo")
		near(t, want[1], s.Points[0].BytesCI95[1], "ci hi")

		// A range cut mid-bucket: windows ending in (T+25s, T+60s] = 3, 4, 5
		// (covering T+20s..T+60s): one 1 m point, its rate over 40 s.
		q := url.Values{"from": {strconv.FormatInt(T.Add(25*time.Second).Unix(), 10)}, "to": {T.Add(time.Minute).Format(time.RFC3339)}, "step": {"1m"}}
		require.Equal(t, 200, e.get(t, "/api/v1/pairs/web-1/db-1/series?"+q.Encode(), &s))
		require.Len(t, s.Points, 1)
		bytes, _, _, _ = expected(web1, db1, decoder.SourceIPFIX, 2, 5)
		near(t, bytes, s.Points[0].Bytes, "windows 2..5: window 2 ends at T+30s, after from")
		near(t, bytes*8/40, s.Points[0].BPS, "rate over the covered 40 s")
	}
}

func TestBadStep(t *testing.T) {
	for _, configured := range []bool{false, true} {
		e := newEnv(t, func(d *Deps, _ *Config) {
			if configured {
				d.WindowSize = 10 * time.Second
			}
		})
		for _, route := range []string{"/api/v1/pairs/web-1/db-1/series", "/api/v1/vms/web-1/series"} {
			for _, q := range []string{"step=abc", "step=10", "step=0s", "step=-1m", "step=500ms", "step=5s", "step=15s", "step=25s",
				"step=1s&since=9600h", "step=1m&step=2m&since=1h"} {
				var er errorBody
				u := route + "?" + q
				require.Equal(t, 400, e.get(t, u, &er), u)
				assert.Equal(t, "step", er.Parameter, u)
				assert.Contains(t, er.Error, "step", u)
			}
			var er errorBody
			require.Equal(t, 400, e.get(t, route+"?source=all", &er))
			assert.Equal(t, "source", er.Parameter)
			require.Equal(t, 400, e.get(t, route+"?since=0s", &er))
			assert.Equal(t, "since", er.Parameter)
			require.Equal(t, 400, e.get(t, route+"?limit=3", &er))
			assert.Equal(t, "limit", er.Parameter)
		}
		// With the window size configured, a step below it is refused even
		// when the range holds no window; learnt from the data, it cannot be.
		var er errorBody
		code := e.get(t, "/api/v1/vms/web-1/series?from=1000&to=2000&step=5s", &er)
		if configured {
			require.Equal(t, 400, code)
			assert.Equal(t, "step", er.Parameter)
			assert.Contains(t, er.Error, "10s")
		} else {
			require.Equal(t, 200, code)
		}
	}
}

type jVMSeries struct {
	VM     string `json:"vm"`
	From   time.Time
	To     time.Time
	Step   string `json:"step"`
	Source string `json:"source"`
	Points []struct {
		Time      time.Time `json:"time"`
		TxBytes   float64   `json:"tx_bytes"`
		TxPackets float64   `json:"tx_packets"`
		RxBytes   float64   `json:"rx_bytes"`
		RxPackets float64   `json:"rx_packets"`
		TxBPS     float64   `json:"tx_bps"`
		RxBPS     float64   `json:"rx_bps"`
	} `json:"points"`
}

// vmExpected sums the fixture for one VM over windows [lo, hi] with a
// source choice per window and directed pair ("auto": the most precise
// protocol that saw the pair in that window).
func vmExpected(vm ep, source string, lo, hi int) (txB, txP, rxB, rxP float64) {
	type dp struct{ s, d ep }
	best := map[int]map[dp]int{}
	for _, f := range fixture() {
		if best[f.win] == nil {
			best[f.win] = map[dp]int{}
		}
		if p := precision(f.source); p > best[f.win][dp{f.src, f.dst}] {
			best[f.win][dp{f.src, f.dst}] = p
		}
	}
	for _, f := range fixture() {
		if f.win < lo || f.win > hi {
			continue
		}
		if source == "auto" && precision(f.source) != best[f.win][dp{f.src, f.dst}] {
			continue
		}
		if source != "auto" && f.source.String() != source {
			continue
		}
		if f.src == vm {
			txB += f.stats.Bytes
			txP += f.stats.Packets
		}
		if f.dst == vm {
			rxB += f.stats.Bytes
			rxP += f.stats.Packets
		}
	}
	return
}

func TestVMSeries(t *testing.T) {
	e := newEnv(t, nil)
	var s jVMSeries
	require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1/series?since=1h", &s))
	assert.Equal(t, "web-1", s.VM)
	assert.Equal(t, "10s", s.Step)
	assert.Equal(t, "auto", s.Source)
	assert.Equal(t, T.Add(time.Minute).Add(-time.Hour), s.From.UTC())
	require.Len(t, s.Points, nWindows)
	for i, p := range s.Points {
		txB, txP, rxB, rxP := vmExpected(web1, "auto", i, i)
		assert.Equal(t, T.Add(time.Duration(i+1)*10*time.Second), p.Time.UTC())
		near(t, txB, p.TxBytes, "window %d tx bytes", i)
		near(t, txP, p.TxPackets, "window %d tx packets", i)
		near(t, rxB, p.RxBytes, "window %d rx bytes", i)
		near(t, rxP, p.RxPackets, "window %d rx packets", i)
		near(t, txB*8/10, p.TxBPS, "window %d tx bps", i)
		near(t, rxB*8/10, p.RxBPS, "window %d rx bps", i)
	}
	// Window 5: web-1 → db-1 (IPFIX, the sFlow view not added) and → 8.8.8.8.
	near(t, 6000+300, s.Points[5].TxBytes, "auto never adds two protocols' views")

	for _, source := range []string{"sflow", "ipfix", "auto"} {
		for _, step := range []struct {
			q       string
			buckets [][2]int
			covered []float64
		}{{"30s", [][2]int{{0, 2}, {3, 5}}, []float64{30, 30}}, {"40s", [][2]int{{0, 3}, {4, 5}}, []float64{40, 20}}, {"1h", [][2]int{{0, 5}}, []float64{60}}} {
			require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1/series?since=1h&source="+source+"&step="+step.q, &s))
			assert.Equal(t, source, s.Source)
			require.Len(t, s.Points, len(step.buckets), "%s %s", source, step.q)
			for i, p := range s.Points {
				txB, txP, rxB, rxP := vmExpected(web1, source, step.buckets[i][0], step.buckets[i][1])
				near(t, txB, p.TxBytes, "%s %s point %d tx", source, step.q, i)
				near(t, txP, p.TxPackets, "%s %s point %d tx packets", source, step.q, i)
				near(t, rxB, p.RxBytes, "%s %s point %d rx", source, step.q, i)
				near(t, rxP, p.RxPackets, "%s %s point %d rx packets", source, step.q, i)
				near(t, txB*8/step.covered[i], p.TxBPS, "%s %s point %d tx bps", source, step.q, i)
				near(t, rxB*8/step.covered[i], p.RxBPS, "%s %s point %d rx bps", source, step.q, i)
			}
		}
	}

	// db-1 receives from a non-VM source too (window 1).
	require.Equal(t, 200, e.get(t, "/api/v1/vms/db-1/series?since=1h&step=1m", &s))
	require.Len(t, s.Points, 1)
	txB, _, rxB, _ := vmExpected(db1, "auto", 0, 5)
	near(t, txB, s.Points[0].TxBytes, "db-1 tx")
	near(t, rxB, s.Points[0].RxBytes, "db-1 rx, including 192.0.2.7")
	assert.Greater(t, rxB, 100000.0)

	// Only sFlow saw db-1 send: with source=ipfix it sent nothing, and
	// received only in the windows IPFIX saw.
	require.Equal(t, 200, e.get(t, "/api/v1/vms/db-1/series?since=1h&source=ipfix", &s))
	for _, p := range s.Points {
		assert.Zero(t, p.TxBytes)
	}

	// Not in the inventory, but traffic: 200. By a UUID seen in traffic: its name.
	require.Equal(t, 200, e.get(t, "/api/v1/vms/cache-1/series", &s))
	require.Len(t, s.Points, 1)
	near(t, 2000, s.Points[0].TxBytes, "cache-1 tx")
	require.Equal(t, 200, e.get(t, "/api/v1/vms/uuid-web-1/series", &s))
	assert.Equal(t, "web-1", s.VM)
	assert.Len(t, s.Points, nWindows)
	// By its inventory UUID (case-insensitive): the inventory name.
	require.Equal(t, 200, e.get(t, "/api/v1/vms/11111111-1111-1111-1111-111111111111/series?since=1h", &s))
	assert.Equal(t, "web-1", s.VM)

	// In the inventory without traffic: 200 with no points.
	var raw map[string]any
	require.Equal(t, 200, e.get(t, "/api/v1/vms/clone/series", &raw))
	assert.Equal(t, []any{}, raw["points"])
	require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1/series?from=1000&to=2000", &raw))
	assert.Equal(t, []any{}, raw["points"])

	// Unknown and silent: 404 JSON. An IP is no VM name.
	var er errorBody
	assert.Equal(t, 404, e.get(t, "/api/v1/vms/nobody/series", &er))
	assert.Contains(t, er.Error, "nobody")
	assert.Equal(t, 404, e.get(t, "/api/v1/vms/8.8.8.8/series", &er))
	assert.Equal(t, 404, e.get(t, "/api/v1/vms/cache-1/series?from=1000&to=2000", &er))

	// No store: 503.
	e2 := newEnv(t, func(d *Deps, _ *Config) { d.Store = nil })
	assert.Equal(t, 503, e2.get(t, "/api/v1/vms/web-1/series", &er))
}

// historyCopy returns the windows as a history reader gives them back: VM
// ids are not stored, so a VM endpoint's key is zero (Reader without
// Resolve, or a VM no longer in the inventory); a non-VM endpoint is keyed
// by its IP.
func historyCopy(ws []*aggregate.Window) []*aggregate.Window {
	out := make([]*aggregate.Window, len(ws))
	for i, w := range ws {
		c := &aggregate.Window{Start: w.Start, End: w.End, Pairs: append([]aggregate.Pair(nil), w.Pairs...)}
		for j := range c.Pairs {
			p := &c.Pairs[j]
			if p.Key.Src.VM != 0 {
				p.Key.Src = aggregate.EndpointKey{}
			}
			if p.Key.Dst.VM != 0 {
				p.Key.Dst = aggregate.EndpointKey{}
			}
		}
		out[i] = c
	}
	return out
}

type fakeHistory struct {
	windows []*aggregate.Window
	calls   int
}

func (f *fakeHistory) Windows(_ context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	f.calls++
	var out []*aggregate.Window
	for _, w := range f.windows {
		if w.End.After(from) && !w.End.After(to) {
			out = append(out, w)
		}
	}
	return out, nil
}

// TestHistoryMergesThroughAPI: memory holds windows 3..5, history (with VM
// ids lost) holds 0..5. Every route answers exactly what a memory holding
// all six windows answers: totals equal the sum of all windows, no window
// twice, one row per pair across the boundary.
func TestHistoryMergesThroughAPI(t *testing.T) {
	all := newEnv(t, nil) // memory holds every window
	hist := &fakeHistory{windows: historyCopy(fixtureWindows())}
	tiered := newEnv(t, func(d *Deps, _ *Config) {
		mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
		for _, w := range fixtureWindows()[3:] {
			mem.Write(w)
		}
		d.Store = store.Tiered{Recent: mem, History: hist}
		d.Recent = mem
	})
	for _, u := range []string{
		"/api/v1/pairs?since=1m", "/api/v1/pairs?since=1m&source=sflow", "/api/v1/pairs?since=1m&source=ipfix",
		"/api/v1/pairs?since=1m&vm=db-1", "/api/v1/pairs?since=1m&sort=packets&limit=3",
		"/api/v1/pairs?from=" + strconv.FormatInt(T.Add(15*time.Second).Unix(), 10) + "&to=" + strconv.FormatInt(T.Add(45*time.Second).Unix(), 10),
	} {
		var want, got jPairs
		require.Equal(t, 200, all.get(t, u, &want), u)
		require.Equal(t, 200, tiered.get(t, u, &got), u)
		assert.Equal(t, want, got, u)
	}
	assert.Positive(t, hist.calls, "history was read")

	// The sums are those of the fixture, all six windows.
	var r jPairs
	require.Equal(t, 200, tiered.get(t, "/api/v1/pairs?since=1m", &r))
	assert.Equal(t, nWindows, r.Windows)
	for _, c := range []struct {
		src, dst ep
		source   decoder.Source
	}{{web1, db1, decoder.SourceIPFIX}, {db1, web1, decoder.SourceSFlow}, {scanner, db1, decoder.SourceIPFIX}, {cache1, web1, decoder.SourceIPFIX}, {web1, ext, decoder.SourceSFlow}} {
		bytes, packets, _, n := expected(c.src, c.dst, c.source, 0, nWindows-1)
		p := find(t, r.Pairs, name(jEndpoint{VM: c.src.vm, IP: c.src.ip}), name(jEndpoint{VM: c.dst.vm, IP: c.dst.ip}))
		near(t, bytes, p.Bytes, "%s>%s bytes", c.src.vm, c.dst.vm)
		near(t, packets, p.Packets, "%s>%s packets", c.src.vm, c.dst.vm)
		assert.Equal(t, n, p.Windows)
	}

	for _, u := range []string{
		"/api/v1/pairs/web-1/db-1/series?since=1h", "/api/v1/pairs/web-1/db-1/series?since=1h&step=20s",
		"/api/v1/pairs/web-1/db-1/series?since=1h&step=40s&source=sflow", "/api/v1/pairs/db-1/web-1/series?since=1h&step=1m",
		"/api/v1/pairs/192.0.2.7/db-1/series?since=1h",
	} {
		var want, got jSeriesStep
		require.Equal(t, 200, all.get(t, u, &want), u)
		require.Equal(t, 200, tiered.get(t, u, &got), u)
		assert.Equal(t, want, got, u)
	}
	for _, u := range []string{
		"/api/v1/vms/web-1/series?since=1h", "/api/v1/vms/web-1/series?since=1h&step=40s",
		"/api/v1/vms/db-1/series?since=1h&step=1m&source=sflow", "/api/v1/vms/cache-1/series",
	} {
		var want, got jVMSeries
		require.Equal(t, 200, all.get(t, u, &want), u)
		require.Equal(t, 200, tiered.get(t, u, &got), u)
		assert.Equal(t, want, got, u)
	}
}

// Unresolved history keys must not lump different VM pairs together when
// ?source=auto picks the most precise protocol per pair.
func TestAutoSelectionWithUnresolvedKeys(t *testing.T) {
	w := fixtureWindows()[4] // web-1→db-1 IPFIX+sFlow, cache-1→web-1 IPFIX
	hw := historyCopy([]*aggregate.Window{w})[0]
	// Add a pair only sFlow saw: with zero keys it would look like the
	// other pairs and be dropped as the less precise view.
	hw.Pairs = append(hw.Pairs, aggregate.Pair{Key: aggregate.PairKey{Source: decoder.SourceSFlow},
		Src: db1.endpoint(), Dst: cache1.endpoint(), Stats: aggregate.Stats{Bytes: 777, Packets: 7}})
	e := newEnv(t, func(d *Deps, _ *Config) {
		d.Store = store.Tiered{Recent: store.NewMemory(store.DefaultMemoryConfig(), nil), History: &fakeHistory{windows: []*aggregate.Window{hw}}}
	})
	var r jPairs
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m", &r))
	assert.ElementsMatch(t, []string{"web-1>db-1", "cache-1>web-1", "db-1>cache-1"}, names(r.Pairs))
	near(t, 777, find(t, r.Pairs, "db-1", "cache-1").Bytes, "sFlow-only pair kept")
	near(t, 5000, find(t, r.Pairs, "web-1", "db-1").Bytes, "IPFIX view of web-1→db-1")
}
