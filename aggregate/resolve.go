package aggregate

import (
	"fmt"
	"net/netip"

	"github.com/vmflow/vmflow/enrich"
)

// resolver turns endpoint keys into display endpoints. Its entries live
// across windows, by VMID in an array (no map lookup, no allocation per
// pair): an entry is rebuilt only when the enricher has published a new
// index since it was last checked (Describe again), and a VM's addresses
// as text are formatted once from the inventory (the interfaces' IPs and
// MACs), not per pair. Addresses that are no inventory fact (a non-VM
// endpoint, a VM sending from an address not in the inventory) are
// formatted once into a bounded map. One resolver per fill goroutine.
type resolver struct {
	enr  *enrich.Enricher
	idx  *enrich.Index // the index the entries were validated against (begin)
	gen  uint32        // advances when idx changes
	seq  uint32        // windows begun
	vms  []*vmEntry    // by VMID
	ips  map[netip.Addr]string
	macs map[[6]byte]string
}

// vmEntry is one VM's endpoint without IP and MAC, and its addresses as
// text.
type vmEntry struct {
	gen, seen uint32
	vm        *enrich.VM // what e was built from (VMs are immutable once published)
	unknown   bool       // e is the "vm#ID" of an id the inventory does not know
	e         Endpoint
	ips       []ipText
	macs      []macText
	// the last answers (pairs of one VM mostly share them)
	ip   netip.Addr
	ipS  string
	mac  [6]byte
	macS string
}

type ipText struct {
	ip netip.Addr
	s  string
}

type macText struct {
	mac [6]byte
	s   string
}

// resolver bounds: the VMID array is direct up to maxArrayVMID (VMIDs are
// small counters); the text maps are cleared beyond maxAddrText entries;
// entries not used for pruneAfter windows are dropped.
const (
	maxArrayVMID = 1 << 24
	maxAddrText  = 1 << 18
	pruneAfter   = 360
)

func newResolver(enr *enrich.Enricher) *resolver {
	return &resolver{enr: enr, ips: map[netip.Addr]string{}, macs: map[[6]byte]string{}}
}

// begin starts a window: entries are revalidated if the index changed.
func (r *resolver) begin() {
	var idx *enrich.Index
	if r.enr != nil {
		idx = r.enr.Index()
	}
	if idx != r.idx || r.gen == 0 {
		r.idx = idx
		r.gen++
	}
	r.seq++
	if len(r.ips) > maxAddrText {
		clear(r.ips)
	}
	if len(r.macs) > maxAddrText {
		clear(r.macs)
	}
	if r.seq%pruneAfter == 0 {
		for i, e := range r.vms {
			if e != nil && r.seq-e.seen > pruneAfter {
				r.vms[i] = nil
			}
		}
	}
}

func (r *resolver) ipString(ip netip.Addr) string {
	s, ok := r.ips[ip]
	if !ok {
		s = ip.String()
		r.ips[ip] = s
	}
	return s
}

func (r *resolver) macString(mac [6]byte) string {
	s, ok := r.macs[mac]
	if !ok {
		s = enrich.FormatMAC(mac)
		r.macs[mac] = s
	}
	return s
}

func (r *resolver) endpoint(k EndpointKey, lastIP netip.Addr, lastMAC [6]byte) Endpoint {
	var e Endpoint
	switch {
	case k.VM == OverflowVM:
		return Endpoint{VM: "(overflow)"}
	case k.VM != 0:
		c := r.vm(k.VM)
		e = c.e
		if lastIP.IsValid() {
			if lastIP != c.ip || c.ipS == "" {
				c.ip, c.ipS = lastIP, c.ipText(r, lastIP)
			}
			e.IP = c.ipS
		}
		if lastMAC != ([6]byte{}) {
			if lastMAC != c.mac || c.macS == "" {
				c.mac, c.macS = lastMAC, c.macText(r, lastMAC)
			}
			e.MAC = c.macS
		}
		return e
	case k.IP.IsValid():
		e.IP = r.ipString(k.IP)
	}
	if lastMAC != ([6]byte{}) {
		e.MAC = r.macString(lastMAC)
	}
	return e
}

