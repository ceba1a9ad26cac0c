package libvirt

import (
	"encoding/xml"
	"fmt"
	"net"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/vmflow/vmflow/enrich"
)

// NovaNamespacePrefix matches every version of Nova's libvirt metadata
// namespace (1.0, 1.1, ...).
const NovaNamespacePrefix = "http://openstack.org/xmlns/libvirt/nova/"

// DomainXML is the part of a domain's XML vmflow reads, in libvirtxml's
// models (memory, vcpu, disks, interfaces with their source and
// virtualport variants), plus <metadata> parsed into generic nodes
// (libvirtxml keeps metadata as raw XML: its content is free-form and
// namespaced, so vmflow walks it itself). The rest of the document (os,
// features, cpu, clock, controllers, graphics...) is skipped unparsed: a
// full libvirtxml.Domain costs a 10,000-domain resync about 40% more
// allocation for fields vmflow never reads.
type DomainXML struct {
	XMLName xml.Name                 `xml:"domain"`
	Name    string                   `xml:"name"`
	UUID    string                   `xml:"uuid"`
	Title   string                   `xml:"title"`
	Memory  *libvirtxml.DomainMemory `xml:"memory"`
	VCPU    *libvirtxml.DomainVCPU   `xml:"vcpu"`
	Meta    *XMLNode                 `xml:"metadata"`
	Devices *DomainDevices           `xml:"devices"`
}

// DomainDevices are the devices vmflow reads.
type DomainDevices struct {
	Disks      []libvirtxml.DomainDisk      `xml:"disk"`
	Interfaces []libvirtxml.DomainInterface `xml:"interface"`
}

// XMLNode is a generic element (used for <metadata>, whose content is
// free-form and namespaced).
type XMLNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []XMLNode  `xml:",any"`
}

// Attr returns the value of the attribute with this local name.
func (n *XMLNode) Attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Child returns the first child element with this namespace and local name
// (namespace "" matches any).
func (n *XMLNode) Child(space, local string) *XMLNode {
	for i := range n.Children {
		c := &n.Children[i]
		if c.XMLName.Local == local && (space == "" || c.XMLName.Space == space) {
			return c
		}
	}
	return nil
}

// Find follows a slash-separated path of local names, each element in
// namespace space, starting at n's children.
func (n *XMLNode) Find(space, path string) *XMLNode {
	cur := n
	for _, p := range strings.Split(strings.Trim(path, "/"), "/") {
		if p == "" {
			continue
		}
		cur = cur.Child(space, p)
		if cur == nil {
			return nil
		}
	}
	return cur
}

// ParseDomainXML parses a domain XML document.
func ParseDomainXML(doc []byte) (*DomainXML, error) {
	var d DomainXML
	if err := xml.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parse domain xml: %w", err)
	}
	if d.Name == "" {
		return nil, fmt.Errorf("parse domain xml: no <name>")
	}
	return &d, nil
}

// FromLibvirtXML takes the fields vmflow reads from a full libvirtxml
// domain, parsing its metadata.
func FromLibvirtXML(d *libvirtxml.Domain) (*DomainXML, error) {
	if d.Name == "" {
		return nil, fmt.Errorf("parse domain xml: no <name>")
	}
	dx := &DomainXML{Name: d.Name, UUID: d.UUID, Title: d.Title, Memory: d.Memory, VCPU: d.VCPU}
	if d.Devices != nil {
		dx.Devices = &DomainDevices{Disks: d.Devices.Disks, Interfaces: d.Devices.Interfaces}
	}
	if d.Metadata != nil && strings.TrimSpace(d.Metadata.XML) != "" {
		var n XMLNode
		// libvirt writes each metadata element with its own xmlns, so the
		// inner XML parses on its own.
		if err := xml.Unmarshal([]byte("<metadata>"+d.Metadata.XML+"</metadata>"), &n); err != nil {
			return nil, fmt.Errorf("parse domain xml metadata: %w", err)
		}
		dx.Meta = &n
	}
	return dx, nil
}

