package enrich

import (
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Merging sources into an Index (off the hot path).
//
// Source order. Snapshots are ranked by class, then by source name:
// with Merge "libvirt-first" every source other than "static" ranks before
// the static inventory; with "static-first" the static inventory ranks first.
//
// VM identity. A VM's identity is its UUID (case-insensitive) or, when it
// has none, its name; a VM without a UUID whose name matches a VM with a
// UUID in any source joins that identity. Every identity gets a VMID from a
// registry that never reuses ids (a VM first known by name only keeps its id
// when a UUID shows up for it later).
//
// One VM per identity. When several snapshots describe the same identity,
// the winner is, in order: the best-ranked class (see Merge), a non-stale
// snapshot, state "running", then the source order. The winner's fields win;
// its empty host, tenant, tenant_name and state and missing labels are filled
// from the other descriptions in order, and interface addresses are the
// union per MAC. (Two libvirt daemons reporting one VM during a live
// migration: the one where it runs wins.)
//
// Migration. When a VM's host differs from the host it had in the previous
// index (or last time it was seen), PrevHost and MovedAt record the move.
//
// Conflicts. When two VMs claim the same MAC, the same IP in one VNI, or the
// same tap on one host, one wins deterministically and the conflict is listed
// in Index.Conflicts (and counted in vmflow_enrich_conflicts{kind}). The
// winner is: a non-stale VM; for IPs an address not merely learned from
// traffic; a VM in state "running"; the better-ranked source; then the lower
// VM name, then the lower UUID. An exporter identity listed for two hosts
// goes to the better-ranked source (then the lower host name).

// registry assigns VMIDs; ids are never reused.
type registry struct {
	next   VMID
	byUUID map[string]VMID
	byName map[string]VMID
	uuidOf map[VMID]string
}

func newRegistry() *registry {
	return &registry{byUUID: map[string]VMID{}, byName: map[string]VMID{}, uuidOf: map[VMID]string{}}
}

func (r *registry) id(uuid, name string) VMID {
	if uuid != "" {
		if id, ok := r.byUUID[uuid]; ok {
			r.byName[name] = id
			return id
		}
		if id, ok := r.byName[name]; ok && r.uuidOf[id] == "" {
			r.byUUID[uuid] = id
			r.uuidOf[id] = uuid
			return id
		}
		r.next++
		id := r.next
		r.byUUID[uuid] = id
		r.uuidOf[id] = uuid
		r.byName[name] = id
		return id
	}
	if id, ok := r.byName[name]; ok {
		return id
	}
	r.next++
	r.byName[name] = r.next
	return r.next
}

type candidate struct {
	vm    *VM
	rank  int // source order, lower is better
	class int
	stale bool
	src   string
}

type entry struct {
	vm   *VM
	rank int
}

// mergeInput is what build needs besides the snapshots.
type mergeInput struct {
	merge string
	reg   *registry
	// last returns the last known VM for an id (for migration tracking).
	last func(VMID) *VM
	now  time.Time
}

func sourceClass(merge, source string) int {
	static := source == StaticSourceName || strings.HasPrefix(source, StaticSourceName+":")
	if merge == MergeStaticFirst {
		if static {
			return 0
		}
		return 1
	}
	if static {
		return 1
	}
	return 0
}

// build merges snapshots into a new Index.
func build(snaps []Snapshot, in mergeInput) *Index {
	order := make([]int, len(snaps))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		sa, sb := &snaps[order[a]], &snaps[order[b]]
		ca, cb := sourceClass(in.merge, sa.Source), sourceClass(in.merge, sb.Source)
		if ca != cb {
			return ca < cb
		}
		return sa.Source < sb.Source
	})

	// Names that have a UUID somewhere: name-only VMs join that identity.
	nameUUID := map[string]string{}
	n := 0
	for _, si := range order {
		for i := range snaps[si].VMs {
			v := &snaps[si].VMs[i]
			n++
			if v.UUID != "" {
				if _, ok := nameUUID[v.Name]; !ok {
					nameUUID[v.Name] = strings.ToLower(v.UUID)
				}
			}
		}
	}

	groups := make(map[string][]candidate, n)
	idents := make([]string, 0, n)
	for rank, si := range order {
		s := &snaps[si]
		class := sourceClass(in.merge, s.Source)
		for i := range s.VMs {
			v := &s.VMs[i]
			if v.Name == "" && v.UUID == "" {
				continue
			}
			uuid := strings.ToLower(v.UUID)
			if uuid == "" {
				uuid = nameUUID[v.Name]
			}
			key := "n:" + v.Name
			if uuid != "" {
				key = "u:" + uuid
			}
			if _, ok := groups[key]; !ok {
				idents = append(idents, key)
			}
			groups[key] = append(groups[key], candidate{vm: v, rank: rank, class: class, stale: s.Stale || v.Stale, src: s.Source})
		}
	}

	x := &Index{
		byID:         make(map[VMID]*VM, len(idents)),
		byMAC:        make(map[[6]byte]Port, len(idents)),
		byIP:         make(map[ipKey]Port, len(idents)),
		byTap:        make(map[hostTap]Port),
		hostOfExp:    map[netip.Addr]string{},
		hostOfObs:    map[ExporterID]string{},
		hostObserved: map[string]bool{},
	}
	entries := make([]entry, 0, len(idents))
	vmStore := make([]VM, len(idents)) // one allocation for all VMs
	for gi, key := range idents {
		cs := groups[key]
		sort.SliceStable(cs, func(a, b int) bool { return betterCandidate(&cs[a], &cs[b]) })
		w := cs[0]
		vm := &vmStore[gi]
		*vm = *w.vm
		vm.Stale = w.stale
		if vm.Source == "" {
			vm.Source = w.src
		}
		if strings.HasPrefix(key, "u:") {
			vm.UUID = key[2:]
		}
		vm.Interfaces = cloneIfaces(w.vm.Interfaces)
		vm.Labels = cloneLabels(w.vm.Labels)
		for _, c := range cs[1:] {
			fillFrom(vm, c.vm)
		}
		vm.ID = in.reg.id(vm.UUID, vm.Name)
		vm.PrevHost, vm.MovedAt = "", time.Time{}
		if in.last != nil {
			if prev := in.last(vm.ID); prev != nil {
				if prev.Host != "" && vm.Host != "" && prev.Host != vm.Host {
					vm.PrevHost, vm.MovedAt = prev.Host, in.now
				} else if prev.Host == vm.Host {
					vm.PrevHost, vm.MovedAt = prev.PrevHost, prev.MovedAt
				}
			}
		}
		x.byID[vm.ID] = vm
		entries = append(entries, entry{vm: vm, rank: w.rank})
	}

	x.vms = make([]*VM, len(entries))
	for i := range entries {
		x.vms[i] = entries[i].vm
	}
	sort.Slice(x.vms, func(a, b int) bool {
		if x.vms[a].Name != x.vms[b].Name {
			return x.vms[a].Name < x.vms[b].Name
		}
		return x.vms[a].UUID < x.vms[b].UUID
	})

	// Lookups, with conflict detection.
	type claim struct {
		e       entry
		iface   *Interface
		learned bool
	}
	macClaims := map[[6]byte][]claim{}
	ipClaims := map[ipKey][]claim{}
	tapClaims := map[hostTap][]claim{}
	better := func(a, b claim) bool {
		if a.e.vm.Stale != b.e.vm.Stale {
			return !a.e.vm.Stale
		}
		if a.learned != b.learned {
			return !a.learned
		}
		ra, rb := a.e.vm.State == "running", b.e.vm.State == "running"
		if ra != rb {
			return ra
		}
		if a.e.rank != b.e.rank {
			return a.e.rank < b.e.rank
		}
		if a.e.vm.Name != b.e.vm.Name {
			return a.e.vm.Name < b.e.vm.Name
		}
		return a.e.vm.UUID < b.e.vm.UUID
	}
	rankOf := make(map[*VM]int, len(entries))
	for _, e := range entries {
		rankOf[e.vm] = e.rank
	}
	for _, e := range entries {
		vm := e.vm
		for i := range vm.Interfaces {
			it := &vm.Interfaces[i]
			x.ifaces++
			port := Port{VM: vm, Iface: it}
			c := claim{e: e, iface: it}
			if it.MAC != ([6]byte{}) {
				if old, ok := x.byMAC[it.MAC]; !ok {
					x.byMAC[it.MAC] = port
				} else if old.VM != vm {
					cl := macClaims[it.MAC]
					if len(cl) == 0 {
						cl = append(cl, claim{e: entry{vm: old.VM, rank: rankOf[old.VM]}, iface: old.Iface})
					}
					cl = append(cl, c)
					macClaims[it.MAC] = cl
				}
			}
			for _, a := range it.Addrs {
				if !a.IP.IsValid() {
					continue
				}
				k := ipKey{VNI: it.VNI, IP: a.IP.Unmap()}
				ca := c
				ca.learned = a.Source == AddrLearned
				if old, ok := x.byIP[k]; !ok {
					x.byIP[k] = port
					if ca.learned {
						ipClaims[k] = append(ipClaims[k][:0], ca) // remember learned-ness of the holder
					}
				} else if old.VM != vm {
					cl := ipClaims[k]
					if len(cl) == 0 {
						cl = append(cl, claim{e: entry{vm: old.VM, rank: rankOf[old.VM]}, iface: old.Iface})
					}
					cl = append(cl, ca)
					ipClaims[k] = cl
				}
			}
			if it.Tap != "" && vm.Host != "" {
				k := hostTap{vm.Host, it.Tap}
				if old, ok := x.byTap[k]; !ok {
					x.byTap[k] = port
				} else if old.VM != vm {
					cl := tapClaims[k]
					if len(cl) == 0 {
						cl = append(cl, claim{e: entry{vm: old.VM, rank: rankOf[old.VM]}, iface: old.Iface})
					}
					cl = append(cl, c)
					tapClaims[k] = cl
				}
			}
		}
	}
	resolve := func(kind, key string, cl []claim) (Port, Conflict) {
		best := cl[0]
		names := make([]string, 0, len(cl))
		seen := map[*VM]bool{}
		for _, c := range cl {
			if better(c, best) {
				best = c
			}
			if !seen[c.e.vm] {
				seen[c.e.vm] = true
				names = append(names, vmLabel(c.e.vm))
			}
		}
		sort.Strings(names)
		return Port{VM: best.e.vm, Iface: best.iface}, Conflict{Kind: kind, Key: key, VMs: names, Chose: vmLabel(best.e.vm)}
	}
	for k, cl := range macClaims {
		p, c := resolve("mac", FormatMAC(k), cl)
		x.byMAC[k] = p
		x.conflicts = append(x.conflicts, c)
	}
	for k, cl := range ipClaims {
		if len(cl) < 2 {
			continue // only the learned-ness marker of a single holder
		}
		p, c := resolve("ip", ipKeyString(k), cl)
		x.byIP[k] = p
		x.conflicts = append(x.conflicts, c)
	}
	for k, cl := range tapClaims {
		p, c := resolve("tap", k.Host+"/"+k.Tap, cl)
		x.byTap[k] = p
		x.conflicts = append(x.conflicts, c)
	}

	// Fast lookup maps.
	x.macs = make(map[uint64]Port, len(x.byMAC))
	for k, p := range x.byMAC {
		x.macs[macKey(k)] = p
	}
	x.byMAC = nil
	x.ip4 = make(map[uint64]Port, len(x.byIP))
	for k, p := range x.byIP {
		if k.IP.Is4() {
			x.ip4[ip4Key(k.VNI, k.IP)] = p
			delete(x.byIP, k)
		}
	}

	// Hosts and exporter identities.
	hosts := map[string]*Host{}
	var hostOrder []string
	addHost := func(name string) *Host {
		h, ok := hosts[name]
		if !ok {
			h = &Host{Name: name}
			hosts[name] = h
			hostOrder = append(hostOrder, name)
		}
		return h
	}
	type expClaim struct {
		host string
		rank int
	}
	expFirst := map[ExporterID]expClaim{} // Domain with a flag bit for "any"
	expConf := map[ExporterID][]string{}
	for rank, si := range order {
		for _, h := range snaps[si].Hosts {
			if h.Name == "" {
				continue
			}
			hh := addHost(h.Name)
			claimExp := func(id ExporterID, anyDomain bool) bool {
				k := id
				if anyDomain {
					k.Domain = anyDomainKey
				}
				if c, ok := expFirst[k]; ok {
					if c.host != h.Name {
						if len(expConf[k]) == 0 {
							expConf[k] = []string{c.host}
						}
						expConf[k] = append(expConf[k], h.Name)
					}
					return false
				}
				expFirst[k] = expClaim{host: h.Name, rank: rank}
				return true
			}
			for _, a := range h.Exporters {
				a = a.Unmap()
				if claimExp(ExporterID{Addr: a}, true) {
					hh.Exporters = append(hh.Exporters, a)
					x.hostOfExp[a] = h.Name
				}
			}
			for _, d := range h.ExporterDomains {
				d.Addr = d.Addr.Unmap()
				if claimExp(d, false) {
					hh.ExporterDomains = append(hh.ExporterDomains, d)
					x.hostOfObs[d] = h.Name
				}
			}
		}
	}
	for k, hs := range expConf {
		key := k.Addr.String()
		if k.Domain != anyDomainKey {
			key += "/" + uitoa(k.Domain)
		}
		sort.Strings(hs[1:])
		x.conflicts = append(x.conflicts, Conflict{Kind: "exporter", Key: key, VMs: hs, Chose: hs[0]})
	}
	for _, vm := range x.vms {
		if vm.Host != "" {
			addHost(vm.Host)
		}
	}
	sort.Strings(hostOrder)
	x.hosts = make([]Host, 0, len(hostOrder))
	for _, name := range hostOrder {
		h := hosts[name]
		x.hosts = append(x.hosts, *h)
		if len(h.Exporters)+len(h.ExporterDomains) > 0 {
			x.hostObserved[name] = true
		}
	}
	sort.Slice(x.conflicts, func(a, b int) bool {
		ca, cb := x.conflicts[a], x.conflicts[b]
		if ca.Kind != cb.Kind {
			return ca.Kind < cb.Kind
		}
		return ca.Key < cb.Key
	})
	return x
}

