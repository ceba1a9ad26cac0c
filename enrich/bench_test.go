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
