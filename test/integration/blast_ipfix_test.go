package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/collector/blast"
)

// ipfixExporters are the four exporters of the IPFIX replays: one sending
// socket per loopback address, since exporters are told apart by address.
var ipfixExporters = []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}

// ipfixBlastConfig is the replay of the IPFIX runs: real OVS 3.1 messages
// (one flow record each, as OVS sends them at sampling=1), each exporter
// sending the templates first, paced at rate flow records per second over
// all four, without GSO (OVS sends one message per system call, so the
// receiver gets no coalesced buffers either).
func ipfixBlastConfig(target string, rate float64, d time.Duration) blast.Config {
	return blast.Config{
		Target: target, Sockets: len(ipfixExporters), Sources: ipfixExporters,
		Batch: 64, SampleRate: rate, Duration: d, RewriteIPFIX: true,
	}
}

// runSenderProcess runs blast.Run with bc in a child process (this test
// binary again, see TestBlastSenderChild), so that the CPU it spends is not
// in this process's getrusage(RUSAGE_SELF). It returns what was sent and
// the sender's own CPU time.
func runSenderProcess(t *testing.T, bc blast.Config, pcap string, port uint16) (blast.Result, time.Duration) {
	t.Helper()
	cfg, err := json.Marshal(bc)
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "sent.json")
	abs, err := filepath.Abs(pcap)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBlastSenderChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"VMFLOW_BLAST_CHILD_CONFIG="+string(cfg),
		"VMFLOW_BLAST_CHILD_PCAP="+abs,
		"VMFLOW_BLAST_CHILD_PORT="+strconv.Itoa(int(port)),
		"VMFLOW_BLAST_CHILD_OUT="+out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "sender: %s", b)
	raw, err := os.ReadFile(out)
	require.NoError(t, err, "sender wrote no result: %s", b)
	var res blast.Result
	require.NoError(t, json.Unmarshal(raw, &res))
	return res, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// TestBlastSenderChild is the sender process of runSenderProcess; it does
// nothing when run by go test itself.
func TestBlastSenderChild(t *testing.T) {
	cfgJSON := os.Getenv("VMFLOW_BLAST_CHILD_CONFIG")
	if cfgJSON == "" {
		t.Skip("the sender process of the blast runs")
	}
	var bc blast.Config
	require.NoError(t, json.Unmarshal([]byte(cfgJSON), &bc))
	port, err := strconv.Atoi(os.Getenv("VMFLOW_BLAST_CHILD_PORT"))
	require.NoError(t, err)
	payloads, err := blast.LoadPcap(os.Getenv("VMFLOW_BLAST_CHILD_PCAP"), uint16(port))
	require.NoError(t, err)
	res, err := blast.Run(context.Background(), bc, payloads)
	require.NoError(t, err)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(os.Getenv("VMFLOW_BLAST_CHILD_OUT"), b, 0o644))
}

