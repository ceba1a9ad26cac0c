package integration

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// TestLabSmoke validates the harness itself: four VMs on one netdev bridge,
// iperf3 TCP and UDP through OVS, the port counters account for what
// iperf3 says it sent, and nothing else talks.
func TestLabSmoke(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{})
	require.Len(t, lab.VMs(), 4)
	vm1, vm2, vm3, vm4 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4")
	for _, v := range lab.VMs() {
		assert.NotZero(t, v.IfIndex, v.Name)
		assert.NotZero(t, v.OFPort, v.Name)
	}

	truth := ovslab.Truth{}
	var tcp, udp ovslab.IperfResult
	require.NoError(t, lab.Phase(truth, map[string]string{"vm2": "vm3", "vm3": "vm2"}, func() error {
		var err error
		tcp, err = lab.IperfTCP(vm2, vm3, ovslab.IperfOptions{Duration: 2 * time.Second, Bitrate: "40M"})
		return err
	}))
	require.NoError(t, lab.Phase(truth, map[string]string{"vm4": "vm1", "vm1": "vm4"}, func() error {
		var err error
		udp, err = lab.IperfUDP(vm4, vm1, ovslab.IperfOptions{Duration: 2 * time.Second, Bitrate: "10M", Length: 1000})
		return err
	}))
	var ping ovslab.PingResult
	require.NoError(t, lab.Phase(truth, map[string]string{"vm2": "vm4", "vm4": "vm2"}, func() error {
		var err error
		ping, err = lab.Ping(vm2, vm4, 5, 100*time.Millisecond)
		return err
	}))
	for _, p := range truth.Pairs() {
		tr := truth[p]
		t.Logf("truth %-10s sent %12d bytes %8d frames, bridged %8d frames, delivered %12d bytes %8d frames",
			p, tr.SentBytes, tr.SentPackets, tr.BridgedPackets, tr.DeliveredBytes, tr.DeliveredPackets)
		// On one bridge, what entered it is what came out.
		assert.Equal(t, tr.BridgedPackets, tr.DeliveredPackets, "pair %s", p)
	}
	t.Logf("iperf3 TCP sent %d payload bytes; UDP %d datagrams, %d lost; ping %d/%d",
		tcp.SentBytes, udp.Packets, udp.LostPackets, ping.Received, ping.Transmitted)

	// TCP: the wire carries more than the payload (headers), and ACKs flow back.
	tcpFwd := truth[ovslab.Pair{Src: "vm2", Dst: "vm3"}]
	// (Retransmissions after frames lost in an overloaded userspace
	// datapath add to what vm2 sent; the receiver got the payload once.)
	assert.Greater(t, tcpFwd.SentBytes, tcp.SentBytes)
	assert.Greater(t, tcpFwd.DeliveredBytes, tcp.ReceivedBytes)
	assert.Less(t, tcpFwd.DeliveredBytes, tcp.ReceivedBytes*11/10, "headers add well under 10%% at full-size segments")
	assert.LessOrEqual(t, tcpFwd.DeliveredPackets, tcpFwd.SentPackets)
	assert.NotZero(t, truth[ovslab.Pair{Src: "vm3", Dst: "vm2"}].DeliveredPackets)

	// UDP: every datagram is one 1042-byte frame (1000 + 8 + 20 + 14), plus
	// the control connection's few frames.
	udpFwd := truth[ovslab.Pair{Src: "vm4", Dst: "vm1"}]
	assert.GreaterOrEqual(t, udpFwd.SentPackets, udp.Packets)
	assert.Less(t, udpFwd.SentPackets, udp.Packets+100)
	assert.GreaterOrEqual(t, udpFwd.SentBytes, udp.Packets*1042)
	assert.Less(t, udpFwd.SentBytes, udp.Packets*1042+100*1500)
	// What vm1 received: the datagrams iperf3 did not count as lost.
	assert.GreaterOrEqual(t, udpFwd.DeliveredPackets, udp.Packets-udp.LostPackets)

	// Ping: exactly the requests and the replies, 98-byte frames.
	pingTruth := ovslab.PairTruth{SentBytes: 5 * 98, SentPackets: 5, BridgedBytes: 5 * 98, BridgedPackets: 5, DeliveredBytes: 5 * 98, DeliveredPackets: 5}
	assert.Equal(t, pingTruth, truth[ovslab.Pair{Src: "vm2", Dst: "vm4"}])
	assert.Equal(t, pingTruth, truth[ovslab.Pair{Src: "vm4", Dst: "vm2"}])
}

