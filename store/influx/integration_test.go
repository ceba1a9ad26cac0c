package influx

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/enrich"
)

// TestWriteReadBack writes hand-built windows through the Writer into a real
// influxd and reads every vm_pair point back with Flux: each pair's tags and
// fields equal what was written; Reader.Windows rebuilds the same windows.
func TestWriteReadBack(t *testing.T) {
	const db = "vmflow_rb"
	srv := startInflux(t, db)
	cfg := testConfig(t, srv.URL(), db)
	w := newTestWriter(t, cfg)
	require.NoError(t, w.Start(context.Background()))

	base := time.Now().Add(-time.Hour).Truncate(10 * time.Second)
	var wins []*aggregate.Window
	for k := 0; k < 5; k++ {
		win := mkWindow(base, k)
		wins = append(wins, win)
		w.Write(win)
	}
	w.Stop()
	h := w.Health()
	require.Equal(t, "ok", h["status"], "health: %v", h)
	require.EqualValues(t, 0, h["spool_pending_points"])

	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()

	rows := fluxRows(t, r, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "vm_pair")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		cfg.Bucket, fluxTime(base), fluxTime(base.Add(time.Hour))))
	got := map[string]map[string]any{} // time|series → row
	for _, row := range rows {
		tags := map[string]string{}
		for _, k := range []string{"src_vm", "dst_vm", "source", "src_host", "dst_host", "src_tenant", "dst_tenant"} {
			if s, ok := row[k].(string); ok {
				tags[k] = s
			}
		}
		key := row["_time"].(time.Time).UTC().Format(time.RFC3339) + "|" + seriesID(tags)
		require.NotContains(t, got, key, "two rows for one series and time")
		got[key] = row
	}
	nexp := 0
	for _, win := range wins {
		for id, ep := range expectedPoints(win) {
			nexp++
			key := win.End.UTC().Format(time.RFC3339) + "|" + id
			row, ok := got[key]
			if !assert.True(t, ok, "missing point %s", key) {
				continue
			}
			for k, v := range ep.fields {
				if k[0] == '_' {
					continue
				}
				if v == 0.0 && row[k] == nil {
					continue // zero breakdown fields are not written
				}
				assert.Equal(t, v, row[k], "%s field %s", key, k)
			}
			for k, v := range ep.tags {
				assert.Equal(t, v, row[k], "%s tag %s", key, k)
			}
		}
	}
	assert.Equal(t, nexp, len(got), "points in InfluxDB")
	// 7 pairs per window, the two external → web-1 pairs share one point
	assert.Equal(t, 6*len(wins), nexp)

	// The merged external point keeps the addresses of its largest
	// contributor and says how many pairs it holds.
	mk := wins[0].End.UTC().Format(time.RFC3339) + "|" + seriesID(map[string]string{"src_vm": "(external)", "dst_vm": "web-1", "source": "sflow", "dst_host": "hv1", "dst_tenant": "acme", "src_host": "-", "src_tenant": "-"})
	require.Contains(t, got, mk)
	assert.Equal(t, "203.0.113.9", got[mk]["src_ip"])
	assert.Equal(t, int64(2), got[mk]["merged"])

	// Per-VM totals: web-1 sends to db-1 over sFlow (seed 1) only.
	vmRows := fluxRows(t, r, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "vm" and r.vm == "web-1" and r.source == "sflow")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		cfg.Bucket, fluxTime(base), fluxTime(base.Add(time.Hour))))
	require.Len(t, vmRows, len(wins))
	for i, row := range vmRows {
		win := wins[i]
		var tx, rx float64
		for _, p := range win.Pairs {
			if p.Key.Source.String() != "sflow" {
				continue
			}
			if p.Src.VM == "web-1" {
				tx += p.Stats.Bytes
			}
			if p.Dst.VM == "web-1" {
				rx += p.Stats.Bytes
			}
		}
		assert.Equal(t, tx, row["tx_bytes"])
		assert.Equal(t, rx, row["rx_bytes"])
	}

	// Reader.Windows: the same windows, pair by pair.
	r.Resolve = func(e aggregate.Endpoint) enrich.VMID {
		for _, v := range testVMs {
			if v.name == e.VM {
				return v.id
			}
		}
		return 0
	}
	back, err := r.Windows(context.Background(), wins[0].Start, wins[len(wins)-1].End)
	require.NoError(t, err)
	require.Len(t, back, len(wins))
	for i, win := range wins {
		want := expectedWindow(win)
		assert.Empty(t, cmp.Diff(want, back[i], cmpopts.EquateComparable(netip.Addr{})), "window %d", i)
	}
	// PairSeries and VMSeries: sums per step, the step ending at or after
	// each window's end (computed here from the windows written).
	step := 20 * time.Second
	from, to := wins[0].Start, wins[len(wins)-1].End
	stepEnd := func(t time.Time) int64 {
		s := int64(step / time.Second)
		return (t.Unix() + s - 1) / s * s
	}
	type key struct {
		src string
		end int64
	}
	wantPair := map[key][2]float64{}
	wantVM := map[key][2]float64{}
	for _, win := range wins {
		for _, p := range win.Pairs {
			k := key{p.Key.Source.String(), stepEnd(win.End)}
			if p.Src.VM == "web-1" && p.Dst.VM == "db-1" {
				v := wantPair[k]
				wantPair[k] = [2]float64{v[0] + p.Stats.Bytes, v[1] + p.Stats.RST}
			}
			if p.Src.VM == "web-1" {
				v := wantVM[k]
				wantVM[k] = [2]float64{v[0] + p.Stats.Bytes, v[1]}
			}
			if p.Dst.VM == "web-1" {
				v := wantVM[k]
				wantVM[k] = [2]float64{v[0], v[1] + p.Stats.Bytes}
			}
		}
	}
	ps, err := r.PairSeries(context.Background(), "web-1", "db-1", from, to, step)
	require.NoError(t, err)
	gotPair := map[key][2]float64{}
	for _, p := range ps {
		gotPair[key{p.Source, p.Time.Unix()}] = [2]float64{p.Bytes, p.RST}
		assert.InDelta(t, p.Bytes*8/step.Seconds(), p.BPS, 1e-9)
	}
	assert.Equal(t, wantPair, gotPair)
	vs, err := r.VMSeries(context.Background(), "web-1", from, to, step)
	require.NoError(t, err)
	gotVM := map[key][2]float64{}
	for _, p := range vs {
		gotVM[key{p.Source, p.Time.Unix()}] = [2]float64{p.TxBytes, p.RxBytes}
	}
	assert.Equal(t, wantVM, gotVM)
	_, err = r.PairSeries(context.Background(), "web-1", "db-1", from, to, 0)
	assert.ErrorContains(t, err, "step")

	// (from, to] excludes a window ending at from.
	back, err = r.Windows(context.Background(), wins[0].End, wins[1].End)
	require.NoError(t, err)
	require.Len(t, back, 1)
	assert.Equal(t, wins[1].End.Unix(), back[0].End.Unix())
}

