package api

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// Test-side views of the JSON, written from the spec (not the server's types).
type jEndpoint struct {
	VM, UUID, Host, Tenant, IP, MAC string
}

type jPair struct {
	Src         jEndpoint `json:"src"`
	Dst         jEndpoint `json:"dst"`
	Bytes       float64   `json:"bytes"`
	Packets     float64   `json:"packets"`
	Samples     uint64    `json:"samples"`
	Flows       uint64    `json:"flows"`
	BPS         float64   `json:"bps"`
	PPS         float64   `json:"pps"`
	BytesCI95   []float64 `json:"bytes_ci95"`
	PacketsCI95 []float64 `json:"packets_ci95"`
	TCP         struct{ SYN, SYNACK, RST, FIN float64 }
	Protocols   map[string]struct{ Bytes, Packets float64 } `json:"protocols"`
	ICMPErrors  float64                                     `json:"icmp_errors"`
	TopPorts    []struct {
		Proto int     `json:"proto"`
		Port  int     `json:"port"`
		Bytes float64 `json:"bytes"`
	} `json:"top_ports"`
	Source  string `json:"source"`
	Windows int    `json:"windows"`
}

type jPairs struct {
	From, To    time.Time
	Source      string     `json:"source"`
	Windows     int        `json:"windows"`
	CoveredFrom *time.Time `json:"covered_from"`
	CoveredTo   *time.Time `json:"covered_to"`
	TotalPairs  int        `json:"total_pairs"`
	Pairs       []jPair    `json:"pairs"`
}

func name(e jEndpoint) string {
	if e.VM != "" {
		return e.VM
	}
	return e.IP
}

func find(t *testing.T, ps []jPair, src, dst string) jPair {
	t.Helper()
	for _, p := range ps {
		if name(p.Src) == src && name(p.Dst) == dst {
			return p
		}
	}
	t.Fatalf("pair %s -> %s not in response", src, dst)
	return jPair{}
}

func names(ps []jPair) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = name(p.Src) + ">" + name(p.Dst)
	}
	return out
}

func ci(v, variance float64, floor float64) []float64 {
	h := 1.96 * math.Sqrt(variance)
	return []float64{math.Max(floor, v-h), v + h}
}

