package alert

import (
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

const (
	benchVMs   = 10_000
	benchPeers = 20 // per VM: 200,000 directed pairs
)

// benchWindows are two windows of 200,000 pairs between 10,000 VMs with
// different noise, TCP with answered SYNs and two top ports per pair.
func benchWindows() [2]*aggregate.Window {
	var ws [2]*aggregate.Window
	for k := range ws {
		w := &aggregate.Window{Pairs: make([]aggregate.Pair, 0, benchVMs*benchPeers)}
		for i := 1; i <= benchVMs; i++ {
			for j := 1; j <= benchPeers; j++ {
				d := (i+j*37)%benchVMs + 1
				p := pair(i, d, float64(100_000+(i*j+k*7919)%20_000))
				p.Stats.SYN, p.Stats.SYNACK = 2, 2
				p.Stats.Flows = 3
				p.Stats.TopPorts[0] = aggregate.PortCount{Proto: 6, Port: 443, Bytes: 1}
				p.Stats.TopPorts[1] = aggregate.PortCount{Proto: 6, Port: uint16(1024 + j), Bytes: 1}
				w.Pairs = append(w.Pairs, p)
			}
			w.DstPorts = append(w.DstPorts, aggregate.VMPorts{VM: enrich.VMID(i), Source: decoder.SourceSFlow, Ports: benchPeers + 1})
		}
		ws[k] = w
	}
	return ws
}

func benchEngine(b *testing.B, clock *time.Time) *Engine {
	b.Helper()
	reg := prometheus.NewRegistry()
	exps := make([]collector.ExporterStatus, 500)
	cfg := DefaultConfig()
	e, err := New(cfg, Deps{Registerer: reg, Gatherer: reg, Exporters: func() []collector.ExporterStatus {
		for i := range exps {
			exps[i] = collector.ExporterStatus{Protocol: "sflow", Address: "10.1.0.1:6343", Agent: "10.1." + itoa(i/256) + "." + itoa(i%256),
				Datagrams: 1000, LastSeen: *clock}
		}
		return exps
	}})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkEvaluate: one window of 200,000 active pairs and 10,000 VMs
// under the default rule pack, in steady state (baselines warmed up, peers
// learned). Reports ns per window and allocations per pair.
func BenchmarkEvaluate(b *testing.B) {
	ws := benchWindows()
	var clock time.Time
	e := benchEngine(b, &clock)
	at := time.Now().Truncate(10 * time.Second)
	step := func(i int) {
		w := ws[i%2]
		w.Start, w.End = at.Add(time.Duration(i)*10*time.Second), at.Add(time.Duration(i+1)*10*time.Second)
		clock = w.End
		e.Evaluate(w)
	}
	for i := 0; i < 35; i++ { // past the 30-window warm-up
		step(i)
	}
	if n := len(e.Alerts(AlertFilter{})); n != 0 {
		b.Fatalf("steady traffic raised %d alerts: %+v", n, e.Alerts(AlertFilter{})[0])
	}
	b.ReportAllocs()
	b.ResetTimer()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for i := 0; i < b.N; i++ {
		step(35 + i)
	}
	runtime.ReadMemStats(&ms1)
	b.StopTimer()
	pairs := float64(benchVMs * benchPeers)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/window")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N)/pairs, "allocs/pair")
	b.ReportMetric(float64(e.st.series.len()), "series")
}

// BenchmarkBaselineSeriesMemory: heap bytes per dynamic-baseline series
// (state + map key + map overhead), for 200,000 and 1,000,000 series.
func BenchmarkBaselineSeriesMemory(b *testing.B) {
	for _, n := range []int{200_000, 1_000_000} {
		b.Run(itoa(n), func(b *testing.B) {
			var per float64
			for i := 0; i < b.N; i++ {
				per = seriesHeap(n)
			}
			b.ReportMetric(per, "B/series")
		})
	}
}

func seriesHeap(n int) float64 {
	rules, _ := ParseRules([]byte("rules:\n  - name: b\n    kind: baseline\n    subject: pair\n    signal: bps\n    severity: P2\n"))
	cfg := DefaultConfig()
	cfg.MaxSeries = n
	e, _ := New(cfg, Deps{})
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var c cond
	now := time.Now()
	for i := 0; i < n; i++ {
		e.baseline(rules[0], combine(1, uint64(i)), 1, now, &c)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	runtime.KeepAlive(e)
	return float64(ms1.HeapAlloc-ms0.HeapAlloc) / float64(n)
}
