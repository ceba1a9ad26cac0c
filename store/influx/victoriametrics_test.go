package influx

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/internal/testenv/victoriametrics"
)

// TestVictoriaMetricsCompat: a real single-node VictoriaMetrics (v1.151.0)
// as the store (README, "Beyond one InfluxDB"). vmflow's writer runs
// unchanged against it (/ping, /api/v2/write, gzip): every numeric field
// of every vm_pair point lands, as the series <measurement>_<field> with
// the point's tags (instance included) as labels, readable with PromQL;
// what it cannot serve is asserted too: string fields (top_ports, the
// external endpoints' src_ip/dst_ip, vm_info) are stored as 0, their text
// lost, Flux
// (/api/v2/query: vmflow's history reader and the Grafana dashboards) is
// not served, and InfluxQL SELECT (/query) answers no series.
func TestVictoriaMetricsCompat(t *testing.T) {
	vm := victoriametrics.Start(t)
	cfg := testConfig(t, vm.URL(), "vmflow")
	cfg.Instance = "collector-1"
	w := newTestWriter(t, cfg)
	require.NoError(t, w.Start(t.Context()))
	base := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)
	var wins []*aggregate.Window
	for k := 0; k < 3; k++ {
		wins = append(wins, mkWindow(base, k))
		w.Write(wins[k])
	}
	w.Stop()
	h := w.Health()
	require.Equal(t, "ok", h["status"], "writer health against VictoriaMetrics: %v", h)
	require.EqualValues(t, 0, h["rejected_points"])
	require.EqualValues(t, 0, h["spool_pending_points"])
	require.NoError(t, vm.Flush())

	// Every vm_pair point's bytes, packets and samples, per window and series.
	type sample struct {
		Metric     map[string]string `json:"metric"`
		Values     []float64         `json:"values"`
		Timestamps []int64           `json:"timestamps"`
	}
	export := func(match string) []sample {
		var out []sample
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, body, err := vm.Get("/api/v1/export", url.Values{"match[]": {match},
				"start": {base.Add(-time.Minute).Format(time.RFC3339)}, "end": {time.Now().Format(time.RFC3339)}})
			require.NoError(t, err)
			require.Equal(t, 200, code, body)
			out = out[:0]
			for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
				if l == "" {
					continue
				}
				var s sample
				require.NoError(t, json.Unmarshal([]byte(l), &s), l)
				out = append(out, s)
			}
			if len(out) > 0 || time.Now().After(deadline) {
				return out
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	for _, field := range []string{"bytes", "packets", "samples"} {
		got := map[string]float64{}
		for _, s := range export(`{__name__="vm_pair_` + field + `"}`) {
			assert.Equal(t, "collector-1", s.Metric["instance"], "%v", s.Metric)
			for i, ts := range s.Timestamps {
				got[time.UnixMilli(ts).UTC().Format(time.RFC3339)+"|"+seriesID(s.Metric)] = s.Values[i]
			}
		}
		want := map[string]float64{}
		for _, win := range wins {
			for id, p := range expectedPoints(win) {
				v := p.fields[field]
				if iv, ok := v.(int64); ok {
					v = float64(iv)
				}
				want[win.End.UTC().Format(time.RFC3339)+"|"+id] = v.(float64)
			}
		}
		require.Len(t, got, len(want), "vm_pair_%s points", field)
		for k, v := range want {
			assert.InDelta(t, v, got[k], 1e-9*v, "vm_pair_%s %s", field, k)
		}
	}
	// PromQL over the written points: the total of one window.
	code, body, err := vm.Get("/api/v1/query", url.Values{"query": {`sum(vm_pair_bytes{instance="collector-1"})`},
		"time": {wins[2].End.Format(time.RFC3339)}, "step": {"10s"}})
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	assert.Contains(t, body, `"resultType":"vector"`)

	// Not served.
	strs := export(`{__name__=~"vm_pair_top_ports|vm_pair_src_ip|vm_pair_dst_ip|vm_info_.*"}`)
	require.NotEmpty(t, strs)
	for _, s := range strs {
		for _, v := range s.Values {
			assert.Zero(t, v, "a string field is stored as 0, its text lost: %v", s.Metric)
		}
	}
	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()
	_, err = r.Windows(t.Context(), base, time.Now())
	require.Error(t, err, "Flux is not served")
	assert.Contains(t, err.Error(), "unsupported path")
	code, body, err = vm.Get("/query", url.Values{"db": {"vmflow"}, "q": {`SELECT sum("bytes") FROM "vm_pair"`}})
	require.NoError(t, err)
	assert.NotContains(t, body, "vm_pair", "InfluxQL SELECT answers no series (status %d)", code)
	t.Logf("InfluxQL answer: %d %s", code, body)
}
