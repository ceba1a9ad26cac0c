package decoder

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFlowConfigValidate(t *testing.T) {
	require.NoError(t, DefaultFlowConfig().Validate())

	dom := uint32(7)
	ok := DefaultFlowConfig()
	ok.SamplingRates = []SamplingRateRule{{Exporter: "10.0.0.0/8", ObservationDomain: &dom, Rate: 64}, {Exporter: "2001:db8::1", Rate: 2}}
	require.NoError(t, ok.Validate())

	cases := []struct {
		mod  func(*FlowConfig)
		want string
	}{
		{func(c *FlowConfig) { c.SamplingRates = []SamplingRateRule{{Exporter: "10.0.0.300/8", Rate: 1}} }, "decoder.flow.sampling_rates[0].exporter: invalid CIDR"},
		{func(c *FlowConfig) {
			c.SamplingRates = []SamplingRateRule{{Exporter: "10.0.0.0/8", Rate: 1}, {Exporter: "10.1.0.0/16", Rate: 0}}
		}, "decoder.flow.sampling_rates[1].rate: must be >= 1"},
		{func(c *FlowConfig) { c.DefaultSamplingRate = 0 }, "decoder.flow.default_sampling_rate"},
		{func(c *FlowConfig) { c.TemplateLifetime = -time.Second }, "decoder.flow.template_lifetime"},
		{func(c *FlowConfig) { c.MaxExporters = 0 }, "decoder.flow.max_exporters"},
		{func(c *FlowConfig) { c.MaxTemplates = 0 }, "decoder.flow.max_templates"},
		{func(c *FlowConfig) { c.MaxTemplatesTotal = 0 }, "decoder.flow.max_templates_total"},
		{func(c *FlowConfig) { c.MaxTemplateFields = 0 }, "decoder.flow.max_template_fields"},
		{func(c *FlowConfig) { c.MaxRecords = 0 }, "decoder.flow.max_records"},
		{func(c *FlowConfig) { c.Directions = "sideways" }, "decoder.flow.directions"},
	}
	for _, tc := range cases {
		c := DefaultFlowConfig()
		tc.mod(&c)
		err := c.Validate()
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
		_, err = newFlowDecoder(c, nil)
		assert.Error(t, err, "newFlowDecoder must refuse an invalid config (%s)", tc.want)
	}
}

func TestIPFIXTemplateAndData(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	const export = 1_700_000_100
	msg := fxIPFIX(export, 41, 5,
		fxSet(2, fxTmpl(true, 256, fxBasicFields...)),
		fxSet(256,
			fxBasicRecord("10.0.0.2", "10.0.0.3", 36036, 5201, 6, 0x1a, 10, 15000, 2_000_000, 500_000),
			fxBasicRecord("10.0.0.3", "10.0.0.2", 5201, 36036, 6, 0x10, 5, 260, 1_000_000, 0),
		))
	var b Batch
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, msg, 123, &b))

	assert.Equal(t, Header{Source: SourceIPFIX, Version: 10, Exporter: fxExpA, Agent: fxExpA.Addr(),
		ObsDomain: 5, Sequence: 41, Samples: 2, DataRecords: 2}, b.Header)
	require.Len(t, b.Records, 2)
	r := b.Records[0]
	assert.Equal(t, SourceIPFIX, r.Source)
	assert.Equal(t, fxExpA.Addr(), r.Exporter)
	assert.Equal(t, fxExpA.Addr(), r.Agent)
	assert.Equal(t, uint32(5), r.ObsDomain)
	assert.Equal(t, int64(123), r.Received)
	assert.Equal(t, netip.MustParseAddr("10.0.0.2"), r.SrcIP)
	assert.Equal(t, netip.MustParseAddr("10.0.0.3"), r.DstIP)
	assert.Equal(t, uint16(36036), r.SrcPort)
	assert.Equal(t, uint16(5201), r.DstPort)
	assert.Equal(t, uint8(6), r.Proto)
	assert.Equal(t, uint8(0x1a), r.TCPFlags)
	assert.Equal(t, uint64(10), r.Packets)
	// no layer2OctetDeltaCount: IP octets + 14 bytes of Ethernet per packet
	assert.Equal(t, uint64(15000+14*10), r.Bytes)
	assert.Equal(t, uint16(0x0800), r.EtherType)
	assert.Equal(t, FlagL3|FlagL4, r.Flags)
	assert.Equal(t, int64(export)*1e9-2_000_000_000, r.FlowStart)
	assert.Equal(t, int64(export)*1e9-500_000_000, r.FlowEnd)
	assert.Equal(t, uint32(1), r.SamplingRate, "default sampling rate")
	assert.Equal(t, uint64(260+14*5), b.Records[1].Bytes)
	assert.Equal(t, 2.0, fxCount(f.m.rateUnknown[0]), "both records used the default rate")
	assert.Equal(t, 2.0, fxCount(f.m.records[0]))
	assert.Equal(t, 1.0, fxCount(f.m.templates[0][evAdded]))
}

