package aggregate

import (
	"slices"
	"sync/atomic"

	"github.com/axiomhq/hyperloglog"

	"github.com/vmflow/vmflow/internal/hashmix"
)

// dstPortsPrecision: 2^10 one-byte registers = 1 KiB per (VM, protocol)
// with more than dstPortsExact ports; standard error 1.04/√1024 ≈ 3.3%.
const dstPortsPrecision = 10

// dstPortsExact: up to this many distinct ports per (VM, protocol) are
// kept exactly in a small array; beyond, a HyperLogLog takes over.
const dstPortsExact = 64

// portSet is one (VM, protocol)'s distinct destination ports in a window.
type portSet struct {
	seq   uint64 // window that last reset it
	n     int32  // ports in small, or -1 once the sketch holds them
	small [dstPortsExact]uint32
	sk    *hyperloglog.Sketch // allocated the first time a VM needs it, then reused
}

// dstPorts counts, at window close, the distinct (protocol, destination
// port) of every source VM over all the window's distinct flows (each
// flow's port is inserted once): exactly up to dstPortsExact, then in a
// HyperLogLog. The sets are reset and reused, so a steady state allocates
// only the result.
type dstPorts struct {
	sets    [4][]portSet // by decoder.Source & 3, then VMID
	touched []VMPorts
	seq     uint64
	bytes   atomic.Int64 // memory of the sketches allocated so far
}

func (d *dstPorts) count(base *shard) []VMPorts {
	d.seq++
	d.touched = d.touched[:0]
	for i := range base.flowList {
		fe := &base.flowList[i]
		if fe.port == 0 {
			continue
		}
		k := &base.slots[fe.slot].key
		vm := k.Src.VM
		if vm == 0 || vm == OverflowVM {
			continue
		}
		src := k.Source & 3
		if int(vm) >= len(d.sets[src]) {
			d.sets[src] = append(d.sets[src], make([]portSet, int(vm)+1+int(vm)/4-len(d.sets[src]))...)
		}
		ps := &d.sets[src][vm]
		if ps.seq != d.seq {
			ps.seq, ps.n = d.seq, 0
			d.touched = append(d.touched, VMPorts{VM: vm, Source: k.Source})
		}
		d.add(ps, fe.port)
	}
	if len(d.touched) == 0 {
		return nil
	}
	out := make([]VMPorts, len(d.touched))
	for i, t := range d.touched {
		ps := &d.sets[t.Source&3][t.VM]
		if ps.n >= 0 {
			t.Ports = uint32(ps.n)
		} else {
			t.Ports = uint32(ps.sk.Estimate())
		}
		out[i] = t
	}
	slices.SortFunc(out, func(a, b VMPorts) int {
		if a.VM != b.VM {
			return int(a.VM) - int(b.VM)
		}
		return int(a.Source) - int(b.Source)
	})
	return out
}

func (d *dstPorts) add(ps *portSet, port uint32) {
	if ps.n >= 0 {
		for _, p := range ps.small[:ps.n] {
			if p == port {
				return
			}
		}
		if ps.n < dstPortsExact {
			ps.small[ps.n] = port
			ps.n++
			return
		}
		// More than dstPortsExact: move to the sketch.
		if ps.sk == nil {
			ps.sk, _ = hyperloglog.NewSketch(dstPortsPrecision, false)
			d.bytes.Add(1<<dstPortsPrecision + 64)
		} else {
			ps.sk.Reset()
		}
		for _, p := range ps.small {
			ps.sk.InsertHash(hashmix.Mix64(uint64(p)))
		}
		ps.n = -1
	}
	ps.sk.InsertHash(hashmix.Mix64(uint64(port)))
}
