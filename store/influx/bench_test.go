package influx

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/testenv/influxd"
)

// benchWindow has n pairs between n/4 VMs on 8 hosts plus 5% external
// endpoints.
func benchWindow(n int, end time.Time) *aggregate.Window {
	w := &aggregate.Window{Start: end.Add(-10 * time.Second), End: end}
	vms := n/4 + 2
	for i := 0; i < n; i++ {
		var p aggregate.Pair
		s := i % vms
		d := (s + 1 + i/vms) % vms
		p.Key.Src = aggregate.EndpointKey{VM: enrich.VMID(s + 1)}
		p.Src = aggregate.Endpoint{VM: fmt.Sprintf("vm-%05d", s), UUID: fmt.Sprintf("uuid-%05d", s), Host: fmt.Sprintf("hv%d", s%8), Tenant: fmt.Sprintf("t%d", s%20), MAC: "52:54:00:00:00:01"}
		if i%20 == 19 {
			ip := netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
			p.Key.Dst = aggregate.EndpointKey{IP: ip}
			p.Dst = aggregate.Endpoint{IP: ip.String()}
		} else {
			p.Key.Dst = aggregate.EndpointKey{VM: enrich.VMID(d + 1)}
			p.Dst = aggregate.Endpoint{VM: fmt.Sprintf("vm-%05d", d), UUID: fmt.Sprintf("uuid-%05d", d), Host: fmt.Sprintf("hv%d", d%8), Tenant: fmt.Sprintf("t%d", d%20), MAC: "52:54:00:00:00:02"}
		}
		p.Key.Source = decoder.SourceSFlow
		p.Stats = mkStats(float64(i%1000+1), "10.0.0.1", "10.0.0.2")
		w.Pairs = append(w.Pairs, p)
	}
	return w
}

// BenchmarkEncodeWindow encodes a 10,000-pair window (vm_pair and vm
// points) into line protocol; reports points/s and bytes/point.
func BenchmarkEncodeWindow(b *testing.B) {
	win := benchWindow(10_000, time.Unix(1_700_000_000, 0))
	e := newEncoder()
	buf := make([]byte, 0, 16<<20)
	points := 0
	// warm up: the encoder's maps and buffers reach their steady size
	e.prepare(win)
	for j := range e.pairs {
		buf = e.appendPair(buf, j)
	}
	for j := range e.vms {
		buf = e.appendVM(buf, j)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		buf = buf[:0]
		e.prepare(win)
		for j := range e.pairs {
			buf = e.appendPair(buf, j)
		}
		for j := range e.vms {
			buf = e.appendVM(buf, j)
		}
		points += len(e.pairs) + len(e.vms)
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(points), "cpu-ns/point")
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(points), "ns/point")
	b.ReportMetric(float64(len(buf))/float64(len(e.pairs)+len(e.vms)), "bytes/point")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteThroughput streams 2,000-pair windows through the Writer
// into a real influxd (gzip on) and waits until InfluxDB accepted every
// point; reports points/s and the writer process's CPU per point.
func BenchmarkWriteThroughput(b *testing.B) {
	const db = "vmflow_bench"
	srv := influxd.Shared(b)
	srv.CreateDatabase(b, db)
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.URL = srv.URL()
	cfg.Bucket = db + "/autogen"
	cfg.Spool.Dir = b.TempDir()
	cfg.SelfInterval = 0
	w, err := NewWriter(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	base := time.Now().Add(-24 * time.Hour).Truncate(10 * time.Second)
	wins := make([]*aggregate.Window, 8)
	for i := range wins {
		wins[i] = benchWindow(2_000, base)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		win := *wins[i%len(wins)]
		win.End = base.Add(time.Duration(i) * 10 * time.Second)
		win.Start = win.End.Add(-10 * time.Second)
		w.Write(&win)
	}
	var want float64
	for {
		want = testutil.ToFloat64(w.m.encodedPoints)
		h := w.Health()
		if len(w.in) == 0 && testutil.ToFloat64(w.m.pointsWritten)+testutil.ToFloat64(w.m.replayedPoints) >= want && h["queue_batches"] == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	w.Stop()
	b.ReportMetric(want/el.Seconds(), "points/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/want, "cpu-ns/point")
}