func TestIPFIXDataBeforeTemplate(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	data := fxIPFIX(1, 0, 1, fxSet(256, fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 100, 0, 0)))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b), "unknown template is a skip, not an error")
	assert.Empty(t, b.Records)
	assert.Equal(t, 1, b.Header.Skipped)
	assert.Equal(t, 1.0, fxCount(f.m.unknownTemplate[0]))

	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...))), 0, &b))
	assert.Empty(t, b.Records)
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, uint8(17), b.Records[0].Proto)
	assert.Equal(t, 0, b.Header.Skipped)

	// The same template id from another exporter is still unknown.
	require.NoError(t, f.Decode(SourceIPFIX, fxExpB, data, 0, &b))
	assert.Empty(t, b.Records)
	assert.Equal(t, 2.0, fxCount(f.m.unknownTemplate[0]))
}

func TestIPFIXTemplateWithdrawal(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	rec := fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 100, 0, 0)
	data := fxIPFIX(1, 0, 1, fxSet(256, rec), fxSet(257, rec))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1,
		fxSet(2, fxTmpl(true, 256, fxBasicFields...), fxTmpl(true, 257, fxBasicFields...))), 0, &b))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b))
	require.Len(t, b.Records, 2)

	// Withdraw 256 (a template record with no fields).
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxCat(fxU16(256), fxU16(0)))), 0, &b))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b))
	assert.Len(t, b.Records, 1, "257 still decodes")
	assert.Equal(t, 1, b.Header.Skipped, "256 is gone")
	assert.Equal(t, 1.0, fxCount(f.m.templates[0][evWithdrawn]))

	// Template id 2 with no fields withdraws every template of the domain.
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxCat(fxU16(2), fxU16(0)))), 0, &b))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b))
	assert.Empty(t, b.Records)
	assert.Equal(t, 2, b.Header.Skipped)
	_, n := f.stats()
	assert.Equal(t, 0, n)
}

func TestIPFIXTemplateExpiry(t *testing.T) {
	f, clk := fxNewFlow(t, func(c *FlowConfig) { c.TemplateLifetime = 30 * time.Minute })
	var b Batch
	tmpl := fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...)))
	data := fxIPFIX(1, 0, 1, fxSet(256, fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 100, 0, 0)))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, tmpl, 0, &b))

	clk.t = clk.t.Add(29 * time.Minute)
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b))
	require.Len(t, b.Records, 1, "template still alive after 29 min")

	// Re-sending the identical template refreshes it (and allocates nothing new).
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, tmpl, 0, &b))
	assert.Equal(t, 1.0, fxCount(f.m.templates[0][evRefreshed]))
	clk.t = clk.t.Add(29 * time.Minute)
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b))
	require.Len(t, b.Records, 1, "refreshed template alive 58 min after first sight")

	clk.t = clk.t.Add(31 * time.Minute)
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b))
	assert.Empty(t, b.Records, "expired template")
	assert.Equal(t, 1, b.Header.Skipped)
	assert.Equal(t, 1.0, fxCount(f.m.unknownTemplate[0]))

	// The sweeper drops the expired template and, once idle, the domain.
	f.sweep(clk.t.UnixNano())
	_, n := f.stats()
	assert.Equal(t, 0, n)
	assert.Equal(t, 1.0, fxCount(f.m.templates[0][evExpired]))
	f.sweep(clk.t.Add(31 * time.Minute).UnixNano())
	d, _ := f.stats()
	assert.Equal(t, 0, d)
}

