package aggregate

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/probe"
)

// probeDatagram is an IPFIX message from the probe: its templates and a
// data set of the given records (IPv4 template).
func probeDatagram(seq uint32, recs []byte) []byte {
	m := make([]byte, 16)
	binary.BigEndian.PutUint16(m, 10)
	binary.BigEndian.PutUint32(m[8:], seq)
	m = append(m, probe.TemplateSet()...)
	m = binary.BigEndian.AppendUint16(m, probe.TemplateIPv4)
	m = binary.BigEndian.AppendUint16(m, uint16(4+len(recs)))
	m = append(m, recs...)
	binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
	return m
}

// Through the real decoder and pipeline: the probe's records become
// latency, and hostile records under the probe's template never crash
// and never count as traffic.
func TestProbeDatagramsThroughThePipeline(t *testing.T) {
	dec, err := decoder.New(decoder.DefaultConfig(), prometheus.NewRegistry())
	require.NoError(t, err)
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	p := NewPipeline(dec, enr, a, prometheus.NewRegistry())
	w := p.NewWorker()
	from := netip.AddrPortFrom(expA, 40000)
	ev := probe.Event{Time: time.Now().UnixNano(), Kind: decoder.ProbeEventHandshake, Side: decoder.ProbeSideClient,
		Outcome: decoder.ProbeOutcomeEstablished, RTT: 1234, SrcMAC: macA1, DstMAC: macB1, Src: ipA1, Dst: ipB1,
		SPort: 40000, DPort: 80, Proto: 6}
	var recs []byte
	for i := 0; i < 3; i++ {
		recs, _ = probe.AppendRecord(recs, &ev)
	}
	_, err = w.Handle(&collector.Datagram{Proto: collector.ProtoIPFIX, From: from, Data: probeDatagram(0, recs), Received: time.Now().UnixNano()})
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 5000; i++ {
		bad := append([]byte(nil), recs[:r.IntN(len(recs)+1)]...)
		for k := r.IntN(8); k > 0 && len(bad) > 0; k-- {
			bad[r.IntN(len(bad))] = byte(r.Uint32())
		}
		_, _ = w.Handle(&collector.Datagram{Proto: collector.ProtoIPFIX, From: from, Data: probeDatagram(uint32(i), bad), Received: time.Now().UnixNano()})
	}
	win := a.Flush()
	var bytes, packets float64
	var samples uint64
	for _, pr := range win.Pairs {
		bytes += pr.Stats.Bytes
		packets += pr.Stats.Packets
		samples += pr.Stats.Samples
		require.Equal(t, decoder.SourceProbe, pr.Key.Source, "a probe record became a traffic pair: %+v", pr.Key)
	}
	require.Zero(t, bytes)
	require.Zero(t, packets)
	require.Zero(t, samples)
	lp := pairOf(win, "a1", "b1", decoder.SourceProbe)
	require.NotNil(t, lp)
	require.GreaterOrEqual(t, lp.Stats.Lat.Client.Established, uint64(3))
}
