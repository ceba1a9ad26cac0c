package aggregate

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

func TestWilson(t *testing.T) {
	// Reference values (Wilson score interval, z = 1.96).
	lo, hi := Wilson(8, 10)
	assert.InDelta(t, 0.4902, lo, 1e-4)
	assert.InDelta(t, 0.9433, hi, 1e-4)
	lo, hi = Wilson(0, 20)
	assert.Equal(t, 0.0, lo)
	assert.InDelta(t, 0.1611, hi, 1e-4)
	lo, hi = Wilson(0, 0)
	assert.Equal(t, [2]float64{0, 1}, [2]float64{lo, hi})
}

// TestConnHealthFromWindow: a client's SYNs to a server, answered by
// SYN-ACKs for some and RSTs for others on the reverse pair, give the
// failure and refused ratios with intervals that cover the truth.
func TestConnHealthFromWindow(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w := a.NewWorker()
	idx := enr.Index()
	// 1-in-1: 100 SYNs a1 -> a2, 70 SYN-ACKs and 20 RSTs back.
	var recs []decoder.Record
	for i := 0; i < 100; i++ {
		recs = append(recs, sample(expA, macA1, macA2, ipA1, ipA2).rate(1).tcp(0x02).ports(40000, 80).Record)
	}
	for i := 0; i < 70; i++ {
		recs = append(recs, sample(expA, macA2, macA1, ipA2, ipA1).rate(1).tcp(0x12).ports(80, 40000).Record)
	}
	for i := 0; i < 20; i++ {
		recs = append(recs, sample(expA, macA2, macA1, ipA2, ipA1).rate(1).tcp(0x14).ports(80, 40000).Record)
	}
	w.AddBatch(idx, recs)
	win := a.closeWindow(time.Now())
	p := pairOf(win, "a1", "a2", decoder.SourceSFlow)
	require.NotNil(t, p)
	assert.Equal(t, 70.0, p.Stats.SYNACKIn)
	assert.Equal(t, 20.0, p.Stats.RSTIn)
	h, ok := p.Stats.Health(0)
	require.True(t, ok)
	assert.InDelta(t, 0.30, h.FailureRatio, 1e-12)
	assert.InDelta(t, 0.20, h.RefusedRatio, 1e-12)
	assert.Less(t, h.FailureCI95[0], 0.30)
	assert.Greater(t, h.FailureCI95[1], 0.30)
	assert.Less(t, h.RefusedCI95[0], 0.20)
	assert.Greater(t, h.RefusedCI95[1], 0.20)
	_, ok = pairOf(win, "a2", "a1", decoder.SourceSFlow).Stats.Health(0)
	assert.False(t, ok, "no SYNs on the reverse: no health")
}

// TestConnHealthCoverage: with 1-in-N sampling of SYNs and SYN-ACKs, the
// 95% failure interval covers the true failure ratio in about 95% of
// trials (simulated).
func TestConnHealthCoverage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const trials, N = 2000, 64
	const syns, answered = 6400, 4800 // true failure 0.25
	covered := 0
	for k := 0; k < trials; k++ {
		s, a := 0.0, 0.0
		for i := 0; i < syns; i++ {
			if r.IntN(N) == 0 {
				s++
			}
		}
		for i := 0; i < answered; i++ {
			if r.IntN(N) == 0 {
				a++
			}
		}
		if s == 0 {
			continue
		}
		st := Stats{SYN: s * N, SYNACKIn: a * N, Packets: s * N, SampledPackets: uint64(s)}
		h, _ := st.Health(0)
		if h.FailureCI95[0] <= 0.25 && 0.25 <= h.FailureCI95[1] {
			covered++
		}
	}
	frac := float64(covered) / trials
	t.Logf("coverage %.3f", frac)
	assert.InDelta(t, 0.95, frac, 0.025)
	assert.False(t, math.IsNaN(frac))
}

// BenchmarkFillAnswers is the window close's extra cost: 200,000 pairs,
// 100,000 client → server pairs with SYNs and their 100,000 reverse pairs
// with SYN-ACKs.
func BenchmarkFillAnswers(b *testing.B) {
	sh := newShard()
	for i := 0; i < 100000; i++ {
		c, s := EndpointKey{VM: enrich.VMID(2*i + 1)}, EndpointKey{VM: enrich.VMID(2*i + 2)}
		fwd, rev := PairKey{Src: c, Dst: s}, PairKey{Src: s, Dst: c}
		sh.slots[sh.insert(&fwd)].st.SYN = 4
		sh.slots[sh.insert(&rev)].st.SYNACK = 3
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fillAnswers(sh)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/window")
}

// TestConnHealthIPFIXFlags: IPFIX records with OR-ed tcpControlBits (an
// exporter that sends them; OVS does not): accepted connections have a
// SYN|ACK flow each way, refused ones a SYN flow and a RST flow back.
func TestConnHealthIPFIXFlags(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w := a.NewWorker()
	var recs []decoder.Record
	for i := 0; i < 8; i++ { // accepted: client and server flows, several packets
		recs = append(recs,
			sample(expA, macA1, macA2, ipA1, ipA2).ipfix(expA, 1).tcp(0x1a).pkts(6).ports(uint16(40000+i), 80).Record,
			sample(expA, macA2, macA1, ipA2, ipA1).ipfix(expA, 1).tcp(0x1a).pkts(5).ports(80, uint16(40000+i)).Record)
	}
	for i := 0; i < 2; i++ { // refused: one SYN, one RST+ACK back
		recs = append(recs,
			sample(expA, macA1, macA2, ipA1, ipA2).ipfix(expA, 1).tcp(0x02).pkts(1).ports(uint16(41000+i), 81).Record,
			sample(expA, macA2, macA1, ipA2, ipA1).ipfix(expA, 1).tcp(0x14).pkts(1).ports(81, uint16(41000+i)).Record)
	}
	w.AddBatch(enr.Index(), recs)
	win := a.closeWindow(time.Now())
	p := pairOf(win, "a1", "a2", decoder.SourceIPFIX)
	require.NotNil(t, p)
	h, ok := p.Stats.Health(0)
	require.True(t, ok)
	assert.Equal(t, 10.0, h.SYN)
	assert.InDelta(t, 0.2, h.FailureRatio, 1e-12, "2 of 10 connections refused")
	assert.InDelta(t, 0.2, h.RefusedRatio, 1e-12)
}