func (c *vmEntry) ipText(r *resolver, ip netip.Addr) string {
	for i := range c.ips {
		if c.ips[i].ip == ip {
			return c.ips[i].s
		}
	}
	return r.ipString(ip)
}

func (c *vmEntry) macText(r *resolver, mac [6]byte) string {
	for i := range c.macs {
		if c.macs[i].mac == mac {
			return c.macs[i].s
		}
	}
	return r.macString(mac)
}

// vm returns the VM's entry, built or revalidated against the current
// index.
func (r *resolver) vm(id enrich.VMID) *vmEntry {
	var c *vmEntry
	if id < maxArrayVMID {
		if int(id) >= len(r.vms) {
			r.vms = append(r.vms, make([]*vmEntry, int(id)+1+int(id)/4-len(r.vms))...)
		}
		c = r.vms[id]
		if c == nil {
			c = &vmEntry{}
			r.vms[id] = c
		}
	} else {
		c = &vmEntry{} // not cached: ids this large are not assigned
	}
	c.seen = r.seq
	if c.gen != r.gen {
		c.gen = r.gen
		r.build(c, id)
	}
	return c
}

// build fills an entry from the inventory, keeping the texts it already
// had for the same addresses.
func (r *resolver) build(c *vmEntry, id enrich.VMID) {
	var vm *enrich.VM
	if r.enr != nil {
		vm = r.enr.Describe(id)
	}
	if vm == nil {
		if !c.unknown {
			*c = vmEntry{gen: c.gen, seen: c.seen, unknown: true, e: Endpoint{VM: fmt.Sprintf("vm#%d", id)}}
		}
		return
	}
	if vm == c.vm {
		return
	}
	c.vm, c.unknown = vm, false
	c.ip, c.ipS, c.mac, c.macS = netip.Addr{}, "", [6]byte{}, ""
	c.e = Endpoint{VM: vm.Name, UUID: vm.UUID, Host: vm.Host, Tenant: vm.Tenant, TenantName: vm.TenantName}
	oldIPs, oldMACs := c.ips, c.macs
	var ips []ipText
	var macs []macText
	for i := range vm.Interfaces {
		ifc := &vm.Interfaces[i]
		if ifc.MAC != ([6]byte{}) {
			macs = append(macs, macText{ifc.MAC, findMAC(oldMACs, ifc.MAC, ifc.MACString)})
		}
		for _, a := range ifc.Addrs {
			if a.IP.IsValid() {
				ips = append(ips, ipText{a.IP, findIP(oldIPs, a.IP)})
			}
		}
	}
	c.ips, c.macs = ips, macs
}

func findIP(old []ipText, ip netip.Addr) string {
	for _, o := range old {
		if o.ip == ip {
			return o.s
		}
	}
	return ip.String()
}

// findMAC reuses the old text, else the inventory's own when it is the
// canonical form (enrich.FormatMAC's), else formats.
func findMAC(old []macText, mac [6]byte, inv string) string {
	for _, o := range old {
		if o.mac == mac {
			return o.s
		}
	}
	if canonicalMAC(inv, mac) {
		return inv
	}
	return enrich.FormatMAC(mac)
}

// canonicalMAC: s is mac as enrich.FormatMAC writes it (lower-case hex,
// colons).
func canonicalMAC(s string, mac [6]byte) bool {
	const hexd = "0123456789abcdef"
	if len(s) != 17 {
		return false
	}
	for i, b := range mac {
		if i > 0 && s[i*3-1] != ':' {
			return false
		}
		if s[i*3] != hexd[b>>4] || s[i*3+1] != hexd[b&15] {
			return false
		}
	}
	return true
}
