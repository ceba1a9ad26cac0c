package peer

import (
	"bytes"
	"testing"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/internal/scalefx"
)

// BenchmarkEncodeWindow200k: the size and cost of one 200,000-pair window
// on /peer/v1/windows (what a query node fetches per recent window).
func BenchmarkEncodeWindow200k(b *testing.B) {
	w := scalefx.New(10_000, 200_000).Window(0)
	var buf bytes.Buffer
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := EncodeWindows(&buf, []*aggregate.Window{w}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len())/float64(len(w.Pairs)), "bytes/pair")
	b.ReportMetric(float64(time.Since(t0).Nanoseconds())/float64(b.N)/float64(len(w.Pairs)), "ns/pair")
}