// TestLabTwoHostsExporters validates the two-hypervisor lab: traffic
// crosses the trunk, and each bridge exports sFlow and IPFIX from its own
// address, with its own sFlow agent address and IPFIX observation domain.
func TestLabTwoHostsExporters(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{Hosts: []ovslab.HostOptions{{VMs: 2}, {VMs: 2}}})
	hv1, hv2 := lab.Host("hv1"), lab.Host("hv2")
	require.NotNil(t, hv1)
	require.NotNil(t, hv2)
	require.NotEqual(t, hv1.Addr, hv2.Addr)
	assert.Equal(t, hv1, lab.VM("vm1").Host)
	assert.Equal(t, hv2, lab.VM("vm3").Host)

	sflow, err := net.ListenUDP("udp", &net.UDPAddr{})
	require.NoError(t, err)
	defer sflow.Close()
	ipfix, err := net.ListenUDP("udp", &net.UDPAddr{})
	require.NoError(t, err)
	defer ipfix.Close()
	for _, h := range lab.Hosts() {
		require.NoError(t, lab.EnableSFlow(h, ovslab.SFlowOptions{CollectorPort: sflow.LocalAddr().(*net.UDPAddr).Port, Sampling: 1, Polling: 1}))
		require.NoError(t, lab.EnableIPFIX(h, ovslab.IPFIXOptions{CollectorPort: ipfix.LocalAddr().(*net.UDPAddr).Port}))
	}

	truth := ovslab.Truth{}
	require.NoError(t, lab.Phase(truth, map[string]string{"vm1": "vm3", "vm3": "vm1"}, func() error {
		_, err := lab.Ping(lab.VM("vm1"), lab.VM("vm3"), 5, 100*time.Millisecond)
		return err
	}))
	assert.Equal(t, uint64(5), truth[ovslab.Pair{Src: "vm1", Dst: "vm3"}].SentPackets)
	assert.Equal(t, uint64(5), truth[ovslab.Pair{Src: "vm1", Dst: "vm3"}].DeliveredPackets)

	// sFlow v5 header: version, agent address type, agent address.
	agents := map[netip.Addr]netip.Addr{} // UDP source -> agent
	buf := make([]byte, 65536)
	require.NoError(t, sflow.SetReadDeadline(time.Now().Add(10*time.Second)))
	for len(agents) < 2 {
		n, from, err := sflow.ReadFromUDPAddrPort(buf)
		require.NoError(t, err, "sFlow datagrams from both hosts; got %v", agents)
		require.GreaterOrEqual(t, n, 16)
		require.Equal(t, uint32(5), binary.BigEndian.Uint32(buf[0:4]))
		agent := netip.AddrFrom4([4]byte(buf[8:12]))
		agents[from.Addr().Unmap()] = agent
	}
	assert.Equal(t, hv1.Addr, agents[hv1.Addr])
	assert.Equal(t, hv2.Addr, agents[hv2.Addr])

	// IPFIX header: version 10, length, export time, sequence, observation domain.
	domains := map[netip.Addr]uint32{}
	require.NoError(t, ipfix.SetReadDeadline(time.Now().Add(10*time.Second)))
	for len(domains) < 2 {
		n, from, err := ipfix.ReadFromUDPAddrPort(buf)
		require.NoError(t, err, "IPFIX datagrams from both hosts; got %v", domains)
		require.GreaterOrEqual(t, n, 16)
		require.Equal(t, uint16(10), binary.BigEndian.Uint16(buf[0:2]))
		domains[from.Addr().Unmap()] = binary.BigEndian.Uint32(buf[12:16])
	}
	assert.Equal(t, hv1.ObsDomainID(), domains[hv1.Addr])
	assert.Equal(t, hv2.ObsDomainID(), domains[hv2.Addr])
	assert.NotEqual(t, domains[hv1.Addr], domains[hv2.Addr])
}