func TestPairsAutoSumsAndShape(t *testing.T) {
	e := newEnv(t, nil)
	var r jPairs
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m", &r))
	assert.Equal(t, T, r.From.UTC())
	assert.Equal(t, T.Add(time.Minute), r.To.UTC())
	assert.Equal(t, "auto", r.Source)
	assert.Equal(t, nWindows, r.Windows)
	require.NotNil(t, r.CoveredFrom)
	assert.Equal(t, T, r.CoveredFrom.UTC())
	assert.Equal(t, T.Add(60*time.Second), r.CoveredTo.UTC())

	// auto: web-1→db-1 from IPFIX only (sFlow saw the same traffic).
	assert.Equal(t, []string{"192.0.2.7>db-1", "web-1>db-1", "db-1>web-1", "cache-1>web-1", "web-1>8.8.8.8"}, names(r.Pairs),
		"all talking pairs, by bytes descending, none that did not talk")
	assert.Equal(t, 5, r.TotalPairs)

	covered := 60.0
	a := find(t, r.Pairs, "web-1", "db-1")
	bytes, packets, _, nw := expected(web1, db1, decoder.SourceIPFIX, 0, nWindows-1)
	near(t, bytes, a.Bytes, "bytes")
	near(t, packets, a.Packets, "packets")
	near(t, bytes*8/covered, a.BPS, "bps over the covered minute")
	near(t, packets/covered, a.PPS, "pps")
	assert.Equal(t, []float64{bytes, bytes}, a.BytesCI95, "IPFIX 1-in-1: no sampling error")
	assert.Len(t, a.PacketsCI95, 2)
	assert.Equal(t, "ipfix", a.Source)
	assert.Equal(t, nw, a.Windows)
	assert.EqualValues(t, 2*nWindows, a.Flows, "flows add up across windows (upper bound)")
	assert.EqualValues(t, 10*21, a.Samples)
	near(t, float64(nWindows), a.TCP.SYN, "syn")
	near(t, bytes, a.Protocols["tcp"].Bytes, "tcp bytes")
	assert.Contains(t, a.Protocols, "udp")
	assert.Contains(t, a.Protocols, "icmp")
	assert.Contains(t, a.Protocols, "other")
	require.Len(t, a.TopPorts, 1)
	assert.Equal(t, 5432, a.TopPorts[0].Port)
	near(t, bytes, a.TopPorts[0].Bytes, "top port bytes")
	assert.Equal(t, jEndpoint{VM: "web-1", UUID: "uuid-web-1", Host: "hv1", Tenant: "acme", IP: "10.0.0.1", MAC: "52:54:00:00:00:01"}, a.Src)

	b := find(t, r.Pairs, "db-1", "web-1")
	bb, bp, bv, _ := expected(db1, web1, decoder.SourceSFlow, 0, nWindows-1)
	near(t, bb, b.Bytes, "sflow bytes")
	near(t, bp, b.Packets, "sflow packets")
	want := ci(bb, bv, 600) // variances of the two windows add
	near(t, want[0], b.BytesCI95[0], "ci lo")
	near(t, want[1], b.BytesCI95[1], "ci hi")
	assert.Less(t, b.BytesCI95[0], b.Bytes)
	assert.Greater(t, b.BytesCI95[1], b.Bytes)
	assert.Equal(t, "sflow", b.Source)
	near(t, bb*8/covered, b.BPS, "bps averages over the whole covered range")

	// Non-VM endpoints: empty vm, IP shown (also when the window left it empty).
	c := find(t, r.Pairs, "web-1", "8.8.8.8")
	assert.Equal(t, "", c.Dst.VM)
	assert.Equal(t, "8.8.8.8", c.Dst.IP)
	d := find(t, r.Pairs, "192.0.2.7", "db-1")
	assert.Equal(t, jEndpoint{IP: "192.0.2.7"}, d.Src)
	near(t, 1, d.ICMPErrors, "icmp errors")
}

func TestPairsSourceSortLimitRange(t *testing.T) {
	e := newEnv(t, nil)

	var r jPairs
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&source=sflow", &r))
	assert.ElementsMatch(t, []string{"web-1>db-1", "db-1>web-1", "web-1>8.8.8.8"}, names(r.Pairs))
	a := find(t, r.Pairs, "web-1", "db-1")
	bytes, _, v, _ := expected(web1, db1, decoder.SourceSFlow, 0, nWindows-1)
	near(t, bytes, a.Bytes, "sflow view")
	want := ci(bytes, v, 300)
	near(t, want[0], a.BytesCI95[0], "ci lo")
	near(t, want[1], a.BytesCI95[1], "ci hi")

	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&source=ipfix", &r))
	assert.ElementsMatch(t, []string{"web-1>db-1", "192.0.2.7>db-1", "cache-1>web-1"}, names(r.Pairs))

	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&source=netflow9", &r))
	assert.Empty(t, r.Pairs)

	for _, key := range sortNames {
		require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&sort="+key, &r), key)
		require.Len(t, r.Pairs, 5)
		vals := make([]float64, len(r.Pairs))
		for i, p := range r.Pairs {
			vals[i] = map[string]float64{"bytes": p.Bytes, "packets": p.Packets, "flows": float64(p.Flows),
				"samples": float64(p.Samples), "bps": p.BPS, "pps": p.PPS}[key]
		}
		assert.True(t, sort.IsSorted(sort.Reverse(sort.Float64Slice(vals))), "sort=%s: %v", key, vals)
	}
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&sort=packets", &r))
	assert.Equal(t, "web-1>db-1", names(r.Pairs)[0], "most packets")
	assert.Equal(t, "192.0.2.7>db-1", names(r.Pairs)[4], "one big packet sorts last by packets")

	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&limit=2", &r))
	assert.Equal(t, []string{"192.0.2.7>db-1", "web-1>db-1"}, names(r.Pairs))
	assert.Equal(t, 5, r.TotalPairs)

	// since=25s: windows ending in (T+35s, T+60s] = 3, 4, 5; covered T+30s..T+60s.
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=25s", &r))
	assert.Equal(t, 3, r.Windows)
	a = find(t, r.Pairs, "web-1", "db-1")
	bytes, _, _, _ = expected(web1, db1, decoder.SourceIPFIX, 3, 5)
	near(t, bytes, a.Bytes, "bytes in 3 windows")
	near(t, bytes*8/30, a.BPS, "bps over 30 s covered")
	b := find(t, r.Pairs, "db-1", "web-1")
	assert.Equal(t, 1, b.Windows)
	near(t, 5000*8/30.0, b.BPS, "bps over the covered range, not the pair's active window")

	// from (unix seconds) / to (RFC 3339): windows 1 and 2.
	q := url.Values{"from": {strconv.FormatInt(T.Add(10*time.Second).Unix(), 10)}, "to": {T.Add(30 * time.Second).Format(time.RFC3339)}}
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?"+q.Encode(), &r))
	assert.Equal(t, 2, r.Windows)
	bytes, _, _, _ = expected(web1, db1, decoder.SourceIPFIX, 1, 2)
	near(t, bytes, find(t, r.Pairs, "web-1", "db-1").Bytes, "from/to")
	find(t, r.Pairs, "192.0.2.7", "db-1")

	// An empty range: empty list, not null.
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?from=1000&to=2000", &r))
	assert.NotNil(t, r.Pairs)
	assert.Empty(t, r.Pairs)
	assert.Nil(t, r.CoveredFrom)
}

