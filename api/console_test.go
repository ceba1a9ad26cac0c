package api

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the console's aggregate routes against the fixture (see
// fixture_test.go), with the numbers worked out by hand from it.

type jOverview struct {
	Step   string `json:"step"`
	Group  string `json:"group"`
	Totals struct {
		Bytes, Packets, BPS, PPS float64
	} `json:"totals"`
	Now struct {
		Time  *time.Time `json:"time"`
		BPS   float64    `json:"bps"`
		Pairs int        `json:"pairs"`
	} `json:"now"`
	Times  []time.Time `json:"times"`
	Groups []struct {
		Key   string    `json:"key"`
		Bytes float64   `json:"bytes"`
		BPS   []float64 `json:"bps"`
	} `json:"groups"`
	Talkers []struct {
		Name  string  `json:"name"`
		VM    bool    `json:"vm"`
		Bytes float64 `json:"bytes"`
		Peers int     `json:"peers"`
	} `json:"top_talkers"`
	Listeners []struct {
		Name  string  `json:"name"`
		Bytes float64 `json:"bytes"`
	} `json:"top_listeners"`
	ActiveVMs int `json:"active_vms"`
}

func TestOverview(t *testing.T) {
	e := newEnv(t, nil)
	var r jOverview
	require.Equal(t, 200, e.get(t, "/api/v1/overview?since=1m", &r))
	assert.Equal(t, "10s", r.Step, "automatic step: the window when the range has few windows")
	require.Len(t, r.Times, nWindows)
	assert.Equal(t, T.Add(10*time.Second), r.Times[0].UTC())
	// auto: web-1→db-1 from IPFIX 21000, db-1→web-1 10000, web-1→8.8.8.8 300,
	// 192.0.2.7→db-1 100000, cache-1→web-1 2000.
	near(t, 133300, r.Totals.Bytes, "total bytes")
	near(t, 133300*8/60.0, r.Totals.BPS, "total bps over the covered minute")
	require.NotNil(t, r.Now.Time)
	assert.Equal(t, T.Add(60*time.Second), r.Now.Time.UTC())
	near(t, (6000+300)*8/10.0, r.Now.BPS, "latest window: web-1→db-1 and web-1→8.8.8.8")
	assert.Equal(t, 2, r.Now.Pairs)
	require.Len(t, r.Groups, 2)
	assert.Equal(t, "acme", r.Groups[0].Key)
	near(t, 131300, r.Groups[0].Bytes, "acme: every pair with an acme side (the scanner counts for its destination)")
	near(t, (2000+100000)*8/10.0, r.Groups[0].BPS[1], "acme in window 1")
	assert.Equal(t, "other", r.Groups[1].Key)
	near(t, 2000, r.Groups[1].Bytes, "cache-1 (tenant other)")

	var names []string
	for _, x := range r.Talkers {
		names = append(names, x.Name)
	}
	assert.Equal(t, []string{"192.0.2.7", "web-1", "db-1", "cache-1"}, names)
	near(t, 21300, r.Talkers[1].Bytes, "web-1 sent")
	assert.Equal(t, 2, r.Talkers[1].Peers, "db-1 and 8.8.8.8")
	assert.False(t, r.Talkers[0].VM)
	assert.True(t, r.Talkers[1].VM)
	names = nil
	for _, x := range r.Listeners {
		names = append(names, x.Name)
	}
	assert.Equal(t, []string{"db-1", "web-1", "8.8.8.8"}, names)
	near(t, 121000, r.Listeners[0].Bytes, "db-1 received")
	assert.Equal(t, 3, r.ActiveVMs)

	// By protocol (cache-1's pair has no protocol breakdown in the fixture).
	require.Equal(t, 200, e.get(t, "/api/v1/overview?since=1m&group=protocol", &r))
	got := map[string]float64{}
	for _, g := range r.Groups {
		got[g.Key] = g.Bytes
	}
	assert.Equal(t, map[string]float64{"icmp": 100000, "tcp": 21000, "udp": 10000}, got)

	// top=1 folds the rest into "other"; filters.
	require.Equal(t, 200, e.get(t, "/api/v1/overview?since=1m&group=protocol&top=1", &r))
	require.Len(t, r.Groups, 2)
	assert.Equal(t, "icmp", r.Groups[0].Key)
	assert.Equal(t, "other", r.Groups[1].Key)
	near(t, 31000, r.Groups[1].Bytes, "tcp + udp")
	require.Equal(t, 200, e.get(t, "/api/v1/overview?since=1m&protocol=udp", &r))
	near(t, 10000, r.Totals.Bytes, "udp only")
	require.Equal(t, 200, e.get(t, "/api/v1/overview?since=1m&port=5432", &r))
	near(t, 21000, r.Totals.Bytes, "port 5432 only")
	require.Equal(t, 200, e.get(t, "/api/v1/overview?since=1m&tenant=other", &r))
	near(t, 2000, r.Totals.Bytes, "tenant other")
	require.Equal(t, 200, e.get(t, "/api/v1/overview?since=1m&source=sflow", &r))
	near(t, 6*800+10000+300, r.Totals.Bytes, "sFlow only")
	require.Equal(t, 200, e.get(t, "/api/v1/overview?since=1m&step=30s", &r))
	require.Len(t, r.Times, 2)
	near(t, 133300, r.Groups[0].Bytes+r.Groups[1].Bytes, "same total with a coarser step")

	for _, bad := range []string{"group=vm", "top=0", "protocol=sctp", "port=70000", "step=15s"} {
		assert.Equal(t, 400, e.get(t, "/api/v1/overview?since=1m&"+bad, nil), bad)
	}
}

