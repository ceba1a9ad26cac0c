package api

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/vmflow/vmflow/internal/scalefx"
	"github.com/vmflow/vmflow/store"
)

// The scale benchmarks: one hour of 200,000 active pairs per 10 s window
// (10,000 VMs) in the memory store at its default tiers, written once and
// shared by the sub-benchmarks.
var scale struct {
	once sync.Once
	srv  *Server
	c    *scalefx.Cloud
}

func scaleServer(b *testing.B) *Server {
	scale.once.Do(func() {
		c := scalefx.New(scalefx.VMs, scalefx.Pairs)
		mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
		end := c.Hour(mem)
		mem.WaitIdle()
		srv, err := New(DefaultConfig(), Deps{Store: mem, Recent: mem, WindowSize: 10 * time.Second,
			Now: func() time.Time { return end.Add(5 * time.Second) }})
		if err != nil {
			b.Fatal(err)
		}
		scale.srv, scale.c = srv, c
	})
	if scale.srv == nil {
		b.Fatal("scale fixture failed")
	}
	return scale.srv
}

func benchGet(b *testing.B, path string) {
	h := scaleServer(b).Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/req")
}

// BenchmarkScale200k: the API at 200,000 active pairs with one hour in
// memory. Targets: pairs over 1 h < 200 ms, over 5 m < 50 ms, one pair's
// series over 1 h < 20 ms.
func BenchmarkScale200k(b *testing.B) {
	b.Run("pairs-1h", func(b *testing.B) { benchGet(b, "/api/v1/pairs?since=1h&limit=50") })
	b.Run("pairs-5m", func(b *testing.B) { benchGet(b, "/api/v1/pairs?since=5m&limit=50") })
	b.Run("pairs-1h-vm", func(b *testing.B) { benchGet(b, "/api/v1/pairs?since=1h&limit=50&vm="+scalefx.VMName(42)) })
	b.Run("series-1h", func(b *testing.B) {
		scaleServer(b)
		s, d := scale.c.PairNames(1234)
		benchGet(b, "/api/v1/pairs/"+s+"/"+d+"/series?since=1h")
	})
	b.Run("vm-series-1h", func(b *testing.B) { benchGet(b, "/api/v1/vms/"+scalefx.VMName(42)+"/series?since=1h") })
}

// BenchmarkScaleConsole200k: the console's routes at their views' default
// ranges (overview 1 h, topology 5 m, pair detail 1 h, capacity 7 days)
// with one hour of 200,000 active pairs in memory. Target:
// < 100 ms each.
func BenchmarkScaleConsole200k(b *testing.B) {
	for _, r := range []struct{ name, path string }{
		{"overview-1h", "/api/v1/overview?since=1h&top=8"},
		{"overview-1h-protocol", "/api/v1/overview?since=1h&top=8&group=protocol"},
		{"graph-5m", "/api/v1/graph?since=5m"},
		{"graph-5m-group", "/api/v1/graph?since=5m&level=group"},
		{"graph-1h-top10", "/api/v1/graph?since=1h&top=10"},
		// The capacity view asks for 7 or 30 days (memory holds the hour:
		// one or two buckets); over 1 h the automatic step is 30 s (120
		// buckets per subject).
		{"capacity-7d-vm", "/api/v1/capacity?since=168h&kind=vm&top=25"},
		{"capacity-7d-pair", "/api/v1/capacity?since=168h&kind=pair&top=25"},
		{"capacity-1h-vm", "/api/v1/capacity?since=1h&kind=vm"},
		{"capacity-1h-pair", "/api/v1/capacity?since=1h&kind=pair"},
	} {
		b.Run(r.name, func(b *testing.B) {
			scaleServer(b)
			cpu0 := cpuTime()
			benchGet(b, r.path)
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
	b.Run("pair-1h", func(b *testing.B) {
		scaleServer(b)
		s, d := scale.c.PairNames(1234)
		cpu0 := cpuTime()
		benchGet(b, "/api/v1/pairs/"+s+"/"+d+"?since=1h")
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	})
}
