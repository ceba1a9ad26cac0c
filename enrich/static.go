package enrich

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Static inventory file format (YAML). Unknown keys are errors (with their
// line number), and so are invalid or duplicate names, UUIDs, MACs, IPs and
// exporter identities. Example (see configs/inventory.yaml):
//
//	hosts:                        # hypervisors and the exporters speaking for them
//	  - name: hv1
//	    exporters:                # sFlow agent addresses / IPFIX exporter addresses
//	      - 192.0.2.11            # any observation domain / sub-agent
//	      - address: 127.0.0.1    # narrowed to one IPFIX observation domain
//	        observation_domain: 1 # (or NetFlow v9 source id, sFlow sub-agent id)
//	vms:
//	  - name: web1                # required, unique
//	    uuid: 6f1c...             # optional, unique; the VM's identity when set
//	    host: hv1                 # optional: hypervisor the VM runs on
//	    tenant: acme              # optional
//	    tenant_name: ACME Corp    # optional
//	    state: running            # optional, default "running"
//	    vcpus: 2                  # optional
//	    memory_kib: 2097152       # optional
//	    labels: {role: web}       # optional
//	    interfaces:
//	      - mac: 52:54:00:00:00:01  # required, unique in the file
//	        ips: [10.0.0.1, fd00::1] # optional; unique per vni in the file
//	        tap: vnet1              # optional host-side device (OVS port name)
//	        bridge: br-int          # optional
//	        ovs_port: vnet1         # optional
//	        interface_id: 3f2a...   # optional OVS virtualport interfaceid
//	        vni: 0                  # optional tenant segment for overlapping IPs
//
// A host listed under a VM but not under hosts is allowed: the VM's host is
// then known but unobserved (no exporter maps to it).

// StaticSourceName is the name (and Snapshot.Source) of the static source.
const StaticSourceName = "static"

type staticFile struct {
	Hosts []staticHost `yaml:"hosts"`
	VMs   []staticVM   `yaml:"vms"`
}

type staticHost struct {
	Name      string         `yaml:"name"`
	Exporters []exporterSpec `yaml:"exporters"`
}

type exporterSpec struct {
	Address   string
	Domain    uint32
	HasDomain bool
}

// UnmarshalYAML accepts "ADDR" or {address: ADDR, observation_domain: N}.
func (e *exporterSpec) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		e.Address = n.Value
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch k.Value {
			case "address":
				if v.Kind != yaml.ScalarNode {
					return fmt.Errorf("line %d: exporter address must be a string", v.Line)
				}
				e.Address = v.Value
			case "observation_domain":
				var d uint32
				if err := v.Decode(&d); err != nil {
					return fmt.Errorf("line %d: exporter observation_domain: must be an integer 0..4294967295", v.Line)
				}
				e.Domain, e.HasDomain = d, true
			default:
				return fmt.Errorf("line %d: field %s not found in exporter (want address, observation_domain)", k.Line, k.Value)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: exporter must be an address or a mapping", n.Line)
}

type staticVM struct {
	Name       string            `yaml:"name"`
	UUID       string            `yaml:"uuid"`
	Host       string            `yaml:"host"`
	Tenant     string            `yaml:"tenant"`
	TenantName string            `yaml:"tenant_name"`
	State      string            `yaml:"state"`
	VCPUs      int               `yaml:"vcpus"`
	MemoryKiB  uint64            `yaml:"memory_kib"`
	Labels     map[string]string `yaml:"labels"`
	Interfaces []staticIface     `yaml:"interfaces"`
}

type staticIface struct {
	MAC         string   `yaml:"mac"`
	IPs         []string `yaml:"ips"`
	Tap         string   `yaml:"tap"`
	Bridge      string   `yaml:"bridge"`
	OVSPort     string   `yaml:"ovs_port"`
	InterfaceID string   `yaml:"interface_id"`
	VNI         uint32   `yaml:"vni"`
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// LoadInventory reads and validates a static inventory file.
func LoadInventory(path string) (Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("static inventory: %w", err)
	}
	return ParseInventory(data, path)
}

// ParseInventory parses and validates static inventory YAML; name is used
// in error messages ("file:line: ...").
func ParseInventory(data []byte, name string) (Snapshot, error) {
	var f staticFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Snapshot{}, fmt.Errorf("%s: %w", name, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // already parsed above; used for line numbers only
	p := &invParser{name: name, root: &root}
	return p.convert(&f)
}

type invParser struct {
	name string
	root *yaml.Node
}

// errf formats an error located at the YAML node found by path (string =
// mapping key, int = sequence index).
func (p *invParser) errf(path []any, format string, args ...any) error {
	var where strings.Builder
	for _, el := range path {
		switch v := el.(type) {
		case string:
			if where.Len() > 0 {
				where.WriteByte('.')
			}
			where.WriteString(v)
		case int:
			fmt.Fprintf(&where, "[%d]", v)
		}
	}
	return fmt.Errorf("%s:%d: %s: %s", p.name, p.line(path), where.String(), fmt.Sprintf(format, args...))
}

func (p *invParser) line(path []any) int {
	n := p.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, el := range path {
		var next *yaml.Node
		switch v := el.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == v {
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && v < len(n.Content) {
				next = n.Content[v]
			}
		}
		if next == nil {
			break
		}
		n = next
		line = n.Line
	}
	return line
}

func path(els ...any) []any { return els }

func (p *invParser) convert(f *staticFile) (Snapshot, error) {
	snap := Snapshot{Source: StaticSourceName}

	hostNames := map[string]int{}
	expOwner := map[netip.Addr]string{}
	domOwner := map[ExporterID]string{}
	for i, h := range f.Hosts {
		if h.Name == "" {
			return Snapshot{}, p.errf(path("hosts", i), "name is required")
		}
		if j, dup := hostNames[h.Name]; dup {
			return Snapshot{}, p.errf(path("hosts", i, "name"), "duplicate host %q (also hosts[%d])", h.Name, j)
		}
		hostNames[h.Name] = i
		host := Host{Name: h.Name}
		for j, e := range h.Exporters {
			a, err := netip.ParseAddr(strings.TrimSpace(e.Address))
			if err != nil || a.Zone() != "" {
				return Snapshot{}, p.errf(path("hosts", i, "exporters", j), "invalid exporter address %q", e.Address)
			}
			a = a.Unmap()
			if e.HasDomain {
				id := ExporterID{Addr: a, Domain: e.Domain}
				if o, dup := domOwner[id]; dup {
					return Snapshot{}, p.errf(path("hosts", i, "exporters", j), "exporter %s domain %d already belongs to host %q", a, e.Domain, o)
				}
				domOwner[id] = h.Name
				host.ExporterDomains = append(host.ExporterDomains, id)
				continue
			}
			if o, dup := expOwner[a]; dup {
				return Snapshot{}, p.errf(path("hosts", i, "exporters", j), "exporter %s already belongs to host %q", a, o)
			}
			expOwner[a] = h.Name
			host.Exporters = append(host.Exporters, a)
		}
		snap.Hosts = append(snap.Hosts, host)
	}

	vmNames := map[string]int{}
	uuids := map[string]int{}
	macs := map[[6]byte]string{}
	ips := map[ipKey]string{}
	taps := map[hostTap]string{}
	for i, v := range f.VMs {
		if v.Name == "" {
			return Snapshot{}, p.errf(path("vms", i), "name is required")
		}
		if j, dup := vmNames[v.Name]; dup {
			return Snapshot{}, p.errf(path("vms", i, "name"), "duplicate VM name %q (also vms[%d])", v.Name, j)
		}
		vmNames[v.Name] = i
		uuid := strings.ToLower(v.UUID)
		if uuid != "" {
			if !uuidRE.MatchString(uuid) {
				return Snapshot{}, p.errf(path("vms", i, "uuid"), "invalid UUID %q", v.UUID)
			}
			if j, dup := uuids[uuid]; dup {
				return Snapshot{}, p.errf(path("vms", i, "uuid"), "duplicate UUID %s (also vms[%d])", uuid, j)
			}
			uuids[uuid] = i
		}
		if v.VCPUs < 0 {
			return Snapshot{}, p.errf(path("vms", i, "vcpus"), "must be >= 0")
		}
		state := v.State
		if state == "" {
			state = "running"
		}
		vm := VM{
			Name: v.Name, UUID: uuid, Host: v.Host, Tenant: v.Tenant, TenantName: v.TenantName,
			State: state, Source: StaticSourceName, VCPUs: v.VCPUs, MemoryKiB: v.MemoryKiB,
		}
		if len(v.Labels) > 0 {
			vm.Labels = make(map[string]string, len(v.Labels))
			for k, val := range v.Labels {
				vm.Labels[k] = val
			}
		}
		vm.Interfaces = make([]Interface, 0, len(v.Interfaces))
		for j, it := range v.Interfaces {
			if it.MAC == "" {
				return Snapshot{}, p.errf(path("vms", i, "interfaces", j), "mac is required")
			}
			mac, err := ParseMAC(it.MAC)
			if err != nil {
				return Snapshot{}, p.errf(path("vms", i, "interfaces", j, "mac"), "invalid MAC %q", it.MAC)
			}
			if o, dup := macs[mac]; dup {
				return Snapshot{}, p.errf(path("vms", i, "interfaces", j, "mac"), "duplicate MAC %s (also on VM %q)", FormatMAC(mac), o)
			}
			macs[mac] = v.Name
			iface := Interface{
				MAC: mac, MACString: FormatMAC(mac), Tap: it.Tap, Bridge: it.Bridge,
				OVSPort: it.OVSPort, InterfaceID: it.InterfaceID, VNI: it.VNI,
				Addrs: make([]Addr, 0, len(it.IPs)),
			}
			for k, s := range it.IPs {
				a, err := netip.ParseAddr(strings.TrimSpace(s))
				if err != nil || a.Zone() != "" {
					return Snapshot{}, p.errf(path("vms", i, "interfaces", j, "ips", k), "invalid IP address %q", s)
				}
				a = a.Unmap()
				key := ipKey{VNI: it.VNI, IP: a}
				if o, dup := ips[key]; dup {
					return Snapshot{}, p.errf(path("vms", i, "interfaces", j, "ips", k), "duplicate IP %s in vni %d (also on VM %q)", a, it.VNI, o)
				}
				ips[key] = v.Name
				iface.Addrs = append(iface.Addrs, Addr{IP: a, Source: AddrStatic})
			}
			if it.Tap != "" && v.Host != "" {
				key := hostTap{v.Host, it.Tap}
				if o, dup := taps[key]; dup {
					return Snapshot{}, p.errf(path("vms", i, "interfaces", j, "tap"), "duplicate tap %q on host %q (also on VM %q)", it.Tap, v.Host, o)
				}
				taps[key] = v.Name
			}
			vm.Interfaces = append(vm.Interfaces, iface)
		}
		snap.VMs = append(snap.VMs, vm)
	}
	return snap, nil
}

// ParseMAC parses a 6-byte MAC address (aa:bb:cc:dd:ee:ff, aa-bb-..., or
// aabb.ccdd.eeff).
func ParseMAC(s string) ([6]byte, error) {
	var m [6]byte
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return m, err
	}
	if len(hw) != 6 {
		return m, fmt.Errorf("MAC %q: not 6 bytes", s)
	}
	copy(m[:], hw)
	return m, nil
}

// FormatMAC formats a MAC as lower-case aa:bb:cc:dd:ee:ff.
func FormatMAC(m [6]byte) string {
	const hexd = "0123456789abcdef"
	var b [17]byte
	for i, c := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = hexd[c>>4]
		b[i*3+1] = hexd[c&0xf]
	}
	return string(b[:])
}

