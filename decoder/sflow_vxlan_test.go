package decoder

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Real OVS 3.1 (userspace datapath) captures with a VXLAN tunnel, made with
// testdata/sflow-ovs-vxlan-lab.sh.txt: bridge sfvxint holds vm1
// (52:54:00:00:01:01, 10.9.0.1, veth ifIndex 25) and a VXLAN port (key 5001,
// remote 192.168.77.2); bridge sfvxphy (192.168.77.1, ifIndex 22) holds the
// remote VTEP's veth (ifIndex 23, 02:00:00:00:77:02, 192.168.77.2). sFlow
// 1-in-1 on both bridges. The remote sends VXLAN frames (testdata/
// sflow-ovs-vxlan-send.py.txt) holding 10.9.0.2:7777 → 10.9.0.1:8888 UDP
// (142-byte inner frames), to 192.168.77.1 (decapsulated by OVS) and to
// 192.168.77.3 (not local: flooded on sfvxphy, still encapsulated).
const (
	vxlanEgressCapture  = "testdata/sflow-ovs-vxlan-egress.pcapng"
	vxlanIngressCapture = "testdata/sflow-ovs-vxlan-ingress.pcapng"
)

var (
	vxVM1    = [6]byte{0x52, 0x54, 0, 0, 1, 1}
	vxVM2    = [6]byte{0x52, 0x54, 0, 0, 1, 2}
	vxRemote = [6]byte{2, 0, 0, 0, 0x77, 2}
	vxLocal  = netip.MustParseAddr("192.168.77.1")
	vxPeer   = netip.MustParseAddr("192.168.77.2")
)

func decodeCaptureBothPaths(t *testing.T, path string) []Record {
	dgs := readCaptureUDP(t, path, 16343)
	require.NotEmpty(t, dgs)
	fast, _, _ := decodeCapture(t, newTestDecoder(t, true), dgs)
	slow, _, _ := decodeCapture(t, newTestDecoder(t, false), dgs)
	require.Empty(t, cmp.Diff(slow, fast, cmpAddrs), "paths differ (-goflow2 +fast)")
	return fast
}

// TestSFlowOVSTunnelEgress: packets vm1 sends into the tunnel carry OVS's
// extended_ipv4_tunnel_egress (0:1023) and extended_vni_egress (0:1029).
func TestSFlowOVSTunnelEgress(t *testing.T) {
	recs := decodeCaptureBothPaths(t, vxlanEgressCapture)
	n := 0
	for _, r := range recs {
		if r.InIf != 25 || r.SrcMAC != vxVM1 {
			continue
		}
		// vm1 answers the decapsulated UDP with ICMP port unreachable.
		if r.Proto == protoICMP && r.ICMPType == 3 {
			n++
			assert.Equal(t, TunnelVXLAN, r.Tunnel, "from the byte-swapped port 4789 in the OVS record")
			assert.Equal(t, uint32(5001), r.VNI)
			assert.Equal(t, vxLocal, r.OuterSrcIP)
			assert.Equal(t, vxPeer, r.OuterDstIP)
			assert.Zero(t, r.OutIf, "OVS reports output to a tunnel as 0x80000001 (one interface, no ifIndex)")
			assert.Equal(t, netip.MustParseAddr("10.9.0.1"), r.SrcIP)
			assert.Equal(t, uint64(170), r.Bytes)
		}
	}
	assert.Equal(t, 5, n, "one sample per ICMP error (1-in-1)")
}

// TestSFlowOVSTunnelIngress: decapsulated packets carry 0:1024/0:1030 with
// input 0; encapsulated packets flooded on the underlay bridge are parsed as
// VXLAN from the raw header.
func TestSFlowOVSTunnelIngress(t *testing.T) {
	recs := decodeCaptureBothPaths(t, vxlanIngressCapture)
	var ingress, raw int
	for _, r := range recs {
		if r.SrcMAC != vxVM2 || r.DstMAC != vxVM1 {
			continue
		}
		assert.Equal(t, TunnelVXLAN, r.Tunnel)
		assert.Equal(t, uint32(5001), r.VNI)
		assert.Equal(t, vxPeer, r.OuterSrcIP)
		assert.Equal(t, netip.MustParseAddr("10.9.0.2"), r.SrcIP)
		assert.Equal(t, netip.MustParseAddr("10.9.0.1"), r.DstIP)
		assert.Equal(t, uint16(7777), r.SrcPort)
		assert.Equal(t, uint16(8888), r.DstPort)
		switch r.InIf {
		case 0: // decapsulated on sfvxint, delivered to vm1
			ingress++
			assert.Equal(t, uint32(25), r.OutIf)
			assert.Equal(t, vxLocal, r.OuterDstIP)
			assert.Equal(t, [6]byte{}, r.OuterSrcMAC, "tunnel records carry no MACs")
			assert.Equal(t, uint64(142), r.Bytes, "inner frame")
		case 23: // the encapsulated frame on sfvxphy
			raw++
			assert.Equal(t, vxRemote, r.OuterSrcMAC)
			assert.Equal(t, uint64(142+50), r.Bytes, "outer frame")
			if r.OuterDstIP != vxLocal {
				assert.Equal(t, netip.MustParseAddr("192.168.77.3"), r.OuterDstIP)
			}
		default:
			t.Errorf("unexpected input ifIndex %d", r.InIf)
		}
	}
	assert.Equal(t, 5, ingress)
	assert.GreaterOrEqual(t, raw, 5)
}
