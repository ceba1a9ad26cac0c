package collector

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vmflow/vmflow/collector/blast"
)

// LoopbackResult is one end-to-end run over loopback.
type LoopbackResult struct {
	Sent        blast.Result
	Stats       ListenerStats
	Seconds     float64 // from the first send until the collector drained
	LossPercent float64 // datagrams sent but not handled
	SeqLost     uint64  // lost datagrams per the exporters' sequence numbers
	// CPU time (user+system) of the whole process, sender included, per
	// handled datagram: on a loaded machine the throughput says little,
	// 1e6/CPUMicros is what one dedicated core would carry.
	CPUMicros float64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RunLoopback starts a collector (sFlow on 127.0.0.1:0 with cfg's sFlow
// settings) with handler h, blasts payloads at it with bc (Target is set
// here) and waits until everything sent was handled or dropped, or nothing
// moved for a second. The real decode pipeline plugs in as h.
func RunLoopback(tb testing.TB, cfg Config, h Handler, bc blast.Config, payloads [][]byte) LoopbackResult {
	tb.Helper()
	cfg.SFlow.Listen = "127.0.0.1:0"
	cfg.IPFIX.Listen, cfg.NetFlow9.Listen = "", ""
	c, err := New(cfg, h, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	defer c.Stop()
	bc.Target = c.Addrs()[ProtoSFlow][0].(*net.UDPAddr).AddrPort().String()
	bc.RewriteSFlow = true
	start, cpu0 := time.Now(), cpuTime()
	sent, err := blast.Run(context.Background(), bc, payloads)
	if err != nil {
		tb.Fatal(err)
	}
	var st ListenerStats
	last, lastChange := uint64(0), time.Now()
	for {
		st = c.Stats()[ProtoSFlow]
		done := st.Handled + st.DroppedQueueFull + st.SocketDrops
		if done >= sent.Datagrams && st.Queued == 0 {
			break
		}
		if done != last {
			last, lastChange = done, time.Now()
		} else if time.Since(lastChange) > time.Second {
			break
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start).Seconds()
	cpu := cpuTime() - cpu0
	if st.Queued == 0 {
		// the time spent noticing we are done is not processing time
		el = max(sent.Seconds, el-0.001)
	}
	r := LoopbackResult{Sent: sent, Stats: st, Seconds: el}
	if sent.Datagrams > 0 {
		r.LossPercent = 100 * float64(sent.Datagrams-min(st.Handled, sent.Datagrams)) / float64(sent.Datagrams)
	}
	if st.Handled > 0 {
		r.CPUMicros = float64(cpu.Microseconds()) / float64(st.Handled)
	}
	for _, e := range c.Exporters() {
		r.SeqLost += e.LostDatagrams
	}
	return r
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

// BenchmarkEndToEndLoopback replays the OVS sFlow capture (about 6 samples
// per datagram) over loopback into a collector whose handler reads only the
// sFlow header. One op is one datagram. Sub-benchmarks: "max" sends as fast
// as the sender can, "rate" paces the sender at VMFLOW_E2E_SAMPLES_PER_S
// (default 1,000,000 samples/s). VMFLOW_E2E_SOCKETS sets the sending
// sockets (default 2), VMFLOW_E2E_QUEUE the queue size; VMFLOW_E2E_GSO=0 turns off UDP GSO in the sender
// (on by default: it cuts the sender's CPU, which shares the 2 cores; the
// collector still receives one datagram at a time) and VMFLOW_E2E_GRO=0
// UDP GRO in the collector.
func BenchmarkEndToEndLoopback(b *testing.B) {
	payloads, err := blast.LoadPcap(sflowCapture(b), 6343)
	if err != nil {
		b.Fatal(err)
	}
	sockets := int(envFloat("VMFLOW_E2E_SOCKETS", 2))
	gso := envFloat("VMFLOW_E2E_GSO", 1) != 0
	gro := envFloat("VMFLOW_E2E_GRO", 1) != 0
	for _, bm := range []struct {
		name string
		rate float64 // samples/s
	}{
		{"max", 0},
		{"rate", envFloat("VMFLOW_E2E_SAMPLES_PER_S", 1e6)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			bc := blast.Config{Sockets: sockets, Batch: 64, SampleRate: bm.rate, Count: uint64(b.N), GSO: gso}
			b.ReportAllocs()
			b.ResetTimer()
			cfg := DefaultConfig()
			cfg.SFlow.GRO = gro
			cfg.SFlow.QueueSize = int(envFloat("VMFLOW_E2E_QUEUE", float64(cfg.SFlow.QueueSize)))
			r := RunLoopback(b, cfg, sflowCounter{}, bc, payloads)
			b.StopTimer()
			b.ReportMetric(float64(r.Stats.Handled)/r.Seconds, "dgrams/s")
			b.ReportMetric(float64(r.Stats.Samples)/r.Seconds, "samples/s")
			b.ReportMetric(r.Sent.SamplesPerSec, "sent-samples/s")
			b.ReportMetric(r.LossPercent, "loss-%")
			b.ReportMetric(float64(r.Stats.SocketDrops), "socket-drops")
			b.ReportMetric(float64(r.Stats.DroppedQueueFull), "queue-drops")
			b.ReportMetric(float64(r.SeqLost), "seq-lost")
			b.ReportMetric(r.CPUMicros, "cpu-µs/dgram")
			b.ReportMetric(float64(r.Stats.Coalesced)/float64(max(r.Stats.Received, 1)), "gro-share")
		})
	}
}

// TestEndToEndLoopbackSmall checks the harness itself: a short paced run
// over loopback arrives complete, with sample counts that match what was
// sent and no loss in the sequence numbers.
func TestEndToEndLoopbackSmall(t *testing.T) {
	payloads, err := blast.LoadPcap(sflowCapture(t), 6343)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ gso, gro bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("gso=%v,gro=%v", tc.gso, tc.gro), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SFlow.GRO = tc.gro
			bc := blast.Config{Sockets: 2, Batch: 16, Rate: 20000, Count: 4001, GSO: tc.gso}
			r := RunLoopback(t, cfg, sflowCounter{}, bc, payloads)
			if r.Sent.Datagrams != 4001 || r.Stats.Handled != 4001 || r.Stats.Received != 4001 {
				t.Fatalf("sent %d handled %d (stats %+v)", r.Sent.Datagrams, r.Stats.Handled, r.Stats)
			}
			if r.Stats.Samples != r.Sent.Samples || r.Stats.Bytes != r.Sent.Bytes {
				t.Fatalf("handled %d samples %d bytes, sent %d samples %d bytes", r.Stats.Samples, r.Stats.Bytes, r.Sent.Samples, r.Sent.Bytes)
			}
			if r.SeqLost != 0 {
				t.Fatalf("sequence loss %d on a lossless run", r.SeqLost)
			}
			if !tc.gro && r.Stats.Coalesced != 0 {
				t.Fatalf("%d datagrams coalesced without GRO", r.Stats.Coalesced)
			}
			if tc.gro && tc.gso && r.Stats.Coalesced == 0 {
				t.Fatalf("GSO sends to a GRO socket on loopback arrived uncoalesced: the split path was not exercised")
			}
		})
	}
}
