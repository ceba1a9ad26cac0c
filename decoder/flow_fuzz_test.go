package decoder

import (
	"bytes"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Crafted datagrams for the known hazards (NOTES.md) and worse.

// fxZeroFieldIPFIX: an IPFIX template with zero fields followed by data using
// it (goflow2 2.2.6 loops forever on this).
func fxZeroFieldIPFIX() []byte {
	return fxIPFIX(1, 1, 1, fxSet(2, fxCat(fxU16(300), fxU16(0))), fxSet(300, bytes.Repeat([]byte{1}, 32)))
}

// fxZeroFieldNF9 is the NetFlow v9 twin.
func fxZeroFieldNF9() []byte {
	return fxNF9(1, 1, 1, 1, fxSet(0, fxCat(fxU16(300), fxU16(0))), fxSet(300, bytes.Repeat([]byte{1}, 32)))
}

// fxAllVarIPFIX: a template made only of variable-length fields, and data.
func fxAllVarIPFIX() []byte {
	rec := fxCat([]byte{5}, []byte("vnet2"), []byte{0}, []byte{3, 0, 0x13, 0x88})
	return fxIPFIX(1, 1, 1,
		fxSet(2, fxTmpl(true, 301, fxField{82, flowVarLen, 0}, fxField{83, flowVarLen, 0}, fxField{892, flowVarLen, penVMware})),
		fxSet(301, rec, rec, rec))
}

// fxZeroLengthIPFIX: fields that all have length 0 (a record of 0 bytes).
func fxZeroLengthIPFIX() []byte {
	return fxIPFIX(1, 1, 1, fxSet(2, fxTmpl(true, 302, fxField{8, 0, 0}, fxField{12, 0, 0})), fxSet(302, make([]byte, 64)))
}

// fxHugeCountIPFIX: a template announcing 65535 fields in a tiny set.
func fxHugeCountIPFIX() []byte {
	return fxIPFIX(1, 1, 1, fxSet(2, fxCat(fxU16(303), fxU16(0xffff), fxU32(0x00080004))))
}

// fxHugeScopeIPFIX: an options template with 65535 scope fields.
func fxHugeScopeIPFIX() []byte {
	return fxIPFIX(1, 1, 1, fxSet(3, fxCat(fxU16(304), fxU16(0xffff), fxU16(0xffff), fxU32(0x00080004))))
}

// fxHugeVarLenIPFIX: a variable-length field claiming 65535 bytes.
func fxHugeVarLenIPFIX() []byte {
	return fxIPFIX(1, 1, 1, fxSet(2, fxTmpl(true, 305, fxField{82, flowVarLen, 0})),
		fxSet(305, fxCat([]byte{255}, fxU16(0xffff), []byte("short"))))
}

// fxTinyRecordsIPFIX: a 1-byte record template and a full set of records.
func fxTinyRecordsIPFIX() []byte {
	return fxIPFIX(1, 1, 1, fxSet(2, fxTmpl(true, 306, fxField{4, 1, 0})), fxSet(306, bytes.Repeat([]byte{6}, 65000)))
}

// fxDecodeWithin runs Decode and fails the test (instead of hanging the run)
// if it does not return.
func fxDecodeWithin(t *testing.T, f *flowDecoder, src Source, from netip.AddrPort, data []byte, b *Batch) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f.Decode(src, from, data, 0, b) }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Decode did not return")
		return nil
	}
}

