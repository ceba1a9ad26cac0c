package decoder

import (
	"encoding/json"
	"net/netip"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fxIPFIXCapture = "../testdata/ovs-lab-1/ovs-ipfix1.pcapng"

type fxPairKey struct{ src, dst netip.Addr }

type fxPairSum struct {
	bytes, packets, records uint64
	byProto                 map[uint8][2]uint64 // proto -> bytes, packets
}

// fxDecodeCapture decodes every IPFIX datagram of the capture in order and
// sums the records per directed IP pair.
func fxDecodeCapture(t *testing.T, f *flowDecoder) (map[fxPairKey]*fxPairSum, []Header) {
	t.Helper()
	dgs := readCaptureUDP(t, fxIPFIXCapture, 4739)
	require.NotEmpty(t, dgs)
	sums := map[fxPairKey]*fxPairSum{}
	var headers []Header
	var b Batch
	for i, d := range dgs {
		require.NoError(t, f.Decode(SourceIPFIX, d.From, d.Payload, d.Received, &b), "datagram %d", i)
		headers = append(headers, b.Header)
		for _, r := range b.Records {
			if r.Flags&FlagL3 == 0 {
				continue // ARP
			}
			k := fxPairKey{r.SrcIP, r.DstIP}
			s := sums[k]
			if s == nil {
				s = &fxPairSum{byProto: map[uint8][2]uint64{}}
				sums[k] = s
			}
			s.bytes += r.Bytes
			s.packets += r.Packets
			s.records++
			p := s.byProto[r.Proto]
			s.byProto[r.Proto] = [2]uint64{p[0] + r.Bytes, p[1] + r.Packets}
		}
	}
	return sums, headers
}

func fxIperf(t *testing.T, name string) map[string]any {
	raw, err := os.ReadFile("../testdata/ovs-lab-1/" + name)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(raw, &v))
	return v["end"].(map[string]any)
}

// TestIPFIXGoldenOVSLab1 decodes OVS 3.1's IPFIX export (sampling 1-in-1)
// and compares per-pair totals with iperf3's and ping's ground truth.
func TestIPFIXGoldenOVSLab1(t *testing.T) {
	f, _ := fxNewFlow(t, nil) // directions: ingress (each packet once)
	sums, headers := fxDecodeCapture(t, f)

	assert.Equal(t, 0.0, fxCount(f.m.unknownTemplate[0]), "templates come first in the capture")
	for r := range numErrReasons {
		assert.Equal(t, 0.0, fxCount(f.m.errors[0][r]), errReasonNames[r])
	}
	for r := range numRejectReasons {
		assert.Equal(t, 0.0, fxCount(f.m.rejected[0][r]), rejectReasonNames[r])
	}
	// `tshark -V -d udp.port==4739,cflow` shows 89 template records in the
	// capture: 88 data templates (one per L2/L3/L4/tunnel/interface
	// combination) and 1 options template (exporter statistics).
	assert.Equal(t, 89.0, fxCount(f.m.templates[0][evAdded]))
	assert.Greater(t, fxCount(f.m.dirSkipped[0]), 0.0, "OVS also exports egress copies")

	// OVS numbers its messages per data record: after the templates, each
	// message's sequence is the previous one plus its data records.
	var prev *Header
	for i := range headers {
		h := &headers[i]
		assert.Equal(t, uint16(10), h.Version)
		assert.True(t, h.ObsDomain == 123 || h.ObsDomain == 0, "domain %d", h.ObsDomain)
		if h.DataRecords == 0 {
			continue
		}
		if prev != nil {
			assert.Equal(t, prev.Sequence+uint32(prev.DataRecords), h.Sequence, "message %d", i)
		}
		prev = h
	}

	vm := func(n int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}) }
	within := func(got, want uint64, frac float64, msg string) {
		t.Helper()
		assert.InDelta(t, float64(want), float64(got), float64(want)*frac, "%s: got %d want %d", msg, got, want)
	}

	// vm4 -> vm1: UDP, 19,998 datagrams of 1,042-byte frames.
	udp := fxIperf(t, "udp_4to1.json")["sum_sent"].(map[string]any)
	udpPackets := uint64(udp["packets"].(float64))
	require.Equal(t, uint64(19998), udpPackets)
	s41 := sums[fxPairKey{vm(4), vm(1)}]
	require.NotNil(t, s41)
	within(s41.byProto[17][0], udpPackets*1042, 0.02, "vm4->vm1 UDP layer-2 bytes")
	within(s41.byProto[17][1], udpPackets, 0.02, "vm4->vm1 UDP packets")
	within(s41.bytes, udpPackets*1042, 0.02, "vm4->vm1 all bytes (UDP + iperf3 control)")

	// vm2 -> vm3: TCP, 80,084,992 payload bytes. Frames are payload plus
	// 66 bytes of headers per packet (Ethernet 14, IPv4 20, TCP 20 + 12 of
	// timestamp option); the packet count is not in the iperf3 report, so
	// it is bounded below by payload / MSS (1,448 with timestamps).
	tcp := fxIperf(t, "tcp_2to3.json")["sum_sent"].(map[string]any)
	payload := uint64(tcp["bytes"].(float64))
	require.Equal(t, uint64(80084992), payload)
	s23 := sums[fxPairKey{vm(2), vm(3)}]
	require.NotNil(t, s23)
	tcpBytes, tcpPackets := s23.byProto[6][0], s23.byProto[6][1]
	assert.GreaterOrEqual(t, tcpPackets, payload/1448, "at least payload/MSS segments")
	within(tcpPackets, payload/1448, 0.03, "vm2->vm3 TCP packets vs full-size segments")
	within(tcpBytes, payload+66*tcpPackets, 0.01, "vm2->vm3 TCP frame bytes")
	assert.Greater(t, tcpBytes, payload)
	// the reverse direction carries ACKs (and control traffic) only
	s32 := sums[fxPairKey{vm(3), vm(2)}]
	require.NotNil(t, s32)
	assert.Less(t, s32.bytes, tcpBytes/50)

	// vm2 -> vm4: 10 ICMP echo requests of 98-byte frames, and 10 replies.
	s24, s42 := sums[fxPairKey{vm(2), vm(4)}], sums[fxPairKey{vm(4), vm(2)}]
	require.NotNil(t, s24)
	require.NotNil(t, s42)
	assert.Equal(t, [2]uint64{10 * 98, 10}, s24.byProto[1])
	assert.Equal(t, [2]uint64{10 * 98, 10}, s42.byProto[1])

	// No pair that did not talk.
	talked := map[fxPairKey]bool{
		{vm(2), vm(3)}: true, {vm(3), vm(2)}: true,
		{vm(4), vm(1)}: true, {vm(1), vm(4)}: true,
		{vm(2), vm(4)}: true, {vm(4), vm(2)}: true,
	}
	for k := range sums {
		assert.True(t, talked[k], "unexpected pair %v -> %v", k.src, k.dst)
	}
	t.Logf("vm4->vm1 UDP %d bytes %d packets (truth %d / %d); vm2->vm3 TCP %d bytes %d packets (payload %d + 66*packets = %d); vm2->vm4 ICMP %v",
		s41.byProto[17][0], s41.byProto[17][1], udpPackets*1042, udpPackets,
		tcpBytes, tcpPackets, payload, payload+66*tcpPackets, s24.byProto[1])
}

