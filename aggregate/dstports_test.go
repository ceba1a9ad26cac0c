package aggregate

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// Distinct destination ports per source VM come from every distinct flow
// of the window (over all peers and collector workers), not from the
// pairs' top ports.
func TestWindowDstPorts(t *testing.T) {
	enr := testEnricher(t)
	a, _, _ := newTestAgg(t, DefaultConfig(), enr)
	w1, w2 := a.NewWorker(), a.NewWorker()
	idx := enr.Index()
	// a1 scans a2 on TCP 1–600 and b1 on TCP 301–900 (900 distinct
	// ports), split over two workers, some probes seen by both.
	for p := 1; p <= 600; p++ {
		w := w1
		if p%2 == 0 {
			w = w2
		}
		w.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).tcp(0x02).ports(40000, uint16(p)).Record)
		if p%10 == 0 {
			w1.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).tcp(0x02).ports(40000, uint16(p)).Record)
		}
	}
	for p := 301; p <= 900; p++ {
		w2.Add(idx, &sample(expA, macA1, macB1, ipA1, ipB1).tcp(0x02).ports(40001, uint16(p)).Record)
	}
	// a2: TCP 5201 (twice, two flows), TCP 5202, UDP 53, and a ping (no port).
	w1.Add(idx, &sample(expA, macA2, macA1, ipA2, ipA1).tcp(0x10).ports(50000, 5201).Record)
	w2.Add(idx, &sample(expA, macA2, macB1, ipA2, ipB1).tcp(0x10).ports(50001, 5201).Record)
	w1.Add(idx, &sample(expA, macA2, macA1, ipA2, ipA1).tcp(0x10).ports(50002, 5202).Record)
	w1.Add(idx, &sample(expA, macA2, macA1, ipA2, ipA1).ports(50003, 53).Record)
	w1.Add(idx, &sample(expA, macA2, macA1, ipA2, ipA1).icmp(1, 8).Record)
	// The same VM seen through IPFIX is counted apart.
	w1.Add(idx, &sample(expA, macA2, macA1, ipA2, ipA1).tcp(0x10).ports(50000, 5201).ipfix(expA, 1).Record)
	win := a.closeWindow(time.Now())
	got := map[string]uint32{}
	for _, d := range win.DstPorts {
		got[enr.Index().VM(d.VM).Name+"/"+d.Source.String()] = d.Ports
	}
	require.Len(t, got, 3, "%v", win.DstPorts)
	assert.InDelta(t, 900, float64(got["a1/sflow"]), 900*0.033, "a1: 900 distinct ports (HyperLogLog, ±3.3%%)")
	assert.Equal(t, uint32(3), got["a2/sflow"], "a2: exact at small counts")
	assert.Equal(t, uint32(1), got["a2/ipfix"])
	assert.Less(t, pairOf(win, "a1", "a2", decoder.SourceSFlow).Stats.TopPorts[TopPortsN-1].Port, uint16(901), "the pair itself keeps only its top 8")

	// The next window reuses the sketches: nothing carried over.
	w1.Add(idx, &sample(expA, macA1, macA2, ipA1, ipA2).tcp(0x02).ports(40000, 22).Record)
	win = a.closeWindow(time.Now())
	require.Len(t, win.DstPorts, 1)
	assert.Equal(t, uint32(1), win.DstPorts[0].Ports)
}

// BenchmarkDstPorts: the distinct-destination-port count at window close
// for 10,000 VMs, steady state: 20 ports each (every VM in its exact set:
// 200,000 flows), and 100 ports each (every VM past the exact set, into
// its sketch: 1,000,000 flows, the worst case).
func BenchmarkDstPorts(b *testing.B) {
	for _, ports := range []int{20, 100} {
		b.Run(fmt.Sprintf("ports=%d", ports), func(b *testing.B) {
			base := newShard()
			for vm := 1; vm <= 10000; vm++ {
				base.slots = append(base.slots, slot{key: PairKey{Src: EndpointKey{VM: enrich.VMID(vm)}, Dst: EndpointKey{VM: enrich.VMID(vm%97 + 1)}, Source: decoder.SourceSFlow}})
				for p := 0; p < ports; p++ {
					base.flowList = append(base.flowList, flowEntry{slot: int32(vm - 1), port: 6<<16 | uint32(1000+p*7+vm%50)})
				}
			}
			var d dstPorts
			d.count(base)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.count(base)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(base.flowList)), "ns/flow")
			b.ReportMetric(float64(d.bytes.Load()+int64(len(d.sets[decoder.SourceSFlow&3]))*int64(unsafe.Sizeof(portSet{})))/10000, "B/VM")
		})
	}
}