type jGraph struct {
	Level      string `json:"level"`
	TotalNodes int    `json:"total_nodes"`
	TotalEdges int    `json:"total_edges"`
	Groups     []string
	Nodes      []struct {
		ID, Name, Kind, Group string
		Members               int     `json:"members"`
		BPSOut                float64 `json:"bps_out"`
		InternalBPS           float64 `json:"internal_bps"`
	} `json:"nodes"`
	Edges []struct {
		Src, Dst string
		Bytes    float64 `json:"bytes"`
		BPS      float64 `json:"bps"`
	} `json:"edges"`
	Other struct {
		Edges int     `json:"edges"`
		Bytes float64 `json:"bytes"`
	} `json:"other"`
}

func (g jGraph) edgeNames() []string {
	var out []string
	for _, e := range g.Edges {
		out = append(out, e.Src+">"+e.Dst)
	}
	return out
}

func (g jGraph) nodeIDs() []string {
	var out []string
	for _, n := range g.Nodes {
		out = append(out, n.ID)
	}
	sort.Strings(out)
	return out
}

func TestGraph(t *testing.T) {
	e := newEnv(t, nil)
	var g jGraph
	require.Equal(t, 200, e.get(t, "/api/v1/graph?since=1m", &g))
	assert.Equal(t, "vm", g.Level)
	assert.Equal(t, []string{"ip:192.0.2.7>vm:db-1", "vm:web-1>vm:db-1", "vm:db-1>vm:web-1", "vm:cache-1>vm:web-1", "vm:web-1>ip:8.8.8.8"}, g.edgeNames())
	near(t, 21000*8/60.0, g.Edges[1].BPS, "web-1→db-1 bps")
	assert.Equal(t, 5, g.TotalNodes)
	assert.Equal(t, []string{"external", "hv1", "hv2", "hv3"}, g.Groups)
	assert.Zero(t, g.Other.Edges)

	// Top 2 + other.
	require.Equal(t, 200, e.get(t, "/api/v1/graph?since=1m&top=2", &g))
	assert.Equal(t, []string{"ip:192.0.2.7>vm:db-1", "vm:web-1>vm:db-1"}, g.edgeNames())
	assert.Equal(t, 3, g.Other.Edges)
	near(t, 10000+2000+300, g.Other.Bytes, "other bucket")
	assert.Equal(t, 5, g.TotalEdges)
	assert.Equal(t, []string{"ip:192.0.2.7", "vm:db-1", "vm:web-1"}, g.nodeIDs(), "only the nodes of the kept edges")

	// Collapsed by host, hv1 expanded.
	require.Equal(t, 200, e.get(t, "/api/v1/graph?since=1m&level=group", &g))
	assert.Equal(t, []string{"group:external>group:hv2", "group:hv1>group:hv2", "group:hv2>group:hv1", "group:hv3>group:hv1", "group:hv1>group:external"}, g.edgeNames())
	require.Equal(t, 200, e.get(t, "/api/v1/graph?since=1m&level=group&expand=hv1", &g))
	assert.Contains(t, g.edgeNames(), "vm:web-1>group:hv2")
	assert.Contains(t, g.nodeIDs(), "vm:web-1")
	assert.NotContains(t, g.nodeIDs(), "group:hv1")

	// By tenant: web-1→db-1 and db-1→web-1 are inside acme.
	require.Equal(t, 200, e.get(t, "/api/v1/graph?since=1m&level=group&group=tenant", &g))
	for _, n := range g.Nodes {
		if n.ID == "group:acme" {
			assert.Equal(t, 2, n.Members)
			near(t, (21000+10000)*8/60.0, n.InternalBPS, "traffic inside acme")
		}
	}
	assert.NotContains(t, g.edgeNames(), "group:acme>group:acme")

	// Metric and filters.
	require.Equal(t, 200, e.get(t, "/api/v1/graph?since=1m&metric=pps&top=1", &g))
	assert.Equal(t, []string{"vm:web-1>vm:db-1"}, g.edgeNames(), "most packets")
	require.Equal(t, 200, e.get(t, "/api/v1/graph?since=1m&vm=cache-1", &g))
	assert.Equal(t, []string{"vm:cache-1>vm:web-1"}, g.edgeNames())
	require.Equal(t, 200, e.get(t, "/api/v1/graph?since=1m&host=hv2&protocol=tcp", &g))
	assert.Equal(t, []string{"vm:web-1>vm:db-1"}, g.edgeNames())
	for _, bad := range []string{"top=0", "top=5001", "level=x", "metric=bytes", "group=vm"} {
		assert.Equal(t, 400, e.get(t, "/api/v1/graph?since=1m&"+bad, nil), bad)
	}
}