// TestIPFIXGoldenBothDirections: with directions=both every sampled packet is
// reported twice by OVS (ingress and egress), which is why ingress is the
// default.
func TestIPFIXGoldenBothDirections(t *testing.T) {
	in, _ := fxNewFlow(t, nil)
	both, _ := fxNewFlow(t, func(c *FlowConfig) { c.Directions = "both" })
	sIn, _ := fxDecodeCapture(t, in)
	sBoth, _ := fxDecodeCapture(t, both)
	k := fxPairKey{netip.MustParseAddr("10.0.0.4"), netip.MustParseAddr("10.0.0.1")}
	assert.Equal(t, 2*sIn[k].byProto[17][1], sBoth[k].byProto[17][1])
}

// OVS's dropped counters in ingress records are not real drops (every
// packet of the vm4→vm1 UDP stream was delivered, per iperf3): by default
// they are not passed on; trust_dropped keeps them.
func TestIPFIXGoldenDroppedCountersIgnoredByDefault(t *testing.T) {
	for _, trust := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Flow.TrustDropped = trust
		d, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		var dropped, packets uint64
		var b Batch
		for _, dg := range readCaptureUDP(t, "../testdata/ovs-lab-1/ovs-ipfix1.pcapng", 4739) {
			if err := d.Decode(SourceIPFIX, dg.From, dg.Payload, dg.Received, &b); err != nil {
				t.Fatal(err)
			}
			for i := range b.Records {
				dropped += b.Records[i].DroppedPackets
				packets += b.Records[i].Packets
			}
		}
		if packets < 20000 {
			t.Fatalf("decoded only %d packets", packets)
		}
		if !trust && dropped != 0 {
			t.Errorf("trust_dropped=false: %d dropped packets passed on", dropped)
		}
		if trust && dropped < packets/2 {
			t.Errorf("trust_dropped=true: OVS's dropped counters (%d of %d packets) not passed on", dropped, packets)
		}
	}
}
