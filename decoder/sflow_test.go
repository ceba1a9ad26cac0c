package decoder

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	testAgent    = netip.MustParseAddr("192.0.2.10")
	testExporter = netip.MustParseAddrPort("192.0.2.10:40000")
)

// decodeBoth decodes data with the fast and the goflow2 path and requires
// they agree (both fail, or both succeed with equal output).
func decodeBoth(t *testing.T, data []byte) (*Batch, error) {
	t.Helper()
	var fb, sb Batch
	ferr := newTestDecoder(t, true).Decode(SourceSFlow, testExporter, data, 1234, &fb)
	serr := newTestDecoder(t, false).Decode(SourceSFlow, testExporter, data, 1234, &sb)
	if ferr == nil {
		require.NoError(t, serr, "goflow2 path rejects what the fast path accepts")
		require.Empty(t, cmp.Diff(sb, fb, cmpAddrs), "paths differ (-goflow2 +fast)")
	} else {
		require.Error(t, serr, "fast path error %v, goflow2 path accepts", ferr)
	}
	return &fb, ferr
}

func TestSFlowTunnelRecords(t *testing.T) {
	inner := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false), hbTCP(1000, 22, 0x02))
	dg := sfbDatagram(testAgent, 7, 99, 5000,
		sfbFlowSample(1, 2<<24|1000, 64, 6400, 0, 9, 10,
			sfbRawHeader(1, uint32(len(inner)+4), 4, inner),
			sfbRecord(sfExtSwitch, sfbXDR(0, 0, 0, 0)),
			sfbSampledIPv4(sfIPv4TunnelIngres, 100, protoUDP, vtep1, vtep2, 55555, portVXLAN, 0, 0),
			sfbRecord(sfVNIIngress, sfbXDR(4242)),
			sfbSampledIPv4(sfIPv4TunnelEgress, 100, protoUDP, vtep2, vtep1, 1, portGeneve, 0, 0), // ingress wins
			sfbRecord(sfVNIEgress, sfbXDR(17)),
		))
	b, err := decodeBoth(t, dg)
	require.NoError(t, err)
	require.Len(t, b.Records, 1)
	r := b.Records[0]
	want := Record{
		Source: SourceSFlow, Exporter: testExporter.Addr(), Agent: testAgent, SubAgent: 7, Received: 1234,
		SamplingRate: 64, InIf: 9, OutIf: 10, Bytes: uint64(len(inner)), Packets: 1,
		SrcMAC: hbMAC(1), DstMAC: hbMAC(2), EtherType: etherTypeIPv4,
		SrcIP: ip1, DstIP: ip2, Proto: protoTCP, TOS: 0xb8, TTL: 64, SrcPort: 1000, DstPort: 22, TCPFlags: 0x02,
		Flags:  FlagL3 | FlagL4 | FlagHasTTL,
		Tunnel: TunnelVXLAN, VNI: 4242, OuterSrcIP: vtep1, OuterDstIP: vtep2,
	}
	assert.Empty(t, cmp.Diff(want, r, cmpAddrs))
	assert.Equal(t, Header{Source: SourceSFlow, Version: 5, Exporter: testExporter, Agent: testAgent, SubAgent: 7, Sequence: 99, Uptime: 5000, Samples: 1}, b.Header)

	// Egress only: outer from egress, Geneve from its port.
	dg = sfbDatagram(testAgent, 0, 1, 1, sfbFlowSample(1, 0, 1, 1, 0, 1, 2,
		sfbRawHeader(1, uint32(len(inner)+4), 4, inner),
		sfbSampledIPv4(sfIPv4TunnelEgress, 100, protoUDP, vtep2, vtep1, 1, portGeneve, 0, 0),
		sfbRecord(sfVNIEgress, sfbXDR(17))))
	b, err = decodeBoth(t, dg)
	require.NoError(t, err)
	assert.Equal(t, TunnelGeneve, b.Records[0].Tunnel)
	assert.Equal(t, vtep2, b.Records[0].OuterSrcIP)
	assert.Equal(t, uint32(17), b.Records[0].VNI)

	// IPv6 tunnel record (0:1026 ingress).
	o1, o2 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	dg = sfbDatagram(testAgent, 0, 1, 1, sfbFlowSample(1, 0, 1, 1, 0, 1, 2,
		sfbRawHeader(1, uint32(len(inner)+4), 4, inner),
		sfbSampledIPv6(sfIPv6TunnelIngres, 100, 47, o1, o2, 0, 0, 0, 0)))
	b, err = decodeBoth(t, dg)
	require.NoError(t, err)
	assert.Equal(t, TunnelNone, b.Records[0].Tunnel, "GRE is neither VXLAN nor Geneve")
	assert.Equal(t, o1, b.Records[0].OuterSrcIP)
}