func TestFlowHazards(t *testing.T) {
	f, _ := fxNewFlow(t, func(c *FlowConfig) { c.MaxRecords = 1000 })
	var b Batch

	// Zero-field IPFIX template: a withdrawal (nothing to withdraw), so its
	// data is an unknown template, skipped and counted.
	require.NoError(t, fxDecodeWithin(t, f, SourceIPFIX, fxExpA, fxZeroFieldIPFIX(), &b))
	assert.Empty(t, b.Records)
	assert.Equal(t, 1, b.Header.Skipped)
	assert.Equal(t, 1.0, fxCount(f.m.unknownTemplate[0]))

	// Zero-field NetFlow v9 template: rejected, data skipped.
	require.NoError(t, fxDecodeWithin(t, f, SourceNetFlow9, fxExpA, fxZeroFieldNF9(), &b))
	assert.Empty(t, b.Records)
	assert.Equal(t, 1.0, fxCount(f.m.rejected[1][rejNoFields]))
	assert.Equal(t, 1.0, fxCount(f.m.unknownTemplate[1]))

	// All-variable-length template: decoded properly (each record is at
	// least one length byte per field).
	require.NoError(t, fxDecodeWithin(t, f, SourceIPFIX, fxExpA, fxAllVarIPFIX(), &b))
	require.Len(t, b.Records, 3)
	assert.Equal(t, uint32(5000), b.Records[0].VNI)

	// Zero-length fields: rejected.
	require.NoError(t, fxDecodeWithin(t, f, SourceIPFIX, fxExpA, fxZeroLengthIPFIX(), &b))
	assert.Empty(t, b.Records)
	assert.Equal(t, 1.0, fxCount(f.m.rejected[0][rejZeroLength]))

	// Huge counts and lengths: errors, counted.
	for _, tc := range []struct {
		name   string
		data   []byte
		reason errReason
	}{
		{"huge field count", fxHugeCountIPFIX(), errTemplateMalformed},
		{"huge scope count", fxHugeScopeIPFIX(), errTemplateMalformed},
		{"huge variable length", fxHugeVarLenIPFIX(), errRecordTruncated},
	} {
		before := fxCount(f.m.errors[0][tc.reason])
		require.Error(t, fxDecodeWithin(t, f, SourceIPFIX, fxExpA, tc.data, &b), tc.name)
		assert.Equal(t, before+1, fxCount(f.m.errors[0][tc.reason]), tc.name)
	}

	// 65,000 one-byte records: capped at max_records, the rest counted.
	require.NoError(t, fxDecodeWithin(t, f, SourceIPFIX, fxExpA, fxTinyRecordsIPFIX(), &b))
	assert.Len(t, b.Records, 1000)
	assert.LessOrEqual(t, cap(b.Records), 2048, "the batch does not grow past the cap")
	assert.Equal(t, 64000.0, fxCount(f.m.errors[0][errRecordsLimit]))
}

// TestFlowStateBounded floods templates from many exporters and ids: the
// state stays within max_exporters x max_templates.
func TestFlowStateBounded(t *testing.T) {
	f, _ := fxNewFlow(t, func(c *FlowConfig) { c.MaxExporters = 64; c.MaxTemplates = 32; c.MaxTemplatesTotal = 300 })
	var b Batch
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var b Batch
			for i := 0; i < 2000; i++ {
				from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(w), byte(i >> 8), byte(i)}), 1)
				var recs [][]byte
				for id := 0; id < 8; id++ {
					recs = append(recs, fxTmpl(true, uint16(256+i*8+id), fxBasicFields...))
				}
				_ = f.Decode(SourceIPFIX, from, fxIPFIX(1, 0, uint32(i%3), fxSet(2, recs...)), 0, &b)
				_ = f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 0, fxSet(2, recs...)), 0, &b)
			}
		}(w)
	}
	wg.Wait()
	d, n := f.stats()
	assert.Equal(t, 64, d, "max_exporters reached and held")
	assert.Equal(t, 300, n, "max_templates_total reached and held")
	assert.Equal(t, int64(n), f.total.Load())
	assert.Greater(t, fxCount(f.m.rejected[0][rejExporterLimit]), 0.0)
	assert.Greater(t, fxCount(f.m.rejected[0][rejTemplateLimit]), 0.0)
	_ = b
}

var (
	fxSeedOnce sync.Once
	fxSeedDgs  [][]byte
)

// fxCaptureTemplates returns the capture's datagrams (templates first).
func fxCaptureDatagrams(t testing.TB) [][]byte {
	fxSeedOnce.Do(func() {
		for _, d := range readCaptureUDP(t, fxIPFIXCapture, 4739) {
			fxSeedDgs = append(fxSeedDgs, d.Payload)
		}
	})
	return fxSeedDgs
}

func fxCheckBatch(t *testing.T, f *flowDecoder, src Source, b *Batch) {
	require.LessOrEqual(t, len(b.Records), f.cfg.MaxRecords)
	for i := range b.Records {
		require.Equal(t, src, b.Records[i].Source)
		require.NotZero(t, b.Records[i].SamplingRate)
	}
	d, n := f.stats()
	require.LessOrEqual(t, d, f.cfg.MaxExporters)
	require.LessOrEqual(t, n, f.cfg.MaxTemplatesTotal)
	require.Equal(t, int64(n), f.total.Load(), "template accounting")
}

