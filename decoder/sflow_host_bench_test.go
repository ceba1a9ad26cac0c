package decoder

import (
	"testing"

	sh "github.com/vmflow/vmflow/internal/sflowhost"
)

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

// BenchmarkHostRecord measures validating and decoding one host-structure
// record of each kind (the record body as the sample walk hands it over).
func BenchmarkHostRecord(b *testing.B) {
	var recs [][]byte
	var names []string
	for si, s := range [][]byte{hostSampleFixture(), vmSampleFixture()} {
		var batch Batch
		d := newTestDecoder(b, true)
		if err := d.Decode(SourceSFlow, testExporter, sh.Datagram(hostAgent, 0, 1, 1, s), 1, &batch); err != nil {
			b.Fatal(err)
		}
		body := s[8:]
		if s[3] == sflowExpandedCounterSample {
			body = body[16:]
		} else {
			body = body[12:]
		}
		for len(body) > 0 {
			_, rec, rest, err := nextRecord(body)
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, body[:8+len(rec)])
			names = append(names, []string{"hypervisor/", "vm/"}[si]+hostKindNames[hostKind(sfU32(body))])
			body = rest
		}
	}
	for i, r := range recs {
		format := sfU32(r)
		b.Run(names[i], func(b *testing.B) {
			var batch Batch
			var st sflowStats
			var c Counters
			var seen counterSeen
			m := sflowMeta{exporter: testExporter.Addr()}
			hs := hostSample{b: &batch, m: &m}
			rec := r[8:]
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				batch.Hosts = batch.Hosts[:0]
				hs.h = nil
				if err := hs.counterRecord(&c, &seen, format, rec, &st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
