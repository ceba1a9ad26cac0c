package api

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// T is the start of the first test window; the test clock reads T+60s.
var T = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const nWindows = 6 // 10 s windows [T+10i, T+10(i+1)]

type ep struct {
	vm     string
	id     enrich.VMID
	ip     string
	host   string
	tenant string
	keepIP bool // non-VM: fill Endpoint.IP (else left empty: the API must use the key)
}

var (
	web1    = ep{vm: "web-1", id: 1, ip: "10.0.0.1", host: "hv1", tenant: "acme"}
	db1     = ep{vm: "db-1", id: 2, ip: "10.0.0.2", host: "hv2", tenant: "acme"}
	cache1  = ep{vm: "cache-1", id: 3, ip: "10.0.0.3", host: "hv3", tenant: "other"}
	ext     = ep{ip: "8.8.8.8", keepIP: true}
	scanner = ep{ip: "192.0.2.7"}
)

func (e ep) key() aggregate.EndpointKey {
	if e.id != 0 {
		return aggregate.EndpointKey{VM: e.id}
	}
	return aggregate.EndpointKey{IP: netip.MustParseAddr(e.ip)}
}

func (e ep) endpoint() aggregate.Endpoint {
	if e.id != 0 {
		return aggregate.Endpoint{VM: e.vm, UUID: "uuid-" + e.vm, Host: e.host, Tenant: e.tenant, IP: e.ip, MAC: "52:54:00:00:00:0" + string('0'+rune(e.id))}
	}
	if e.keepIP {
		return aggregate.Endpoint{IP: e.ip}
	}
	return aggregate.Endpoint{}
}

// fixturePair is one pair in one window.
type fixturePair struct {
	win      int
	src, dst ep
	source   decoder.Source
	stats    aggregate.Stats
}

// fixture returns the test traffic:
//
//	A  web-1 → db-1    IPFIX, every window, 1000·(i+1) bytes, TCP/5432
//	A' web-1 → db-1    sFlow, every window, 800 bytes (same traffic seen by sFlow)
//	B  db-1 → web-1    sFlow, windows 2 and 3, 5000 bytes, variance 4e6
//	C  web-1 → 8.8.8.8 sFlow, window 5, 300 bytes (non-VM destination)
//	D  192.0.2.7 → db-1 IPFIX, window 1, 100000 bytes, 1 packet (non-VM source)
//	F  cache-1 → web-1 IPFIX, window 4, 2000 bytes (tenant other, host hv3)
func fixture() []fixturePair {
	var fx []fixturePair
	for i := 0; i < nWindows; i++ {
		b := float64(1000 * (i + 1))
		st := aggregate.Stats{Bytes: b, Packets: b / 100, Samples: uint64(10 * (i + 1)), Flows: 2,
			SampledBytes: uint64(b), SampledPackets: uint64(b / 100), TCPBytes: b, TCPPackets: b / 100, SYN: 1, SYNACKIn: float64(i % 2)}
		st.TopPorts[0] = aggregate.PortCount{Proto: 6, Port: 5432, Bytes: b}
		fx = append(fx, fixturePair{i, web1, db1, decoder.SourceIPFIX, st})
		fx = append(fx, fixturePair{i, web1, db1, decoder.SourceSFlow, aggregate.Stats{Bytes: 800, Packets: 8,
			BytesVar: 640000, PacketsVar: 64, Samples: 1, Flows: 1, SampledBytes: 50, SampledPackets: 1}})
	}
	for _, i := range []int{2, 3} {
		fx = append(fx, fixturePair{i, db1, web1, decoder.SourceSFlow, aggregate.Stats{Bytes: 5000, Packets: 50,
			BytesVar: 4e6, PacketsVar: 400, Samples: 3, Flows: 1, SampledBytes: 300, SampledPackets: 3, UDPBytes: 5000, UDPPackets: 50}})
	}
	fx = append(fx, fixturePair{5, web1, ext, decoder.SourceSFlow, aggregate.Stats{Bytes: 300, Packets: 3, Samples: 1, Flows: 1, SampledBytes: 300, SampledPackets: 3}})
	fx = append(fx, fixturePair{1, scanner, db1, decoder.SourceIPFIX, aggregate.Stats{Bytes: 100000, Packets: 1, Samples: 1, Flows: 1,
		SampledBytes: 100000, SampledPackets: 1, ICMPErrors: 1, ICMPBytes: 100000, ICMPPackets: 1}})
	fx = append(fx, fixturePair{4, cache1, web1, decoder.SourceIPFIX, aggregate.Stats{Bytes: 2000, Packets: 20, Samples: 20, Flows: 1, SampledBytes: 2000, SampledPackets: 20}})
	return fx
}