// StaticSource is the static inventory file as an InventorySource. It
// re-reads the file when its modification time or size changes; a broken
// edit keeps the last good snapshot and is reported in Status.
type StaticSource struct {
	path   string
	reload time.Duration

	mu      sync.Mutex
	status  SourceStatus
	modTime time.Time
	size    int64

	cancel  context.CancelFunc
	done    chan struct{}
	ctx     context.Context // Start's, for Retarget
	publish func(Snapshot)
}

// NewStaticSource returns a static source for the file at path, checked
// for changes every reload (0: read once).
func NewStaticSource(path string, reload time.Duration) *StaticSource {
	return &StaticSource{
		path:   path,
		reload: reload,
		status: SourceStatus{Name: StaticSourceName, Kind: "static", URI: path, State: "connecting"},
	}
}

// Name returns "static".
func (s *StaticSource) Name() string { return StaticSourceName }

// Start loads the file (an error here is returned: a broken inventory at
// start-up is a configuration error) and publishes it, then watches it.
func (s *StaticSource) Start(ctx context.Context, publish func(Snapshot)) error {
	if err := s.check(publish, true); err != nil {
		return err
	}
	s.ctx, s.publish = ctx, publish
	s.watch()
	return nil
}

// watch starts the goroutine that checks the file every reload (none when
// reload is 0).
func (s *StaticSource) watch() {
	if s.reload <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.cancel = cancel
	s.done = make(chan struct{})
	done, every, publish := s.done, s.reload, s.publish
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = s.check(publish, false)
			}
		}
	}()
}