type jCapacity struct {
	Kind        string      `json:"kind"`
	Step        string      `json:"step"`
	CapacityBPS float64     `json:"capacity_bps"`
	Times       []time.Time `json:"times"`
	Total       int         `json:"total_subjects"`
	Items       []jCapItem  `json:"items"`
	Risers      []jCapItem  `json:"risers"`
	Fallers     []jCapItem  `json:"fallers"`
}

type jCapItem struct {
	Subject        string
	PeakBPS        float64    `json:"peak_bps"`
	P95BPS         float64    `json:"p95_bps"`
	MeanBPS        float64    `json:"mean_bps"`
	TrendBPS       float64    `json:"trend_bps"`
	SlopeBPSPerDay float64    `json:"slope_bps_per_day"`
	ForecastBPS    float64    `json:"forecast_bps"`
	Runout         *time.Time `json:"runout"`
	Exceeded       bool       `json:"exceeded"`
	BPS            []float64  `json:"bps"`
}

func findCap(t *testing.T, items []jCapItem, subject string) jCapItem {
	t.Helper()
	for _, it := range items {
		if it.Subject == subject {
			return it
		}
	}
	t.Fatalf("%s not among %v", subject, items)
	return jCapItem{}
}

func TestCapacity(t *testing.T) {
	e := newEnv(t, nil)
	to := T.Add(60 * time.Second)
	var r jCapacity
	require.Equal(t, 200, e.get(t, "/api/v1/capacity?since=1m&kind=pair&sort=peak", &r))
	assert.Equal(t, 10e9, r.CapacityBPS, "api.capacity_bps default")
	assert.Equal(t, 5, r.Total)
	require.Len(t, r.Times, nWindows)
	// web-1→db-1: 1000·(i+1) bytes per 10 s window → 800·(i+1) bit/s, +80 bit/s per second.
	a := findCap(t, r.Items, "web-1 → db-1")
	assert.Equal(t, []float64{800, 1600, 2400, 3200, 4000, 4800}, a.BPS)
	near(t, 4800, a.PeakBPS, "peak")
	near(t, 4800, a.P95BPS, "p95 of 6 buckets: the 6th by nearest rank")
	near(t, 2800, a.MeanBPS, "mean")
	near(t, 4800, a.TrendBPS, "exact line: trend at the end is the last point")
	near(t, 80*86400, a.SlopeBPSPerDay, "slope")
	near(t, 4800+80*60, a.ForecastBPS, "forecast one range (60 s) ahead")
	require.NotNil(t, a.Runout)
	near(t, (10e9-4800)/80, a.Runout.Sub(to).Seconds(), "runout at 10 Gbit/s")
	assert.Equal(t, "192.0.2.7 → db-1", r.Items[0].Subject, "sort=peak: the one-window burst first")
	near(t, 80000, findCap(t, r.Items, "192.0.2.7 → db-1").P95BPS, "one burst in 6 buckets: nearest rank 6 of 6 is the burst")
	require.NotEmpty(t, r.Risers)
	require.NotEmpty(t, r.Fallers)
	assert.Equal(t, "192.0.2.7 → db-1", r.Fallers[0].Subject, "burst early in the range: falling trend")

	require.Equal(t, 200, e.get(t, "/api/v1/capacity?since=1m&kind=pair&capacity_bps=5000", &r))
	a = findCap(t, r.Items, "web-1 → db-1")
	require.NotNil(t, a.Runout)
	near(t, 2.5, a.Runout.Sub(to).Seconds(), "(5000-4800)/80 s after the end")
	assert.Equal(t, "web-1 → db-1", r.Items[0].Subject, "sort=runout: soonest runout first (cache-1's in ~320 s, the burst's falling trend never)")
	assert.Nil(t, findCap(t, r.Items, "192.0.2.7 → db-1").Runout, "falling trend: no runout")

	require.Equal(t, 200, e.get(t, "/api/v1/capacity?since=1m&kind=pair&capacity_bps=1000", &r))
	assert.True(t, findCap(t, r.Items, "web-1 → db-1").Exceeded)

	// Per VM: the busier direction per bucket.
	require.Equal(t, 200, e.get(t, "/api/v1/capacity?since=1m&sort=peak", &r))
	assert.Equal(t, "vm", r.Kind)
	assert.Equal(t, 3, r.Total, "web-1, db-1, cache-1 (IP endpoints are no VMs)")
	db := findCap(t, r.Items, "db-1")
	near(t, (100000+2000)*8/10.0, db.BPS[1], "db-1 received the burst and web-1's traffic in window 1")
	near(t, (100000+2000)*8/10.0, db.PeakBPS, "db-1 peak")
	web := findCap(t, r.Items, "web-1")
	near(t, 4800+240, web.BPS[5], "web-1's last window: sent 6000+300 bytes, received nothing")
	for _, bad := range []string{"kind=host", "capacity_bps=0", "capacity_bps=x", "top=501", "sort=x"} {
		assert.Equal(t, 400, e.get(t, "/api/v1/capacity?since=1m&"+bad, nil), bad)
	}
}