func TestIPFIXTwoDomainsSameTemplateID(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	v6Fields := []fxField{{27, 16, 0}, {28, 16, 0}, {4, 1, 0}, {2, 4, 0}, {352, 8, 0}}
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...))), 0, &b))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 2, fxSet(2, fxTmpl(true, 256, v6Fields...))), 0, &b))

	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1,
		fxSet(256, fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 3, 300, 0, 0))), 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, netip.MustParseAddr("10.0.0.1"), b.Records[0].SrcIP)
	assert.Equal(t, uint32(1), b.Records[0].ObsDomain)

	s6, d6 := netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("2001:db8::2").As16()
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 2,
		fxSet(256, fxCat(s6[:], d6[:], []byte{58}, fxU32(2), fxU64(180)))), 0, &b))
	require.Len(t, b.Records, 1)
	r := b.Records[0]
	assert.Equal(t, netip.MustParseAddr("2001:db8::1"), r.SrcIP)
	assert.Equal(t, netip.MustParseAddr("2001:db8::2"), r.DstIP)
	assert.Equal(t, uint8(58), r.Proto)
	assert.Equal(t, uint64(2), r.Packets)
	assert.Equal(t, uint64(180), r.Bytes, "layer2OctetDeltaCount is taken as is")
	assert.Equal(t, uint16(0x86dd), r.EtherType)
	assert.Equal(t, uint32(2), r.ObsDomain)
	d, n := f.stats()
	assert.Equal(t, 2, d)
	assert.Equal(t, 2, n)
}

func TestIPFIXOptionsSamplingRate(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	rec := fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 100, 0, 0)
	// options template: scope observationDomainId, then samplingInterval
	opt := fxIPFIXOpt(300, 1, fxField{149, 4, 0}, fxField{34, 4, 0})
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 9,
		fxSet(2, fxTmpl(true, 256, fxBasicFields...)), fxSet(3, opt)), 0, &b))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 9, fxSet(256, rec)), 0, &b))
	assert.Equal(t, uint32(1), b.Records[0].SamplingRate)
	assert.Equal(t, 1.0, fxCount(f.m.rateUnknown[0]))

	// The options record and data in one message: the rate applies at once.
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 9,
		fxSet(300, fxCat(fxU32(9), fxU32(100))), fxSet(256, rec)), 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, uint32(100), b.Records[0].SamplingRate)
	assert.Equal(t, 2, b.Header.DataRecords, "options records are data records too (IPFIX sequence)")
	assert.Equal(t, 1, b.Header.Samples)
	assert.Equal(t, 1.0, fxCount(f.m.rateUnknown[0]), "rate known from options")
	assert.Equal(t, 1.0, fxCount(f.m.optionsRecords[0]))

	// samplingPacketInterval 1 / samplingPacketSpace 63 = 1 in 64.
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 9,
		fxSet(3, fxIPFIXOpt(301, 1, fxField{149, 4, 0}, fxField{305, 4, 0}, fxField{306, 4, 0})),
		fxSet(301, fxCat(fxU32(9), fxU32(1), fxU32(63))), fxSet(256, rec)), 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, uint32(64), b.Records[0].SamplingRate)

	// Another domain of the same exporter is not affected.
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 10,
		fxSet(2, fxTmpl(true, 256, fxBasicFields...)), fxSet(256, rec)), 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, uint32(1), b.Records[0].SamplingRate)
}

func TestFlowSamplingRateRules(t *testing.T) {
	dom := uint32(123)
	f, _ := fxNewFlow(t, func(c *FlowConfig) {
		c.DefaultSamplingRate = 7
		c.SamplingRates = []SamplingRateRule{
			{Exporter: "192.0.2.0/24", ObservationDomain: &dom, Rate: 64},
			{Exporter: "192.0.2.0/24", Rate: 32},
			{Exporter: "192.0.2.10/32", Rate: 16}, // shadowed: first match wins
		}
	})
	rate := func(from netip.AddrPort, domain uint32) uint32 {
		var b Batch
		msg := fxIPFIX(1, 0, domain, fxSet(2, fxTmpl(true, 256, fxBasicFields...)),
			fxSet(256, fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 100, 0, 0)))
		require.NoError(t, f.Decode(SourceIPFIX, from, msg, 0, &b))
		require.Len(t, b.Records, 1)
		return b.Records[0].SamplingRate
	}
	assert.Equal(t, uint32(64), rate(fxExpA, 123))
	assert.Equal(t, uint32(32), rate(fxExpA, 5))
	assert.Equal(t, 0.0, fxCount(f.m.rateUnknown[0]))
	assert.Equal(t, uint32(7), rate(fxExpB, 123))
	assert.Equal(t, 1.0, fxCount(f.m.rateUnknown[0]))
	// An IPv4-mapped IPv6 source (dual-stack socket) matches the IPv4 rule.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(fxExpA.Addr().As16()), 1)
	assert.Equal(t, uint32(64), rate(mapped, 123))
}

