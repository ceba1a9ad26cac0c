package enrich

import "net/netip"

// Index is an immutable snapshot of the inventory. Lookups take no lock and
// do not allocate; a new Index is built off the hot path and swapped in
// atomically by the Enricher.
type Index struct {
	vms       []*VM // sorted by name
	byID      map[VMID]*VM
	byMAC     map[[6]byte]Port
	byIP      map[ipKey]Port
	hostOfExp map[netip.Addr]string
	hosts     []Host
	conflicts []Conflict

	// Added by the enrich implementation. byMAC and byIP are the build-time
	// maps; lookups use macs (all MACs), ip4 (IPv4) and byIP (IPv6).
	macs         map[uint64]Port
	ip4          map[uint64]Port
	hostOfObs    map[ExporterID]string // exporter narrowed to a domain
	hostObserved map[string]bool       // hosts with at least one exporter identity
	byTap        map[hostTap]Port      // (host, tap/port name) -> interface
	ifaces       int                   // number of interfaces
}

// hostTap keys tap device lookups: tap names are unique per host only.
type hostTap struct {
	Host, Tap string
}

// ByMAC finds the VM interface owning mac.
func (x *Index) ByMAC(mac [6]byte) (Port, bool) {
	p, ok := x.macs[macKey(mac)]
	return p, ok
}

// macKey packs a MAC into a uint64 so that lookups use the runtime's fast
// 64-bit map path instead of hashing a byte array.
func macKey(m [6]byte) uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// ip4Key packs (VNI, IPv4 address) into a uint64.
func ip4Key(vni uint32, ip netip.Addr) uint64 {
	b := ip.As4()
	return uint64(vni)<<32 | uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// ByIP finds the VM interface owning ip in the given VNI (0 = no overlay).
// An address in a VNI with no match falls back to VNI 0.
func (x *Index) ByIP(vni uint32, ip netip.Addr) (Port, bool) {
	if ip.Is4() {
		p, ok := x.ip4[ip4Key(vni, ip)]
		if !ok && vni != 0 {
			p, ok = x.ip4[ip4Key(0, ip)]
		}
		return p, ok
	}
	p, ok := x.byIP[ipKey{vni, ip}]
	if !ok && vni != 0 {
		p, ok = x.byIP[ipKey{0, ip}]
	}
	return p, ok
}

// HostOfExporter maps an exporter identity (sFlow agent or IPFIX exporter
// address) to the hypervisor it speaks for.
func (x *Index) HostOfExporter(a netip.Addr) (string, bool) {
	h, ok := x.hostOfExp[a]
	return h, ok
}

// VM returns the VM with this id, also VMs no longer in the inventory are
// not returned (use Enricher.Describe for historical ids).
func (x *Index) VM(id VMID) *VM { return x.byID[id] }

// VMs lists all VMs, sorted by name.
func (x *Index) VMs() []*VM { return x.vms }

// Hosts lists the known hypervisors.
func (x *Index) Hosts() []Host { return x.hosts }

// Conflicts lists MAC/IP conflicts found while building the index.
func (x *Index) Conflicts() []Conflict { return x.conflicts }

// HostOfObservation maps an exporter identity narrowed to an observation
// domain (IPFIX observation domain, NetFlow v9 source id, sFlow sub-agent)
// to its host. A (address, domain) entry wins over a plain address entry.
func (x *Index) HostOfObservation(a netip.Addr, domain uint32) (string, bool) {
	if len(x.hostOfObs) != 0 {
		if h, ok := x.hostOfObs[ExporterID{Addr: a, Domain: domain}]; ok {
			return h, true
		}
	}
	h, ok := x.hostOfExp[a]
	return h, ok
}

// HostObserved reports whether the inventory lists at least one exporter
// identity for the host, i.e. whether traffic entering that host's bridge
// is expected to be sampled by an exporter vmflow can recognise.
func (x *Index) HostObserved(host string) bool { return x.hostObserved[host] }

// ByTap finds the VM interface whose host-side device (tap, vnetN, OVS
// port name) is tap on the given host.
func (x *Index) ByTap(host, tap string) (Port, bool) {
	p, ok := x.byTap[hostTap{host, tap}]
	return p, ok
}

// Len returns the number of VMs and of interfaces in the index.
func (x *Index) Len() (vms, interfaces int) { return len(x.vms), x.ifaces }