func TestPairsFilters(t *testing.T) {
	e := newEnv(t, nil)
	var r jPairs
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&vm=db-1", &r))
	assert.ElementsMatch(t, []string{"192.0.2.7>db-1", "web-1>db-1", "db-1>web-1"}, names(r.Pairs))
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&vm=cache-1", &r))
	assert.Equal(t, []string{"cache-1>web-1"}, names(r.Pairs))
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&tenant=other", &r))
	assert.Equal(t, []string{"cache-1>web-1"}, names(r.Pairs))
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&host=hv2", &r))
	assert.ElementsMatch(t, []string{"192.0.2.7>db-1", "web-1>db-1", "db-1>web-1"}, names(r.Pairs))
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&host=hv1&vm=db-1", &r))
	assert.ElementsMatch(t, []string{"web-1>db-1", "db-1>web-1"}, names(r.Pairs))
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&vm=nobody", &r))
	assert.Empty(t, r.Pairs)
}

type jSeries struct {
	Src, Dst jEndpoint
	Points   []struct {
		Time      time.Time `json:"time"`
		Bytes     float64   `json:"bytes"`
		Packets   float64   `json:"packets"`
		BPS       float64   `json:"bps"`
		PPS       float64   `json:"pps"`
		Samples   uint64    `json:"samples"`
		Flows     uint64    `json:"flows"`
		BytesCI95 []float64 `json:"bytes_ci95"`
	} `json:"points"`
}