// Nova is the OpenStack Nova instance metadata of a domain.
type Nova struct {
	DisplayName string
	ProjectID   string
	ProjectName string
	UserID      string
	UserName    string
	Flavor      string
}

// Nova extracts <nova:instance> from <metadata>, if present.
func (d *DomainXML) Nova() (Nova, bool) {
	if d.Meta == nil {
		return Nova{}, false
	}
	var inst *XMLNode
	for i := range d.Meta.Children {
		c := &d.Meta.Children[i]
		if c.XMLName.Local == "instance" && strings.HasPrefix(c.XMLName.Space, NovaNamespacePrefix) {
			inst = c
			break
		}
	}
	if inst == nil {
		return Nova{}, false
	}
	ns := inst.XMLName.Space
	var n Nova
	if c := inst.Child(ns, "name"); c != nil {
		n.DisplayName = strings.TrimSpace(c.Text)
	}
	if c := inst.Child(ns, "flavor"); c != nil {
		n.Flavor = c.Attr("name")
	}
	if o := inst.Child(ns, "owner"); o != nil {
		if c := o.Child(ns, "project"); c != nil {
			n.ProjectID = c.Attr("uuid")
			n.ProjectName = strings.TrimSpace(c.Text)
		}
		if c := o.Child(ns, "user"); c != nil {
			n.UserID = c.Attr("uuid")
			n.UserName = strings.TrimSpace(c.Text)
		}
	}
	return n, true
}

// MetadataValue reads a configured metadata key: the element at path under
// <metadata> in namespace ns, its attribute attr, or its text when attr is "".
func (d *DomainXML) MetadataValue(k MetadataKey) (string, bool) {
	if d.Meta == nil || k.Element == "" {
		return "", false
	}
	n := d.Meta.Find(k.Namespace, k.Element)
	if n == nil {
		return "", false
	}
	if k.Attr != "" {
		for _, a := range n.Attrs {
			if a.Name.Local == k.Attr {
				return a.Value, true
			}
		}
		return "", false
	}
	return strings.TrimSpace(n.Text), true
}

// memoryKiB converts <memory unit=...> to KiB (libvirt's default unit).
func memoryKiB(unit, value string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
	if err != nil {
		return 0, err
	}
	return memKiB(unit, v)
}

func memKiB(unit string, v uint64) (uint64, error) {
	mul := map[string]float64{
		"": 1, "k": 1, "KiB": 1, "b": 1.0 / 1024, "bytes": 1.0 / 1024,
		"KB": 1000.0 / 1024, "MB": 1e6 / 1024, "GB": 1e9 / 1024, "TB": 1e12 / 1024,
		"M": 1024, "MiB": 1024, "G": 1 << 20, "GiB": 1 << 20, "T": 1 << 30, "TiB": 1 << 30,
	}[unit]
	if mul == 0 {
		return 0, fmt.Errorf("unknown memory unit %q", unit)
	}
	return uint64(float64(v) * mul), nil
}

// Mapper turns domain XML into enrich.VM, applying the tenant and label
// configuration.
type Mapper struct {
	TenantFrom     []string
	TenantMetadata MetadataKey
	StaticTenants  []StaticTenant
	MetadataLabels []MetadataLabel
}

// NewMapper builds a Mapper from the source configuration.
func NewMapper(cfg Config) Mapper {
	return Mapper{TenantFrom: cfg.TenantFrom, TenantMetadata: cfg.TenantMetadata,
		StaticTenants: cfg.StaticTenants, MetadataLabels: cfg.MetadataLabels}
}

// Labels set from Nova metadata.
const (
	LabelNovaName    = "nova.display_name"
	LabelNovaFlavor  = "nova.flavor"
	LabelNovaUser    = "nova.user"
	LabelNovaUserID  = "nova.user_id"
	LabelNovaProject = "nova.project"
	LabelDomainTitle = "libvirt.title"
)

