package enrich

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Merging sources into an Index (off the hot path). The merge order,
// per-field precedence and conflict rules are documented in doc.go; keep
// them in step with build, compareClaims and fillFrom.

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
	// learned are the addresses learned from traffic, by MAC.
	learned map[[6]byte][]learnedAddr
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
		byIP:         map[ipKey]Port{},
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

	// Lookups, with conflict detection (precedence: doc.go).
	resolve := func(kind, key string, cl []claim) (claim, Conflict) {
		best := 0
		for i := 1; i < len(cl); i++ {
			if c, _ := compareClaims(&cl[i], &cl[best]); c < 0 {
				best = i
			}
		}
		second := -1
		names := make([]string, 0, len(cl))
		seen := map[*VM]bool{}
		for i := range cl {
			if !seen[cl[i].e.vm] {
				seen[cl[i].e.vm] = true
				names = append(names, vmLabel(cl[i].e.vm))
			}
			if cl[i].e.vm == cl[best].e.vm {
				continue
			}
			if second < 0 {
				second = i
			} else if c, _ := compareClaims(&cl[i], &cl[second]); c < 0 {
				second = i
			}
		}
		sort.Strings(names)
		conf := Conflict{Kind: kind, Key: key, VMs: names, Chose: vmLabel(cl[best].e.vm)}
		if second >= 0 {
			_, why := compareClaims(&cl[best], &cl[second])
			conf.Reason = explain(&cl[best], &cl[second], why, in.merge)
		}
		return cl[best], conf
	}

	// MACs and taps.
	// MACs and IPv4 addresses are keyed by packed uint64s (the runtime's
	// fast map path), as in the lookup maps.
	macFirst := make(map[uint64]claim, len(entries))
	macConf := map[uint64][]claim{}
	tapFirst := map[hostTap]claim{}
	tapConf := map[hostTap][]claim{}
	for _, e := range entries {
		vm := e.vm
		for i := range vm.Interfaces {
			it := &vm.Interfaces[i]
			x.ifaces++
			c := claim{e: e, iface: it}
			if it.MAC != ([6]byte{}) {
				addClaim(macFirst, macConf, macKey(it.MAC), c)
			}
			if it.Tap != "" && vm.Host != "" {
				addClaim(tapFirst, tapConf, hostTap{vm.Host, it.Tap}, c)
			}
		}
	}
	for k, cl := range macConf {
		w, c := resolve("mac", FormatMAC(cl[0].iface.MAC), cl)
		macFirst[k] = w
		x.conflicts = append(x.conflicts, c)
	}
	for k, cl := range tapConf {
		w, c := resolve("tap", k.Host+"/"+k.Tap, cl)
		tapFirst[k] = w
		x.conflicts = append(x.conflicts, c)
	}

	// Learned addresses join the interface that owns their MAC in this
	// index, when it still belongs to the VM they were learned for and
	// does not have the address from another source.
	for mac, las := range in.learned {
		c, ok := macFirst[macKey(mac)]
		if !ok {
			continue
		}
		it := c.iface
		for _, la := range las {
			if la.vm == c.e.vm.ID && !hasIP(it.Addrs, la.ip) {
				it.Addrs = append(it.Addrs, Addr{IP: la.ip, Source: AddrLearned, LastSeen: la.last})
			}
		}
	}

	// IPs per VNI.
	ip4First := make(map[uint64]claim, len(entries))
	ip4Conf := map[uint64][]claim{}
	ip6First := map[ipKey]claim{}
	ip6Conf := map[ipKey][]claim{}
	for _, e := range entries {
		vm := e.vm
		for i := range vm.Interfaces {
			it := &vm.Interfaces[i]
			for j := range it.Addrs {
				a := &it.Addrs[j]
				if !a.IP.IsValid() {
					continue
				}
				c := claim{e: e, iface: it, addr: a}
				if ip := a.IP.Unmap(); ip.Is4() {
					addClaim(ip4First, ip4Conf, ip4Key(it.VNI, ip), c)
				} else {
					addClaim(ip6First, ip6Conf, ipKey{VNI: it.VNI, IP: ip}, c)
				}
			}
		}
	}
	for k, cl := range ip4Conf {
		w, c := resolve("ip", ipKeyString(ipKey{VNI: uint32(k >> 32), IP: netip.AddrFrom4([4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)})}), cl)
		ip4First[k] = w
		x.conflicts = append(x.conflicts, c)
	}
	for k, cl := range ip6Conf {
		w, c := resolve("ip", ipKeyString(k), cl)
		ip6First[k] = w
		x.conflicts = append(x.conflicts, c)
	}

	// Fast lookup maps.
	x.byMAC = nil
	x.macs = make(map[uint64]Port, len(macFirst))
	for k, c := range macFirst {
		x.macs[k] = Port{VM: c.e.vm, Iface: c.iface}
	}
	x.ip4 = make(map[uint64]Port, len(ip4First))
	for k, c := range ip4First {
		x.ip4[k] = Port{VM: c.e.vm, Iface: c.iface}
	}
	for k, c := range ip6First {
		x.byIP[k] = Port{VM: c.e.vm, Iface: c.iface}
	}
	for k, c := range tapFirst {
		x.byTap[k] = Port{VM: c.e.vm, Iface: c.iface}
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
		src  string
	}
	expFirst := map[ExporterID]expClaim{} // Domain with a flag bit for "any"
	expConf := map[ExporterID][]string{}
	expWhy := map[ExporterID]string{}
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
							if c.src != snaps[si].Source {
								expWhy[k] = fmt.Sprintf("source %s lists it for %s and ranks before source %s, which lists it for %s (enrich.merge %s)", c.src, c.host, snaps[si].Source, h.Name, in.merge)
							} else {
								expWhy[k] = fmt.Sprintf("source %s lists it for %s and %s; the first listed wins", c.src, c.host, h.Name)
							}
						}
						expConf[k] = append(expConf[k], h.Name)
					}
					return false
				}
				expFirst[k] = expClaim{host: h.Name, rank: rank, src: snaps[si].Source}
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
		x.conflicts = append(x.conflicts, Conflict{Kind: "exporter", Key: key, VMs: hs, Chose: hs[0], Reason: expWhy[k]})
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

