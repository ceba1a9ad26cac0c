package api

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/testenv/influxd"
	"github.com/vmflow/vmflow/store"
	"github.com/vmflow/vmflow/store/influx"
)

// realisticWindows are the fixture windows as the aggregator makes them:
// every pair carries the last-seen IPs of both sides.
func realisticWindows() []*aggregate.Window {
	ws := fixtureWindows()
	for _, w := range ws {
		for i := range w.Pairs {
			p := &w.Pairs[i]
			for _, x := range []struct {
				k  aggregate.EndpointKey
				e  aggregate.Endpoint
				ip *netip.Addr
			}{{p.Key.Src, p.Src, &p.Stats.SrcIP}, {p.Key.Dst, p.Dst, &p.Stats.DstIP}} {
				switch {
				case x.k.IP.IsValid():
					*x.ip = x.k.IP
				case x.e.IP != "":
					*x.ip = netip.MustParseAddr(x.e.IP)
				}
			}
		}
	}
	return ws
}

// TestHistoryFromRealInflux: windows 0..5 are written to a real influxd by
// influx.Writer; memory evicted 0..2 and holds windows 3..5. The
// HTTP API, reading store.Tiered{memory, influx.Reader}, answers what a
// memory holding all six windows answers: per-pair totals equal the sum of
// all windows, series and VM series points equal, with and without
// Reader.Resolve.
func TestHistoryFromRealInflux(t *testing.T) {
	srv := influxd.Start(t)
	const db = "vmflow_api"
	srv.CreateDatabase(t, db)
	cfg := influx.DefaultConfig()
	cfg.Enabled = true
	cfg.URL = srv.URL()
	cfg.Bucket = db + "/autogen"
	cfg.Spool.Dir = t.TempDir()
	cfg.Spool.MaxBytes = 16 << 20
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	cfg.SelfInterval = 0
	w, err := influx.NewWriter(cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, w.Start(context.Background()))
	ws := realisticWindows()
	for _, win := range ws { // the writer is a sink of every window
		w.Write(win)
	}
	w.Stop() // flushes
	require.Equal(t, "ok", w.Health()["status"], "writer health: %v", w.Health())
	require.EqualValues(t, 0, w.Health()["spool_pending_points"])

	all := newEnv(t, func(d *Deps, _ *Config) {
		mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
		for _, win := range realisticWindows() {
			mem.Write(win)
		}
		d.Store, d.Recent = mem, mem
	})
	ids := map[string]enrich.VMID{web1.vm: web1.id, db1.vm: db1.id, cache1.vm: cache1.id}
	for _, resolve := range []bool{false, true} {
		reader, err := influx.NewReader(cfg)
		require.NoError(t, err)
		t.Cleanup(reader.Close)
		if resolve {
			reader.Resolve = func(e aggregate.Endpoint) enrich.VMID { return ids[e.VM] }
		}
		// Sanity: history alone holds every window.
		hw, err := reader.Windows(context.Background(), T.Add(-time.Hour), T.Add(time.Hour))
		require.NoError(t, err)
		require.Len(t, hw, nWindows, "windows read back from influxd")

		mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
		for _, win := range ws[3:] {
			mem.Write(win)
		}
		tiered := newEnv(t, func(d *Deps, _ *Config) {
			d.Store = store.Tiered{Recent: mem, History: reader}
			d.Recent = mem
			d.WindowSize = 10 * time.Second
		})
		for _, u := range []string{
			"/api/v1/pairs?since=1m", "/api/v1/pairs?since=1m&source=sflow", "/api/v1/pairs?since=1m&source=ipfix",
			"/api/v1/pairs?since=1m&vm=web-1&sort=packets",
			"/api/v1/pairs?from=" + strconv.FormatInt(T.Add(15*time.Second).Unix(), 10) + "&to=" + strconv.FormatInt(T.Add(45*time.Second).Unix(), 10),
		} {
			var want, got jPairs
			require.Equal(t, 200, all.get(t, u, &want), u)
			require.Equal(t, 200, tiered.get(t, u, &got), u)
			assert.Equal(t, want.Windows, got.Windows, "resolve=%v %s", resolve, u)
			assert.Equal(t, want.CoveredFrom, got.CoveredFrom, u)
			assert.Equal(t, want.CoveredTo, got.CoveredTo, u)
			require.Equal(t, names(want.Pairs), names(got.Pairs), "resolve=%v %s: one row per pair across the boundary", resolve, u)
			for i := range want.Pairs {
				wp, gp := want.Pairs[i], got.Pairs[i]
				at := u + " " + names(want.Pairs)[i]
				near(t, wp.Bytes, gp.Bytes, "%s bytes", at)
				near(t, wp.Packets, gp.Packets, "%s packets", at)
				near(t, wp.BPS, gp.BPS, "%s bps", at)
				near(t, wp.BytesCI95[0], gp.BytesCI95[0], "%s ci lo", at)
				near(t, wp.BytesCI95[1], gp.BytesCI95[1], "%s ci hi", at)
				assert.Equal(t, wp.Samples, gp.Samples, at)
				assert.Equal(t, wp.Flows, gp.Flows, at)
				assert.Equal(t, wp.Windows, gp.Windows, at)
				assert.Equal(t, wp.Source, gp.Source, at)
				assert.Equal(t, wp.Src, gp.Src, at)
				assert.Equal(t, wp.Dst, gp.Dst, at)
				assert.Equal(t, wp.TopPorts, gp.TopPorts, at)
			}
		}
		// Totals equal the sum of all windows of the fixture.
		var r jPairs
		require.Equal(t, 200, tiered.get(t, "/api/v1/pairs?since=1m&limit=1000", &r))
		var total, want float64
		for _, p := range r.Pairs {
			total += p.Bytes
		}
		for _, win := range ws {
			for _, p := range win.Pairs {
				if p.Key.Src == web1.key() && p.Key.Dst == db1.key() && p.Key.Source.String() == "sflow" {
					continue // auto: the IPFIX view of the same traffic is used
				}
				want += p.Stats.Bytes
			}
		}
		near(t, want, total, "resolve=%v: all pairs' bytes = sum over all windows", resolve)

		for _, u := range []string{
			"/api/v1/pairs/web-1/db-1/series?since=1h", "/api/v1/pairs/web-1/db-1/series?since=1h&step=20s",
			"/api/v1/pairs/web-1/db-1/series?since=1h&step=1m&source=sflow", "/api/v1/pairs/192.0.2.7/db-1/series?since=1h",
			"/api/v1/pairs/db-1/web-1/series?since=1h&step=40s",
		} {
			var want, got jSeriesStep
			require.Equal(t, 200, all.get(t, u, &want), u)
			require.Equal(t, 200, tiered.get(t, u, &got), u)
			require.Equal(t, len(want.Points), len(got.Points), u)
			assert.Equal(t, want.Src, got.Src, u)
			assert.Equal(t, want.Dst, got.Dst, u)
			for i := range want.Points {
				assert.Equal(t, want.Points[i].Time, got.Points[i].Time, u)
				near(t, want.Points[i].Bytes, got.Points[i].Bytes, "%s point %d", u, i)
				near(t, want.Points[i].BPS, got.Points[i].BPS, "%s point %d bps", u, i)
				near(t, want.Points[i].BytesCI95[1], got.Points[i].BytesCI95[1], "%s point %d ci", u, i)
			}
		}
		for _, u := range []string{
			"/api/v1/vms/web-1/series?since=1h", "/api/v1/vms/web-1/series?since=1h&step=30s",
			"/api/v1/vms/db-1/series?since=1h&step=1m", "/api/v1/vms/cache-1/series?since=1h&source=ipfix",
		} {
			var want, got jVMSeries
			require.Equal(t, 200, all.get(t, u, &want), u)
			require.Equal(t, 200, tiered.get(t, u, &got), u)
			require.Equal(t, len(want.Points), len(got.Points), u)
			for i := range want.Points {
				assert.Equal(t, want.Points[i].Time, got.Points[i].Time, u)
				near(t, want.Points[i].TxBytes, got.Points[i].TxBytes, "%s point %d tx", u, i)
				near(t, want.Points[i].RxBytes, got.Points[i].RxBytes, "%s point %d rx", u, i)
				near(t, want.Points[i].TxBPS, got.Points[i].TxBPS, "%s point %d tx bps", u, i)
			}
		}
	}
}