// ToVM maps a parsed domain to an enrich.VM (without state, source and
// addresses, which the caller adds). host is the hypervisor's name.
func (m Mapper) ToVM(d *DomainXML, host string) (enrich.VM, error) {
	vm := enrich.VM{
		Name: d.Name,
		UUID: strings.ToLower(strings.TrimSpace(d.UUID)),
		Host: host,
	}
	labels := map[string]string{}
	if d.Title != "" {
		labels[LabelDomainTitle] = d.Title
	}
	if d.Memory != nil {
		kib, err := memKiB(d.Memory.Unit, uint64(d.Memory.Value))
		if err != nil {
			return vm, fmt.Errorf("domain %s memory: %w", d.Name, err)
		}
		vm.MemoryKiB = kib
	}
	if d.VCPU != nil {
		vm.VCPUs = int(d.VCPU.Value)
		if d.VCPU.Current > 0 {
			vm.VCPUs = int(d.VCPU.Current)
		}
	}
	nova, hasNova := d.Nova()
	if hasNova {
		setNonEmpty(labels, LabelNovaName, nova.DisplayName)
		setNonEmpty(labels, LabelNovaFlavor, nova.Flavor)
		setNonEmpty(labels, LabelNovaUser, nova.UserName)
		setNonEmpty(labels, LabelNovaUserID, nova.UserID)
		setNonEmpty(labels, LabelNovaProject, nova.ProjectName)
	}
	for _, ml := range m.MetadataLabels {
		if v, ok := d.MetadataValue(ml.MetadataKey); ok {
			labels[ml.Label] = v
		}
	}
	for _, from := range m.TenantFrom {
		switch from {
		case TenantFromNova:
			if hasNova && nova.ProjectID != "" {
				vm.Tenant, vm.TenantName = nova.ProjectID, nova.ProjectName
			}
		case TenantFromMetadata:
			if v, ok := d.MetadataValue(m.TenantMetadata); ok && v != "" {
				vm.Tenant = v
			}
		case TenantFromStatic:
			for _, st := range m.StaticTenants {
				if st.matches(d.Name, host) {
					vm.Tenant, vm.TenantName = st.Tenant, st.TenantName
					break
				}
			}
		}
		if vm.Tenant != "" {
			break
		}
	}
	if len(labels) > 0 {
		vm.Labels = labels
	}
	var ifaces []libvirtxml.DomainInterface
	if d.Devices != nil {
		ifaces = d.Devices.Interfaces
	}
	vm.Interfaces = make([]enrich.Interface, 0, len(ifaces))
	for i := range ifaces {
		ix := &ifaces[i]
		if ix.MAC == nil {
			continue
		}
		hw, err := net.ParseMAC(strings.TrimSpace(ix.MAC.Address))
		if err != nil || len(hw) != 6 {
			continue // an interface without a usable MAC cannot attribute traffic
		}
		var ifc enrich.Interface
		copy(ifc.MAC[:], hw)
		ifc.MACString = hw.String()
		if ix.Target != nil {
			ifc.Tap = ix.Target.Dev
		}
		if src := ix.Source; src != nil {
			switch {
			case src.Bridge != nil:
				ifc.Bridge = src.Bridge.Bridge
			case src.Network != nil: // a live domain names the network's bridge too
				ifc.Bridge = src.Network.Bridge
				if ifc.Bridge == "" {
					ifc.Bridge = src.Network.Network
				}
			}
		}
		if vp := ix.VirtualPort; vp != nil && vp.Params != nil && vp.Params.OpenVSwitch != nil {
			ifc.InterfaceID = vp.Params.OpenVSwitch.InterfaceID
			ifc.OVSPort = ifc.Tap // libvirt names the OVS port after the tap
		}
		ifc.Addrs = []enrich.Addr{}
		vm.Interfaces = append(vm.Interfaces, ifc)
	}
	return vm, nil
}

func setNonEmpty(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func parseMAC(s string) (net.HardwareAddr, error) { return net.ParseMAC(strings.TrimSpace(s)) }