func TestSeries(t *testing.T) {
	e := newEnv(t, nil)
	var s jSeries
	require.Equal(t, 200, e.get(t, "/api/v1/pairs/web-1/db-1/series?since=1h", &s))
	assert.Equal(t, "web-1", s.Src.VM)
	assert.Equal(t, "db-1", s.Dst.VM)
	require.Len(t, s.Points, nWindows)
	for i, p := range s.Points {
		bytes, packets, _, _ := expected(web1, db1, decoder.SourceIPFIX, i, i)
		assert.Equal(t, T.Add(time.Duration(i+1)*10*time.Second), p.Time.UTC(), "point time = window end")
		near(t, bytes, p.Bytes, "point %d bytes", i)
		near(t, packets, p.Packets, "point %d packets", i)
		near(t, bytes*8/10, p.BPS, "point %d bps over its 10 s window", i)
		near(t, packets/10, p.PPS, "point %d pps", i)
		assert.EqualValues(t, 10*(i+1), p.Samples)
		assert.EqualValues(t, 2, p.Flows)
	}

	require.Equal(t, 200, e.get(t, "/api/v1/pairs/web-1/db-1/series?since=1h&source=sflow", &s))
	require.Len(t, s.Points, nWindows)
	near(t, 800, s.Points[0].Bytes, "sflow view")
	assert.Greater(t, s.Points[0].BytesCI95[1], 800.0)

	// Endpoints by IP (non-VM) and by VM UUID; IP of a VM also matches.
	require.Equal(t, 200, e.get(t, "/api/v1/pairs/192.0.2.7/db-1/series", &s))
	require.Len(t, s.Points, 1)
	assert.Equal(t, "", s.Src.VM)
	assert.Equal(t, "192.0.2.7", s.Src.IP)
	near(t, 100000, s.Points[0].Bytes, "ip endpoint")
	require.Equal(t, 200, e.get(t, "/api/v1/pairs/uuid-web-1/8.8.8.8/series", &s))
	require.Len(t, s.Points, 1)
	require.Equal(t, 200, e.get(t, "/api/v1/pairs/10.0.0.2/10.0.0.1/series", &s))
	assert.Len(t, s.Points, 2)

	// Unknown pair, pair in the wrong direction or out of range: 404 JSON.
	var er errorBody
	assert.Equal(t, 404, e.get(t, "/api/v1/pairs/web-1/nobody/series", &er))
	assert.NotEmpty(t, er.Error)
	assert.Equal(t, 404, e.get(t, "/api/v1/pairs/8.8.8.8/web-1/series", &er))
	assert.Equal(t, 404, e.get(t, "/api/v1/pairs/web-1/db-1/series?from=1000&to=2000", &er))
}