func TestSFlowExpandedAndSampledIP(t *testing.T) {
	dg := sfbDatagram(testAgent, 0, 5, 6,
		// Expanded flow sample, sampled IPv4 only, ifIndex formats.
		sfbExpandedFlowSample(1, 0, 3, 512, 1000, 2, 0, 70000, 2, 3,
			sfbSampledIPv4(sfSampledIPv4, 1500, protoUDP, ip1, ip2, 53, 9999, 0, 0x10),
			sfbRecord(sfExtSwitch, sfbXDR(200, 0, 300, 0)),
			sfbRecord(0x7<<12|55, make([]byte, 12)), // enterprise record: skipped
		),
		// Compact flow sample: sampled IPv6 TCP, output = flood to 4 ports, input discarded format.
		sfbFlowSample(2, 0, 16, 0, 0, 5, 0x80000004,
			sfbSampledIPv6(sfSampledIPv6, 60, protoTCP, ip61, ip62, 1, 2, 0x11, 3)),
		sfbFlowSample(3, 0, 16, 0, 0, 0x40000001, 5,
			sfbRecord(sfExtSwitch, sfbXDR(1, 0, 1, 0))), // no packet record: skipped
	)
	b, err := decodeBoth(t, dg)
	require.NoError(t, err)
	require.Len(t, b.Records, 2)
	r := b.Records[0]
	assert.Equal(t, uint32(512), r.SamplingRate)
	assert.Equal(t, uint32(70000), r.InIf, "expanded ifIndex beyond 30 bits")
	assert.Zero(t, r.OutIf, "output format 2 (multiple) gives 0")
	assert.Equal(t, uint64(1514), r.Bytes, "IP length + 14")
	assert.Equal(t, uint16(200), r.VLAN, "extended switch src VLAN")
	assert.Equal(t, uint16(9999), r.DstPort)
	assert.Equal(t, uint8(0x10), r.TOS)
	assert.Equal(t, FlagL3|FlagL4, r.Flags)
	r = b.Records[1]
	assert.Equal(t, uint32(5), r.InIf)
	assert.Zero(t, r.OutIf)
	assert.Equal(t, uint16(etherTypeIPv6), r.EtherType)
	assert.Equal(t, ip62, r.DstIP)
	assert.Equal(t, uint8(0x11), r.TCPFlags)
	assert.Equal(t, uint64(74), r.Bytes)
	assert.Equal(t, 3, b.Header.Samples)
	assert.Equal(t, 2, b.Header.Skipped, "enterprise record and the sample without a packet record")
}

func TestSFlowHeaderProtocols(t *testing.T) {
	ipPkt := sfbCat(hbIPv4(protoUDP, ip1, ip2, 8, nil, 0, false), hbUDP(1, 2, 0))
	dg := sfbDatagram(testAgent, 0, 1, 1,
		sfbFlowSample(1, 0, 1, 0, 0, 1, 2, sfbRawHeader(hdrProtoIPv4, uint32(len(ipPkt)), 0, ipPkt)),
		sfbFlowSample(2, 0, 1, 0, 0, 1, 2, sfbRawHeader(7, 100, 0, make([]byte, 20)), // ISO 8802-4: skipped
			sfbSampledIPv4(sfSampledIPv4, 40, protoTCP, ip2, ip1, 1, 2, 0x02, 0)), // ... the sampled IPv4 is used
		sfbFlowSample(3, 0, 1, 0, 0, 1, 2, sfbRawHeader(1, 2, 4, make([]byte, 3))), // stripped > frame length
	)
	b, err := decodeBoth(t, dg)
	require.NoError(t, err)
	require.Len(t, b.Records, 3)
	assert.Equal(t, ip1, b.Records[0].SrcIP)
	assert.Equal(t, uint64(len(ipPkt)+14), b.Records[0].Bytes)
	assert.Equal(t, uint16(etherTypeIPv4), b.Records[0].EtherType)
	assert.Equal(t, ip2, b.Records[1].SrcIP)
	assert.Equal(t, uint8(0x02), b.Records[1].TCPFlags)
	assert.Zero(t, b.Records[2].Bytes)
	assert.Equal(t, FlagTruncated, b.Records[2].Flags)
}

