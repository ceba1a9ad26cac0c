package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/collector/blast"
)

// TestBlast is the end-to-end throughput run of `make bench`: vmflow runs
// in-process with the whole pipeline (collector, decoder, enrichment with
// the ovs-lab-1 inventory, aggregation, memory store, API), and real OVS
// sFlow datagrams (testdata/ovs-lab-1, about 6 samples each) are replayed
// over loopback, first as fast as the sender can for VMFLOW_BLAST_SECONDS
// (default 5), then paced at 1,000,000 and 1,250,000 samples/s (or
// VMFLOW_BLAST_SAMPLES_PER_S). It prints samples/s processed and the loss. The sender runs
// in the same process and shares the cores.
//
// It runs only with VMFLOW_BLAST=1 (make bench / make blast): it is a
// measurement, and it saturates the machine.
func TestBlast(t *testing.T) {
	if os.Getenv("VMFLOW_BLAST") != "1" {
		t.Skip("set VMFLOW_BLAST=1 (make blast)")
	}
	payloads, err := blast.LoadPcap("../../testdata/ovs-lab-1/ovs-sflow16.pcapng", 6343)
	require.NoError(t, err)
	secs := envFloat("VMFLOW_BLAST_SECONDS", 5)
	paces := []float64{1e6, 1.25e6}
	if v := envFloat("VMFLOW_BLAST_SAMPLES_PER_S", 0); v > 0 {
		paces = []float64{v}
	}

	type mode struct {
		name string
		rate float64 // samples/s, 0 = max
	}
	modes := []mode{{"max", 0}}
	for _, p := range paces {
		modes = append(modes, mode{fmt.Sprintf("paced-%.0fk", p/1000), p})
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cfg, _, err := app.Load("", []string{
				"VMFLOW_LOG_LEVEL=warn",
				"VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:0",
				"VMFLOW_COLLECTOR_IPFIX_LISTEN=",
				"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=",
				"VMFLOW_API_LISTEN=127.0.0.1:0",
				"VMFLOW_ENRICH_STATIC_FILE=../../configs/inventory.yaml",
				"VMFLOW_AGGREGATE_WINDOW=1s",
			})
			require.NoError(t, err)
			a, err := app.New(cfg, cfg.Log.NewLogger(testLogWriter{t}))
			require.NoError(t, err)
			require.NoError(t, a.Start(context.Background()))
			defer a.Stop()

			bc := blast.Config{
				Target:       "127.0.0.1:" + strconv.Itoa(a.ListenPort(collector.ProtoSFlow)),
				Sockets:      2,
				Batch:        64,
				SampleRate:   mode.rate,
				Duration:     time.Duration(secs * float64(time.Second)),
				RewriteSFlow: true,
				GSO:          true,
			}
			cpu0, start := cpuTime(), time.Now()
			sent, err := blast.Run(context.Background(), bc, payloads)
			require.NoError(t, err)
			st := drain(a, sent.Datagrams)
			el := time.Since(start).Seconds()
			cpu := cpuTime() - cpu0

			loss := 100 * float64(sent.Datagrams-min(st.Handled, sent.Datagrams)) / float64(max(sent.Datagrams, 1))
			var seqLost uint64
			for _, e := range a.Collector().Exporters() {
				seqLost += e.LostDatagrams
			}
			t.Logf("blast %-12s sent %9d datagrams (%10.0f samples/s) | processed %10.0f samples/s (%8.0f dgrams/s) | loss %.3f%% (socket %d, queue %d, seq-lost %d) | decode errors %d | CPU %.2f µs/datagram, sender included",
				mode.name, sent.Datagrams, sent.SamplesPerSec,
				float64(st.Samples)/el, float64(st.Handled)/el,
				loss, st.SocketDrops, st.DroppedQueueFull, seqLost, st.DroppedDecodeError,
				float64(cpu.Microseconds())/float64(max(st.Handled, 1)))
			assert.NotZero(t, st.Handled)
			assert.Zero(t, st.DroppedDecodeError, "real OVS datagrams must decode")
		})
	}
}

// drain waits until the collector handled or dropped everything sent, or
// nothing moved for a second.
func drain(a *app.App, sent uint64) collector.ListenerStats {
	return drainProto(a, collector.ProtoSFlow, sent)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}
