package decoder

import "testing"

// BenchmarkDecodeSFlowHost decodes the golden hsflowd datagram (a
// hypervisor's sample and one VM's: 14 host-structure records) with a
// reused Batch, and reports the cost per record.
func BenchmarkDecodeSFlowHost(b *testing.B) {
	for _, fast := range []bool{true, false} {
		name := "fast"
		if !fast {
			name = "goflow2"
		}
		b.Run(name, func(b *testing.B) {
			d := newTestDecoder(b, fast)
			data := hostDatagramFixture()
			var batch Batch
			if err := d.Decode(SourceSFlow, testExporter, data, 1, &batch); err != nil || len(batch.Hosts) != 2 {
				b.Fatalf("%v, %d hosts", err, len(batch.Hosts))
			}
			const records = 14
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := d.Decode(SourceSFlow, testExporter, data, 1, &batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/records, "ns/record")
		})
	}
}
