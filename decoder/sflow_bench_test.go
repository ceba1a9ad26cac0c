package decoder

import "testing"

// benchSFlow decodes the real capture's datagrams round-robin with a reused
// Batch and reports ns and allocations per sample (flow + counter samples).
func benchSFlow(b *testing.B, fast bool) {
	dgs := readCaptureUDP(b, sflowCapture, 6343)
	d := newTestDecoder(b, fast)
	var batch Batch
	samples := 0
	for _, dg := range dgs {
		if err := d.Decode(SourceSFlow, dg.From, dg.Payload, dg.Received, &batch); err != nil {
			b.Fatal(err)
		}
		samples += batch.Header.Samples
	}
	perDatagram := float64(samples) / float64(len(dgs))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dg := &dgs[i%len(dgs)]
		if err := d.Decode(SourceSFlow, dg.From, dg.Payload, dg.Received, &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*perDatagram), "ns/sample")
	b.ReportMetric(perDatagram, "samples/datagram")
}

func BenchmarkDecodeSFlowFast(b *testing.B)    { benchSFlow(b, true) }
func BenchmarkDecodeSFlowGoflow2(b *testing.B) { benchSFlow(b, false) }
