package enrich

import "net/netip"

// Restrict is a copy of the index holding only the VMs keep selects (for a
// tenant's view): their lookups, the hosts they run on without exporter
// identities, and the conflicts that involve them, where every other VM
// is named other. The receiver is not changed.
func (x *Index) Restrict(keep func(*VM) bool, other string) *Index {
	if x == nil {
		return nil
	}
	kept := map[*VM]bool{}
	names := map[string]bool{}
	out := &Index{
		byID: map[VMID]*VM{}, byMAC: map[[6]byte]Port{}, byIP: map[ipKey]Port{},
		hostOfExp: map[netip.Addr]string{}, macs: map[uint64]Port{}, ip4: map[uint64]Port{},
		hostOfObs: map[ExporterID]string{}, hostObserved: map[string]bool{}, byTap: map[hostTap]Port{},
	}
	hosts := map[string]bool{}
	for _, vm := range x.vms {
		if vm != nil && keep(vm) {
			kept[vm] = true
			names[vm.Name] = true
			out.vms = append(out.vms, vm)
			out.ifaces += len(vm.Interfaces)
			if vm.Host != "" {
				hosts[vm.Host] = true
			}
		}
	}
	for id, vm := range x.byID {
		if kept[vm] {
			out.byID[id] = vm
		}
	}
	keepPorts(out.byMAC, x.byMAC, kept)
	keepPorts(out.byIP, x.byIP, kept)
	keepPorts(out.macs, x.macs, kept)
	keepPorts(out.ip4, x.ip4, kept)
	keepPorts(out.byTap, x.byTap, kept)
	for _, h := range x.hosts {
		if hosts[h.Name] {
			out.hosts = append(out.hosts, Host{Name: h.Name, Exporters: nil})
		}
	}
	for _, c := range x.conflicts {
		if c.Kind == "exporter" {
			continue
		}
		involved := false
		for _, n := range c.VMs {
			involved = involved || names[n]
		}
		if !involved {
			continue
		}
		m := Conflict{Kind: c.Kind, Key: c.Key, Chose: c.Chose, Reason: c.Reason}
		for _, n := range c.VMs {
			if !names[n] {
				n = other
			}
			m.VMs = append(m.VMs, n)
		}
		if !names[m.Chose] {
			m.Chose = other
		}
		out.conflicts = append(out.conflicts, m)
	}
	return out
}

// keepPorts copies into dst the lookups of src that lead to a kept VM.
func keepPorts[K comparable](dst, src map[K]Port, kept map[*VM]bool) {
	for k, p := range src {
		if kept[p.VM] {
			dst[k] = p
		}
	}
}
