package api

import (
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// BenchmarkConsoleRoutes: the console's aggregate routes over one 10 s
// window holding 200,000 active pairs among 10,000 VMs (100 hosts, 10
// tenants). Cost grows with the pairs of the range's windows.
func BenchmarkConsoleRoutes(b *testing.B) {
	const pairs, vms = 200_000, 10_000
	mem := store.NewMemory(store.MemoryConfig{Retention: time.Hour, MaxPairs: 2 * pairs}, nil)
	w := &aggregate.Window{Start: T, End: T.Add(10 * time.Second)}
	name := func(i int) aggregate.Endpoint {
		return aggregate.Endpoint{VM: "vm-" + itoa(i), Host: "hv" + itoa(i%100), Tenant: "t" + itoa(i%10)}
	}
	for p := 0; p < pairs; p++ {
		s, d := p%vms, (p*7+p/vms+1)%vms
		st := aggregate.Stats{Bytes: float64(1000 + p%977), Packets: 10, Samples: 1, Flows: 1, TCPBytes: 1000, TCPPackets: 10}
		w.Pairs = append(w.Pairs, aggregate.Pair{
			Key: aggregate.PairKey{Src: aggregate.EndpointKey{VM: enrich.VMID(s + 1)}, Dst: aggregate.EndpointKey{VM: enrich.VMID(d + 1)}, Source: decoder.SourceSFlow},
			Src: name(s), Dst: name(d), Stats: st,
		})
	}
	mem.Write(w)
	srv, err := New(DefaultConfig(), Deps{Store: mem, WindowSize: 10 * time.Second, Now: func() time.Time { return T.Add(10 * time.Second) }})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, u := range []string{
		"/api/v1/overview?since=10s", "/api/v1/graph?since=10s", "/api/v1/graph?since=10s&level=group",
		"/api/v1/overview?since=10s&group=protocol", "/api/v1/overview?since=10s&tenant=t3",
		"/api/v1/graph?since=10s&vm=vm-1", "/api/v1/graph?since=10s&level=group&group=tenant&expand=t1",
		"/api/v1/capacity?since=10s&kind=vm", "/api/v1/capacity?since=10s&kind=pair", "/api/v1/pairs?since=10s",
		"/api/v1/pairs/vm-0/vm-1?since=10s", "/api/v1/pairs/vm-0/vm-1/series?since=10s", "/api/v1/vms/vm-1/series?since=10s",
		"/api/v1/vms", "/api/v1/exporters", "/api/v1/health",
	} {
		b.Run(u, func(b *testing.B) {
			b.ReportAllocs()
			runtime.GC()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", u, nil))
				if rec.Code != 200 {
					b.Fatal(rec.Code, rec.Body.String())
				}
			}
			b.StopTimer()
			// CPU time per request (GC included): steadier than the wall
			// clock on a shared machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
