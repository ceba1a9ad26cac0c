package enrich

import (
	"net/netip"
	"time"
)

// VMID is a small stable number for a VM inside this process: assigned once
// per VM identity (UUID, or name when there is none) and never reused, so
// that aggregation keys stay valid across inventory reloads. 0 means "no VM".
type VMID uint32

// AddrSource says where an IP address of a VM came from.
type AddrSource string

const (
	AddrStatic  AddrSource = "static"
	AddrLease   AddrSource = "lease"
	AddrAgent   AddrSource = "agent"
	AddrARP     AddrSource = "arp"
	AddrLearned AddrSource = "learned"
)

// Addr is one IP address of an interface and where it came from.
type Addr struct {
	IP       netip.Addr `json:"ip"`
	Source   AddrSource `json:"source"`
	LastSeen time.Time  `json:"last_seen,omitzero"` // learned addresses only
}

// Interface is one virtual NIC of a VM.
type Interface struct {
	MAC         [6]byte `json:"-"`
	MACString   string  `json:"mac"`
	Tap         string  `json:"tap,omitempty"`    // host-side device (vnetN, tapXXX)
	Bridge      string  `json:"bridge,omitempty"` // bridge or network
	OVSPort     string  `json:"ovs_port,omitempty"`
	InterfaceID string  `json:"interface_id,omitempty"` // OVS virtualport interfaceid
	VNI         uint32  `json:"vni,omitempty"`          // tenant network segment for overlapping IPs
	Addrs       []Addr  `json:"addrs"`
}

// VM is everything vmflow knows of one virtual machine. Values are
// immutable once published in an Index.
type VM struct {
	ID         VMID              `json:"-"`
	Name       string            `json:"name"`
	UUID       string            `json:"uuid,omitempty"`
	Host       string            `json:"host,omitempty"`
	Tenant     string            `json:"tenant,omitempty"`
	TenantName string            `json:"tenant_name,omitempty"`
	State      string            `json:"state,omitempty"`
	Source     string            `json:"source"` // "static", "libvirt:URI", ...
	Stale      bool              `json:"stale"`  // its source is unreachable; kept, flagged
	VCPUs      int               `json:"vcpus,omitempty"`
	MemoryKiB  uint64            `json:"memory_kib,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Interfaces []Interface       `json:"interfaces"`

	// PrevHost is the host the VM ran on before its Host last changed
	// (live migration), and MovedAt when the Enricher saw the change. Set
	// by the Enricher, not by sources; the aggregator keeps counting
	// observations from PrevHost for a grace period after MovedAt.
	PrevHost string    `json:"prev_host,omitempty"`
	MovedAt  time.Time `json:"moved_at,omitzero"`
}

// Port is the answer to a hot-path lookup: the VM and which of its interfaces.
type Port struct {
	VM    *VM
	Iface *Interface
}

// Host is one hypervisor and the exporter identities (sFlow agent address,
// IPFIX exporter address) that speak for it. Exporter identities are what
// the "count each packet once" rule uses to tell hypervisors apart.
type Host struct {
	Name      string       `json:"name"`
	Exporters []netip.Addr `json:"exporters"`
	// ExporterDomains are exporter identities narrowed to one IPFIX
	// observation domain / NetFlow source id / sFlow sub-agent, for
	// hypervisors (or bridges) that share an exporter address.
	ExporterDomains []ExporterID `json:"exporter_domains,omitempty"`
}

// ExporterID is an exporter address plus an observation domain (IPFIX
// observation domain, NetFlow v9 source id, or sFlow sub-agent id).
type ExporterID struct {
	Addr   netip.Addr `json:"address"`
	Domain uint32     `json:"domain"`
}

// Conflict reports two VMs claiming the same MAC, the same IP in one VNI or
// the same tap on one host, or two hosts claiming one exporter identity.
type Conflict struct {
	Kind  string   `json:"kind"` // "mac", "ip", "tap" or "exporter"
	Key   string   `json:"key"`
	VMs   []string `json:"vms"`
	Chose string   `json:"chose"`
	// Reason says which precedence rule made Chose win over the runner-up
	// (doc.go), e.g. a lease address over one learned from traffic.
	Reason string `json:"reason,omitempty"`
}

// ipKey keys IP lookups per VNI so overlapping tenant networks stay apart.
type ipKey struct {
	VNI uint32
	IP  netip.Addr
}
