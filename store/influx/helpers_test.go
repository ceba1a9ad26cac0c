package influx

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/query"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/testenv/influxd"
)

// testVM describes the VMs of the hand-built windows.
type testVM struct {
	id                     enrich.VMID
	name, host, tenant, ip string
}

var testVMs = []testVM{
	{1, "web-1", "hv1", "acme", "10.0.0.11"},
	{2, "db-1", "hv2", "acme", "10.0.0.12"},
	{3, "cache 1", "hv1", "acme,inc", "10.0.0.13"}, // name and tenant need escaping
	{4, "batch-7", "hv2", "globex", "10.1.0.7"},
}

func vmEndpoint(v testVM) (aggregate.EndpointKey, aggregate.Endpoint) {
	return aggregate.EndpointKey{VM: v.id}, aggregate.Endpoint{VM: v.name, UUID: fmt.Sprintf("0000-%d", v.id), Host: v.host, Tenant: v.tenant, IP: v.ip, MAC: fmt.Sprintf("52:54:00:00:00:%02x", v.id)}
}

func extEndpoint(ip string) (aggregate.EndpointKey, aggregate.Endpoint) {
	a := netip.MustParseAddr(ip)
	return aggregate.EndpointKey{IP: a}, aggregate.Endpoint{IP: ip}
}

// mkStats builds distinct, non-trivial stats from a seed.
func mkStats(seed float64, srcIP, dstIP string) aggregate.Stats {
	s := aggregate.Stats{
		Bytes: 1000*seed + 0.25, Packets: 10*seed + 1, BytesVar: 3.5 * seed * seed, PacketsVar: 0.75 * seed,
		Samples: uint64(seed) + 3, Flows: uint64(seed)%5 + 1,
		TCPBytes: 600 * seed, UDPBytes: 300 * seed, ICMPBytes: 90 * seed, OtherBytes: 10*seed + 0.25,
		TCPPackets: 6 * seed, UDPPackets: 3 * seed, ICMPPackets: 0.5 * seed, OtherPackets: 0.5*seed + 1,
		SYN: seed, SYNACK: seed / 2, RST: seed / 4, FIN: seed / 8, ICMPErrors: seed / 16,
		DroppedPackets: seed / 32, DroppedBytes: 64 * seed / 32,
		VNI:   uint32(seed) + 100,
		First: int64(seed) * 1e9, Last: int64(seed)*1e9 + 5e8,
	}
	s.TopPorts[0] = aggregate.PortCount{Proto: 6, Port: 443, Bytes: 500 * seed}
	s.TopPorts[1] = aggregate.PortCount{Proto: 17, Port: 53, Bytes: 100 * seed}
	s.SrcIP = netip.MustParseAddr(srcIP)
	s.DstIP = netip.MustParseAddr(dstIP)
	return s
}

func mkPair(src, dst testVM, source decoder.Source, seed float64) aggregate.Pair {
	var p aggregate.Pair
	p.Key.Src, p.Src = vmEndpoint(src)
	p.Key.Dst, p.Dst = vmEndpoint(dst)
	p.Key.Source = source
	p.Stats = mkStats(seed, src.ip, dst.ip)
	return p
}

// mkWindow builds window k (10 s, ending at base+10k s) with VM pairs, a
// VM → external pair, an external → VM pair, and two external sources
// sending to one VM (they share one point).
func mkWindow(base time.Time, k int) *aggregate.Window {
	end := base.Add(time.Duration(k+1) * 10 * time.Second)
	w := &aggregate.Window{Start: end.Add(-10 * time.Second), End: end}
	f := float64(k + 1)
	w.Pairs = append(w.Pairs,
		mkPair(testVMs[0], testVMs[1], decoder.SourceSFlow, 1*f),
		mkPair(testVMs[1], testVMs[0], decoder.SourceSFlow, 2*f),
		mkPair(testVMs[0], testVMs[1], decoder.SourceIPFIX, 3*f),
		mkPair(testVMs[2], testVMs[3], decoder.SourceSFlow, 4*f),
	)
	var p aggregate.Pair
	p.Key.Src, p.Src = vmEndpoint(testVMs[3])
	p.Key.Dst, p.Dst = extEndpoint("8.8.8.8")
	p.Key.Source = decoder.SourceSFlow
	p.Stats = mkStats(5*f, testVMs[3].ip, "8.8.8.8")
	w.Pairs = append(w.Pairs, p)
	for i, ip := range []string{"198.51.100.7", "203.0.113.9"} {
		var q aggregate.Pair
		q.Key.Src, q.Src = extEndpoint(ip)
		q.Key.Dst, q.Dst = vmEndpoint(testVMs[0])
		q.Key.Source = decoder.SourceSFlow
		q.Stats = mkStats(float64(6+i)*f, ip, testVMs[0].ip)
		w.Pairs = append(w.Pairs, q)
	}
	return w
}