// TestBlastIPFIX is the IPFIX end-to-end run of `make bench` (beside the
// sFlow TestBlast): vmflow runs in this process with the whole pipeline
// (collector, decoder, inventory lookups, counting rule, aggregation,
// memory store, API); real OVS 3.1 IPFIX messages from testdata/ovs-lab-1
// (one flow record each) are replayed over loopback from four exporters,
// templates first, by a sender in a child process, at 100,000, 200,000 and
// 400,000 flow records/s (VMFLOW_BLAST_IPFIX_RATES, comma-separated) for
// VMFLOW_BLAST_SECONDS (default 5) each. It prints records/s processed,
// loss, and vmflow's CPU per record: getrusage(RUSAGE_SELF) of this
// process over the run, which does not include the sender (another
// process, reported apart) but does include the kernel's receive work done
// in vmflow's system calls. VMFLOW_BLAST_CPUPROFILE=FILE writes a CPU
// profile of the runs.
func TestBlastIPFIX(t *testing.T) {
	if os.Getenv("VMFLOW_BLAST") != "1" {
		t.Skip("set VMFLOW_BLAST=1 (make blast)")
	}
	secs := envFloat("VMFLOW_BLAST_SECONDS", 5)
	rates := []float64{100e3, 200e3, 400e3}
	if v := os.Getenv("VMFLOW_BLAST_IPFIX_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			require.NoError(t, err)
			rates = append(rates, r)
		}
	}
	if p := os.Getenv("VMFLOW_BLAST_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		require.NoError(t, err)
		require.NoError(t, pprof.StartCPUProfile(f))
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	for _, rate := range rates {
		t.Run(fmt.Sprintf("paced-%.0fk", rate/1000), func(t *testing.T) {
			cfg, _, err := app.Load("", []string{
				"VMFLOW_LOG_LEVEL=warn",
				"VMFLOW_COLLECTOR_SFLOW_LISTEN=",
				"VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:0",
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

			bc := ipfixBlastConfig("127.0.0.1:"+strconv.Itoa(a.ListenPort(collector.ProtoIPFIX)), rate,
				time.Duration(secs*float64(time.Second)))
			cpu0, start := selfCPU(), time.Now()
			sent, senderCPU := runSenderProcess(t, bc, ipfixCapture, 4739)
			st := drainProto(a, collector.ProtoIPFIX, sent.Datagrams)
			el := time.Since(start).Seconds()
			cpu := selfCPU() - cpu0

			decoded := ipfixRecordsDecoded(t, a)
			lost := int64(sent.Samples) - int64(decoded)
			var seqLost uint64
			for _, e := range a.Collector().Exporters() {
				seqLost += e.LostRecords
			}
			t.Logf("blast ipfix %-12s sent %9d records (%7.0f/s) | processed %7.0f records/s | loss %.3f%% (socket %d, queue %d, seq-lost records %d) | decode errors %d | vmflow CPU %.2f µs/record = %.0f records per CPU-second (sender apart: %.2f µs/record)",
				fmt.Sprintf("paced-%.0fk", rate/1000), sent.Samples, sent.SamplesPerSec,
				float64(decoded)/el, 100*float64(lost)/float64(max(sent.Samples, 1)),
				st.SocketDrops, st.DroppedQueueFull, seqLost, st.DroppedDecodeError,
				float64(cpu.Nanoseconds())/1e3/float64(max(decoded, 1)),
				float64(decoded)/cpu.Seconds(),
				float64(senderCPU.Nanoseconds())/1e3/float64(max(sent.Samples, 1)))
			assert.NotZero(t, decoded)
			assert.Zero(t, st.DroppedDecodeError, "real OVS messages must decode")
		})
	}
}

// selfCPU is this process's CPU time (user+system), children excluded.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drainProto waits until the collector handled or dropped everything sent
// to listener p, or nothing moved for a second.
func drainProto(a *app.App, p collector.Protocol, sent uint64) collector.ListenerStats {
	var st collector.ListenerStats
	last, lastChange := uint64(0), time.Now()
	for {
		st = a.Collector().Stats()[p]
		done := st.Handled + st.DroppedQueueFull + st.SocketDrops
		if done >= sent && st.Queued == 0 {
			return st
		}
		if done != last {
			last, lastChange = done, time.Now()
		} else if time.Since(lastChange) > time.Second {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}

// ipfixRecordsDecoded is every IPFIX flow record vmflow decoded: those
// kept plus those skipped by direction (OVS reports each packet at ingress
// and at egress; decoder.flow.directions keeps one).
func ipfixRecordsDecoded(t *testing.T, a *app.App) uint64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	require.NoError(t, err)
	var n float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "vmflow_decoder_flow_records_total", "vmflow_decoder_flow_direction_skipped_total":
			for _, m := range mf.GetMetric() {
				if labelIs(m, "source", "ipfix") {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return uint64(n)
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}
