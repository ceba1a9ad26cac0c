package aggregate

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
)

func TestHistQuantilesWithinOnePercent(t *testing.T) {
	var h Hist
	vals := make([]uint32, 0, 10000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		v := uint32(50 + r.ExpFloat64()*2000)
		vals = append(vals, v)
		h.Add(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.95, 0.99} {
		exact := float64(vals[int(math.Ceil(q*float64(len(vals))))-1])
		got := h.Quantile(q)
		require.InDelta(t, exact, got, exact*0.011+0.5, "q=%v", q)
	}
	require.Equal(t, float64(vals[0]), h.Quantile(0))
	require.Equal(t, float64(vals[len(vals)-1]), h.Quantile(1))
	require.Equal(t, vals[0], h.Min)
	require.Equal(t, vals[len(vals)-1], h.Max)
	var z Hist
	z.Add(0)
	require.Equal(t, 0.0, z.Quantile(0.5))
}

func TestHistMergeIsExact(t *testing.T) {
	var all, a, b Hist
	for i := uint32(0); i < 5000; i++ {
		v := (i * 7919) % 100000
		all.Add(v)
		if i%3 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
	}
	a.Merge(&b)
	require.Equal(t, all, a)
}

func meas(side, event, outcome uint8, rtt uint32) decoder.Measurement {
	return decoder.Measurement{Exporter: expA, Event: event, Side: side, Outcome: outcome, RTT: rtt,
		SrcMAC: macA1, DstMAC: macB1, SrcIP: ipA1, DstIP: ipB1, SrcPort: 40000, DstPort: 80, Proto: 6,
		Received: time.Now().UnixNano()}
}

func TestMeasurementsAreLatencyNotTraffic(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w := a.NewWorker()
	idx := enr.Index()
	// traffic a1 → b1 (sFlow) and the probe's measurements of a1 → b1
	w.Add(idx, &sample(expA, macA1, macB1, ipA1, ipB1).bytes(1000).Record)
	ms := []decoder.Measurement{
		meas(decoder.ProbeSideClient, decoder.ProbeEventHandshake, decoder.ProbeOutcomeEstablished, 2100),
		meas(decoder.ProbeSideClient, decoder.ProbeEventHandshake, decoder.ProbeOutcomeEstablished, 2300),
		meas(decoder.ProbeSideClient, decoder.ProbeEventHandshake, decoder.ProbeOutcomeRefused, 90),
		meas(decoder.ProbeSideClient, decoder.ProbeEventHandshake, decoder.ProbeOutcomeTimedOut, 0),
		meas(decoder.ProbeSideServer, decoder.ProbeEventHandshake, decoder.ProbeOutcomeEstablished, 100),
		meas(decoder.ProbeSideServer, decoder.ProbeEventHandshake, decoder.ProbeOutcomeEstablished, 120),
		meas(decoder.ProbeSideClient, decoder.ProbeEventClose, decoder.ProbeOutcomeRST, 0),
		meas(decoder.ProbeSideClient, decoder.ProbeEventEcho, decoder.ProbeOutcomeEstablished, 1500),
		meas(decoder.ProbeSideClient, decoder.ProbeEventHandshake, decoder.ProbeOutcomeUnreachable, 700),
	}
	ms[3].Retries = 2
	ms[4].AckRTT, ms[5].AckRTT = 2400, 2600
	w.AddMeasurements(idx, ms)
	win := a.Flush()
	p := pairOf(win, "a1", "b1", decoder.SourceProbe)
	require.NotNil(t, p)
	require.Zero(t, p.Stats.Bytes)
	require.Zero(t, p.Stats.Packets)
	require.Zero(t, p.Stats.Samples)
	tr := pairOf(win, "a1", "b1", decoder.SourceSFlow)
	require.Equal(t, 1000.0, tr.Stats.Bytes)
	require.Nil(t, tr.Stats.Lat)

	l := p.Stats.Lat
	c := l.Counts()
	require.Equal(t, ConnCounts{Attempts: 5, Established: 2, Refused: 1, TimedOut: 1, Unreachable: 1, SYNRetries: 2, RSTClosed: 1, Echoes: 1}, c)
	require.Equal(t, uint64(2), l.Server.Attempts)
	require.InDelta(t, 0.6, l.FailureRatio(), 1e-9)
	require.Equal(t, uint64(2), l.Ack.N, "SYN-ACK → ACK at the server's tap")
	require.InDelta(t, 2500, l.Ack.Mean(), 1e-9)
	require.InDelta(t, 2100, l.Handshake.Quantile(0.5), 21)
	require.InDelta(t, 100, l.Guest.Quantile(0.5), 1)
	n, ok := l.Network(0.5)
	require.True(t, ok)
	require.InDelta(t, 2000, n, 25)
	require.InDelta(t, 1500, l.Echo.Quantile(0.5), 15)

	// Select joins the latency to the selected traffic pair; totals unchanged
	sel := Select(win.Pairs, SelectAuto)
	var bytes float64
	var joined *Pair
	for i := range sel {
		bytes += sel[i].Stats.Bytes
		if sel[i].Key.Src == tr.Key.Src && sel[i].Key.Dst == tr.Key.Dst {
			joined = &sel[i]
		}
		require.NotEqual(t, decoder.SourceProbe, sel[i].Key.Source, "probe pair left alone although traffic exists")
	}
	require.Equal(t, 1000.0, bytes)
	require.NotNil(t, joined.Stats.Lat)
	require.Equal(t, uint64(5), joined.Stats.Lat.Counts().Attempts)
	require.Nil(t, tr.Stats.Lat, "the window's pair was modified")
	require.Equal(t, uint64(len(ms)), a.Totals().Measurements())
}

func TestLatencyMergesAcrossWindows(t *testing.T) {
	var s1, s2, s3 Stats
	s1.Lat, s2.Lat = &Latency{}, &Latency{}
	s1.Lat.Handshake.Add(1000)
	s2.Lat.Handshake.Add(3000)
	s1.Lat.Client.Attempts, s2.Lat.Client.Attempts = 1, 1
	keep := s1.Lat
	s3.Merge(&s1)
	s3.Merge(&s2)
	require.Equal(t, uint64(2), s3.Lat.Handshake.N)
	require.Equal(t, uint64(2), s3.Lat.Client.Attempts)
	require.Equal(t, uint64(1), keep.Handshake.N, "merge modified its input")
	require.Equal(t, uint32(3000), s3.Lat.Handshake.Max)
}

// BenchmarkAddMeasurement: vmflow's per-record latency aggregation
// (attribution + counts + histogram) into an existing pair.
func BenchmarkAddMeasurement(b *testing.B) {
	enr := testEnricher(b)
	a, _, _ := newTestAgg(b, DefaultConfig(), enr)
	w := a.NewWorker()
	idx := enr.Index()
	ms := make([]decoder.Measurement, 256)
	for i := range ms {
		ms[i] = meas(decoder.ProbeSideClient, decoder.ProbeEventHandshake, decoder.ProbeOutcomeEstablished, uint32(800+i*13))
		ms[i].SrcIP = netip.AddrFrom4([4]byte{10, 9, 0, byte(i % 8)})
		ms[i].SrcMAC = [6]byte{2, 0, 0, 0, 0, byte(i % 8)}
	}
	w.AddMeasurements(idx, ms) // warm: pairs and buckets exist
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.AddMeasurements(idx, ms[i%256:i%256+1])
	}
}
