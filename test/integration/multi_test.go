package integration

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/internal/testenv/influxd"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// influxEnv writes to (and reads from) one shared influxd database.
func influxEnv(t *testing.T, url, instance string) []string {
	return []string{
		"VMFLOW_INFLUX_ENABLED=true",
		"VMFLOW_INFLUX_URL=" + url,
		"VMFLOW_INFLUX_BUCKET=vmflow/autogen",
		"VMFLOW_INFLUX_SPOOL_DIR=" + t.TempDir(),
		"VMFLOW_INFLUX_FLUSH_INTERVAL=200ms",
		"VMFLOW_INFLUX_INSTANCE=" + instance,
	}
}

// startQueryNode runs a vmflow with no collector: query.peers lists the
// collectors' APIs, query.recent how far back they answer (0: everything
// from InfluxDB).
func startQueryNode(t *testing.T, inventory string, window time.Duration, env ...string) *app.App {
	t.Helper()
	cfg, _, err := app.Load("", append([]string{
		"VMFLOW_API_LISTEN=127.0.0.1:0",
		"VMFLOW_ENRICH_STATIC_FILE=" + inventory,
		"VMFLOW_ENRICH_STATIC_RELOAD=0s",
		"VMFLOW_AGGREGATE_WINDOW=" + window.String(),
	}, env...))
	require.NoError(t, err)
	var logOut io.Writer = testLogWriter{t}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn})))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(a.Stop)
	for _, p := range []collector.Protocol{collector.ProtoSFlow, collector.ProtoIPFIX, collector.ProtoNetFlow9} {
		require.Zero(t, a.ListenPort(p), "a query node listens for no exporter")
	}
	return a
}

// union is the pairs of every collector, each pair taken from the one
// collector that has it (a pair in two collectors fails the test: the
// count-once rule decides per record, so one collector counts it).
func union(t *testing.T, source string, cs ...*app.App) map[ovslab.Pair]apiPair {
	t.Helper()
	out := map[ovslab.Pair]apiPair{}
	for i, c := range cs {
		for k, p := range pairs(t, c, source) {
			_, dup := out[k]
			assert.False(t, dup, "%s: pair %s counted by two collectors (collector %d too)", source, k, i+1)
			out[k] = p
		}
	}
	return out
}

// samePairs: the query node's pairs equal the collectors' union, pair by
// pair (bytes, packets, samples), for every source.
func samePairs(t *testing.T, q *app.App, cs ...*app.App) bool {
	t.Helper()
	ok := true
	for _, src := range []string{"ipfix", "sflow", "auto"} {
		want := union(t, src, cs...)
		got := pairs(t, q, src)
		if len(got) != len(want) {
			ok = false
			continue
		}
		for k, w := range want {
			g, has := got[k]
			if !has || !within(g.Bytes, w.Bytes, 1e-9) || !within(g.Packets, w.Packets, 1e-9) || g.Samples != w.Samples {
				ok = false
			}
		}
	}
	return ok
}

func assertSamePairs(t *testing.T, q *app.App, cs ...*app.App) {
	t.Helper()
	for _, src := range []string{"ipfix", "sflow", "auto"} {
		want := union(t, src, cs...)
		got := pairs(t, q, src)
		assert.Equal(t, keysOf(want), keysOf(got), "%s: query node pairs", src)
		for k, w := range want {
			g := got[k]
			assert.InDelta(t, w.Bytes, g.Bytes, 1e-6*w.Bytes+1e-6, "%s %s bytes", src, k)
			assert.InDelta(t, w.Packets, g.Packets, 1e-6*w.Packets+1e-6, "%s %s packets", src, k)
			assert.Equal(t, w.Samples, g.Samples, "%s %s samples", src, k)
			assert.Equal(t, w.Src.Host, g.Src.Host, "%s %s src host", src, k)
			assert.Equal(t, w.Dst.Host, g.Dst.Host, "%s %s dst host", src, k)
		}
	}
}

