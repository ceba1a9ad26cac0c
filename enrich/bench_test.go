package enrich

import (
	"fmt"
	"net/netip"
	"testing"
)

// synthVMs makes n VMs with one interface each (distinct MAC and IPv4),
// spread over 100 hosts.
func synthVMs(n int) []VM {
	vms := make([]VM, n)
	for i := range vms {
		m := [6]byte{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		vms[i] = VM{
			Name:  fmt.Sprintf("vm-%05d", i),
			UUID:  fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Host:  fmt.Sprintf("hv%02d", i%100),
			State: "running",
			Interfaces: []Interface{{
				MAC: m, Tap: fmt.Sprintf("vnet%d", i), Addrs: []Addr{{IP: ip, Source: AddrLease}},
			}},
		}
	}
	return vms
}

func index10k(b *testing.B) (*Index, []VM) {
	vms := synthVMs(10000)
	e, err := New(DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	e.Publish(Snapshot{Source: "static", VMs: vms})
	return e.Index(), vms
}

func BenchmarkLookupMAC(b *testing.B) {
	x, vms := index10k(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := x.ByMAC(vms[i%len(vms)].Interfaces[0].MAC); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkLookupIP(b *testing.B) {
	x, vms := index10k(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := x.ByIP(0, vms[i%len(vms)].Interfaces[0].Addrs[0].IP); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkLookupIPMissVNI(b *testing.B) {
	x, vms := index10k(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := x.ByIP(4242, vms[i%len(vms)].Interfaces[0].Addrs[0].IP); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkRebuild10k(b *testing.B) {
	vms := synthVMs(10000)
	snaps := []Snapshot{{Source: "static", VMs: vms}}
	reg := newRegistry()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x := build(snaps, mergeInput{merge: MergeLibvirtFirst, reg: reg})
		if len(x.vms) != 10000 {
			b.Fatal(len(x.vms))
		}
	}
}

// BenchmarkRebuild10kLearned10k: BenchmarkRebuild10k plus one learned
// address per VM (each VM's MAC seen with a second IP).
func BenchmarkRebuild10kLearned10k(b *testing.B) {
	vms := synthVMs(10000)
	snaps := []Snapshot{{Source: "static", VMs: vms}}
	reg := newRegistry()
	x := build(snaps, mergeInput{merge: MergeLibvirtFirst, reg: reg})
	learned := make(map[[6]byte][]learnedAddr, len(vms))
	for _, vm := range x.vms {
		m := vm.Interfaces[0].MAC
		ip := netip.AddrFrom4([4]byte{11, m[3], m[4], m[5]})
		learned[m] = []learnedAddr{{vm: vm.ID, ip: ip}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x := build(snaps, mergeInput{merge: MergeLibvirtFirst, reg: reg, learned: learned})
		if len(x.ip4) != 20000 {
			b.Fatal(len(x.ip4))
		}
	}
}

// BenchmarkLearnFilterKnown: the hot-path learning check for a record
// whose source IP the interface has from the inventory (the common case).
func BenchmarkLearnFilterKnown(b *testing.B) { benchFilter(b, AddrLease) }

// BenchmarkLearnFilterLearned: the check for a source IP already learned
// (a cache hit: nothing reported).
func BenchmarkLearnFilterLearned(b *testing.B) { benchFilter(b, AddrLearned) }

func benchFilter(b *testing.B, src AddrSource) {
	vms := synthVMs(1000)
	for i := range vms {
		vms[i].Interfaces[0].Addrs[0].Source = src
	}
	e, err := New(DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	e.Publish(Snapshot{Source: "static", VMs: vms})
	x := e.Index()
	ports := make([]Port, 64)
	for i := range ports {
		ports[i], _ = x.ByMAC(vms[i*7].Interfaces[0].MAC)
	}
	f := e.Learner().NewFilter()
	for i := range ports {
		f.Saw(ports[i], ports[i].Iface.Addrs[0].IP, 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := ports[i&63]
		f.Saw(p, p.Iface.Addrs[0].IP, 2)
	}
}
