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
}

// ByMAC finds the VM interface owning mac.
func (x *Index) ByMAC(mac [6]byte) (Port, bool) {
	p, ok := x.byMAC[mac]
	return p, ok
}

// ByIP finds the VM interface owning ip in the given VNI (0 = no overlay).
// An address in a VNI with no match falls back to VNI 0.
func (x *Index) ByIP(vni uint32, ip netip.Addr) (Port, bool) {
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