func TestNetFlow9(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	fields := []fxField{{8, 4, 0}, {12, 4, 0}, {4, 1, 0}, {7, 2, 0}, {11, 2, 0}, {1, 4, 0}, {2, 4, 0},
		{22, 4, 0}, {21, 4, 0}, {10, 2, 0}, {14, 2, 0}, {56, 6, 0}, {80, 6, 0}}
	const uptime, secs = 100_000, 1_700_000_000
	mac1, mac2 := []byte{0x52, 0x54, 0, 0, 0, 1}, []byte{0x52, 0x54, 0, 0, 0, 2}
	rec := fxCat([]byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, []byte{1}, fxU16(0), fxU16(0x0800), fxU32(840), fxU32(10),
		fxU32(uptime-9000), fxU32(uptime-1000), fxU16(3), fxU16(4), mac1, mac2)
	pkt := fxNF9(uptime, secs, 77, 42,
		fxSet(0, fxTmpl(false, 260, fields...)),
		fxSet(1, fxNF9Opt(261, []fxField{{1, 4, 0}}, []fxField{{34, 4, 0}, {35, 1, 0}})),
		fxSet(261, fxCat(fxU32(0), fxU32(512), []byte{2}, []byte{0, 0, 0})), // + 3 bytes padding
		fxSet(260, rec, []byte{0, 0}),                                       // + padding
	)
	require.NoError(t, f.Decode(SourceNetFlow9, fxExpA, pkt, 5, &b))
	assert.Equal(t, Header{Source: SourceNetFlow9, Version: 9, Exporter: fxExpA, Agent: fxExpA.Addr(),
		ObsDomain: 42, Sequence: 77, Uptime: uptime, Samples: 1, DataRecords: 2}, b.Header)
	require.Len(t, b.Records, 1)
	r := b.Records[0]
	assert.Equal(t, SourceNetFlow9, r.Source)
	assert.Equal(t, uint8(1), r.Proto)
	assert.Equal(t, uint64(10), r.Packets)
	assert.Equal(t, uint64(840+140), r.Bytes)
	assert.Equal(t, int64(secs)*1e9-9e9, r.FlowStart)
	assert.Equal(t, int64(secs)*1e9-1e9, r.FlowEnd)
	assert.Equal(t, uint32(3), r.InIf)
	assert.Equal(t, uint32(4), r.OutIf)
	assert.Equal(t, [6]byte(mac1), r.SrcMAC)
	assert.Equal(t, [6]byte(mac2), r.DstMAC)
	assert.Equal(t, uint32(512), r.SamplingRate, "from the options record")
	assert.Equal(t, uint32(42), r.ObsDomain)

	// NetFlow v9 and IPFIX template spaces are separate.
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 42, fxSet(260, rec)), 0, &b))
	assert.Equal(t, 1, b.Header.Skipped)

	// A v9 template without fields is rejected; its data is then unknown.
	require.NoError(t, f.Decode(SourceNetFlow9, fxExpA, fxNF9(1, 1, 78, 42,
		fxSet(0, fxCat(fxU16(262), fxU16(0))), fxSet(262, fxU32(1))), 0, &b))
	assert.Empty(t, b.Records)
	assert.Equal(t, 1.0, fxCount(f.m.rejected[1][rejNoFields]))
	assert.Equal(t, 1.0, fxCount(f.m.unknownTemplate[1]))
}