func TestPairDetail(t *testing.T) {
	e := newEnv(t, nil)
	var r struct {
		Pair     jPair `json:"pair"`
		BySource []struct {
			Source  string  `json:"source"`
			Bytes   float64 `json:"bytes"`
			Windows int     `json:"windows"`
		} `json:"by_source"`
	}
	require.Equal(t, 200, e.get(t, "/api/v1/pairs/web-1/db-1?since=1m", &r))
	near(t, 21000, r.Pair.Bytes, "auto: IPFIX")
	assert.Equal(t, "ipfix", r.Pair.Source)
	require.Len(t, r.BySource, 2)
	assert.Equal(t, "ipfix", r.BySource[0].Source)
	near(t, 21000, r.BySource[0].Bytes, "ipfix view")
	assert.Equal(t, "sflow", r.BySource[1].Source)
	near(t, 4800, r.BySource[1].Bytes, "sflow view")
	require.Equal(t, 200, e.get(t, "/api/v1/pairs/web-1/db-1?since=1m&source=sflow", &r))
	near(t, 4800, r.Pair.Bytes, "source=sflow")
	require.Equal(t, 200, e.get(t, "/api/v1/pairs/192.0.2.7/db-1?since=1m", &r))
	near(t, 1, r.Pair.ICMPErrors, "icmp errors")
	assert.Equal(t, 404, e.get(t, "/api/v1/pairs/db-1/cache-1?since=1m", nil))
}
