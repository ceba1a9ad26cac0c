package aggregate

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// Test inventory: hvA (exporter 192.0.2.1) runs a1, a2; hvB (exporter
// 192.0.2.2, and 127.0.0.1 observation domain 2 for IPFIX) runs b1; hvC has
// no exporter (unobserved) and runs c1.
var (
	expA   = netip.MustParseAddr("192.0.2.1")
	expB   = netip.MustParseAddr("192.0.2.2")
	expLo  = netip.MustParseAddr("127.0.0.1")
	expBad = netip.MustParseAddr("192.0.2.99")

	macA1 = [6]byte{0x52, 0x54, 0, 0, 0xa, 1}
	macA2 = [6]byte{0x52, 0x54, 0, 0, 0xa, 2}
	macB1 = [6]byte{0x52, 0x54, 0, 0, 0xb, 1}
	macC1 = [6]byte{0x52, 0x54, 0, 0, 0xc, 1}
	macGW = [6]byte{0x52, 0x54, 0, 0, 0xff, 0xff} // a router, no VM

	ipA1   = netip.MustParseAddr("10.0.0.1")
	ipA2   = netip.MustParseAddr("10.0.0.2")
	ipB1   = netip.MustParseAddr("10.0.0.11")
	ipC1   = netip.MustParseAddr("10.0.0.21")
	ipExt  = netip.MustParseAddr("198.51.100.7")
	ipExt2 = netip.MustParseAddr("198.51.100.8")
)

func testVM(name, host string, mac [6]byte, ip netip.Addr) enrich.VM {
	return enrich.VM{
		Name: name, UUID: "", Host: host, Tenant: "t1", State: "running",
		Interfaces: []enrich.Interface{{MAC: mac, Addrs: []enrich.Addr{{IP: ip, Source: enrich.AddrStatic}}}},
	}
}

func testEnricher(t testing.TB) *enrich.Enricher {
	t.Helper()
	e, err := enrich.New(enrich.DefaultConfig(), nil)
	require.NoError(t, err)
	e.Publish(enrich.Snapshot{
		Source: "static",
		Hosts: []enrich.Host{
			{Name: "hvA", Exporters: []netip.Addr{expA}},
			{Name: "hvB", Exporters: []netip.Addr{expB}, ExporterDomains: []enrich.ExporterID{{Addr: expLo, Domain: 2}}},
			{Name: "hvC"},
		},
		VMs: []enrich.VM{
			testVM("a1", "hvA", macA1, ipA1),
			testVM("a2", "hvA", macA2, ipA2),
			testVM("b1", "hvB", macB1, ipB1),
			testVM("c1", "hvC", macC1, ipC1),
		},
	})
	return e
}

// fakeSink records windows.
type fakeSink struct {
	mu      sync.Mutex
	windows []*Window
}

func (s *fakeSink) Write(w *Window) {
	s.mu.Lock()
	s.windows = append(s.windows, w)
	s.mu.Unlock()
}

func (s *fakeSink) all() []*Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Window(nil), s.windows...)
}

func newTestAgg(t testing.TB, cfg Config, enr *enrich.Enricher) (*Aggregator, *fakeSink, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	sink := &fakeSink{}
	a, err := New(cfg, enr, reg, sink)
	require.NoError(t, err)
	return a, sink, reg
}

// rec builds an sFlow-like packet sample.
type rb struct{ decoder.Record }

func sample(agent netip.Addr, srcMAC, dstMAC [6]byte, src, dst netip.Addr) *rb {
	r := &rb{decoder.Record{
		Source: decoder.SourceSFlow, Exporter: agent, Agent: agent, SamplingRate: 1,
		Bytes: 100, Packets: 1, SrcMAC: srcMAC, DstMAC: dstMAC,
		EtherType: 0x0800, SrcIP: src, DstIP: dst, Proto: 17, SrcPort: 40000, DstPort: 5201,
		Flags:    decoder.FlagL3 | decoder.FlagL4,
		Received: time.Now().UnixNano(),
	}}
	return r
}

func (r *rb) rate(n uint32) *rb        { r.SamplingRate = n; return r }
func (r *rb) bytes(b uint64) *rb       { r.Bytes = b; return r }
func (r *rb) pkts(p uint64) *rb        { r.Packets = p; return r }
func (r *rb) proto(p uint8) *rb        { r.Proto = p; return r }
func (r *rb) ports(s, d uint16) *rb    { r.SrcPort, r.DstPort = s, d; return r }
func (r *rb) tcp(flags uint8) *rb      { r.Proto, r.TCPFlags = 6, flags; return r }
func (r *rb) icmp(p, typ uint8) *rb    { r.Proto, r.ICMPType, r.Flags = p, typ, decoder.FlagL3; return r }
func (r *rb) at(ns int64) *rb          { r.Received = ns; return r }
func (r *rb) src(s decoder.Source) *rb { r.Source = s; return r }
func (r *rb) ipfix(exp netip.Addr, domain uint32) *rb {
	r.Source, r.Exporter, r.Agent, r.ObsDomain = decoder.SourceIPFIX, exp, exp, domain
	return r
}

// pairOf finds a pair by endpoint names/IPs in a window ("" matches the
// non-IP endpoint).
func pairOf(w *Window, src, dst string, source decoder.Source) *Pair {
	name := func(e Endpoint) string {
		if e.VM != "" {
			return e.VM
		}
		return e.IP
	}
	for i := range w.Pairs {
		p := &w.Pairs[i]
		if name(p.Src) == src && name(p.Dst) == dst && p.Key.Source == source {
			return p
		}
	}
	return nil
}
