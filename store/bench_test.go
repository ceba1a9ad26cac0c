package store

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vmflow/vmflow/internal/scalefx"
)

// BenchmarkMemoryWrite200k: one 200,000-pair window written to the memory
// store (encoding into its compact form; the tier merges it triggers run
// in the background and compete for the CPU). This is the memory store's
// share of a window close.
func BenchmarkMemoryWrite200k(b *testing.B) {
	c := scalefx.New(scalefx.VMs, scalefx.Pairs)
	m := NewMemory(DefaultMemoryConfig(), nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Write(c.Window(i))
	}
	b.StopTimer()
	m.WaitIdle()
}

// BenchmarkMemoryHour200k: the heap the memory store holds with one hour
// of 200,000 active pairs per 10 s window at the default tiers (run it
// with -benchtime=1x: each iteration writes the whole hour). The hour
// query covers at least 360 windows: the oldest 10-minute bucket may
// reach a little further back.
func BenchmarkMemoryHour200k(b *testing.B) {
	c := scalefx.New(scalefx.VMs, scalefx.Pairs)
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := NewMemory(DefaultMemoryConfig(), nil)
		end := c.Hour(m)
		m.WaitIdle()
		runtime.GC()
		runtime.ReadMemStats(&after)
		segs, rows := m.Len()
		held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(held/1e6, "MB-held")
		b.ReportMetric(held/float64(rows), "B/row")
		b.ReportMetric(float64(rows), "rows")
		b.ReportMetric(float64(segs), "windows")
		if o := m.Oldest(); o.After(end.Add(-time.Hour)) {
			b.Fatalf("memory covers from %s, not the hour before %s", o, end)
		}
		ws, err := m.TopPairs(context.Background(), PairQuery{From: end.Add(-time.Hour), To: end, Auto: true, Limit: 1})
		if err != nil || ws.Windows < 360 || ws.Total != scalefx.Pairs {
			b.Fatalf("hour query: %+v %v", ws, err)
		}
		runtime.KeepAlive(m)
	}
}