// check reloads the file if it changed (or force) and publishes it.
func (s *StaticSource) check(publish func(Snapshot), force bool) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		s.fail(fmt.Errorf("static inventory: %w", err))
		return err
	}
	s.mu.Lock()
	changed := force || !fi.ModTime().Equal(s.modTime) || fi.Size() != s.size
	s.mu.Unlock()
	if !changed {
		return nil
	}
	snap, err := LoadInventory(s.path)
	s.mu.Lock()
	// Remember what we looked at, good or bad, so a broken file is
	// reported once per edit rather than on every check.
	s.modTime, s.size = fi.ModTime(), fi.Size()
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
		return err
	}
	s.loaded(snap, publish)
	return nil
}

// loaded records a good load and publishes it.
func (s *StaticSource) loaded(snap Snapshot, publish func(Snapshot)) {
	s.mu.Lock()
	s.status.State = "loaded"
	s.status.LastSync = time.Now()
	s.status.VMs = len(snap.VMs)
	s.status.Events++
	s.status.LastError = ""
	s.mu.Unlock()
	publish(snap)
}

func (s *StaticSource) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.State == "error" && s.status.LastError == err.Error() {
		return // the same failure seen again (e.g. file still missing): count it once
	}
	s.status.Errors++
	s.status.LastError = err.Error()
	s.status.State = "error"
}

// Stop stops watching the file.
func (s *StaticSource) Stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
}

// Status reports the source's health. State is "loaded" or "error" (the
// last good snapshot stays in use); Events counts successful loads.
func (s *StaticSource) Status() SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}