// expectedPoint is what one vm_pair point must hold, computed here
// independently of the encoder.
type expectedPoint struct {
	tags   map[string]string
	fields map[string]any
}

func addStats(a, b aggregate.Stats) aggregate.Stats {
	a.Bytes += b.Bytes
	a.Packets += b.Packets
	a.BytesVar += b.BytesVar
	a.PacketsVar += b.PacketsVar
	a.Samples += b.Samples
	a.Flows += b.Flows
	a.TCPBytes += b.TCPBytes
	a.UDPBytes += b.UDPBytes
	a.ICMPBytes += b.ICMPBytes
	a.OtherBytes += b.OtherBytes
	a.TCPPackets += b.TCPPackets
	a.UDPPackets += b.UDPPackets
	a.ICMPPackets += b.ICMPPackets
	a.OtherPackets += b.OtherPackets
	a.SYN += b.SYN
	a.SYNACK += b.SYNACK
	a.RST += b.RST
	a.FIN += b.FIN
	a.ICMPErrors += b.ICMPErrors
	a.DroppedPackets += b.DroppedPackets
	a.DroppedBytes += b.DroppedBytes
	return a
}

func seriesID(tags map[string]string) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s", tags["src_vm"], tags["dst_vm"], tags["source"], tags["src_host"], tags["dst_host"], tags["src_tenant"], tags["dst_tenant"])
}

// expectedPoints lists the vm_pair points of w keyed by series id.
func expectedPoints(w *aggregate.Window) map[string]expectedPoint {
	out := map[string]expectedPoint{}
	ival := w.End.Sub(w.Start).Seconds()
	for _, p := range w.Pairs {
		tags := map[string]string{"source": p.Key.Source.String()}
		for side, e := range map[string]aggregate.Endpoint{"src": p.Src, "dst": p.Dst} {
			if e.VM == "" {
				tags[side+"_vm"], tags[side+"_host"], tags[side+"_tenant"] = "(external)", "-", "-"
				continue
			}
			tags[side+"_vm"], tags[side+"_host"], tags[side+"_tenant"] = e.VM, e.Host, e.Tenant
		}
		id := seriesID(tags)
		st := p.Stats
		if prev, ok := out[id]; ok {
			st = addStats(prev.fields["_stats"].(aggregate.Stats), st)
		}
		f := map[string]any{
			"_stats": st,
			"bytes":  st.Bytes, "packets": st.Packets, "bytes_var": st.BytesVar, "packets_var": st.PacketsVar,
			"samples": int64(st.Samples), "flows": int64(st.Flows), "interval": int64(ival),
			"bps": st.Bytes * 8 / ival, "pps": st.Packets / ival,
			"tcp_bytes": st.TCPBytes, "udp_bytes": st.UDPBytes, "icmp_bytes": st.ICMPBytes, "other_bytes": st.OtherBytes,
			"tcp_packets": st.TCPPackets, "udp_packets": st.UDPPackets, "icmp_packets": st.ICMPPackets, "other_packets": st.OtherPackets,
			"syn": st.SYN, "synack": st.SYNACK, "rst": st.RST, "fin": st.FIN, "icmp_errors": st.ICMPErrors,
			"dropped_packets": st.DroppedPackets, "dropped_bytes": st.DroppedBytes,
		}
		out[id] = expectedPoint{tags: tags, fields: f}
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	influxd.StopShared()
	os.Exit(code)
}

// startInflux returns the package's shared influxd with database db created.
func startInflux(t *testing.T, db string) *influxd.Server {
	t.Helper()
	s := influxd.Shared(t)
	s.CreateDatabase(t, db)
	return s
}

// ownInflux starts an influxd for this test alone (it may be stopped).
func ownInflux(t *testing.T, db string) *influxd.Server {
	t.Helper()
	s := influxd.Start(t)
	s.CreateDatabase(t, db)
	return s
}

func testConfig(t *testing.T, url, db string) Config {
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.URL = url
	cfg.Bucket = db + "/autogen"
	cfg.Spool.Dir = t.TempDir()
	cfg.Spool.MaxBytes = 64 << 20
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.RetryMin = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	cfg.SelfInterval = 0
	return cfg
}

func newTestWriter(t *testing.T, cfg Config) *Writer {
	t.Helper()
	w, err := NewWriter(cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	return w
}

// fluxRows runs a Flux query and returns its records' values.
func fluxRows(t *testing.T, r *Reader, flux string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	err := r.query(context.Background(), flux, func(rec *query.FluxRecord) error {
		rows = append(rows, rec.Values())
		return nil
	})
	require.NoError(t, err, flux)
	return rows
}
