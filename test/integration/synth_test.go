package integration

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/internal/synth"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// TestSynthTruth: the synthetic cloud (real sFlow and IPFIX datagrams over
// loopback, 6 hypervisors each from its own 127.x address, bursts, a scan,
// new pairs, destination-side samples) through the whole in-process vmflow,
// compared with the generator's ground truth per directed pair:
//
//   - sFlow: exactly the samples taken at the source's bridge (the
//     destination-side samples suppressed by the count-once rule, and
//     counted as suppressed), bytes exactly N × the sampled frame bytes, and
//     the true bytes inside the reported 95% interval as often as a
//     calibrated interval allows (pairs with >= 50 samples; every pair inside
//     a Bonferroni-corrected bound, misses of the 95% one within the binomial
//     allowance at 0.5%), and the total inside its interval;
//   - IPFIX: packets and bytes exactly the truth;
//   - no pair the truth does not have, no exporter with loss or errors.
func TestSynthTruth(t *testing.T) {
	cfg := synth.DemoConfig()
	cfg.Seed = 11
	cfg.IPFIXInterval = time.Second
	cfg.BurstEvery, cfg.BurstFor = 2*time.Second, time.Second
	cfg.ScanEvery, cfg.ScanFor = 2*time.Second, 1500*time.Millisecond
	cfg.NewPairEvery = time.Second
	cfg.CounterInterval = 2 * time.Second
	c, err := synth.Build(cfg)
	require.NoError(t, err)
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	f, err := os.Create(inv)
	require.NoError(t, err)
	require.NoError(t, c.WriteInventory(f))
	require.NoError(t, f.Close())

	const window = time.Second
	a := startVMFlow(t, inv, window)
	cfg.SFlowTarget = fmt.Sprintf("127.0.0.1:%d", a.ListenPort(collector.ProtoSFlow))
	cfg.IPFIXTarget = fmt.Sprintf("127.0.0.1:%d", a.ListenPort(collector.ProtoIPFIX))
	sink, err := synth.NewUDPSink(c, cfg.SFlowTarget, cfg.IPFIXTarget, cfg.Batch, cfg.MaxDatagram)
	require.NoError(t, err)
	defer sink.Close()
	g := synth.New(c, cfg, sink, time.Now())
	require.NoError(t, synth.Run(context.Background(), g, 5*time.Second, 0))
	require.NoError(t, sink.Err())
	st := g.Stats()
	t.Logf("sent: %+v", st)
	require.Positive(t, st.Scans)
	require.Positive(t, st.Bursts)
	require.Positive(t, st.NewPairs)
	waitSettled(t, a, window)

	sf := pairs(t, a, "sflow")
	ix := pairs(t, a, "ipfix")
	truth := map[ovslab.Pair]synth.PairTruth{}
	var dup uint64
	kinds := map[string]int{}
	for _, p := range g.Truth() {
		truth[ovslab.Pair{Src: p.Src, Dst: p.Dst}] = p
		dup += p.DupSamples
		kinds[p.Kind]++
	}
	t.Logf("truth: %d pairs by kind %v; vmflow: %d sFlow pairs, %d IPFIX pairs", len(truth), kinds, len(sf), len(ix))
	N := float64(cfg.SamplingRate)
	var checked, outside95 int
	var outsideWho []string
	var estTotal, truthTotal, varTotal float64
	type ci struct {
		p      ovslab.Pair
		lo, hi float64
		truth  float64
		mid    float64
	}
	var intervals []ci
	for k, tr := range truth {
		if tr.SFlowSamples > 0 {
			got, ok := sf[k]
			if !assert.True(t, ok, "sFlow: pair %s (%d samples, %s) missing", k, tr.SFlowSamples, tr.Kind) {
				continue
			}
			assert.Equal(t, tr.SFlowSamples, got.Samples, "sFlow: samples of %s", k)
			assert.InDelta(t, N*float64(tr.SampledBytes), got.Bytes, 0.5, "sFlow: bytes of %s = N × sampled bytes", k)
			estTotal += got.Bytes
			truthTotal += float64(tr.SFlowBytes)
			varTotal += math.Pow((got.BytesCI95[1]-got.Bytes)/1.96, 2)
			if tr.SFlowSamples >= 50 {
				checked++
				intervals = append(intervals, ci{k, got.BytesCI95[0], got.BytesCI95[1], float64(tr.SFlowBytes), got.Bytes})
				if tb := float64(tr.SFlowBytes); tb < got.BytesCI95[0] || tb > got.BytesCI95[1] {
					outside95++
					outsideWho = append(outsideWho, fmt.Sprintf("%s truth %d not in [%.0f, %.0f] (%d samples)", k, tr.SFlowBytes, got.BytesCI95[0], got.BytesCI95[1], tr.SFlowSamples))
				}
			}
		}
		if tr.IPFIX && tr.IPFIXPackets > 0 {
			got, ok := ix[k]
			if assert.True(t, ok, "IPFIX: pair %s (%d packets, %s) missing", k, tr.IPFIXPackets, tr.Kind) {
				assert.Equal(t, float64(tr.IPFIXPackets), got.Packets, "IPFIX: packets of %s", k)
				assert.Equal(t, float64(tr.IPFIXBytes), got.Bytes, "IPFIX: bytes of %s", k)
			}
		}
	}
	for k, p := range sf {
		tr, ok := truth[k]
		assert.True(t, ok && tr.SFlowSamples > 0, "sFlow: pair %s (%d samples) reported but not sent", k, p.Samples)
	}
	for k := range ix {
		tr, ok := truth[k]
		assert.True(t, ok && tr.IPFIX && tr.IPFIXPackets > 0, "IPFIX: pair %s reported but not sent", k)
	}
	// every checked pair inside a bound that a correct vmflow leaves with
	// probability < 0.5% over all of them (Bonferroni), and the 95% misses
	// within the binomial allowance
	require.Positive(t, checked)
	z := math.Sqrt2 * math.Erfinv(1-0.005/float64(checked))
	for _, c := range intervals {
		half := (c.hi - c.lo) / 2 * z / 1.96
		assert.True(t, c.truth >= c.mid-half && c.truth <= c.mid+half,
			"sFlow: pair %s truth %.0f outside even the ±%.2fσ bound around %.0f (95%%: [%.0f, %.0f])", c.p, c.truth, z, c.mid, c.lo, c.hi)
	}
	allowed := allowedMisses(checked, 0.05, 0.005)
	assert.LessOrEqual(t, outside95, allowed, "sFlow: truth outside the 95%% interval for %d of %d pairs: %v", outside95, checked, outsideWho)
	sigma := math.Sqrt(varTotal)
	assert.InDelta(t, truthTotal, estTotal, 3.5*sigma, "sFlow: total estimate vs truth (σ %.0f)", sigma)
	t.Logf("sFlow: %d pairs with >= 50 samples, %d outside their 95%% interval (allowed %d); total estimate %.0f, truth %.0f (%+.2f σ)",
		checked, outside95, allowed, estTotal, truthTotal, (estTotal-truthTotal)/sigma)

	// the destination-side samples were seen and not counted
	assert.Positive(t, dup)
	assert.Equal(t, float64(dup), metricSum(t, a, "vmflow_aggregate_suppressed_total"), "suppressed = destination-side samples")
	for _, e := range exporters(t, a) {
		assert.Zero(t, e.LostDatagrams+e.LostRecords, "exporter %s %s lost data", e.Protocol, e.Address)
		assert.Zero(t, e.DecodeErrors, "exporter %s %s decode errors", e.Protocol, e.Address)
	}
	if t.Failed() {
		logIngest(t, a)
	}
}