func TestSFlowCounterSamples(t *testing.T) {
	long := strings.Repeat("x", 70)
	dg := sfbDatagram(testAgent, 1, 2, 3,
		sfbCounterSample(1, 7,
			sfbIfCounters(7, 1<<40, 1<<41),
			sfbRecord(sfEthCounters, make([]byte, 52)),
			sfbOFPort(0x463d91dcd941, 1),
			sfbPortName("vnet1"),
			sfbRecord(2207, make([]byte, 24)), // OVS datapath stats: skipped
		),
		sfbExpandedCounterSample(2, 0, 70000, sfbPortName(long), sfbPortName("second")),
		sfbCounterSample(3, 2<<24|1000),
	)
	b, err := decodeBoth(t, dg)
	require.NoError(t, err)
	require.Len(t, b.Counters, 3)
	c := b.Counters[0]
	assert.True(t, c.HasIf)
	assert.Equal(t, uint32(7), c.IfIndex)
	assert.Equal(t, uint32(6), c.IfType)
	assert.Equal(t, uint64(10_000_000_000), c.IfSpeed)
	assert.Equal(t, uint32(3), c.IfStatus)
	assert.Equal(t, uint64(1<<40), c.InOctets)
	assert.Equal(t, uint64(11), c.InUcast)
	assert.Equal(t, uint64(16), c.InUnknown)
	assert.Equal(t, uint64(1<<41), c.OutOctets)
	assert.Equal(t, uint64(25), c.OutErrors)
	assert.True(t, c.HasOFPort)
	assert.Equal(t, uint64(0x463d91dcd941), c.DatapathID)
	assert.Equal(t, uint32(1), c.OFPort)
	assert.Equal(t, "vnet1", c.Name())
	assert.Equal(t, testAgent, c.Agent)
	assert.Equal(t, uint32(1), c.SubAgent)
	assert.Equal(t, int64(1234), c.Received)
	c = b.Counters[1]
	assert.False(t, c.HasIf)
	assert.Equal(t, uint32(70000), c.IfIndex, "ifIndex from the expanded source")
	assert.Equal(t, long[:PortNameMax], c.Name(), "name cut at PortNameMax, first record wins")
	c = b.Counters[2]
	assert.Equal(t, uint32(2<<24|1000), c.SourceID)
	assert.Zero(t, c.IfIndex)
	assert.Equal(t, 2, b.Header.Skipped, "record 2207 and the duplicate port name")
}

func TestSFlowIPv6Agent(t *testing.T) {
	a6 := netip.MustParseAddr("2001:db8::10")
	a := a6.As16()
	dg := sfbCat(sfbXDR(5, 2), a[:], sfbXDR(0, 1, 2, 1), sfbCounterSample(1, 3))
	b, err := decodeBoth(t, dg)
	require.NoError(t, err)
	assert.Equal(t, a6, b.Header.Agent)
	assert.Equal(t, a6, b.Counters[0].Agent)
}

