package aggregate

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// readUDP returns the UDP datagrams to dstPort in a pcapng capture.
func readUDP(t testing.TB, path string, proto collector.Protocol, dstPort uint16) []collector.Datagram {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	require.NoError(t, err)
	var out []collector.Datagram
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		pkt := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || uint16(udp.DstPort) != dstPort {
			continue
		}
		var src netip.Addr
		if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			src, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
		} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			src, _ = netip.AddrFromSlice(ip6.SrcIP)
		}
		out = append(out, collector.Datagram{
			Proto:    proto,
			From:     netip.AddrPortFrom(src, uint16(udp.SrcPort)),
			Data:     append([]byte(nil), udp.Payload...),
			Received: ci.Timestamp.UnixNano(),
		})
	}
	require.NotEmpty(t, out, "no datagrams to port %d in %s", dstPort, path)
	return out
}

func labPipeline(t testing.TB) (*Pipeline, *Aggregator, *enrich.Enricher) {
	t.Helper()
	dec, err := decoder.New(decoder.DefaultConfig(), nil)
	require.NoError(t, err)
	ec := enrich.DefaultConfig()
	ec.Static.File = "../testdata/inventory/lab.yaml"
	ec.Static.Reload = 0
	enr, err := enrich.New(ec, nil)
	require.NoError(t, err)
	require.NoError(t, enr.Start(t.(interface{ Context() context.Context }).Context()))
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	return NewPipeline(dec, enr, a, prometheus.NewRegistry()), a, enr
}

// TestPipelineLabCaptures replays the real OVS captures of
// testdata/ovs-lab-1 through decoder, enricher and aggregator and checks
// the pairs against the lab's ground truth.
func TestPipelineLabCaptures(t *testing.T) {
	p, a, _ := labPipeline(t)
	h := p.NewWorker()
	sflow := readUDP(t, "../testdata/ovs-lab-1/ovs-sflow16.pcapng", collector.ProtoSFlow, 6343)
	ipfix := readUDP(t, "../testdata/ovs-lab-1/ovs-ipfix1.pcapng", collector.ProtoIPFIX, 4739)
	var lastSFlow, lastIPFIX collector.Meta
	for i := range sflow {
		m, err := h.Handle(&sflow[i])
		require.NoError(t, err)
		if m.Records > 0 {
			lastSFlow = m
		}
	}
	for i := range ipfix {
		m, err := h.Handle(&ipfix[i])
		require.NoError(t, err)
		if m.Records > 0 {
			lastIPFIX = m
		}
	}
	assert.Equal(t, collector.SeqDatagrams, lastSFlow.SeqKind)
	assert.Equal(t, 1, lastSFlow.Records)
	assert.Equal(t, netip.MustParseAddr("127.0.0.1"), lastSFlow.Agent)
	assert.Equal(t, uint16(5), lastSFlow.Version)
	assert.Equal(t, collector.SeqRecords, lastIPFIX.SeqKind)
	assert.Equal(t, uint32(123), lastIPFIX.ObsDomain)
	assert.Equal(t, uint16(10), lastIPFIX.Version)

	win := a.closeWindow(time.Now())

	// UDP vm4 -> vm1: 19,998 frames of 1,042 bytes (plus a small iperf3
	// control connection on the same pair).
	const udpTruth = 19998 * 1042
	ip := pairOf(win, "vm4", "vm1", decoder.SourceIPFIX)
	require.NotNil(t, ip)
	assert.InEpsilon(t, udpTruth, ip.Stats.Bytes, 0.02, "IPFIX within 2%%")
	sf := pairOf(win, "vm4", "vm1", decoder.SourceSFlow)
	require.NotNil(t, sf)
	lo, hi := sf.Stats.CI95Bytes()
	assert.True(t, lo <= udpTruth && udpTruth <= hi, "sFlow interval [%.0f, %.0f] covers %d", lo, hi, udpTruth)
	assert.Equal(t, uint64(2), ip.Stats.Flows, "UDP test flow + TCP control connection")
	assert.Equal(t, Endpoint{VM: "vm4", UUID: "00000000-0000-4000-8000-000000000004", Host: "lab-hv1", Tenant: "demo", IP: "10.0.0.4", MAC: "52:54:00:00:00:04"}, ip.Src)

	// TCP vm2 -> vm3: 80,084,992 payload bytes; frame bytes minus 66 bytes
	// of Ethernet+IP+TCP(timestamps) headers per packet give it back.
	tcp := pairOf(win, "vm2", "vm3", decoder.SourceIPFIX)
	require.NotNil(t, tcp)
	assert.InEpsilon(t, 80084992, tcp.Stats.Bytes-66*tcp.Stats.Packets, 0.001)
	sft := pairOf(win, "vm2", "vm3", decoder.SourceSFlow)
	require.NotNil(t, sft)
	lo, hi = sft.Stats.CI95Bytes()
	assert.True(t, lo <= tcp.Stats.Bytes && tcp.Stats.Bytes <= hi, "sFlow interval [%.0f, %.0f] covers the IPFIX count %.0f", lo, hi, tcp.Stats.Bytes)
	assert.Greater(t, tcp.Stats.TopPorts[0].Bytes, 0.9*tcp.Stats.Bytes)
	assert.Equal(t, uint16(5203), tcp.Stats.TopPorts[0].Port, "tcp_2to3.json: remote_port 5203")

	// Ping vm2 <-> vm4: 10 requests, 10 replies (IPFIX sees every one).
	ping := pairOf(win, "vm2", "vm4", decoder.SourceIPFIX)
	require.NotNil(t, ping)
	assert.GreaterOrEqual(t, ping.Stats.ICMPPackets, 10.0)
	assert.Equal(t, "10.0.0.2", ping.Src.IP, "an ARP frame does not erase the last IP")

	// Exactly the pairs that talked.
	var got []string
	for _, pr := range Select(win.Pairs, "ipfix") {
		got = append(got, pr.Src.VM+">"+pr.Dst.VM)
	}
	sort.Strings(got)
	assert.Equal(t, []string{"vm1>vm4", "vm2>vm3", "vm2>vm4", "vm3>vm2", "vm4>vm1", "vm4>vm2"}, got)
	assert.Equal(t, uint64(0), a.Totals().Suppressed(), "one hypervisor: nothing is a duplicate")

	// Interface counters, resolved to VMs by tap name.
	ports := p.Ports()
	byName := map[string]PortCounters{}
	for _, pc := range ports {
		byName[pc.Name] = pc
	}
	require.Contains(t, byName, "vnet1")
	assert.Equal(t, "vm1", byName["vnet1"].VM)
	assert.Equal(t, "lab-hv1", byName["vnet1"].Host)
	assert.Equal(t, uint32(7), byName["vnet1"].IfIndex, "README: vnet1 is ifIndex 7")
	assert.Positive(t, byName["vnet1"].InOctets)
	assert.Positive(t, testutil.ToFloat64(a.swports.mStored))

	// The window's port deltas: vnet1 (vm1) moved traffic between polls.
	var vnet1 *PortStats
	for i := range win.Ports {
		if win.Ports[i].Name == "vnet1" {
			vnet1 = &win.Ports[i]
		}
	}
	require.NotNil(t, vnet1, "window ports: %+v", win.Ports)
	assert.Equal(t, "vm1", vnet1.VM)
	assert.Equal(t, "lab-hv1", vnet1.Host)
	assert.Positive(t, vnet1.Seconds)
	assert.Positive(t, vnet1.OutOctets+vnet1.InOctets)
	assert.Zero(t, vnet1.Resets)
}

