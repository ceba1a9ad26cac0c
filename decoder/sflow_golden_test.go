package decoder

import (
	"bytes"
	"encoding/json"
	"math"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sflowCapture = "../testdata/ovs-lab-1/ovs-sflow16.pcapng"

// The lab of testdata/ovs-lab-1/README.md.
var (
	vmMAC = map[string]string{
		"vm1": "52:54:00:00:00:01", "vm2": "52:54:00:00:00:02",
		"vm3": "52:54:00:00:00:03", "vm4": "52:54:00:00:00:04",
	}
	vmIfIndex = map[string]uint32{"vm1": 7, "vm2": 8, "vm3": 9, "vm4": 10}
	vmPort    = map[string]string{"vm1": "vnet1", "vm2": "vnet2", "vm3": "vnet3", "vm4": "vnet4"}
)

func newTestDecoder(t testing.TB, fast bool) *Decoder {
	t.Helper()
	cfg := DefaultConfig()
	cfg.SFlow.FastPath = fast
	d, err := New(cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	return d
}

type pairKey struct{ src, dst string }

type pairTotals struct {
	samples int
	bytes   uint64
	sumSq   float64 // Σ b² of sampled frames
}

// oracleTotals computes per-(src MAC, dst MAC) sample counts and frame bytes
// from the capture independently of this package's mapping: goflow2's decoder
// for the sFlow structure and gopacket for the Ethernet header.
func oracleTotals(t *testing.T, dgs []capturedDatagram) map[pairKey]pairTotals {
	out := map[pairKey]pairTotals{}
	for i, d := range dgs {
		var p sflow.Packet
		require.NoError(t, sflow.DecodeMessageVersion(bytes.NewBuffer(d.Payload), &p), "datagram %d", i)
		for _, s := range p.Samples {
			fs, ok := s.(sflow.FlowSample)
			if !ok {
				continue
			}
			for _, r := range fs.Records {
				h, ok := r.Data.(sflow.SampledHeader)
				if !ok {
					continue
				}
				pkt := gopacket.NewPacket(h.HeaderData[:h.OriginalLength], layers.LayerTypeEthernet, gopacket.NoCopy)
				eth, ok := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				require.True(t, ok)
				k := pairKey{eth.SrcMAC.String(), eth.DstMAC.String()}
				v := out[k]
				v.samples++
				b := uint64(h.FrameLength - h.Stripped)
				v.bytes += b
				v.sumSq += float64(b) * float64(b)
				out[k] = v
			}
		}
	}
	return out
}

func decodeCapture(t *testing.T, d *Decoder, dgs []capturedDatagram) ([]Record, []Counters, []Header) {
	var recs []Record
	var ctrs []Counters
	var hdrs []Header
	var b Batch
	for i, dg := range dgs {
		require.NoError(t, d.Decode(SourceSFlow, dg.From, dg.Payload, dg.Received, &b), "datagram %d", i)
		recs = append(recs, b.Records...)
		ctrs = append(ctrs, b.Counters...)
		hdrs = append(hdrs, b.Header)
	}
	return recs, ctrs, hdrs
}

func TestSFlowGoldenCapture(t *testing.T) {
	dgs := readCaptureUDP(t, sflowCapture, 6343)
	require.NotEmpty(t, dgs)
	oracle := oracleTotals(t, dgs)

	fastRecs, fastCtrs, fastHdrs := decodeCapture(t, newTestDecoder(t, true), dgs)
	slowRecs, slowCtrs, slowHdrs := decodeCapture(t, newTestDecoder(t, false), dgs)
	if diff := cmp.Diff(slowRecs, fastRecs, cmpAddrs); diff != "" {
		t.Fatalf("fast and goflow2 paths differ on records (-goflow2 +fast):\n%s", diff)
	}
	if diff := cmp.Diff(slowCtrs, fastCtrs, cmpAddrs); diff != "" {
		t.Fatalf("fast and goflow2 paths differ on counters (-goflow2 +fast):\n%s", diff)
	}
	if diff := cmp.Diff(slowHdrs, fastHdrs, cmpAddrs); diff != "" {
		t.Fatalf("fast and goflow2 paths differ on headers (-goflow2 +fast):\n%s", diff)
	}

	// Header: agent 127.0.0.1, sequence +1 per datagram (a sink listened).
	agent := netip.MustParseAddr("127.0.0.1")
	total := 0
	for i, h := range fastHdrs {
		assert.Equal(t, SourceSFlow, h.Source)
		assert.Equal(t, uint16(5), h.Version)
		assert.Equal(t, agent, h.Agent)
		assert.Equal(t, dgs[i].From, h.Exporter)
		if i > 0 {
			assert.Equal(t, fastHdrs[i-1].Sequence+1, h.Sequence, "datagram %d", i)
			assert.GreaterOrEqual(t, h.Uptime, fastHdrs[i-1].Uptime)
		}
		total += h.Samples
	}
	assert.Equal(t, total, len(fastRecs)+len(fastCtrs), "every announced sample yields a record or counters")

	// Per directed MAC pair: our sample counts and byte sums equal the oracle's.
	got := map[pairKey]pairTotals{}
	for _, r := range fastRecs {
		k := pairKey{net.HardwareAddr(r.SrcMAC[:]).String(), net.HardwareAddr(r.DstMAC[:]).String()}
		v := got[k]
		v.samples++
		v.bytes += r.Bytes
		v.sumSq += float64(r.Bytes) * float64(r.Bytes)
		got[k] = v
		assert.Equal(t, uint32(16), r.SamplingRate)
		assert.Equal(t, uint64(1), r.Packets)
		assert.Equal(t, agent, r.Agent)
		assert.Equal(t, SourceSFlow, r.Source)
		assert.NotZero(t, r.Received)
	}
	assert.Equal(t, oracle, got)

	// Only the pairs that talked (plus broadcast ARP) appear.
	talked := map[pairKey]bool{}
	for _, p := range [][2]string{{"vm2", "vm3"}, {"vm3", "vm2"}, {"vm4", "vm1"}, {"vm1", "vm4"}, {"vm2", "vm4"}, {"vm4", "vm2"}} {
		talked[pairKey{vmMAC[p[0]], vmMAC[p[1]]}] = true
	}
	for k := range got {
		if k.dst == "ff:ff:ff:ff:ff:ff" {
			continue
		}
		assert.True(t, talked[k], "unexpected pair %v", k)
	}

	// Ground truth from iperf3 -J: vm4 → vm1 UDP, 19,998 datagrams of
	// 1,000 payload bytes (1,042-byte frames).
	udpTruth := readIperf(t, "../testdata/ovs-lab-1/udp_4to1.json")
	require.Equal(t, 19998, udpTruth.End.Sum.Packets)
	var udp pairTotals
	for _, r := range fastRecs {
		if r.SrcMAC == mustMAC(vmMAC["vm4"]) && r.DstMAC == mustMAC(vmMAC["vm1"]) && r.Proto == protoUDP {
			udp.samples++
			udp.bytes += r.Bytes
			udp.sumSq += float64(r.Bytes) * float64(r.Bytes)
			assert.Equal(t, uint64(1042), r.Bytes, "OVS frame_length includes the FCS, stripped=4")
			assert.Equal(t, vmIfIndex["vm4"], r.InIf)
			assert.Equal(t, vmIfIndex["vm1"], r.OutIf)
			assert.Equal(t, netip.MustParseAddr("10.0.0.4"), r.SrcIP)
			assert.Equal(t, netip.MustParseAddr("10.0.0.1"), r.DstIP)
			assert.Equal(t, udpTruth.Start.Connected[0].LocalPort, r.SrcPort)
			assert.Equal(t, udpTruth.Start.Connected[0].RemotePort, r.DstPort)
		}
	}
	const n = 16.0
	truthBytes := float64(udpTruth.End.Sum.Packets) * (1000 + 42)
	est := n * float64(udp.bytes)
	half := 1.96 * math.Sqrt(n*(n-1)*udp.sumSq)
	t.Logf("vm4→vm1 UDP: %d samples, bytes estimate %.0f ± %.0f, truth %.0f", udp.samples, est, half, truthBytes)
	assert.InDelta(t, truthBytes, est, half, "UDP bytes truth outside the 95%% interval")
	estPk := n * float64(udp.samples)
	halfPk := 1.96 * math.Sqrt(n*(n-1)*float64(udp.samples))
	assert.InDelta(t, float64(udpTruth.End.Sum.Packets), estPk, halfPk, "UDP packets truth outside the 95%% interval")

	// vm2 → vm3 TCP: 80,084,992 payload bytes in 1,448-byte segments of
	// 1,514-byte frames (66 bytes of Ethernet/IP/TCP-with-timestamps headers).
	tcpTruth := readIperf(t, "../testdata/ovs-lab-1/tcp_2to3.json")
	var tcp pairTotals
	for _, r := range fastRecs {
		if r.SrcMAC == mustMAC(vmMAC["vm2"]) && r.DstMAC == mustMAC(vmMAC["vm3"]) && r.Proto == protoTCP &&
			r.SrcPort == tcpTruth.Start.Connected[0].LocalPort && r.DstPort == tcpTruth.Start.Connected[0].RemotePort {
			tcp.samples++
			tcp.bytes += r.Bytes
			tcp.sumSq += float64(r.Bytes) * float64(r.Bytes)
			assert.Equal(t, vmIfIndex["vm2"], r.InIf)
			assert.Equal(t, vmIfIndex["vm3"], r.OutIf)
		}
	}
	payload := float64(tcpTruth.End.SumSent.Bytes)
	require.Equal(t, 80084992.0, payload)
	truthTCP := payload + 66*math.Ceil(payload/float64(tcpTruth.Start.TCPMSS))
	estTCP := n * float64(tcp.bytes)
	halfTCP := 1.96 * math.Sqrt(n*(n-1)*tcp.sumSq)
	t.Logf("vm2→vm3 TCP: %d samples, bytes estimate %.0f ± %.0f, truth ≈ %.0f", tcp.samples, estTCP, halfTCP, truthTCP)
	assert.InDelta(t, truthTCP, estTCP, halfTCP, "TCP bytes truth outside the 95%% interval")

	// ICMP echo vm2 → vm4: 10 requests of 98-byte frames; with 1-in-16 a
	// handful (often 0) are sampled; those seen must be echo requests.
	for _, r := range fastRecs {
		if r.Proto == protoICMP && r.SrcMAC == mustMAC(vmMAC["vm2"]) {
			assert.Equal(t, uint8(8), r.ICMPType)
			assert.Equal(t, uint64(98), r.Bytes)
		}
	}

	// Counter samples: one per port every polling interval; ifIndex 7..10
	// carry the port names vnet1..4 and OpenFlow ports 1..4, br0 (ifIndex 6)
	// is the LOCAL port 0xfffe; all on one datapath.
	seen := map[uint32]int{}
	var dpid uint64
	for _, c := range fastCtrs {
		assert.Equal(t, agent, c.Agent)
		if !c.HasIf {
			continue // the datapath-wide sample (source 2:1000) carries only OVS records
		}
		seen[c.IfIndex]++
		require.True(t, c.HasOFPort, "ifIndex %d", c.IfIndex)
		if dpid == 0 {
			dpid = c.DatapathID
		}
		assert.Equal(t, dpid, c.DatapathID)
		assert.Equal(t, uint64(10_000_000_000), c.IfSpeed)
		assert.Equal(t, uint32(3), c.IfStatus, "admin and oper up")
		assert.Equal(t, c.IfIndex, c.SourceID, "source type 0, index = ifIndex")
		if c.IfIndex == 6 {
			assert.Equal(t, "br0", c.Name())
			assert.Equal(t, uint32(0xfffe), c.OFPort)
			continue
		}
		var vm string
		for k, v := range vmIfIndex {
			if v == c.IfIndex {
				vm = k
			}
		}
		require.NotEmpty(t, vm, "unexpected ifIndex %d", c.IfIndex)
		assert.Equal(t, vmPort[vm], c.Name())
		assert.Equal(t, uint32(vm[2]-'0'), c.OFPort)
	}
	assert.NotZero(t, dpid)
	for _, idx := range []uint32{6, 7, 8, 9, 10} {
		assert.GreaterOrEqual(t, seen[idx], 8, "counter samples for ifIndex %d", idx)
	}
	// The vm4 port's counters grew by at least the UDP bytes it received
	// from vm4 (OVS reports veth counters from the port's point of view).
	var first, last *Counters
	for i := range fastCtrs {
		if fastCtrs[i].HasIf && fastCtrs[i].IfIndex == vmIfIndex["vm4"] {
			if first == nil {
				first = &fastCtrs[i]
			}
			last = &fastCtrs[i]
		}
	}
	require.NotNil(t, first)
	grew := float64(last.InOctets-first.InOctets) + float64(last.OutOctets-first.OutOctets)
	assert.Greater(t, grew, 19998.0*1000, "vnet4 octet counters should cover the UDP stream")
}

// cmpAddrs lets go-cmp compare netip values (they have unexported fields).
type iperfResult struct {
	Start struct {
		Connected []struct {
			LocalPort  uint16 `json:"local_port"`
			RemotePort uint16 `json:"remote_port"`
		} `json:"connected"`
		TCPMSS int `json:"tcp_mss_default"`
	} `json:"start"`
	End struct {
		Sum struct {
			Packets int `json:"packets"`
		} `json:"sum"`
		SumSent struct {
			Bytes int64 `json:"bytes"`
		} `json:"sum_sent"`
	} `json:"end"`
}

func readIperf(t *testing.T, path string) iperfResult {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var r iperfResult
	require.NoError(t, json.Unmarshal(raw, &r))
	require.NotEmpty(t, r.Start.Connected, path)
	return r
}

var cmpAddrs = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmpopts.IgnoreUnexported(Batch{}), // the IPFIX fast path's cache
}

func mustMAC(s string) [6]byte {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return [6]byte(hw)
}
