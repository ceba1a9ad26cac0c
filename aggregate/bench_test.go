package aggregate

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// benchEnricher has 1,000 VMs on 10 observed hosts.
func benchEnricher(b *testing.B) (*enrich.Enricher, []enrich.VM) {
	var vms []enrich.VM
	var hosts []enrich.Host
	for h := 0; h < 10; h++ {
		hosts = append(hosts, enrich.Host{Name: fmt.Sprintf("hv%d", h), Exporters: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(h + 1)})}})
	}
	for i := 0; i < 1000; i++ {
		vms = append(vms, testVM(fmt.Sprintf("vm%d", i), fmt.Sprintf("hv%d", i%10),
			[6]byte{0x52, 0x54, 0, 1, byte(i >> 8), byte(i)}, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})))
	}
	e, err := enrich.New(enrich.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	e.Publish(enrich.Snapshot{Source: "static", VMs: vms, Hosts: hosts})
	return e, vms
}

// BenchmarkWorkerAdd: attribution + counting rule + stats per record, for
// 4,096 records over ~400 VM pairs and 2,000 flows, half of them observed
// on the destination's host too (suppressed as duplicates).
func BenchmarkWorkerAdd(b *testing.B) {
	enr, vms := benchEnricher(b)
	a, err := New(DefaultConfig(), enr, nil)
	if err != nil {
		b.Fatal(err)
	}
	w := a.NewWorker()
	recs := make([]decoder.Record, 4096)
	for i := range recs {
		s := &vms[(i*7)%400]
		d := &vms[(i*13+1)%400]
		obs := s
		if i%2 == 1 {
			obs = d
		}
		agent := netip.AddrFrom4([4]byte{192, 0, 2, byte(int(obs.Host[2]-'0') + 1)})
		recs[i] = decoder.Record{
			Source: decoder.SourceSFlow, Exporter: agent, Agent: agent, SamplingRate: 16,
			Bytes: 1514, Packets: 1, SrcMAC: s.Interfaces[0].MAC, DstMAC: d.Interfaces[0].MAC,
			SrcIP: s.Interfaces[0].Addrs[0].IP, DstIP: d.Interfaces[0].Addrs[0].IP,
			Proto: 6, SrcPort: uint16(30000 + i%2000), DstPort: 443, TCPFlags: 0x10,
			Flags: decoder.FlagL3 | decoder.FlagL4, Received: time.Now().UnixNano(),
		}
	}
	idx := enr.Index()
	for i := range recs { // warm up: pairs and flows exist
		w.Add(idx, &recs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Add(idx, &recs[i&4095])
	}
}

// BenchmarkWorkerAddBatch is the same through AddBatch (one lock per
// datagram of 8 records), as the pipeline calls it.
func BenchmarkWorkerAddBatch(b *testing.B) {
	enr, vms := benchEnricher(b)
	a, _ := New(DefaultConfig(), enr, nil)
	w := a.NewWorker()
	recs := make([]decoder.Record, 4096)
	for i := range recs {
		s, d := &vms[(i*7)%400], &vms[(i*13+1)%400]
		agent := netip.AddrFrom4([4]byte{192, 0, 2, byte(int(s.Host[2]-'0') + 1)})
		recs[i] = decoder.Record{
			Source: decoder.SourceSFlow, Exporter: agent, Agent: agent, SamplingRate: 16,
			Bytes: 1514, Packets: 1, SrcMAC: s.Interfaces[0].MAC, DstMAC: d.Interfaces[0].MAC,
			SrcIP: s.Interfaces[0].Addrs[0].IP, DstIP: d.Interfaces[0].Addrs[0].IP,
			Proto: 6, SrcPort: uint16(30000 + i%2000), DstPort: 443,
			Flags: decoder.FlagL3 | decoder.FlagL4,
		}
	}
	idx := enr.Index()
	w.AddBatch(idx, recs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := (i * 8) & 4095
		w.AddBatch(idx, recs[o:o+8])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*8), "ns/record")
}

// BenchmarkPipelineHandle: decoder + enrich + aggregate per real OVS sFlow
// datagram from testdata/ovs-lab-1.
func BenchmarkPipelineHandle(b *testing.B) {
	p, _, _ := labPipeline(b)
	h := p.NewWorker()
	dgs := readUDP(b, "../testdata/ovs-lab-1/ovs-sflow16.pcapng", collector.ProtoSFlow, 6343)
	samples := 0
	for i := range dgs {
		m, err := h.Handle(&dgs[i])
		if err != nil {
			b.Fatal(err)
		}
		samples += m.Samples
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.Handle(&dgs[i%len(dgs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*float64(samples)/float64(len(dgs))), "ns/sample")
}

// BenchmarkWindowClose merges two workers' shards of 1,000 pairs each and
// resolves the window.
func BenchmarkWindowClose(b *testing.B) {
	enr, vms := benchEnricher(b)
	a, _ := New(DefaultConfig(), enr, nil)
	ws := []*Worker{a.NewWorker(), a.NewWorker()}
	idx := enr.Index()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for k := 0; k < 2000; k++ {
			s, d := &vms[k%1000], &vms[(k*7+3)%1000]
			r := decoder.Record{Source: decoder.SourceSFlow, SamplingRate: 1, Bytes: 100, Packets: 1,
				SrcMAC: s.Interfaces[0].MAC, DstMAC: d.Interfaces[0].MAC, Flags: decoder.FlagL3,
				SrcIP: s.Interfaces[0].Addrs[0].IP, DstIP: d.Interfaces[0].Addrs[0].IP, Proto: 17}
			ws[k&1].Add(idx, &r)
		}
		b.StartTimer()
		a.closeWindow(time.Now())
	}
}

// BenchmarkPipelineHandleIPFIX: decoder + enrich + aggregate per real OVS
// IPFIX message from testdata/ovs-lab-1 (one flow record each, as OVS sends
// them at sampling=1; half are egress records, skipped by direction), the
// templates learned first. The decoder's held counts are flushed every 16
// datagrams, the mean receive batch measured in the IPFIX blast.
func BenchmarkPipelineHandleIPFIX(b *testing.B) {
	p, _, _ := labPipeline(b)
	h := p.NewWorker()
	fl, _ := h.(collector.BatchFlusher)
	all := readUDP(b, "../testdata/ovs-lab-1/ovs-ipfix1.pcapng", collector.ProtoIPFIX, 4739)
	var dgs []collector.Datagram
	for i := range all {
		m, err := h.Handle(&all[i])
		if err != nil {
			b.Fatal(err)
		}
		if m.Records > 0 && m.Samples+m.Records > 0 && !m.RecordsUnknown {
			dgs = append(dgs, all[i])
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.Handle(&dgs[i%len(dgs)]); err != nil {
			b.Fatal(err)
		}
		if fl != nil && i%16 == 15 {
			fl.Flush()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
}