// fxOVSTunnelFields is OVS 3.1's template for a tunnelled IPv4 ICMP flow with
// an egress interface (ids 291-ish in the capture), from the fields seen in
// testdata/ovs-lab-1/ovs-ipfix1.pcapng.
var fxOVSTunnelFields = []fxField{
	{138, 4, 0}, {61, 1, 0}, {56, 6, 0}, {80, 6, 0}, {256, 2, 0}, {240, 1, 0},
	{10, 4, 0}, {368, 4, 0}, {82, flowVarLen, 0}, {83, flowVarLen, 0},
	{14, 4, 0}, {369, 4, 0}, {82, flowVarLen, 0}, {83, flowVarLen, 0},
	{58, 2, 0}, {243, 2, 0}, {244, 1, 0},
	{60, 1, 0}, {192, 1, 0}, {4, 1, 0}, {195, 1, 0}, {196, 1, 0}, {5, 1, 0}, {8, 4, 0}, {12, 4, 0},
	{176, 1, 0}, {177, 1, 0},
	{893, 4, penVMware}, {894, 4, penVMware}, {895, 1, penVMware}, {896, 2, penVMware}, {897, 2, penVMware},
	{891, 1, penVMware}, {892, flowVarLen, penVMware},
	{158, 4, 0}, {159, 4, 0}, {133, 8, 0}, {135, 8, 0}, {2, 8, 0}, {86, 8, 0},
	{352, 8, 0}, {353, 8, 0}, {136, 1, 0},
	{132, 8, 0}, {1, 8, 0}, {85, 8, 0},
}

func fxOVSTunnelRecord(direction uint8, outIf uint32) []byte {
	mac1, mac2 := []byte{0x52, 0x54, 0, 0, 0, 2}, []byte{0x52, 0x54, 0, 0, 0, 4}
	name := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	return fxCat(fxU32(456), []byte{direction}, mac1, mac2, fxU16(0x0800), []byte{18},
		fxU32(8), fxU32(0), name("vnet2"), name(""),
		fxU32(outIf), fxU32(0), name("vxlan0"), name(""),
		fxU16(100), fxU16(100), []byte{0},
		[]byte{4, 64, 1, 0, 0, 0}, []byte{10, 0, 0, 2}, []byte{10, 0, 0, 4},
		[]byte{8, 0},
		[]byte{172, 16, 0, 1}, []byte{172, 16, 0, 2}, []byte{17}, fxU16(51000), fxU16(4789),
		[]byte{1}, name(string([]byte{0x00, 0x13, 0x88})), // VNI 5000 in 3 bytes
		fxU32(3_000_000), fxU32(1_000_000), fxU64(0), fxU64(0), fxU64(5), fxU64(99),
		fxU64(5*102), fxU64(1), []byte{2},
		fxU64(0), fxU64(5*84), fxU64(1),
	)
}

func TestIPFIXOVSTunnelTemplate(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	const export = 1_795_316_766
	msg := fxIPFIX(export, 1, 123, fxSet(2, fxTmpl(true, 291, fxOVSTunnelFields...)),
		fxSet(291, fxOVSTunnelRecord(0, 0)), fxSet(291, fxOVSTunnelRecord(1, 20)))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, msg, 0, &b))
	assert.Equal(t, 2, b.Header.DataRecords)
	assert.Equal(t, 1, b.Header.Samples)
	assert.Equal(t, 1, b.Header.Skipped, "the egress copy is skipped under directions=ingress")
	assert.Equal(t, 1.0, fxCount(f.m.dirSkipped[0]))
	require.Len(t, b.Records, 1)
	r := b.Records[0]
	assert.Equal(t, [6]byte{0x52, 0x54, 0, 0, 0, 2}, r.SrcMAC)
	assert.Equal(t, [6]byte{0x52, 0x54, 0, 0, 0, 4}, r.DstMAC)
	assert.Equal(t, uint16(100), r.VLAN)
	assert.Equal(t, uint16(0x0800), r.EtherType)
	assert.Equal(t, uint32(8), r.InIf)
	assert.Equal(t, netip.MustParseAddr("10.0.0.2"), r.SrcIP)
	assert.Equal(t, netip.MustParseAddr("10.0.0.4"), r.DstIP)
	assert.Equal(t, uint8(1), r.Proto)
	assert.Equal(t, uint8(64), r.TTL)
	assert.Equal(t, uint8(8), r.ICMPType)
	assert.Equal(t, uint8(0), r.ICMPCode)
	assert.Equal(t, TunnelVXLAN, r.Tunnel)
	assert.Equal(t, uint32(5000), r.VNI)
	assert.Equal(t, netip.MustParseAddr("172.16.0.1"), r.OuterSrcIP)
	assert.Equal(t, netip.MustParseAddr("172.16.0.2"), r.OuterDstIP)
	assert.Equal(t, uint64(5), r.Packets)
	assert.Equal(t, uint64(510), r.Bytes, "layer2OctetDeltaCount wins over octetDeltaCount")
	assert.Equal(t, uint64(0), r.DroppedPackets)
	assert.Equal(t, uint8(2), r.EndReason)
	assert.Equal(t, int64(export)*1e9-3e9, r.FlowStart)
	assert.Equal(t, int64(export)*1e9-1e9, r.FlowEnd)
	assert.Equal(t, FlagL3|FlagHasTTL, r.Flags)

	both, _ := fxNewFlow(t, func(c *FlowConfig) { c.Directions = "both" })
	require.NoError(t, both.Decode(SourceIPFIX, fxExpA, msg, 0, &b))
	require.Len(t, b.Records, 2)
	assert.Equal(t, uint32(20), b.Records[1].OutIf)
	egress, _ := fxNewFlow(t, func(c *FlowConfig) { c.Directions = "egress" })
	require.NoError(t, egress.Decode(SourceIPFIX, fxExpA, msg, 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, uint32(20), b.Records[0].OutIf)
}