// anyDomainKey marks an address-only exporter claim in expFirst (real
// domains are compared with the address-only claims separately).
const anyDomainKey = ^uint32(0)

func betterCandidate(a, b *candidate) bool {
	if a.class != b.class {
		return a.class < b.class
	}
	if a.stale != b.stale {
		return !a.stale
	}
	ra, rb := a.vm.State == "running", b.vm.State == "running"
	if ra != rb {
		return ra
	}
	return a.rank < b.rank
}

func fillFrom(vm *VM, o *VM) {
	if vm.Host == "" {
		vm.Host = o.Host
	}
	if vm.Tenant == "" {
		vm.Tenant = o.Tenant
	}
	if vm.TenantName == "" {
		vm.TenantName = o.TenantName
	}
	if vm.State == "" {
		vm.State = o.State
	}
	if vm.VCPUs == 0 {
		vm.VCPUs = o.VCPUs
	}
	if vm.MemoryKiB == 0 {
		vm.MemoryKiB = o.MemoryKiB
	}
	for k, v := range o.Labels {
		if _, ok := vm.Labels[k]; !ok {
			if vm.Labels == nil {
				vm.Labels = map[string]string{}
			}
			vm.Labels[k] = v
		}
	}
	if len(vm.Interfaces) == 0 {
		vm.Interfaces = cloneIfaces(o.Interfaces)
		return
	}
	for i := range vm.Interfaces {
		it := &vm.Interfaces[i]
		for j := range o.Interfaces {
			ot := &o.Interfaces[j]
			if ot.MAC != it.MAC {
				continue
			}
			for _, a := range ot.Addrs {
				dup := false
				for _, b := range it.Addrs {
					if b.IP == a.IP {
						dup = true
						break
					}
				}
				if !dup {
					it.Addrs = append(it.Addrs, a)
				}
			}
			if it.Tap == "" {
				it.Tap = ot.Tap
			}
			if it.Bridge == "" {
				it.Bridge = ot.Bridge
			}
		}
	}
}

func cloneIfaces(in []Interface) []Interface {
	out := make([]Interface, len(in))
	copy(out, in)
	for i := range out {
		out[i].Addrs = append([]Addr(nil), in[i].Addrs...)
		for j := range out[i].Addrs {
			out[i].Addrs[j].IP = out[i].Addrs[j].IP.Unmap()
		}
		if out[i].MACString == "" && out[i].MAC != ([6]byte{}) {
			out[i].MACString = FormatMAC(out[i].MAC)
		}
	}
	return out
}

func cloneLabels(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func vmLabel(vm *VM) string {
	if vm.UUID != "" {
		return vm.Name + " (" + vm.UUID + ")"
	}
	return vm.Name
}

func ipKeyString(k ipKey) string {
	if k.VNI == 0 {
		return k.IP.String()
	}
	return "vni " + uitoa(k.VNI) + " " + k.IP.String()
}

func uitoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}
