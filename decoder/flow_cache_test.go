package decoder

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Batch's cached template must never outlive the template it stands for:
// a replacement with the same id takes effect on the next message, and a
// scope swept out and learned again is the new one.
func TestIPFIXCachedTemplateReplacedAndScopeSwept(t *testing.T) {
	f, clk := fxNewFlow(t, func(c *FlowConfig) { c.TemplateLifetime = time.Minute })
	var b Batch
	v4 := fxIPFIX(1, 0, 1, fxSet(256, fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 3, 300, 0, 0)))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...))), 0, &b))
	for range 3 { // cached from the second on
		require.NoError(t, f.Decode(SourceIPFIX, fxExpA, v4, 0, &b))
		require.Len(t, b.Records, 1)
		assert.Equal(t, netip.MustParseAddr("10.0.0.1"), b.Records[0].SrcIP)
	}

	// Template 256 redefined: IPv6 fields, a 41-byte record.
	v6Fields := []fxField{{27, 16, 0}, {28, 16, 0}, {4, 1, 0}, {2, 4, 0}, {352, 4, 0}}
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, v6Fields...))), 0, &b))
	s6, d6 := netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("2001:db8::2").As16()
	v6 := fxIPFIX(1, 0, 1, fxSet(256, fxCat(s6[:], d6[:], []byte{58}, fxU32(2), fxU32(180))))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, v6, 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, netip.MustParseAddr("2001:db8::1"), b.Records[0].SrcIP)
	assert.Equal(t, uint64(180), b.Records[0].Bytes)
	// the old 36-byte records do not fit the new 41-byte template
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, v4, 0, &b))
	assert.Empty(t, b.Records)

	// The template expires and the sweeper removes template and scope;
	// a new template makes a new scope, which the cache must not confuse
	// with the old one.
	clk.t = clk.t.Add(2 * time.Minute)
	f.sweep(clk.t.UnixNano())
	clk.t = clk.t.Add(2 * time.Minute)
	f.sweep(clk.t.UnixNano())
	d, n := f.stats()
	require.Equal(t, [2]int{0, 0}, [2]int{d, n})
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, v6, 0, &b))
	assert.Empty(t, b.Records, "no template after the sweep")
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...))), 0, &b))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, v4, 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, netip.MustParseAddr("10.0.0.1"), b.Records[0].SrcIP)
	d, n = f.stats()
	assert.Equal(t, [2]int{1, 1}, [2]int{d, n})
}

// With DeferCounts the per-datagram counts wait in the Batch until
// FlushCounts; nothing is lost or counted twice.
func TestIPFIXDeferredCounts(t *testing.T) {
	dec, err := New(DefaultConfig(), prometheus.NewRegistry())
	require.NoError(t, err)
	var b Batch
	dec.DeferCounts(&b)
	tmpl := fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, append([]fxField{{61, 1, 0}}, fxBasicFields...)...)))
	rec := func(dir uint8) []byte {
		return append([]byte{dir}, fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 3, 300, 0, 0)...)
	}
	require.NoError(t, dec.Decode(SourceIPFIX, fxExpA, tmpl, 0, &b))
	for range 5 {
		require.NoError(t, dec.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(256, rec(0), rec(1))), 0, &b))
	}
	m := &dec.flow.m
	assert.Zero(t, fxCount(m.records[0]), "held until FlushCounts")
	dec.FlushCounts(&b)
	assert.Equal(t, 5.0, fxCount(m.records[0]), "ingress records")
	assert.Equal(t, 5.0, fxCount(m.dirSkipped[0]), "egress records")
	assert.Equal(t, 5.0, fxCount(m.rateUnknown[0]))
	assert.Equal(t, 6.0, fxCount(dec.m.datagrams[SourceIPFIX]))
	dec.FlushCounts(&b)
	assert.Equal(t, 5.0, fxCount(m.records[0]), "flushed once")
}

// The cached fast path allocates nothing and takes no scope or template
// lock (checked by the allocation count and the benchmark).
func TestIPFIXCacheNoAllocs(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...))), 0, &b))
	data := fxIPFIX(1, 0, 1, fxSet(256, fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 3, 300, 0, 0)))
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, data, 0, &b))
	allocs := testing.AllocsPerRun(100, func() { _ = f.Decode(SourceIPFIX, fxExpA, data, 0, &b) })
	assert.Zero(t, allocs)
}