func TestIPFIXTemplateRejections(t *testing.T) {
	f, _ := fxNewFlow(t, func(c *FlowConfig) { c.MaxTemplateFields = 8; c.MaxTemplates = 2; c.MaxExporters = 1 })
	var b Batch
	many := make([]fxField, 9)
	for i := range many {
		many[i] = fxField{uint16(500 + i), 1, 0}
	}
	msg := fxIPFIX(1, 0, 1, fxSet(2,
		fxTmpl(true, 256, many...),                             // too many fields
		fxTmpl(true, 257, fxField{8, 0, 0}, fxField{12, 0, 0}), // zero record length
		fxTmpl(true, 100, fxField{8, 4, 0}),                    // template id < 256
		fxTmpl(true, 258, fxField{8, 4, 0}),
		fxTmpl(true, 259, fxField{8, 4, 0}),
		fxTmpl(true, 260, fxField{8, 4, 0}), // over max_templates
	), fxSet(3, fxIPFIXOpt(261, 3, fxField{8, 4, 0}))) // scope count > field count
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, msg, 0, &b))
	assert.Equal(t, 1.0, fxCount(f.m.rejected[0][rejTooManyFields]))
	assert.Equal(t, 1.0, fxCount(f.m.rejected[0][rejZeroLength]))
	assert.Equal(t, 1.0, fxCount(f.m.rejected[0][rejBadID]))
	assert.Equal(t, 1.0, fxCount(f.m.rejected[0][rejTemplateLimit]))
	assert.Equal(t, 1.0, fxCount(f.m.rejected[0][rejBadScope]))
	_, n := f.stats()
	assert.Equal(t, 2, n)

	require.NoError(t, f.Decode(SourceIPFIX, fxExpB, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxField{8, 4, 0}))), 0, &b))
	assert.Equal(t, 1.0, fxCount(f.m.rejected[0][rejExporterLimit]))

	// A replacement that fails validation forgets the old template too.
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 258, many...))), 0, &b))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(258, fxU32(1))), 0, &b))
	assert.Equal(t, 1, b.Header.Skipped)
}