// TestSFlowErrors feeds malformed datagrams: each fails on the fast path
// with the expected kind, quickly, and the error is counted.
func TestSFlowErrors(t *testing.T) {
	hdr := make([]byte, 60)
	good := func() []byte {
		return sfbDatagram(testAgent, 0, 1, 1, sfbFlowSample(1, 0, 1, 0, 0, 1, 2, sfbRawHeader(1, 64, 4, hdr)))
	}
	// Offsets in good(): datagram header 28, sample header 8, flow sample
	// fields 32, record header 8, raw header fields 16.
	const sample, rec = 28, 28 + 8 + 32
	set := func(b []byte, off int, v uint32) []byte { binary.BigEndian.PutUint32(b[off:], v); return b }
	cases := []struct {
		name   string
		data   []byte
		want   error
		reason string
	}{
		{"empty", nil, ErrTruncated, "truncated"},
		{"version 4", set(good(), 0, 4), ErrBadVersion, "bad_version"},
		{"agent type 3", set(good(), 4, 3), ErrBadAddress, "bad_agent_address"},
		{"short header", good()[:20], ErrTruncated, "truncated"},
		{"too many samples", set(good(), 24, 1001), ErrTooManySamples, "too_many_samples"},
		{"missing sample", set(good(), 24, 2), ErrTruncated, "truncated"},
		{"sample overruns", set(good(), sample+4, 1000), ErrTruncated, "truncated"},
		{"sample length odd", append(set(good(), sample+4, uint32(len(good())-sample-8+2)), 0, 0), ErrBadLength, "bad_length"},
		{"unknown sample format", set(good(), sample, 9), ErrUnknownSampleFormat, "unknown_sample_format"},
		{"too many records", set(good(), sample+8+28, 65), ErrTooManyRecords, "too_many_records"},
		{"record overruns", set(good(), rec+4, 4000), ErrTruncated, "truncated"},
		{"record length odd", set(good(), rec+4, 73), ErrBadLength, "bad_length"},
		{"header length overruns", set(good(), rec+8+12, 61), ErrTruncated, "truncated"},
		{"raw header too short", sfbDatagram(testAgent, 0, 1, 1, sfbFlowSample(1, 0, 1, 0, 0, 1, 2, sfbRecord(sfRawHeader, make([]byte, 12)))), ErrMalformed, "malformed"},
		{"if counters too short", sfbDatagram(testAgent, 0, 1, 1, sfbCounterSample(1, 0, sfbRecord(sfIfCounters, make([]byte, 84)))), ErrMalformed, "malformed"},
		{"port name overruns", sfbDatagram(testAgent, 0, 1, 1, sfbCounterSample(1, 0, sfbRecord(sfPortName, sfbXDR(9, 0)))), ErrTruncated, "truncated"},
		{"tunnel record too short", sfbDatagram(testAgent, 0, 1, 1, sfbFlowSample(1, 0, 1, 0, 0, 1, 2, sfbRecord(sfIPv4TunnelEgress, make([]byte, 28)))), ErrMalformed, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			d, err := New(DefaultConfig(), reg)
			require.NoError(t, err)
			var b Batch
			err = d.Decode(SourceSFlow, testExporter, tc.data, 1, &b)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "decode sflow: "), err.Error())
			assert.Equal(t, 1.0, testutil.ToFloat64(d.m.errors[SourceSFlow][classify(err)]))
			n, gerr := testutil.GatherAndCount(reg, "vmflow_decoder_errors_total")
			require.NoError(t, gerr)
			assert.Positive(t, n)
			assert.Equal(t, tc.reason, reasonNames[classify(err)])
			// The goflow2 path fails too, or accepts what the fast path
			// rejects for strictness (lengths), never the reverse.
			var sb Batch
			serr := newTestDecoder(t, false).Decode(SourceSFlow, testExporter, tc.data, 1, &sb)
			if serr == nil {
				assert.True(t, errors.Is(err, ErrTruncated) || errors.Is(err, ErrBadLength), "goflow2 accepts: %v", err)
			}
		})
	}
	// The good datagram itself decodes on both paths.
	_, err := decodeBoth(t, good())
	require.NoError(t, err)
}

// hazardDatagrams are crafted datagrams that hit known goflow2 hazards.
func hazardDatagrams() map[string][]byte {
	huge := func(format uint32, countOff int, bodyLen int) []byte {
		body := make([]byte, bodyLen)
		binary.BigEndian.PutUint32(body[countOff:], 0xffffffff)
		return sfbDatagram(testAgent, 0, 1, 1, sfbSample(format, body))
	}
	return map[string][]byte{
		// goflow2 v2.2.6 allocates len(records) = count for expanded flow samples.
		"sflow-expanded-flow-huge-records": huge(sflowExpandedFlowSample, 40, 44+16),
		"sflow-expanded-flow-1m-records": func() []byte {
			b := huge(sflowExpandedFlowSample, 40, 44)
			binary.BigEndian.PutUint32(b[28+8+40:], 1<<20)
			return b
		}(),
		"sflow-flow-huge-records":     huge(sflowFlowSample, 28, 32),
		"sflow-counter-huge-records":  huge(sflowCounterSample, 8, 12),
		"sflow-expanded-counter-huge": huge(sflowExpandedCounterSample, 12, 16),
		"sflow-drop-huge-records":     huge(sflowDropSample, 28, 32),
		"sflow-huge-sample-count":     sfbCat(sfbXDR(5, 1), []byte{1, 2, 3, 4}, sfbXDR(0, 1, 1, 0xffffffff)),
	}
}

// TestSFlowHazards: each hazard fails fast on both paths without allocating
// more than a little memory.
func TestSFlowHazards(t *testing.T) {
	for name, data := range hazardDatagrams() {
		for _, fast := range []bool{true, false} {
			d := newTestDecoder(t, fast)
			var b Batch
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := d.Decode(SourceSFlow, testExporter, data, 1, &b)
			runtime.ReadMemStats(&after)
			require.Error(t, err, "%s fast=%v", name, fast)
			if strings.Contains(name, "sample-count") {
				assert.ErrorIs(t, err, ErrTooManySamples)
			} else {
				assert.ErrorIs(t, err, ErrTooManyRecords, "%s fast=%v", name, fast)
			}
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "%s fast=%v allocated too much", name, fast)
		}
	}
}

