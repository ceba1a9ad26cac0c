package aggregate

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/collector/blast"
	"github.com/vmflow/vmflow/decoder"
)

// replayCollector sends payloads from one UDP socket to a collector whose
// handler is the real pipeline (decoder, Meta from the decoder's header,
// aggregation), in order and paced so that nothing is dropped, and returns
// the exporters it shows. The capture had no loss, so any loss or
// reordering shown is false.
func replayCollector(t *testing.T, proto collector.Protocol, payloads [][]byte) []collector.ExporterStatus {
	t.Helper()
	dec, err := decoder.New(decoder.DefaultConfig(), nil)
	require.NoError(t, err)
	a, _, _ := newTestAgg(t, DefaultConfig(), nil)
	p := NewPipeline(dec, nil, a, prometheus.NewRegistry())

	cfg := collector.DefaultConfig()
	lc := collector.DefaultListenerConfig("127.0.0.1:0")
	lc.Sockets, lc.Workers = 1, 2 // two workers: handling order may differ from arrival order
	lc.ReadBuffer = 4 << 20
	cfg.SFlow.Listen, cfg.IPFIX.Listen, cfg.NetFlow9.Listen = "", "", ""
	switch proto {
	case collector.ProtoSFlow:
		cfg.SFlow = lc
	case collector.ProtoIPFIX:
		cfg.IPFIX = lc
	}
	c, err := collector.New(cfg, p, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	defer c.Stop()

	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, c.Addrs()[proto][0].(*net.UDPAddr))
	require.NoError(t, err)
	defer conn.Close()
	for i := 0; i < len(payloads); {
		// a burst, then wait until it was handled: no socket or queue drops
		for j := 0; j < 32 && i < len(payloads); j, i = j+1, i+1 {
			_, err := conn.Write(payloads[i])
			require.NoError(t, err)
		}
		want := uint64(i)
		require.Eventually(t, func() bool { return c.Stats()[proto].Handled >= want }, 10*time.Second, time.Millisecond,
			"handled %+v of %d sent", c.Stats()[proto], want)
	}
	st := c.Stats()[proto]
	require.Equal(t, uint64(len(payloads)), st.Handled, "%+v", st)
	require.Zero(t, st.DroppedDecodeError+st.DroppedQueueFull+st.SocketDrops+st.DroppedPanic, "%+v", st)
	return c.Exporters()
}

func ovsCapture(t *testing.T, name string, port uint16) [][]byte {
	t.Helper()
	p, err := blast.LoadPcap("../testdata/ovs-lab-1/"+name, port)
	require.NoError(t, err)
	return p
}

// ipfixDomainSeq reads an IPFIX message's observation domain and sequence.
func ipfixDomainSeq(b []byte) (domain, seq uint32) {
	return binary.BigEndian.Uint32(b[12:]), binary.BigEndian.Uint32(b[8:])
}

func withSeq(b []byte, seq uint32) []byte {
	c := append([]byte(nil), b...)
	binary.BigEndian.PutUint32(c[8:], seq)
	return c
}

// expectedIPFIX computes from the messages what each domain's exporter must
// show: datagrams and the last sequence number.
func expectedIPFIX(msgs [][]byte) map[uint32][2]uint64 {
	out := map[uint32][2]uint64{}
	for _, m := range msgs {
		d, s := ipfixDomainSeq(m)
		e := out[d]
		e[0]++
		e[1] = uint64(s)
		out[d] = e
	}
	return out
}

func assertNoFalseLoss(t *testing.T, ex []collector.ExporterStatus, want map[uint32][2]uint64) {
	t.Helper()
	got := map[uint32][2]uint64{}
	for _, e := range ex {
		assert.Equal(t, "ipfix", e.Protocol)
		got[e.ObsDomain] = [2]uint64{e.Datagrams, uint64(e.LastSequence)}
		assert.Zero(t, e.LostDatagrams, "domain %d: %+v", e.ObsDomain, e)
		assert.Zero(t, e.LostRecords, "domain %d: %+v", e.ObsDomain, e)
		assert.Zero(t, e.Reordered, "domain %d: %+v", e.ObsDomain, e)
		assert.Zero(t, e.Restarts, "domain %d: %+v", e.ObsDomain, e)
		assert.Zero(t, e.DecodeErrors, "domain %d: %+v", e.ObsDomain, e)
	}
	assert.Equal(t, want, got, "per domain: datagrams, last sequence")
}