func TestFlowMalformed(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	good := fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...)))
	cases := []struct {
		name   string
		src    Source
		data   []byte
		reason errReason
	}{
		{"short", SourceIPFIX, good[:10], errShort},
		{"version", SourceIPFIX, fxCat(fxU16(9), good[2:]), errVersion},
		{"length beyond datagram", SourceIPFIX, fxCat(good[:2], fxU16(uint16(len(good)+1)), good[4:]), errLength},
		{"fxSet beyond message", SourceIPFIX, fxIPFIX(1, 0, 1, fxCat(fxU16(256), fxU16(100), fxU32(0))), errSetLength},
		{"fxSet length < 4", SourceIPFIX, fxIPFIX(1, 0, 1, fxCat(fxU16(256), fxU16(2), fxU32(0))), errSetLength},
		{"template overruns fxSet", SourceIPFIX, fxIPFIX(1, 0, 1, fxSet(2, fxCat(fxU16(300), fxU16(5), fxU32(0x00080004)))), errTemplateMalformed},
		{"nf9 short", SourceNetFlow9, make([]byte, 19), errShort},
		{"nf9 version", SourceNetFlow9, fxNF9(1, 1, 1, 1)[:20], errShort},
	}
	cases[7].data = fxCat(fxU16(10), fxNF9(1, 1, 1, 1)[2:])
	cases[7].reason = errVersion
	for _, tc := range cases {
		si := 0
		if tc.src == SourceNetFlow9 {
			si = 1
		}
		before := fxCount(f.m.errors[si][tc.reason])
		err := f.Decode(tc.src, fxExpA, tc.data, 0, &b)
		require.Error(t, err, tc.name)
		var fe *flowError
		require.ErrorAs(t, err, &fe, tc.name)
		assert.ErrorIs(t, err, fe.Unwrap(), tc.name)
		assert.Equal(t, before+1, fxCount(f.m.errors[si][tc.reason]), tc.name)
	}

	// A truncated record: the complete records before it are kept.
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, good, 0, &b))
	rec := fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 100, 0, 0)
	varTmpl := fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 257, fxField{8, 4, 0}, fxField{82, flowVarLen, 0})))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, varTmpl, 0, &b))
	msg := fxIPFIX(1, 0, 1, fxSet(256, rec), fxSet(257, fxCat([]byte{10, 0, 0, 9}, []byte{200, 'x'})))
	err := f.Decode(SourceIPFIX, fxExpA, msg, 0, &b)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "decode ipfix")
	assert.ErrorIs(t, err, ErrTruncated)
	assert.Len(t, b.Records, 1)
	assert.Equal(t, 1.0, fxCount(f.m.errors[0][errRecordTruncated]))

	// Unsupported source.
	assert.ErrorIs(t, f.Decode(SourceSFlow, fxExpA, good, 0, &b), ErrUnknownSource)
	assert.ErrorIs(t, f.Decode(SourceIPFIX, fxExpA, good[:10], 0, &b), ErrTruncated)
	assert.ErrorIs(t, f.Decode(SourceIPFIX, fxExpA, fxCat(fxU16(9), good[2:]), 0, &b), ErrBadVersion)
}

func TestFlowMaxRecords(t *testing.T) {
	f, _ := fxNewFlow(t, func(c *FlowConfig) { c.MaxRecords = 3 })
	var b Batch
	rec := fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 100, 0, 0)
	msg := fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...)), fxSet(256, rec, rec, rec, rec, rec))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, msg, 0, &b))
	assert.Len(t, b.Records, 3)
	assert.Equal(t, 5, b.Header.DataRecords)
	assert.Equal(t, 2, b.Header.Skipped)
	assert.Equal(t, 2.0, fxCount(f.m.errors[0][errRecordsLimit]))
}

func TestFlowDataLinkFrameSection(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	frame := fxCat([]byte{0x52, 0x54, 0, 0, 0, 3}, []byte{0x52, 0x54, 0, 0, 0, 1}, fxU16(0x0800),
		[]byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 3},
		fxU16(5000), fxU16(53), fxU16(8), fxU16(0))
	msg := fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxField{10, 4, 0}, fxField{312, 2, 0}, fxField{315, flowVarLen, 0})),
		fxSet(256, fxCat(fxU32(7), fxU16(60), []byte{byte(len(frame))}, frame)))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, msg, 0, &b))
	require.Len(t, b.Records, 1)
	r := b.Records[0]
	assert.Equal(t, netip.MustParseAddr("10.0.0.1"), r.SrcIP)
	assert.Equal(t, netip.MustParseAddr("10.0.0.3"), r.DstIP)
	assert.Equal(t, uint16(53), r.DstPort)
	assert.Equal(t, uint64(1), r.Packets)
	assert.Equal(t, uint64(60), r.Bytes)
	assert.Equal(t, uint32(7), r.InIf)
}