// TestTwoCollectorsOneQueryNode (issue 12, point 4): two hypervisors, each
// exporting sFlow 1-in-16 and IPFIX to its own collector instance (c1,
// c2); both write to one influxd with their instance tag. A query node
// with no collector answers from the collectors' APIs (query.recent) and
// another from InfluxDB alone (query.recent=0): both give exactly the
// union of what the two collectors aggregated, the truth checks of
// TestEndToEndTwoHosts pass on the query node, and the pairs crossing both
// hypervisors (sampled by both bridges, so seen by both collectors) are
// counted once, by the collector of the source VM's hypervisor.
func TestTwoCollectorsOneQueryNode(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{Hosts: []ovslab.HostOptions{{Name: "hv1", VMs: 2}, {Name: "hv2", VMs: 2}}})
	db := influxd.Start(t)
	db.CreateDatabase(t, "vmflow")
	inv := writeInventory(t, lab)
	c1 := startVMFlow(t, inv, e2eWindow, influxEnv(t, db.URL(), "c1")...)
	c2 := startVMFlow(t, inv, e2eWindow, influxEnv(t, db.URL(), "c2")...)
	peers := "VMFLOW_QUERY_PEERS=http://" + c1.APIAddr() + ",http://" + c2.APIAddr()
	qPeers := startQueryNode(t, inv, e2eWindow, append(influxEnv(t, db.URL(), "q"), peers, "VMFLOW_QUERY_RECENT=30m")...)
	qInflux := startQueryNode(t, inv, e2eWindow, append(influxEnv(t, db.URL(), "q"), peers, "VMFLOW_QUERY_RECENT=0s")...)

	hv1, hv2 := lab.Host("hv1"), lab.Host("hv2")
	for h, c := range map[*ovslab.Host]*app.App{hv1: c1, hv2: c2} {
		require.NoError(t, lab.EnableSFlow(h, ovslab.SFlowOptions{
			CollectorPort: c.ListenPort(collector.ProtoSFlow), Sampling: sflowSampling, Polling: 5, Header: 128}))
		require.NoError(t, lab.EnableIPFIX(h, ovslab.IPFIXOptions{
			CollectorPort: c.ListenPort(collector.ProtoIPFIX), Sampling: 1, CacheActiveTimeout: 2}))
	}
	time.Sleep(1500 * time.Millisecond) // IPFIX templates first

	vm1, vm2, vm3, vm4 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4")
	require.Equal(t, "hv1", vm1.Host.Name)
	require.Equal(t, "hv2", vm3.Host.Name)
	truth := ovslab.Truth{}
	require.NoError(t, lab.Phase(truth, map[string]string{"vm1": "vm3", "vm3": "vm1", "vm4": "vm2", "vm2": "vm4"}, func() error {
		return parallel(
			func() error {
				_, err := lab.IperfTCP(vm1, vm3, ovslab.IperfOptions{Duration: 5 * time.Second, Bitrate: "20M", Port: 5201})
				return err
			},
			func() error {
				_, err := lab.IperfUDP(vm4, vm2, ovslab.IperfOptions{Duration: 5 * time.Second, Bitrate: "8M", Length: 1000, Port: 5202})
				return err
			},
		)
	}))
	require.NoError(t, lab.Phase(truth, map[string]string{"vm1": "vm2", "vm2": "vm1"}, func() error {
		_, err := lab.Ping(vm1, vm2, 10, 100*time.Millisecond) // within hv1
		return err
	}))
	waitSettled(t, c1, e2eWindow)
	waitSettled(t, c2, e2eWindow)

	// Each collector saw the crossing traffic from its own bridge and
	// counted only what the source VM's hypervisor sampled.
	for i, c := range []*app.App{c1, c2} {
		assert.Greater(t, metricSum(t, c, "vmflow_aggregate_suppressed_total"), 0.0,
			"collector %d suppressed no duplicate observation: did both bridges export to their collector?", i+1)
	}
	ip1, ip2 := pairs(t, c1, "ipfix"), pairs(t, c2, "ipfix")
	for _, p := range []ovslab.Pair{{Src: "vm1", Dst: "vm3"}, {Src: "vm2", Dst: "vm4"}, {Src: "vm1", Dst: "vm2"}} {
		assert.Contains(t, ip1, p, "c1 (hv1) counts %s", p)
		assert.NotContains(t, ip2, p, "c2 (hv2) must not count %s again", p)
	}
	for _, p := range []ovslab.Pair{{Src: "vm3", Dst: "vm1"}, {Src: "vm4", Dst: "vm2"}} {
		assert.Contains(t, ip2, p, "c2 (hv2) counts %s", p)
		assert.NotContains(t, ip1, p, "c1 (hv1) must not count %s again", p)
	}

	// From the peers: at once.
	assertSamePairs(t, qPeers, c1, c2)
	checkPairs(t, qPeers, truth)
	// From InfluxDB: once both writers flushed.
	deadline := time.Now().Add(60 * time.Second)
	for !samePairs(t, qInflux, c1, c2) && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	assertSamePairs(t, qInflux, c1, c2)
	checkPairs(t, qInflux, truth)
	if t.Failed() {
		logIngest(t, c1)
		logIngest(t, c2)
	}
	// The query node lists both hypervisors' exporters (from its peers).
	agents := map[string]bool{}
	for _, e := range exporters(t, qPeers) {
		agents[e.Agent] = true
	}
	for _, h := range lab.Hosts() {
		assert.True(t, agents[h.Addr.String()], "query node exporters: %s (%s) missing from %v", h.Addr, h.Name, agents)
	}
	// Both instances' points are in the store, tagged.
	out, err := db.Query("vmflow", `SHOW TAG VALUES FROM "vm_pair" WITH KEY = "instance"`)
	require.NoError(t, err)
	assert.Contains(t, string(out), `"c1"`)
	assert.Contains(t, string(out), `"c2"`)
}
