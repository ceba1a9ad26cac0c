package decoder

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// Builders for hand-made IPFIX messages and NetFlow v9 packets.

type fxField struct {
	ie     uint16
	length uint16
	pen    uint32
}

func fxU16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func fxU32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func fxU64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func fxCat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func fxFieldSpecs(ipfix bool, fields []fxField) []byte {
	var out []byte
	for _, f := range fields {
		ie := f.ie
		if ipfix && f.pen != 0 {
			ie |= 0x8000
		}
		out = append(out, fxU16(ie)...)
		out = append(out, fxU16(f.length)...)
		if ipfix && f.pen != 0 {
			out = append(out, fxU32(f.pen)...)
		}
	}
	return out
}

// fxTmpl is an IPFIX or NetFlow v9 template record.
func fxTmpl(ipfix bool, id uint16, fields ...fxField) []byte {
	return fxCat(fxU16(id), fxU16(uint16(len(fields))), fxFieldSpecs(ipfix, fields))
}

// fxIPFIXOpt is an IPFIX options template record.
func fxIPFIXOpt(id uint16, scope int, fields ...fxField) []byte {
	return fxCat(fxU16(id), fxU16(uint16(len(fields))), fxU16(uint16(scope)), fxFieldSpecs(true, fields))
}

// fxNF9Opt is a NetFlow v9 options template record.
func fxNF9Opt(id uint16, scopes, opts []fxField) []byte {
	return fxCat(fxU16(id), fxU16(uint16(4*len(scopes))), fxU16(uint16(4*len(opts))), fxFieldSpecs(false, scopes), fxFieldSpecs(false, opts))
}

func fxSet(id uint16, body ...[]byte) []byte {
	b := fxCat(body...)
	return fxCat(fxU16(id), fxU16(uint16(4+len(b))), b)
}

func fxIPFIX(exportTime, seq, domain uint32, sets ...[]byte) []byte {
	b := fxCat(sets...)
	return fxCat(fxU16(10), fxU16(uint16(16+len(b))), fxU32(exportTime), fxU32(seq), fxU32(domain), b)
}

func fxNF9(uptime, secs, seq, sourceID uint32, sets ...[]byte) []byte {
	return fxCat(fxU16(9), fxU16(uint16(len(sets))), fxU32(uptime), fxU32(secs), fxU32(seq), fxU32(sourceID), fxCat(sets...))
}

// A small IPv4 5-tuple template and a matching record.
var fxBasicFields = []fxField{
	{8, 4, 0},   // sourceIPv4Address
	{12, 4, 0},  // destinationIPv4Address
	{7, 2, 0},   // sourceTransportPort
	{11, 2, 0},  // destinationTransportPort
	{4, 1, 0},   // protocolIdentifier
	{6, 1, 0},   // tcpControlBits
	{2, 8, 0},   // packetDeltaCount
	{1, 8, 0},   // octetDeltaCount
	{158, 4, 0}, // flowStartDeltaMicroseconds
	{159, 4, 0}, // flowEndDeltaMicroseconds
}

func fxBasicRecord(src, dst string, sport, dport uint16, proto, flags uint8, pkts, octets uint64, startDeltaUs, endDeltaUs uint32) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	return fxCat(s[:], d[:], fxU16(sport), fxU16(dport), []byte{proto, flags}, fxU64(pkts), fxU64(octets), fxU32(startDeltaUs), fxU32(endDeltaUs))
}

var (
	fxExpA = netip.MustParseAddrPort("192.0.2.10:40000")
	fxExpB = netip.MustParseAddrPort("198.51.100.7:40001")
)

type fxClock struct{ t time.Time }

func (c *fxClock) now() time.Time { return c.t }

func fxNewFlow(t testing.TB, mod func(*FlowConfig)) (*flowDecoder, *fxClock) {
	t.Helper()
	cfg := DefaultFlowConfig()
	if mod != nil {
		mod(&cfg)
	}
	f, err := newFlowDecoder(cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	clk := &fxClock{t: time.Unix(1_700_000_000, 0)}
	f.now = clk.now
	return f, clk
}

func fxCount(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