// fakeDecoder returns canned batches.
type fakeDecoder struct {
	err     error
	records []decoder.Record
	header  decoder.Header
	ctrs    []decoder.Counters
}

func (f *fakeDecoder) Decode(src decoder.Source, from netip.AddrPort, data []byte, received int64, b *decoder.Batch) error {
	b.Reset()
	b.Header = f.header
	b.Header.Source = src
	for _, r := range f.records {
		*b.AddRecord() = r
	}
	for _, c := range f.ctrs {
		*b.AddCounters() = c
	}
	return f.err
}

func TestPipelineErrorsAndMeta(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	fd := &fakeDecoder{header: decoder.Header{Version: 10, ObsDomain: 7, Sequence: 99, DataRecords: 3, Samples: 3}}
	p := NewPipeline(fd, enr, a, nil)
	h := p.NewWorker()
	for i := 0; i < 3; i++ {
		fd.records = append(fd.records, sample(expA, macA1, macA2, ipA1, ipA2).ipfix(expA, 7).Record)
	}
	m, err := h.Handle(&collector.Datagram{Proto: collector.ProtoIPFIX})
	require.NoError(t, err)
	assert.Equal(t, collector.Meta{Version: 10, ObsDomain: 7, SeqKind: collector.SeqRecords, Sequence: 99, Records: 3, Samples: 3}, m)

	fd.err = errors.New("decode ipfix: truncated")
	_, err = h.Handle(&collector.Datagram{Proto: collector.ProtoIPFIX})
	require.Error(t, err, "decode errors are returned to the collector")

	fd.err = nil
	fd.records = nil
	m, err = h.Handle(&collector.Datagram{Proto: collector.ProtoNetFlow9})
	require.NoError(t, err)
	assert.Equal(t, collector.SeqDatagrams, m.SeqKind)
	assert.Equal(t, 1, m.Records)

	win := a.closeWindow(time.Now())
	pr := pairOf(win, "a1", "a2", decoder.SourceIPFIX)
	require.NotNil(t, pr)
	assert.Equal(t, uint64(3), pr.Stats.Samples, "the failed datagram's batch was discarded")
}

func TestPipelinePortsBounded(t *testing.T) {
	enr := testEnricher(t)
	cfg := DefaultConfig()
	cfg.MaxPorts = 2
	a, _, _ := newTestAgg(t, cfg, enr)
	fd := &fakeDecoder{}
	p := NewPipeline(fd, enr, a, prometheus.NewRegistry())
	h := p.NewWorker()
	for i := uint32(1); i <= 3; i++ {
		c := decoder.Counters{Agent: expA, Exporter: expA, IfIndex: i, HasIf: true, InOctets: uint64(i), Received: int64(i)}
		fd.ctrs = append(fd.ctrs, c)
	}
	_, err := h.Handle(&collector.Datagram{Proto: collector.ProtoSFlow})
	require.NoError(t, err)
	ports := p.Ports()
	require.Len(t, ports, 2)
	assert.Equal(t, uint32(1), ports[0].IfIndex)
	assert.Equal(t, "hvA", ports[0].Host)
	assert.Equal(t, 1.0, testutil.ToFloat64(a.swports.mDropped))

	// Newer counters replace older ones.
	fd.ctrs = []decoder.Counters{{Agent: expA, Exporter: expA, IfIndex: 1, HasIf: true, InOctets: 500, Received: 10}}
	_, err = h.Handle(&collector.Datagram{Proto: collector.ProtoSFlow})
	require.NoError(t, err)
	assert.Equal(t, uint64(500), p.Ports()[0].InOctets)
}