// TestReplayOVSIPFIXSequence replays the real OVS IPFIX capture (domain 123
// for the flows, domain 0 for OVS's exporting process statistics, one
// sequence counter over both) through the decoder and the collector: the
// capture lost nothing, so no exporter may show loss, reordering or
// restarts. Domain 0 is a real exporter of OVS's and stays listed.
func TestReplayOVSIPFIXSequence(t *testing.T) {
	msgs := ovsCapture(t, "ovs-ipfix1.pcapng", 4739)
	// where the flow data starts: after OVS's template and domain-0
	// messages (all with the first sequence number)
	first, _ := ipfixDomainSeq(msgs[0])
	start := 0
	for i, m := range msgs {
		if d, s := ipfixDomainSeq(m); d == first && s > 1 {
			start = i
			break
		}
	}
	require.Greater(t, start, 0)
	head, data := msgs[:start], msgs[start:]
	require.Greater(t, len(data), 40)
	var domains []uint32
	for _, m := range head {
		d, _ := ipfixDomainSeq(m)
		domains = append(domains, d)
	}
	require.Contains(t, domains, uint32(0), "the capture has OVS's domain-0 messages")

	// refresh is what OVS sends every 600 s: the templates and the domain-0
	// statistics with the current counter; the statistics message takes a
	// number, so the flow data after it is one further on.
	refresh := func(seq uint32) [][]byte {
		var out [][]byte
		for _, m := range head {
			out = append(out, withSeq(m, seq))
		}
		return out
	}
	renumber := func(ms [][]byte, by uint32) [][]byte {
		var out [][]byte
		for _, m := range ms {
			_, s := ipfixDomainSeq(m)
			out = append(out, withSeq(m, s+by))
		}
		return out
	}
	half := len(data) / 2
	_, seqHalf := ipfixDomainSeq(data[half])

	cases := []struct {
		name string
		msgs [][]byte
	}{
		{"as captured", msgs},
		{"template refresh", concat(head, data[:half], refresh(seqHalf), renumber(data[half:], 1))},
		{"collector started after the exporter", concat(data[:half], refresh(seqHalf), renumber(data[half:], 1))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := replayCollector(t, collector.ProtoIPFIX, tc.msgs)
			assertNoFalseLoss(t, ex, expectedIPFIX(tc.msgs))
		})
	}
}

func concat(parts ...[][]byte) [][]byte {
	var out [][]byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestReplayOVSSFlowSequence replays the real OVS sFlow capture through the
// decoder and the collector: one agent, no loss, no reordering.
func TestReplayOVSSFlowSequence(t *testing.T) {
	msgs := ovsCapture(t, "ovs-sflow16.pcapng", 6343)
	ex := replayCollector(t, collector.ProtoSFlow, msgs)
	require.Len(t, ex, 1, "%+v", ex)
	e := ex[0]
	h, ok := blast.ParseSFlowHeader(msgs[len(msgs)-1])
	require.True(t, ok)
	assert.Equal(t, "sflow", e.Protocol)
	assert.Equal(t, h.Agent.String(), e.Agent)
	assert.Equal(t, uint64(len(msgs)), e.Datagrams)
	assert.Equal(t, h.Sequence, e.LastSequence)
	assert.Zero(t, e.LostDatagrams, "%+v", e)
	assert.Zero(t, e.Reordered, "%+v", e)
	assert.Zero(t, e.Restarts, "%+v", e)
	assert.Zero(t, e.DecodeErrors, "%+v", e)
}