// claim is one VM interface claiming a MAC, tap or (with addr) an IP.
type claim struct {
	e     entry
	iface *Interface
	addr  *Addr // IP claims only
}

func (c *claim) learned() bool { return c.addr != nil && c.addr.Source == AddrLearned }

// addrClass orders address sources: static, lease, agent (and anything
// else a source reports) 0; arp 1; learned 2.
func (c *claim) addrClass() int {
	if c.addr == nil {
		return 0
	}
	switch c.addr.Source {
	case AddrLearned:
		return 2
	case AddrARP:
		return 1
	}
	return 0
}

// addClaim records c for k: the first claim holds k; another claim of the
// same VM replaces it when better (a lease on one NIC over a learned copy
// on another); a claim of another VM makes a conflict.
func addClaim[K comparable](first map[K]claim, conf map[K][]claim, k K, c claim) {
	old, ok := first[k]
	if !ok {
		first[k] = c
		return
	}
	if old.e.vm == c.e.vm {
		if cmp, _ := compareClaims(&c, &old); cmp < 0 {
			first[k] = c
		}
		if cl, ok := conf[k]; ok {
			conf[k] = append(cl, c)
		}
		return
	}
	cl := conf[k]
	if len(cl) == 0 {
		cl = append(cl, old)
	}
	conf[k] = append(cl, c)
}

// why names the rule that decided between two claims.
type why int

const (
	whyLearned why = iota // an inventory address over a learned one
	whyStale              // a VM whose source is reachable
	whyARP                // static/lease/agent over arp
	whyRecent             // of two learned addresses, the last seen
	whyRunning            // a running VM
	whyRank               // the better-ranked source (enrich.merge)
	whyName               // the lower VM name
	whyUUID               // the lower UUID
	whyTie
)

// compareClaims returns < 0 when a wins over b, > 0 when b wins, and the
// rule that decided (precedence: doc.go).
func compareClaims(a, b *claim) (int, why) {
	pick := func(aWins bool, w why) (int, why) {
		if aWins {
			return -1, w
		}
		return 1, w
	}
	la, lb := a.learned(), b.learned()
	if la != lb {
		return pick(!la, whyLearned)
	}
	va, vb := a.e.vm, b.e.vm
	if va.Stale != vb.Stale {
		return pick(!va.Stale, whyStale)
	}
	if ca, cb := a.addrClass(), b.addrClass(); ca != cb {
		return pick(ca < cb, whyARP)
	}
	if la && lb && !a.addr.LastSeen.Equal(b.addr.LastSeen) {
		return pick(a.addr.LastSeen.After(b.addr.LastSeen), whyRecent)
	}
	ra, rb := va.State == "running", vb.State == "running"
	if ra != rb {
		return pick(ra, whyRunning)
	}
	if a.e.rank != b.e.rank {
		return pick(a.e.rank < b.e.rank, whyRank)
	}
	if va.Name != vb.Name {
		return pick(va.Name < vb.Name, whyName)
	}
	if va.UUID != vb.UUID {
		return pick(va.UUID < vb.UUID, whyUUID)
	}
	return 0, whyTie
}

// explain says in words why w won over l.
func explain(w, l *claim, rule why, merge string) string {
	W, L := vmLabel(w.e.vm), vmLabel(l.e.vm)
	switch rule {
	case whyLearned:
		return fmt.Sprintf("%s has it as a %s address; %s only learned it from traffic, and a learned address never overrides a static, lease, agent or arp address (it stays listed on %s's interface but is not used for IP lookups)",
			W, w.addr.Source, L, L)
	case whyStale:
		return fmt.Sprintf("%s is stale (its source %s is unreachable); %s is not", L, l.e.vm.Source, W)
	case whyARP:
		return fmt.Sprintf("%s has it as a %s address, %s only from the hypervisor's ARP table", W, w.addr.Source, L)
	case whyRecent:
		return fmt.Sprintf("both learned it from traffic; %s was seen with it last (%s, %s at %s)",
			W, w.addr.LastSeen.UTC().Format(time.RFC3339), L, l.addr.LastSeen.UTC().Format(time.RFC3339))
	case whyRunning:
		st := l.e.vm.State
		if st == "" {
			st = "in an unknown state"
		}
		return fmt.Sprintf("%s is running, %s is %s", W, L, st)
	case whyRank:
		return fmt.Sprintf("%s comes from source %s, which ranks before %s's source %s (enrich.merge %s)", W, w.e.vm.Source, L, l.e.vm.Source, merge)
	case whyName:
		from := w.e.vm.Source
		if l.e.vm.Source != from {
			from += " and " + l.e.vm.Source
		}
		return fmt.Sprintf("%s and %s have equal standing (both %s, from %s); the lower name wins", W, L, stateOr(w.e.vm.State), from)
	case whyUUID:
		return fmt.Sprintf("%s and %s have equal standing and name; the lower UUID wins", W, L)
	}
	return fmt.Sprintf("%s and %s are indistinguishable; %s was listed first", W, L, W)
}

func stateOr(s string) string {
	if s == "" {
		return "in an unknown state"
	}
	return s
}

func hasIP(addrs []Addr, ip netip.Addr) bool {
	for i := range addrs {
		if addrs[i].IP == ip {
			return true
		}
	}
	return false
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