func TestBadParameters(t *testing.T) {
	e := newEnv(t, nil)
	later := T.Add(time.Hour).Format(time.RFC3339)
	cases := []struct{ path, param string }{
		{"/api/v1/pairs?since=abc", "since"},
		{"/api/v1/pairs?since=-5m", "since"},
		{"/api/v1/pairs?since=0s", "since"},
		{"/api/v1/pairs?since=100000h", "since"},
		{"/api/v1/pairs?since=5m&from=1000", "since"},
		{"/api/v1/pairs?from=yesterday", "from"},
		{"/api/v1/pairs?to=-3", "to"},
		{"/api/v1/pairs?from=" + url.QueryEscape(later) + "&to=" + strconv.FormatInt(T.Unix(), 10), "from"},
		{"/api/v1/pairs?from=2000&to=2000", "from"},
		{"/api/v1/pairs?limit=-1", "limit"},
		{"/api/v1/pairs?limit=0", "limit"},
		{"/api/v1/pairs?limit=1001", "limit"},
		{"/api/v1/pairs?limit=99999999999999999999", "limit"},
		{"/api/v1/pairs?limit=ten", "limit"},
		{"/api/v1/pairs?limit=1&limit=2", "limit"},
		{"/api/v1/pairs?sort=name", "sort"},
		{"/api/v1/pairs?source=netflow5", "source"},
		{"/api/v1/pairs?srouce=ipfix", "srouce"},
		{"/api/v1/pairs/web-1/db-1/series?since=1x", "since"},
		{"/api/v1/pairs/web-1/db-1/series?source=all", "source"},
		{"/api/v1/pairs/web-1/db-1/series?limit=5", "limit"},
		{"/api/v1/vms?all=1", "all"},
		{"/api/v1/exporters?x=1", "x"},
		{"/api/v1/health?verbose=1", "verbose"},
		{"/api/v1/inventory/sources?x=1", "x"},
		{"/api/v1/openapi.json?x=1", "x"},
	}
	for _, c := range cases {
		var er errorBody
		require.Equal(t, 400, e.get(t, c.path, &er), c.path)
		assert.Equal(t, c.param, er.Parameter, c.path)
		assert.Contains(t, er.Error, c.param, c.path)
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	e := newEnv(t, nil)
	var er errorBody
	assert.Equal(t, 404, e.get(t, "/api/v1/nope", &er))
	assert.Contains(t, er.Error, "/api/v1/nope")
	assert.Equal(t, 404, e.get(t, "/api/v1/pairs/x/series", &er))
	resp, err := http.Post(e.ts.URL+"/api/v1/pairs", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 405, resp.StatusCode)
}

func TestVMsAndSources(t *testing.T) {
	e := newEnv(t, nil)
	var r struct {
		VMs []struct {
			Name, UUID, Host, Tenant, State, Source string
			Stale                                   bool
			Interfaces                              []struct {
				MAC   string `json:"mac"`
				Tap   string `json:"tap"`
				Addrs []struct{ IP, Source string }
			}
		}
		Conflicts []struct {
			Kind, Key, Chose string
			VMs              []string
		}
	}
	require.Equal(t, 200, e.get(t, "/api/v1/vms", &r))
	require.Len(t, r.VMs, 3)
	assert.Equal(t, []string{"clone", "db-1", "web-1"}, []string{r.VMs[0].Name, r.VMs[1].Name, r.VMs[2].Name})
	web := r.VMs[2]
	assert.Equal(t, "11111111-1111-1111-1111-111111111111", web.UUID)
	assert.Equal(t, "hv1", web.Host)
	assert.Equal(t, "acme", web.Tenant)
	assert.Equal(t, "static", web.Source)
	assert.False(t, web.Stale)
	require.Len(t, web.Interfaces, 1)
	assert.Equal(t, "52:54:00:00:00:01", web.Interfaces[0].MAC)
	assert.Equal(t, "vnet0", web.Interfaces[0].Tap)
	require.Len(t, web.Interfaces[0].Addrs, 1)
	assert.Equal(t, "10.0.0.1", web.Interfaces[0].Addrs[0].IP)
	assert.Equal(t, "static", web.Interfaces[0].Addrs[0].Source)
	require.NotEmpty(t, r.Conflicts)
	assert.Equal(t, "mac", r.Conflicts[0].Kind)
	require.Len(t, r.Conflicts[0].VMs, 2)
	assert.Contains(t, strings.Join(r.Conflicts[0].VMs, ","), "clone")
	assert.Contains(t, strings.Join(r.Conflicts[0].VMs, ","), "web-1")

	var s struct{ Sources []enrich.SourceStatus }
	require.Equal(t, 200, e.get(t, "/api/v1/inventory/sources", &s))
	require.Len(t, s.Sources, 1)
	assert.Equal(t, "static", s.Sources[0].Name)
	assert.Equal(t, "loaded", s.Sources[0].State)
	assert.Equal(t, 3, s.Sources[0].VMs)

	// No inventory at all: empty lists, not nulls.
	e2 := newEnv(t, func(d *Deps, _ *Config) { d.Inventory = nil })
	var raw map[string]any
	require.Equal(t, 200, e2.get(t, "/api/v1/vms", &raw))
	assert.Equal(t, []any{}, raw["vms"])
	assert.Equal(t, []any{}, raw["conflicts"])
}

func TestExporters(t *testing.T) {
	seen := T.Add(-time.Minute)
	e := newEnv(t, func(d *Deps, _ *Config) {
		d.Exporters = fakeExporters{
			{Protocol: "sflow", Address: "10.1.0.2:50000", Agent: "10.1.0.2", Datagrams: 10, Samples: 60, LostDatagrams: 1, LastSeen: seen},
			{Protocol: "ipfix", Address: "10.1.0.1:40000", ObsDomain: 7, Datagrams: 5, Samples: 20, DecodeErrors: 2, LastSeen: seen},
		}
	})
	var r struct{ Exporters []collector.ExporterStatus }
	require.Equal(t, 200, e.get(t, "/api/v1/exporters", &r))
	require.Len(t, r.Exporters, 2)
	assert.Equal(t, "ipfix", r.Exporters[0].Protocol)
	assert.EqualValues(t, 7, r.Exporters[0].ObsDomain)
	assert.EqualValues(t, 2, r.Exporters[0].DecodeErrors)
	assert.Equal(t, "sflow", r.Exporters[1].Protocol)
	assert.EqualValues(t, 1, r.Exporters[1].LostDatagrams)
	assert.True(t, seen.Equal(r.Exporters[1].LastSeen))
}

func TestHealth(t *testing.T) {
	e := newEnv(t, nil)
	var h map[string]any
	require.Equal(t, 200, e.get(t, "/api/v1/health", &h))
	assert.Equal(t, "ok", h["status"])
	assert.Equal(t, "0s", h["uptime"])
	assert.Equal(t, T.Format(time.RFC3339), h["memory_oldest"])

	e2 := newEnv(t, func(d *Deps, _ *Config) {
		d.Health = func() map[string]any {
			return map[string]any{"status": "degraded", "influx": map[string]any{"spool_dropped": 3}}
		}
	})
	require.Equal(t, 200, e2.get(t, "/api/v1/health", &h))
	assert.Equal(t, "degraded", h["status"])
	assert.Equal(t, map[string]any{"spool_dropped": 3.0}, h["influx"])
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	require.Equal(t, 200, e.get(t, "/api/v1/pairs", nil))
	require.Equal(t, 400, e.get(t, "/api/v1/pairs?sort=x", nil))
	require.Equal(t, 404, e.get(t, "/nope/"+strconv.Itoa(12345), nil))
	resp, err := http.Get(e.ts.URL + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	text := string(body)
	assert.Contains(t, text, `vmflow_api_requests_total{code="200",method="GET",route="/api/v1/pairs"} 1`)
	assert.Contains(t, text, `vmflow_api_requests_total{code="400",method="GET",route="/api/v1/pairs"} 1`)
	assert.Contains(t, text, `vmflow_api_requests_total{code="404",method="GET",route="unmatched"} 1`)
	assert.NotContains(t, text, "12345", "raw paths never become labels")
	assert.Contains(t, text, "vmflow_api_request_duration_seconds_bucket")
}

func TestUI(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := http.Get(e.ts.URL + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), "<title>vmflow</title>")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	resp, err = http.Get(e.ts.URL + "/assets/app.js")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "console.log('hi')", string(body))
	assert.Equal(t, 404, e.get(t, "/assets/missing.js", nil))

	// Without a UI, / is a JSON 404.
	e2 := newEnv(t, func(d *Deps, _ *Config) { d.UI = nil })
	var er errorBody
	assert.Equal(t, 404, e2.get(t, "/", &er))
}