func fixtureWindows() []*aggregate.Window {
	ws := make([]*aggregate.Window, nWindows)
	for i := range ws {
		ws[i] = &aggregate.Window{Start: T.Add(time.Duration(i) * 10 * time.Second), End: T.Add(time.Duration(i+1) * 10 * time.Second)}
	}
	for _, f := range fixture() {
		w := ws[f.win]
		w.Pairs = append(w.Pairs, aggregate.Pair{
			Key: aggregate.PairKey{Src: f.src.key(), Dst: f.dst.key(), Source: f.source},
			Src: f.src.endpoint(), Dst: f.dst.endpoint(), Stats: f.stats,
		})
	}
	// web-1's tap vnet0 on hv1: counter samples every 10 s, 1 error per
	// window from window 3 on; window 4 has a second sample 5 s apart.
	for i, w := range ws {
		p := aggregate.PortStats{Key: fixturePort, Name: "vnet0", Host: "hv1", VM: "web-1", UUID: "11111111-1111-1111-1111-111111111111",
			VMID: 1, IfSpeed: 10_000_000, Seconds: 10, Samples: 1, InOctets: 12500 * 10, OutOctets: 2500 * 10, InPackets: 100, OutPackets: 50}
		if i >= 3 {
			p.InErrors, p.OutDiscards = 1, 2
		}
		if i == 4 {
			p.Seconds, p.Samples, p.InOctets = 15, 2, 12500*15
		}
		w.Ports = []aggregate.PortStats{p}
	}
	return ws
}

var fixturePort = aggregate.PortKey{Agent: netip.MustParseAddr("10.1.0.1"), IfIndex: 7}

// expected sums the fixture for one directed pair, source and window range [lo, hi].
func expected(src, dst ep, source decoder.Source, lo, hi int) (bytes, packets, bytesVar float64, windows int) {
	for _, f := range fixture() {
		if f.src == src && f.dst == dst && f.source == source && f.win >= lo && f.win <= hi {
			bytes += f.stats.Bytes
			packets += f.stats.Packets
			bytesVar += f.stats.BytesVar
			windows++
		}
	}
	return
}

type fakeInventory struct {
	idx     *enrich.Index
	sources []enrich.SourceStatus
}

func (f fakeInventory) Index() *enrich.Index           { return f.idx }
func (f fakeInventory) Sources() []enrich.SourceStatus { return f.sources }

type fakeExporters []collector.ExporterStatus

func (f fakeExporters) Exporters() []collector.ExporterStatus { return f }

type testEnv struct {
	srv *Server
	ts  *httptest.Server
	mem *store.Memory
	reg *prometheus.Registry
}

func testInventory(t testing.TB) fakeInventory {
	t.Helper()
	en, err := enrich.New(enrich.DefaultConfig(), nil)
	require.NoError(t, err)
	mac1, _ := enrich.ParseMAC("52:54:00:00:00:01")
	mac2, _ := enrich.ParseMAC("52:54:00:00:00:02")
	en.Publish(enrich.Snapshot{Source: "static", VMs: []enrich.VM{
		{Name: "web-1", UUID: "11111111-1111-1111-1111-111111111111", Host: "hv1", Tenant: "acme", State: "running",
			Interfaces: []enrich.Interface{{MAC: mac1, Tap: "vnet0", Addrs: []enrich.Addr{{IP: netip.MustParseAddr("10.0.0.1"), Source: enrich.AddrStatic}}}}},
		{Name: "db-1", Host: "hv2", Tenant: "acme",
			Interfaces: []enrich.Interface{{MAC: mac2, Addrs: []enrich.Addr{{IP: netip.MustParseAddr("10.0.0.2"), Source: enrich.AddrStatic}}}}},
		// Claims web-1's MAC: a conflict.
		{Name: "clone", Host: "hv3", Interfaces: []enrich.Interface{{MAC: mac1}}},
	}})
	return fakeInventory{idx: en.Index(), sources: []enrich.SourceStatus{
		{Name: "static", Kind: "static", State: "loaded", LastSync: T, VMs: 3},
	}}
}

func newEnv(t testing.TB, mutate func(*Deps, *Config)) *testEnv {
	t.Helper()
	mem := store.NewMemory(store.DefaultMemoryConfig(), nil)
	for _, w := range fixtureWindows() {
		mem.Write(w)
	}
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	deps := Deps{
		Store:      mem,
		Recent:     mem,
		Inventory:  testInventory(t),
		Exporters:  fakeExporters{},
		Gatherer:   reg,
		Registerer: reg,
		Now:        func() time.Time { return T.Add(60 * time.Second) },
		Alerts:     testAlerts(t),
		Resources:  testResources(), // resources_test.go
		UI: fstest.MapFS{
			"index.html":    {Data: []byte("<!doctype html><title>vmflow</title>")},
			"assets/app.js": {Data: []byte("console.log('hi')")},
		},
	}
	asAdmin := fixtureAdmin(t, &cfg) // access_fixture_test.go: requests without credentials come as admin
	if mutate != nil {
		mutate(&deps, &cfg)
	}
	srv, err := New(cfg, deps)
	require.NoError(t, err)
	ts := httptest.NewServer(asAdmin(srv.Handler()))
	t.Cleanup(ts.Close)
	return &testEnv{srv: srv, ts: ts, mem: mem, reg: reg}
}

// get fetches path and decodes a JSON body into out (if non-nil).
func (e *testEnv) get(t *testing.T, path string, out any) int {
	t.Helper()
	resp, err := http.Get(e.ts.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.Contains(t, resp.Header.Get("Content-Type"), "application/json", "path %s body %s", path, body)
		require.NoError(t, json.Unmarshal(body, out), "path %s body %s", path, body)
	}
	return resp.StatusCode
}

func near(t *testing.T, want, got float64, msg string, args ...any) {
	t.Helper()
	require.InDelta(t, want, got, 1e-6*math.Max(1, math.Abs(want)), append([]any{msg}, args...)...)
}
