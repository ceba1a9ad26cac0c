package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// TestConsoleLab: the overview, topology and pair detail views against
// vmflow fed by a real Open vSwitch lab (two hypervisors, four VM
// namespaces, sFlow 1-in-16 and IPFIX) carrying iperf3 TCP and UDP and a
// ping: the numbers on the page equal the API's, filters and drill-down
// work, a fresh page at the URL restores the view, no request leaves the
// vmflow origin. Needs root and OVS (skipped without, a failure under
// VMFLOW_INTEGRATION=1).
func TestConsoleLab(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{Hosts: []ovslab.HostOptions{{Name: "hv1", VMs: 2}, {Name: "hv2", VMs: 2}}})
	const window = 2 * time.Second
	cfg, _, err := app.Load("", []string{
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=:0", "VMFLOW_COLLECTOR_IPFIX_LISTEN=:0", "VMFLOW_COLLECTOR_NETFLOW9_LISTEN=",
		"VMFLOW_API_LISTEN=127.0.0.1:0", "VMFLOW_ENRICH_STATIC_FILE=" + lab.WriteInventory(t, "lab"),
		"VMFLOW_ENRICH_STATIC_RELOAD=0s", "VMFLOW_AGGREGATE_WINDOW=" + window.String(), "VMFLOW_INFLUX_ENABLED=false",
	})
	require.NoError(t, err)
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { cancel(); a.Stop() })
	for _, h := range lab.Hosts() {
		require.NoError(t, lab.EnableSFlow(h, ovslab.SFlowOptions{CollectorPort: a.ListenPort(collector.ProtoSFlow), Sampling: 16, Polling: 5, Header: 128}))
		require.NoError(t, lab.EnableIPFIX(h, ovslab.IPFIXOptions{CollectorPort: a.ListenPort(collector.ProtoIPFIX), Sampling: 1, CacheActiveTimeout: 2}))
	}
	time.Sleep(1500 * time.Millisecond) // OVS's first datagrams (IPFIX templates) before the traffic

	from := time.Now().Add(-window).UTC().Truncate(time.Second)
	vm1, vm2, vm3, vm4 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4")
	truth := ovslab.Truth{}
	var tcp ovslab.IperfResult
	require.NoError(t, lab.Phase(truth, map[string]string{"vm1": "vm3", "vm3": "vm1", "vm4": "vm2", "vm2": "vm4"}, func() error {
		var wg sync.WaitGroup
		var e1, e2 error
		wg.Add(2)
		go func() {
			defer wg.Done()
			tcp, e1 = lab.IperfTCP(vm1, vm3, ovslab.IperfOptions{Duration: 4 * time.Second, Bitrate: "20M", Port: 5201})
		}()
		go func() {
			defer wg.Done()
			_, e2 = lab.IperfUDP(vm4, vm2, ovslab.IperfOptions{Duration: 4 * time.Second, Bitrate: "8M", Length: 1000, Port: 5202})
		}()
		wg.Wait()
		if e1 != nil {
			return e1
		}
		return e2
	}))
	_, err = lab.Ping(vm2, vm1, 5, 100*time.Millisecond)
	require.NoError(t, err)
	// Settled: IPFIX's active timeout and the last window closed.
	time.Sleep(3*time.Second + 2*window)
	to := time.Now().UTC().Truncate(time.Second)
	rng := "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
	origin := "http://" + a.APIAddr()
	api := func(path string, out any) { apiGet(t, origin, path, out) }
	b := newBrowser(t, origin)

	// Overview: KPIs, the stacked chart and the tables are the API's.
	b.open("#/overview?" + rng)
	var ov apiOverview
	api("/api/v1/overview?"+rng+"&group=tenant&top=8", &ov)
	require.Greater(t, ov.Totals.Bytes, 0.0, "the lab's traffic is in the range")
	same(t, ov.Totals.Bytes, b.value("#ov-total-bytes .kpi-value"), "bytes")
	same(t, ov.Totals.BPS, b.value("#ov-avg-bps .kpi-value"), "average bps")
	same(t, float64(ov.ActiveVMs), b.value("#ov-vms .kpi-value"), "active VMs")
	assert.Equal(t, 4.0, b.value("#ov-vms .kpi-value"), "every lab VM talked")
	var series []chartSeries
	b.chart("overview", &series)
	require.Len(t, series, len(ov.Groups))
	for i, g := range ov.Groups {
		assert.Equal(t, g.Key, series[i].Name)
		for j := range ov.Times {
			_, v := point(t, series[i].Data[j])
			same(t, g.BPS[j], v, "chart "+g.Key)
		}
	}
	require.NotEmpty(t, ov.Talkers)
	assert.Equal(t, ov.Talkers[0].Name, b.text("#ov-talkers-table tbody tr:first-child td:first-child"))
	same(t, ov.Talkers[0].BPS, b.value("#ov-talkers-table tbody tr:first-child td.bps"), "top talker")
	var g apiGraph
	api("/api/v1/graph?"+rng+"&top=10&level=vm", &g)
	require.NotEmpty(t, g.Edges)
	assert.Equal(t, "vm:vm1", g.Edges[0].Src, "the iperf3 TCP pair is the heaviest")
	assert.Equal(t, "vm:vm3", g.Edges[0].Dst)
	same(t, g.Edges[0].BPS, b.value("#ov-pairs-table tbody tr:first-child td.bps"), "top pair")
	b.axe("overview (lab)")
	b.shot("lab-overview")
	// Filter by host: the URL holds it, the numbers follow.
	b.fill("#ov-filters-host", "hv2")
	assert.Contains(t, b.hash(), "host=hv2")
	api("/api/v1/overview?"+rng+"&group=tenant&top=8&host=hv2", &ov)
	same(t, ov.Totals.Bytes, b.value("#ov-total-bytes .kpi-value"), "filtered bytes")
	// Restored from the URL in a fresh page.
	b.open(b.hash())
	assert.Equal(t, "hv2", b.eval1(`document.getElementById("ov-filters-host").value`))
	same(t, ov.Totals.Bytes, b.value("#ov-total-bytes .kpi-value"), "restored")
	// Drill down: the top pair opens its detail.
	api("/api/v1/graph?"+rng+"&top=10&level=vm&host=hv2", &g)
	b.click("#ov-pairs-table tbody tr:first-child a")
	b.at("pair", map[string]string{"src": strings.TrimPrefix(g.Edges[0].Src, "vm:"), "dst": strings.TrimPrefix(g.Edges[0].Dst, "vm:")})

	// Topology: the drawn nodes and edges are the API's.
	b.open("#/topology?" + rng)
	api("/api/v1/graph?"+rng+"&group=host&level=vm&metric=bps&top=300", &g)
	b.chart("topology", &series)
	require.Len(t, series, 1)
	assert.Len(t, series[0].Data, len(g.Nodes))
	require.Len(t, series[0].Links, len(g.Edges))
	for i, l := range series[0].Links {
		assert.Equal(t, g.Edges[i].Src, l.Source)
		assert.Equal(t, g.Edges[i].Dst, l.Target)
		same(t, g.Edges[i].BPS, l.Value, "edge weight")
	}
	same(t, g.Edges[0].BPS, b.value("#topo-edges tbody tr:first-child td.weight"), "heaviest edge in the table")
	b.axe("topology (lab)")
	b.shot("lab-topology")
	// Collapse hv1: its VMs become one node.
	b.click(`#topo-groups button[data-group="hv1"]`)
	assert.Contains(t, b.hash(), "level=group")
	h := b.hash()
	q, _ := url.ParseQuery(strings.SplitN(h, "?", 2)[1])
	api("/api/v1/graph?"+q.Encode(), &g)
	b.chart("topology", &series)
	assert.Len(t, series[0].Data, len(g.Nodes))
	var ids []string
	for _, n := range g.Nodes {
		ids = append(ids, n.ID)
	}
	assert.Contains(t, ids, "group:hv1")
	assert.Contains(t, ids, "vm:vm3", "hv2 stays expanded")
	b.open(h)
	b.chart("topology", &series)
	assert.Len(t, series[0].Links, len(g.Edges), "restored from the URL")
	// The edge table's detail link opens the pair.
	b.open("#/topology?" + rng)
	b.click("#topo-edges tbody tr:first-child td:last-child a")
	b.at("pair", map[string]string{"src": "vm1", "dst": "vm3"})

	// Pair detail of the iperf3 TCP pair: totals, sFlow vs IPFIX, series.
	b.open("#/pair?src=vm1&dst=vm3&" + rng)
	var d apiPairDetail
	api("/api/v1/pairs/vm1/vm3?"+rng, &d)
	same(t, d.Pair.Bytes, b.value("#pair-bytes .kpi-value"), "pair bytes")
	same(t, d.Pair.BPS, b.value("#pair-bps .kpi-value"), "pair bps")
	srcs := map[string]float64{}
	for _, s := range d.BySource {
		srcs[s.Source] = s.Bytes
		same(t, s.Bytes, b.value(`#pair-sources td.src-bytes[data-source="`+s.Source+`"]`), s.Source+" view")
	}
	assert.Contains(t, srcs, "sflow")
	assert.Contains(t, srcs, "ipfix")
	tr := truth[ovslab.Pair{Src: "vm1", Dst: "vm3"}]
	t.Logf("vm1→vm3: iperf3 sent %d payload bytes; the wire carried %d; vmflow: IPFIX %.0f, sFlow %.0f (page %.0f)",
		tcp.SentBytes, tr.DeliveredBytes, srcs["ipfix"], srcs["sflow"], b.value("#pair-bytes .kpi-value"))
	var s apiSeries
	api("/api/v1/pairs/vm1/vm3/series?"+rng+"&step=2s", &s)
	b.chart("pair", &series)
	require.NotEmpty(t, series)
	require.Len(t, series[0].Data, len(s.Points))
	for i, pt := range s.Points {
		_, v := point(t, series[0].Data[i])
		same(t, pt.BPS, v, "series point")
	}
	// Connection health from the real TCP flags (iperf3's connections):
	// the page's ratios and interval are the API's.
	var ph struct {
		Pair struct {
			ConnHealth *struct {
				SYN          float64    `json:"syn"`
				FailureRatio float64    `json:"failure_ratio"`
				FailureCI95  [2]float64 `json:"failure_ci95"`
				RefusedRatio float64    `json:"refused_ratio"`
			} `json:"conn_health"`
		} `json:"pair"`
	}
	api("/api/v1/pairs/vm1/vm3?"+rng, &ph)
	if ch := ph.Pair.ConnHealth; ch != nil {
		t.Logf("vm1→vm3 connection health: %.0f SYNs, failure %.3f (95%% %.3f–%.3f), refused %.3f", ch.SYN, ch.FailureRatio, ch.FailureCI95[0], ch.FailureCI95[1], ch.RefusedRatio)
		same(t, ch.FailureRatio, b.value("#pair-failure .kpi-value"), "failure ratio")
		same(t, ch.RefusedRatio, b.value("#pair-refused .kpi-value"), "refused ratio")
		assert.Equal(t, fmt.Sprint(ch.FailureCI95[1]), b.attr("#pair-failure-ci", "data-hi"), "failure interval")
	} else {
		t.Log("vm1→vm3: no SYN in the range's samples (no connection health)")
		assert.Zero(t, b.count("#pair-health"))
	}
	b.axe("pair (lab)")
	b.shot("lab-pair")
	// The metric select, restored from the URL; drill to the source VM.
	b.choose("#pair-filters-metric", "pps")
	b.open(b.hash())
	b.chart("pair", &series)
	assert.Equal(t, "packets/s", series[0].Name)
	b.click("#pair-endpoints tbody tr:first-child a")
	b.at("vm", map[string]string{"name": "vm1"})
	b.checkOrigin()
}
