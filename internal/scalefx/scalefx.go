// Package scalefx builds aggregation windows of cloud size for the scale
// benchmarks (store, api, aggregate): 10,000 VMs on 500 hypervisors, each
// talking to 20 peers (200,000 directed pairs), sFlow, with a heavy-tailed
// traffic mix. Windows are synthesised directly (no datagrams): the
// benchmarks measure the stages after the aggregator.
package scalefx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// Defaults of the scale benchmarks.
const (
	VMs   = 10_000
	Hosts = 500
	Pairs = 200_000
)

// Epoch is the start of the first window (aligned to every tier's step).
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Cloud is a fixed set of VMs and pairs; Window fills in fresh statistics.
type Cloud struct {
	eps   []aggregate.Endpoint // index = VMID-1
	pairs []aggregate.PairKey
	rng   *rand.Rand
	win   *aggregate.Window
}

// VMName is the name of VM i (1-based).
func VMName(i int) string { return fmt.Sprintf("vm-%05d", i) }

// New builds a cloud of vms VMs and npairs directed pairs (npairs/vms peers each).
func New(vms, npairs int) *Cloud {
	c := &Cloud{rng: rand.New(rand.NewPCG(1, 2))}
	for i := 1; i <= vms; i++ {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		c.eps = append(c.eps, aggregate.Endpoint{
			VM: VMName(i), UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Host: fmt.Sprintf("hv-%03d", i%Hosts), Tenant: fmt.Sprintf("tenant-%03d", i%300),
			IP: ip.String(), MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i)),
		})
	}
	for i := 0; i < npairs; i++ {
		src, k := i%vms, i/vms
		dst := (src + 1 + k*499) % vms
		c.pairs = append(c.pairs, aggregate.PairKey{
			Src: aggregate.EndpointKey{VM: enrich.VMID(src + 1)}, Dst: aggregate.EndpointKey{VM: enrich.VMID(dst + 1)},
			Source: decoder.SourceSFlow})
	}
	c.win = &aggregate.Window{Pairs: make([]aggregate.Pair, npairs)}
	return c
}

// PairNames returns the VM names of pair i.
func (c *Cloud) PairNames(i int) (src, dst string) {
	k := c.pairs[i]
	return c.eps[k.Src.VM-1].VM, c.eps[k.Dst.VM-1].VM
}

// Window returns window i (10 s from Epoch) with every pair active. The
// same Window is reused by the next call: a sink must not keep it (the
// memory store copies it).
func (c *Cloud) Window(i int) *aggregate.Window {
	w := c.win
	w.Start = Epoch.Add(time.Duration(i) * 10 * time.Second)
	w.End = w.Start.Add(10 * time.Second)
	for j := range c.pairs {
		k := c.pairs[j]
		// Pareto(α=1.2) bytes: most pairs send little, a few a lot.
		u := c.rng.Float64()
		b := math.Round(math.Min(64*1500*math.Pow(1/(1-u), 1/1.2), 1e10))
		pk := math.Max(1, math.Round(b/900))
		st := aggregate.Stats{Bytes: b, Packets: pk, BytesVar: 63 * b * 1500, PacketsVar: 63 * pk,
			Samples: uint64(pk/64) + 1, Flows: uint64(c.rng.IntN(6) + 1),
			SampledBytes: uint64(b / 64), SampledPackets: uint64(pk/64) + 1,
			TCPBytes: b, TCPPackets: pk, First: w.Start.UnixNano(), Last: w.End.UnixNano() - 1}
		if j%7 == 0 {
			st.SYN = 64
		}
		for p := 0; p < 1+j%3; p++ {
			st.TopPorts[p] = aggregate.PortCount{Proto: 6, Port: uint16(443 + 1000*p + j%5), Bytes: b / float64(p+2)}
		}
		w.Pairs[j] = aggregate.Pair{Key: k, Src: c.eps[k.Src.VM-1], Dst: c.eps[k.Dst.VM-1], Stats: st}
	}
	return w
}

// HourWindows is how many 10 s windows Hour writes: 61 minutes.
const HourWindows = 366

// Hour writes HourWindows windows to sink and returns the last one's end.
func (c *Cloud) Hour(sink aggregate.Sink) time.Time {
	for i := 0; i < HourWindows; i++ {
		sink.Write(c.Window(i))
	}
	return Epoch.Add(HourWindows * 10 * time.Second)
}
