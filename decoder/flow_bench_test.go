package decoder

import (
	"net/netip"
	"testing"
)

// BenchmarkDecodeIPFIX decodes the OVS capture's data datagrams (templates
// loaded first) into a reused Batch.
func BenchmarkDecodeIPFIX(b *testing.B) {
	for _, dir := range []string{"ingress", "both"} {
		b.Run(dir, func(b *testing.B) {
			f, _ := fxNewFlow(b, func(c *FlowConfig) { c.Directions = dir })
			from := netip.MustParseAddrPort("127.0.0.1:60536")
			var batch Batch
			var data [][]byte
			for _, d := range fxCaptureDatagrams(b) {
				if err := f.Decode(SourceIPFIX, from, d, 0, &batch); err != nil {
					b.Fatal(err)
				}
				if batch.Header.DataRecords > 0 {
					data = append(data, d)
				}
			}
			records := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := data[i%len(data)]
				if err := f.Decode(SourceIPFIX, from, d, 0, &batch); err != nil {
					b.Fatal(err)
				}
				records += batch.Header.DataRecords
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
			b.ReportMetric(float64(records)/float64(b.N), "records/op")
		})
	}
}

// BenchmarkDecodeIPFIXLarge: one 1,400-byte message of 20 OVS-style records
// (the capture has one record per message).
func BenchmarkDecodeIPFIXLarge(b *testing.B) {
	f, _ := fxNewFlow(b, func(c *FlowConfig) { c.Directions = "both" })
	var batch Batch
	if err := f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 123, fxSet(2, fxTmpl(true, 291, fxOVSTunnelFields...))), 0, &batch); err != nil {
		b.Fatal(err)
	}
	var recs [][]byte
	for i := 0; i < 12; i++ {
		recs = append(recs, fxOVSTunnelRecord(uint8(i&1), 20))
	}
	msg := fxIPFIX(1, 0, 123, fxSet(291, recs...))
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f.Decode(SourceIPFIX, fxExpA, msg, 0, &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