// expectedWindow is what Reader.Windows must rebuild from w: external
// endpoints of one VM merged (counters summed, addresses of the largest),
// pairs sorted by (src vm, dst vm, source, ...).
func expectedWindow(w *aggregate.Window) *aggregate.Window {
	out := &aggregate.Window{Start: w.Start.UTC(), End: w.End.UTC()}
	idx := map[string]int{}
	top := map[string]float64{}
	for _, p := range w.Pairs {
		id := fmt.Sprintf("%s|%s|%s", p.Src.VM, p.Dst.VM, p.Key.Source)
		p := p
		p.Src.IP, p.Dst.IP = p.Stats.SrcIP.String(), p.Stats.DstIP.String()
		if i, ok := idx[id]; ok {
			q := &out.Pairs[i]
			sum := addStats(q.Stats, p.Stats)
			sum.First = min(q.Stats.First, p.Stats.First)
			sum.Last = max(q.Stats.Last, p.Stats.Last)
			mergeTopPortsRef(&sum.TopPorts, &q.Stats.TopPorts, &p.Stats.TopPorts)
			if p.Stats.Bytes > top[id] {
				top[id] = p.Stats.Bytes
				sum.SrcIP, sum.DstIP, sum.SrcMAC, sum.DstMAC = p.Stats.SrcIP, p.Stats.DstIP, p.Stats.SrcMAC, p.Stats.DstMAC
				q.Src, q.Dst, q.Key = p.Src, p.Dst, p.Key
			}
			q.Stats = sum
			continue
		}
		idx[id] = len(out.Pairs)
		top[id] = p.Stats.Bytes
		out.Pairs = append(out.Pairs, p)
	}
	for i := range out.Pairs {
		p := &out.Pairs[i]
		p.Stats.SrcMAC, _ = parseMAC(p.Src.MAC)
		p.Stats.DstMAC, _ = parseMAC(p.Dst.MAC)
	}
	sort.Slice(out.Pairs, func(i, j int) bool { return pairLess(&out.Pairs[i], &out.Pairs[j]) })
	return out
}

// mergeTopPortsRef sums two top-port lists by (proto, port) and keeps the
// largest TopPortsN (reference implementation for the test).
func mergeTopPortsRef(dst, a, b *[aggregate.TopPortsN]aggregate.PortCount) {
	type k struct {
		proto uint8
		port  uint16
	}
	sum := map[k]float64{}
	for _, l := range []*[aggregate.TopPortsN]aggregate.PortCount{a, b} {
		for _, pc := range l {
			if pc.Bytes > 0 {
				sum[k{pc.Proto, pc.Port}] += pc.Bytes
			}
		}
	}
	var all []aggregate.PortCount
	for kk, v := range sum {
		all = append(all, aggregate.PortCount{Proto: kk.proto, Port: kk.port, Bytes: v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Bytes > all[j].Bytes })
	*dst = [aggregate.TopPortsN]aggregate.PortCount{}
	copy(dst[:], all)
}