// A record of a direction not kept is only measured: it is skipped and
// counted as before, and one that overruns its set is still an error.
func TestIPFIXDirectionSkippedWithoutDecoding(t *testing.T) {
	f, _ := fxNewFlow(t, nil) // directions: ingress
	var b Batch
	fields := append([]fxField{{61, 1, 0}, {82, 0xffff, 0}}, fxBasicFields...)
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fields...))), 0, &b))
	rec := func(dir uint8, name string) []byte {
		return fxCat([]byte{dir, byte(len(name))}, []byte(name), fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 3, 300, 0, 0))
	}
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(256, rec(1, "eth0"), rec(0, "tap1"), rec(1, "x"))), 0, &b))
	require.Len(t, b.Records, 1)
	assert.Equal(t, 3, b.Header.DataRecords)
	assert.Equal(t, 2, b.Header.Skipped)
	assert.Equal(t, 2.0, fxCount(f.m.dirSkipped[0]))
	assert.Equal(t, netip.MustParseAddr("10.0.0.1"), b.Records[0].SrcIP)

	// an egress record whose name runs past the set
	bad := rec(1, "eth0")
	bad[1] = 200
	err := f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 1, fxSet(256, rec(0, "tap1"), bad)), 0, &b)
	require.ErrorIs(t, err, ErrTruncated)
}

// More exporters and templates than the cache holds, interleaved: every
// record is decoded with its own exporter's template.
func TestIPFIXCacheEviction(t *testing.T) {
	f, _ := fxNewFlow(t, nil)
	var b Batch
	v6Fields := []fxField{{27, 16, 0}, {28, 16, 0}, {4, 1, 0}, {2, 4, 0}, {352, 4, 0}}
	s6, d6 := netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("2001:db8::2").As16()
	const exporters = flowCacheScopes + 5
	from := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 4739)
	}
	for i := range exporters {
		var sets [][]byte
		for id := uint16(256); id < 256+flowCacheTemplates+2; id++ {
			if (int(id)+i)%2 == 0 {
				sets = append(sets, fxTmpl(true, id, fxBasicFields...))
			} else {
				sets = append(sets, fxTmpl(true, id, v6Fields...))
			}
		}
		require.NoError(t, f.Decode(SourceIPFIX, from(i), fxIPFIX(1, 0, 7, fxSet(2, sets...)), 0, &b))
	}
	for round := range 3 {
		for i := range exporters {
			for id := uint16(256); id < 256+flowCacheTemplates+2; id++ {
				v4 := (int(id)+i)%2 == 0
				rec := fxCat(s6[:], d6[:], []byte{58}, fxU32(2), fxU32(uint32(i)))
				if v4 {
					rec = fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 3, uint64(i), 0, 0)
				}
				require.NoError(t, f.Decode(SourceIPFIX, from(i), fxIPFIX(1, 0, 7, fxSet(id, rec)), 0, &b))
				require.Len(t, b.Records, 1, "round %d exporter %d template %d", round, i, id)
				assert.Equal(t, v4, b.Records[0].SrcIP.Is4())
				assert.Equal(t, from(i).Addr(), b.Records[0].Exporter)
			}
		}
	}
}

// FuzzIPFIXCacheDifferential: two decoders see the same inputs; one
// decodes into a long-lived Batch (its cache of scopes and templates lives
// across inputs, as on a reader), the other into a fresh Batch each time
// (no cache). Their output must be the same, however the inputs add,
// replace, withdraw or break templates.
func FuzzIPFIXCacheDifferential(f *testing.F) {
	dgs := fxCaptureDatagrams(f)
	for _, d := range dgs {
		f.Add(d)
	}
	f.Add(fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxBasicFields...))))
	f.Add(fxIPFIX(1, 0, 1, fxSet(256, fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 3, 300, 0, 0))))
	f.Add(fxIPFIX(1, 0, 1, fxSet(2, fxCat(fxU16(256), fxU16(0)))))
	f.Add(fxIPFIX(1, 0, 1, fxSet(2, fxCat(fxU16(2), fxU16(0)))))
	f.Add(fxIPFIX(1, 0, 1, fxSet(2, fxTmpl(true, 256, fxField{27, 16, 0}, fxField{28, 16, 0}))))
	cfg := func(c *FlowConfig) { c.MaxTemplates = 64; c.MaxExporters = 16; c.Directions = "both" }
	cached, _ := fxNewFlow(f, cfg)
	fresh, _ := fxNewFlow(f, cfg)
	var long Batch
	from := netip.MustParseAddrPort("127.0.0.1:60536")
	for _, d := range dgs { // the capture's templates first
		_ = cached.Decode(SourceIPFIX, from, d, 0, &long)
		var b Batch
		_ = fresh.Decode(SourceIPFIX, from, d, 0, &b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// a second exporter address, so that the cache holds several scopes
		for _, src := range []netip.AddrPort{from, netip.MustParseAddrPort("127.0.0.2:60536")} {
			errA := cached.Decode(SourceIPFIX, src, data, 0, &long)
			var b Batch
			errB := fresh.Decode(SourceIPFIX, src, data, 0, &b)
			require.Equal(t, errB == nil, errA == nil, "errors: cached %v, fresh %v", errA, errB)
			require.Equal(t, b.Header, long.Header)
			require.Equal(t, len(b.Records), len(long.Records))
			for i := range b.Records {
				require.True(t, b.Records[i] == long.Records[i], "record %d: cached %+v, fresh %+v", i, long.Records[i], b.Records[i])
			}
		}
	})
}