func TestStartStop(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg, Deps{Store: nil})
	require.NoError(t, err)
	assert.Nil(t, s.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, s.Start(ctx))
	addr := s.Addr().String()
	resp, err := http.Get("http://" + addr + "/api/v1/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)

	// A second server on the same address cannot bind.
	cfg2 := cfg
	cfg2.Listen = addr
	s2, err := New(cfg2, Deps{})
	require.NoError(t, err)
	err = s2.Start(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), addr)
	s2.Stop()

	// A pair route without a store is a 503, not a crash.
	resp, err = http.Get("http://" + addr + "/api/v1/pairs")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode)

	s.Stop()
	s.Stop()
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "stopped server no longer listens")
}

func TestStartStopsOnContextCancel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg, Deps{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, s.Start(ctx))
	addr := s.Addr().String()
	cancel()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 5*time.Second, 20*time.Millisecond)
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	c := Config{Listen: "nonsense", MaxLimit: 0}
	err := c.Validate()
	require.Error(t, err)
	for _, k := range []string{"api.listen", "api.read_timeout", "api.write_timeout", "api.max_limit"} {
		assert.Contains(t, err.Error(), k)
	}
	_, err = New(c, Deps{})
	assert.Error(t, err)
}

func ExampleServer_Routes() {
	s, _ := New(DefaultConfig(), Deps{})
	for _, r := range s.Routes() {
		if strings.HasPrefix(r.Path, "/api/v1/pairs") {
			fmt.Println(r.Method, r.Path)
		}
	}
	// Unordered output:
	// GET /api/v1/pairs
	// GET /api/v1/pairs/:src/:dst
	// GET /api/v1/pairs/:src/:dst/series
}