// FuzzDecodeIPFIX feeds one datagram, twice (so templates it carries apply
// to its own data), to a decoder that already holds the OVS capture's
// templates.
func FuzzDecodeIPFIX(f *testing.F) {
	dgs := fxCaptureDatagrams(f)
	for _, d := range dgs {
		f.Add(d)
	}
	for _, d := range [][]byte{fxZeroFieldIPFIX(), fxAllVarIPFIX(), fxZeroLengthIPFIX(), fxHugeCountIPFIX(),
		fxHugeScopeIPFIX(), fxHugeVarLenIPFIX(),
		fxIPFIX(1_795_316_766, 1, 123, fxSet(2, fxTmpl(true, 291, fxOVSTunnelFields...)),
			fxSet(291, fxOVSTunnelRecord(0, 0)), fxSet(291, fxOVSTunnelRecord(1, 20))),
		fxIPFIX(1, 0, 9, fxSet(3, fxIPFIXOpt(300, 1, fxField{149, 4, 0}, fxField{34, 4, 0})), fxSet(300, fxCat(fxU32(9), fxU32(100)))),
		fxIPFIX(1, 0, 1, fxSet(2, fxCat(fxU16(2), fxU16(0)))),
	} {
		f.Add(d)
	}
	var templates [][]byte
	for _, d := range dgs {
		if len(d) > 20 && d[16] == 0 && d[17] == 2 { // first set is a template set
			templates = append(templates, d)
		}
	}
	from := netip.MustParseAddrPort("127.0.0.1:60536")
	// One long-lived decoder per fuzz process, as in production: it holds
	// the capture's templates, and whatever the inputs add stays within the
	// limits (checked after every input).
	dec, _ := fxNewFlow(f, func(c *FlowConfig) { c.MaxRecords = 512; c.MaxTemplates = 256; c.MaxExporters = 64 })
	var b Batch
	for _, tm := range templates {
		require.NoError(f, dec.Decode(SourceIPFIX, from, tm, 0, &b))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		for range 2 {
			_ = dec.Decode(SourceIPFIX, from, data, 0, &b)
			fxCheckBatch(t, dec, SourceIPFIX, &b)
		}
	})
}

// FuzzDecodeNetFlow9 feeds one NetFlow v9 packet twice to a fresh decoder.
func FuzzDecodeNetFlow9(f *testing.F) {
	fields := []fxField{{8, 4, 0}, {12, 4, 0}, {4, 1, 0}, {7, 2, 0}, {11, 2, 0}, {1, 4, 0}, {2, 4, 0}, {22, 4, 0}, {21, 4, 0}}
	rec := fxCat([]byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, []byte{6}, fxU16(1000), fxU16(80), fxU32(1500), fxU32(1), fxU32(10), fxU32(20))
	f.Add(fxNF9(100, 1_700_000_000, 1, 42,
		fxSet(0, fxTmpl(false, 260, fields...)),
		fxSet(1, fxNF9Opt(261, []fxField{{1, 4, 0}}, []fxField{{34, 4, 0}, {35, 1, 0}})),
		fxSet(261, fxCat(fxU32(0), fxU32(512), []byte{2, 0, 0, 0})),
		fxSet(260, rec, rec, []byte{0, 0})))
	f.Add(fxZeroFieldNF9())
	f.Add(fxNF9(1, 1, 1, 1, fxSet(0, fxTmpl(false, 300, fxField{8, 0, 0})), fxSet(300, make([]byte, 16))))
	f.Add(fxNF9(1, 1, 1, 1, fxSet(0, fxTmpl(false, 300, fxField{82, flowVarLen, 0})), fxSet(300, make([]byte, 16))))
	from := netip.MustParseAddrPort("192.0.2.1:2055")
	f.Fuzz(func(t *testing.T, data []byte) {
		dec, _ := fxNewFlow(t, func(c *FlowConfig) { c.MaxRecords = 512; c.MaxTemplates = 64 })
		var b Batch
		for range 2 {
			_ = dec.Decode(SourceNetFlow9, from, data, 0, &b)
			fxCheckBatch(t, dec, SourceNetFlow9, &b)
		}
	})
}

// TestFlowConcurrentSweep races decoding (templates and data from many
// scopes) against expiry sweeps; the template accounting stays exact. Run
// with -race.
func TestFlowConcurrentSweep(t *testing.T) {
	f, _ := fxNewFlow(t, func(c *FlowConfig) { c.TemplateLifetime = time.Second })
	var clock atomic.Int64
	clock.Store(time.Unix(1_700_000_000, 0).UnixNano())
	f.now = func() time.Time { return time.Unix(0, clock.Load()) }
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var b Batch
			rec := fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 100, 0, 0)
			for i := 0; i < 3000; i++ {
				from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(w), 0, byte(i % 7)}), 1)
				msg := fxIPFIX(1, 0, uint32(i%3), fxSet(2, fxTmpl(true, uint16(256+i%5), fxBasicFields...)), fxSet(uint16(256+i%5), rec))
				require.NoError(t, f.Decode(SourceIPFIX, from, msg, 0, &b))
				if i%10 == 0 {
					clock.Add(int64(300 * time.Millisecond))
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 300; i++ {
			f.sweep(clock.Load())
		}
	}()
	wg.Wait()
	_, n := f.stats()
	assert.Equal(t, int64(n), f.total.Load())
	assert.Greater(t, fxCount(f.m.templates[0][evExpired]), 0.0)
}
