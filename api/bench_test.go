package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// BenchmarkPairsHour: GET /api/v1/pairs?since=1h over one hour of 10 s
// windows (360) with 2,000 pairs each (720,000 pairs visited per request).
func BenchmarkPairsHour(b *testing.B) {
	const windows, pairs = 360, 2000
	mem := store.NewMemory(store.MemoryConfig{Retention: 2 * time.Hour, MaxPairs: windows * pairs}, nil)
	for i := 0; i < windows; i++ {
		w := &aggregate.Window{Start: T.Add(time.Duration(i) * 10 * time.Second), End: T.Add(time.Duration(i+1) * 10 * time.Second)}
		for p := 0; p < pairs; p++ {
			src := enrich.VMID(p%500 + 1)
			w.Pairs = append(w.Pairs, aggregate.Pair{
				Key: aggregate.PairKey{Src: aggregate.EndpointKey{VM: src}, Dst: aggregate.EndpointKey{IP: netip.AddrFrom4([4]byte{10, 9, byte(p >> 8), byte(p)})}, Source: decoder.SourceSFlow},
				Src: aggregate.Endpoint{VM: "vm"}, Stats: aggregate.Stats{Bytes: 1000, Packets: 10, Samples: 1, BytesVar: 1e6},
			})
		}
		mem.Write(w)
	}
	srv, err := New(DefaultConfig(), Deps{Store: mem, Now: func() time.Time { return T.Add(time.Duration(windows) * 10 * time.Second) }})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/pairs?since=1h", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(windows*pairs), "ns/pair-visited")
}