// TestSFlowHazardFiles decodes the hazard files shipped in testdata/hazards
// (used by the end-to-end hazard test too) and checks they match the
// generator above.
func TestSFlowHazardFiles(t *testing.T) {
	dir := "../testdata/hazards"
	gen := hazardDatagrams()
	if os.Getenv("VMFLOW_WRITE_HAZARDS") == "1" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for name, data := range gen {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name+".bin"), data, 0o644))
		}
	}
	for name, data := range gen {
		got, err := os.ReadFile(filepath.Join(dir, name+".bin"))
		require.NoError(t, err, "hazard file missing: run with VMFLOW_WRITE_HAZARDS=1")
		assert.Equal(t, data, got, name)
		for _, fast := range []bool{true, false} {
			var b Batch
			assert.Error(t, newTestDecoder(t, fast).Decode(SourceSFlow, testExporter, got, 1, &b), name)
		}
	}
}

func TestDecoderConfig(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	cfg := DefaultConfig()
	cfg.SFlow.MaxRecords = 0
	cfg.SFlow.MaxSamples = 5000
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "decoder.sflow.max_records")
	assert.Contains(t, err.Error(), "decoder.sflow.max_samples")
	_, err = New(cfg, nil)
	assert.Error(t, err)

	// A lower record cap rejects what the default accepts.
	cfg = DefaultConfig()
	cfg.SFlow.MaxRecords = 1
	d, err := New(cfg, nil)
	require.NoError(t, err)
	dg := sfbDatagram(testAgent, 0, 1, 1, sfbCounterSample(1, 1, sfbPortName("a"), sfbPortName("b")))
	var b Batch
	assert.ErrorIs(t, d.Decode(SourceSFlow, testExporter, dg, 1, &b), ErrTooManyRecords)
	assert.NoError(t, newTestDecoder(t, true).Decode(SourceSFlow, testExporter, dg, 1, &b))

	// Two decoders on one registry share the counters.
	reg := prometheus.NewRegistry()
	d1, err := New(DefaultConfig(), reg)
	require.NoError(t, err)
	d2, err := New(DefaultConfig(), reg)
	require.NoError(t, err)
	require.NoError(t, d1.Decode(SourceSFlow, testExporter, dg, 1, &b))
	require.NoError(t, d2.Decode(SourceSFlow, testExporter, dg, 1, &b))
	assert.Equal(t, 2.0, testutil.ToFloat64(d1.m.datagrams[SourceSFlow]))
	assert.Equal(t, 2.0, testutil.ToFloat64(d1.m.records[recPortName]))
	assert.Equal(t, 2.0, testutil.ToFloat64(d1.m.skipped[skipDuplicateRecord]))

	// Unknown source.
	err = d1.Decode(Source(99), testExporter, dg, 1, &b)
	assert.ErrorIs(t, err, ErrUnknownSource)
	assert.Equal(t, 1.0, testutil.ToFloat64(d1.m.errors[SourceUnknown][reasonUnknownSource]))
}

// TestSFlowDecodeConcurrent decodes the capture from several goroutines with
// one Decoder (run with -race).
func TestSFlowDecodeConcurrent(t *testing.T) {
	dgs := readCaptureUDP(t, sflowCapture, 6343)
	d := newTestDecoder(t, true)
	want := 0
	for _, dg := range dgs {
		var b Batch
		require.NoError(t, d.Decode(SourceSFlow, dg.From, dg.Payload, dg.Received, &b))
		want += len(b.Records)
	}
	got := make(chan int)
	for w := 0; w < 4; w++ {
		go func() {
			var b Batch
			n := 0
			for _, dg := range dgs {
				if d.Decode(SourceSFlow, dg.From, dg.Payload, dg.Received, &b) == nil {
					n += len(b.Records)
				}
			}
			got <- n
		}()
	}
	for w := 0; w < 4; w++ {
		assert.Equal(t, want, <-got)
	}
}

// TestSFlowFastPathNoAllocs: steady-state decoding with a reused Batch
// allocates nothing.
func TestSFlowFastPathNoAllocs(t *testing.T) {
	dgs := readCaptureUDP(t, sflowCapture, 6343)
	d := newTestDecoder(t, true)
	var b Batch
	for _, dg := range dgs { // warm up: grow the batch
		require.NoError(t, d.Decode(SourceSFlow, dg.From, dg.Payload, dg.Received, &b))
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		dg := dgs[i%len(dgs)]
		i++
		_ = d.Decode(SourceSFlow, dg.From, dg.Payload, dg.Received, &b)
	})
	assert.Zero(t, allocs)
}
