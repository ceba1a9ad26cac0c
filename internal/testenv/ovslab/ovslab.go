// Package ovslab builds a real Open vSwitch lab for tests: one or more
// "hypervisors", each a network namespace running its own ovsdb-server and
// ovs-vswitchd (userspace datapath) with one bridge, and "VMs" as network
// namespaces attached to the bridge by veth pairs. Hypervisors are joined by
// a veth "trunk" between their bridges. Each hypervisor reaches the test
// process (root namespace) over an uplink veth, so sFlow and IPFIX datagrams
// arrive from a distinct exporter address per hypervisor.
//
// Everything lives in a temp dir and uniquely named namespaces, so several
// labs can run at once; t.Cleanup tears everything down, also on failure.
//
// Ground truth: the lab reads the counters of each VM's host-side veth (in
// the hypervisor namespace): rx is what the VM sent (Ethernet frames
// without FCS), tx what it received; and the drop counter of
// ovs-vswitchd's AF_PACKET socket on the port (ss -0 -m), i.e. frames the
// VM sent that never entered the bridge because ovs-vswitchd was starved of
// CPU. See PairTruth and Lab.Phase.
//
// To keep the truth clean the lab disables IPv6 in every namespace (no
// router/neighbour solicitations, no MLD) and installs permanent ARP entries
// for every other VM in each VM (no ARP), so a VM sends only what the test
// makes it send. Bridges use the NORMAL action (MAC learning); before any
// export is enabled every VM pings its neighbour once so that every bridge
// has learnt every MAC (aging 1 h) and no later frame is flooded to other
// VMs' ports.
package ovslab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequiredBinaries are the programs a lab needs.
var RequiredBinaries = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ip", "ss", "ethtool", "iperf3", "ping"}

// IntegrationEnv is the variable that turns missing dependencies into failures.
const IntegrationEnv = "VMFLOW_INTEGRATION"

// Options describes a lab.
type Options struct {
	// Hosts are the hypervisors; default one host "hv1" with 4 VMs.
	Hosts []HostOptions
}

// HostOptions describes one hypervisor.
type HostOptions struct {
	Name string // default "hv<n>"
	VMs  int    // number of VMs on this host; VMs are numbered across the lab: vm1, vm2, ...
	// Exporters configured at start; they can also be enabled later with
	// Lab.EnableSFlow / Lab.EnableIPFIX (e.g. once the collector's ports are known).
	SFlow *SFlowOptions
	IPFIX *IPFIXOptions
}

// SFlowOptions configures the bridge's sFlow export.
type SFlowOptions struct {
	CollectorPort int // UDP port of the collector in the root namespace (required)
	Sampling      int // 1-in-N, default 64
	Polling       int // counter polling interval, seconds; default 10
	Header        int // sampled header bytes, default 128
}

// IPFIXOptions configures the bridge's IPFIX export.
type IPFIXOptions struct {
	CollectorPort      int    // UDP port of the collector in the root namespace (required)
	Sampling           int    // 1-in-N, default 1
	ObsDomainID        uint32 // default 100 + host number
	ObsPointID         uint32 // default 1
	CacheActiveTimeout int    // seconds, default 2
	CacheMaxFlows      int    // default 1000
}

// Host is one hypervisor of the lab.
type Host struct {
	Name   string
	Netns  string // network namespace holding the OVS daemons, the bridge and the host-side veths
	Bridge string
	// Addr is the hypervisor's exporter identity: the sFlow agent address
	// and the UDP source address of its sFlow and IPFIX datagrams.
	Addr netip.Addr
	// CollectorAddr is the root-namespace address the exporters send to
	// (the root side of the uplink). A collector listening on the
	// unspecified address receives them.
	CollectorAddr netip.Addr
	Uplink        string // root-namespace name of the uplink veth
	Dir           string
	VMs           []*VM

	mu          sync.Mutex
	sflow       *SFlowOptions
	ipfix       *IPFIXOptions
	obsDomainID uint32
	num         int
}

// ObsDomainID returns the IPFIX observation domain of the host's export (0 before EnableIPFIX).
func (h *Host) ObsDomainID() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.obsDomainID
}

// VM is one network-namespace "VM".
type VM struct {
	Name     string
	Host     *Host
	Netns    string
	Dev      string // interface inside the VM ("eth0")
	MAC      net.HardwareAddr
	IP       netip.Addr
	Prefix   netip.Prefix
	HostVeth string // host-side veth (in Host.Netns), the OVS port
	IfIndex  int    // ifindex of HostVeth: what sFlow reports as input/output interface
	OFPort   int    // OpenFlow port number on the bridge
}

// Lab is a running OVS lab.
type Lab struct {
	t     testing.TB
	ID    string
	Dir   string
	hosts []*Host
	vms   []*VM
	trunk [][2]string // [host netns/dev pairs] for diagnostics

	mu    sync.Mutex
	procs []*exec.Cmd
}

// Available reports whether the lab can run here (root and every binary), and why not.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("ovslab: needs root (network namespaces, veths)")
	}
	var missing []string
	for _, b := range RequiredBinaries {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ovslab: missing binaries %v (run scripts/install-deps.sh)", missing)
	}
	return nil
}

// Require skips the test when the lab cannot run, or fails it when
// VMFLOW_INTEGRATION=1 (integration runs must not silently skip).
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv(IntegrationEnv) == "1" {
			t.Fatalf("%v (%s=1: integration dependencies are required)", err, IntegrationEnv)
		}
		t.Skipf("%v (set %s=1 to make this a failure)", err, IntegrationEnv)
	}
}

// New builds the lab. It fails the test on any error; everything it made is
// removed by t.Cleanup.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	Require(t)
	if len(opts.Hosts) == 0 {
		opts.Hosts = []HostOptions{{Name: "hv1", VMs: 4}}
	}
	sweepStale(t)
	dir, err := os.MkdirTemp("", "ovslab-")
	if err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	l := &Lab{t: t, Dir: dir}
	l.ID = randomID()
	if err := register(l); err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	t.Cleanup(l.cleanup)
	if err := l.build(opts); err != nil {
		l.Diagnostics()
		t.Fatalf("ovslab: build: %v", err)
	}
	return l
}

func randomID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%06x", b[:])
}

// Hosts returns the hypervisors.
func (l *Lab) Hosts() []*Host { return l.hosts }

// Host returns the hypervisor with this name, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// VMs returns every VM, in number order.
func (l *Lab) VMs() []*VM { return l.vms }

// VM returns the VM with this name; it fails the test when there is none.
func (l *Lab) VM(name string) *VM {
	for _, v := range l.vms {
		if v.Name == name {
			return v
		}
	}
	l.t.Fatalf("ovslab: no VM %q", name)
	return nil
}

func (l *Lab) build(opts Options) error {
	subnet, err := l.pickUplinkSubnet()
	if err != nil {
		return err
	}
	vmNum := 0
	for i, ho := range opts.Hosts {
		n := i + 1
		name := ho.Name
		if name == "" {
			name = fmt.Sprintf("hv%d", n)
		}
		h := &Host{
			Name:   name,
			num:    n,
			Netns:  fmt.Sprintf("vmflab%s-%s", l.ID, name),
			Bridge: fmt.Sprintf("br%d", n),
			Dir:    filepath.Join(l.Dir, name),
			Uplink: fmt.Sprintf("vfl%sh%d", l.ID, n),
		}
		base := subnet.As4()
		base[3] = byte(4 * n)
		h.CollectorAddr = netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + 1})
		h.Addr = netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + 2})
		l.hosts = append(l.hosts, h)
		if err := l.startHost(h); err != nil {
			return fmt.Errorf("host %s: %w", name, err)
		}
		for j := 0; j < ho.VMs; j++ {
			vmNum++
			if err := l.addVM(h, vmNum); err != nil {
				return fmt.Errorf("vm%d: %w", vmNum, err)
			}
		}
	}
	// Chain the bridges with veth trunks: hv1 <-> hv2 <-> hv3 ...
	for i := 1; i < len(l.hosts); i++ {
		if err := l.trunkHosts(l.hosts[i-1], l.hosts[i]); err != nil {
			return err
		}
	}
	if err := l.staticNeighbours(); err != nil {
		return err
	}
	if err := l.warmUp(); err != nil {
		return err
	}
	for i, ho := range opts.Hosts {
		if ho.SFlow != nil {
			if err := l.EnableSFlow(l.hosts[i], *ho.SFlow); err != nil {
				return err
			}
		}
		if ho.IPFIX != nil {
			if err := l.EnableIPFIX(l.hosts[i], *ho.IPFIX); err != nil {
				return err
			}
		}
	}
	return nil
}

// pickUplinkSubnet chooses a /24 in 100.71.0.0/16 that no root-namespace
// interface uses yet (another lab may be running).
func (l *Lab) pickUplinkSubnet() (netip.Addr, error) {
	out, err := run(context.Background(), "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return netip.Addr{}, err
	}
	var b [2]byte
	for try := 0; try < 64; try++ {
		_, _ = rand.Read(b[:])
		third := 1 + int(binary.BigEndian.Uint16(b[:])%250)
		prefix := fmt.Sprintf(" 100.71.%d.", third)
		if !strings.Contains(string(out), prefix) {
			return netip.AddrFrom4([4]byte{100, 71, byte(third), 0}), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free uplink subnet in 100.71.0.0/16")
}

func (l *Lab) startHost(h *Host) error {
	ctx := context.Background()
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return err
	}
	if _, err := run(ctx, "ip", "netns", "add", h.Netns); err != nil {
		return err
	}
	l.nsSysctls(h.Netns)
	if _, err := run(ctx, "ip", "-n", h.Netns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// Uplink: root side gets CollectorAddr, hypervisor side Addr.
	if _, err := run(ctx, "ip", "link", "add", h.Uplink, "type", "veth", "peer", "name", "uplink", "netns", h.Netns); err != nil {
		return err
	}
	// No IPv6 on the root side of the uplink (errors ignored: no IPv6 at all is fine).
	_, _ = run(ctx, "sysctl", "-qw", "net.ipv6.conf."+h.Uplink+".disable_ipv6=1")
	steps := [][]string{
		{"ip", "addr", "add", h.CollectorAddr.String() + "/30", "dev", h.Uplink},
		{"ip", "link", "set", h.Uplink, "up"},
		{"ip", "-n", h.Netns, "addr", "add", h.Addr.String() + "/30", "dev", "uplink"},
		{"ip", "-n", h.Netns, "link", "set", "uplink", "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}

	db := filepath.Join(h.Dir, "conf.db")
	schema := "/usr/share/openvswitch/vswitch.ovsschema"
	if _, err := run(ctx, "ovsdb-tool", "create", db, schema); err != nil {
		return err
	}
	sock := filepath.Join(h.Dir, "db.sock")
	if _, err := l.nsRun(ctx, h.Netns, h.env(), "ovsdb-server", db,
		"--remote=punix:"+sock,
		"--pidfile="+filepath.Join(h.Dir, "ovsdb.pid"),
		"--detach",
		"--log-file="+filepath.Join(h.Dir, "ovsdb.log"),
		"--unixctl="+filepath.Join(h.Dir, "ovsdb.ctl")); err != nil {
		return err
	}
	if _, err := l.Vsctl(h, "--no-wait", "init"); err != nil {
		return err
	}
	if _, err := l.nsRun(ctx, h.Netns, h.env(), "ovs-vswitchd", "unix:"+sock,
		"--pidfile="+filepath.Join(h.Dir, "vswitchd.pid"),
		"--detach",
		"--log-file="+filepath.Join(h.Dir, "vswitchd.log"),
		"--unixctl="+filepath.Join(h.Dir, "vswitchd.ctl")); err != nil {
		return err
	}
	// MAC learning entries outlive any test (warmUp teaches every MAC).
	if _, err := l.Vsctl(h, "add-br", h.Bridge, "--", "set", "bridge", h.Bridge, "datapath_type=netdev",
		"other_config:mac-aging-time=3600"); err != nil {
		return err
	}
	return nil
}

// env is the environment of a host's OVS commands: every OVS path in its dir.
func (h *Host) env() []string {
	return []string{
		"OVS_RUNDIR=" + h.Dir, "OVS_LOGDIR=" + h.Dir, "OVS_DBDIR=" + h.Dir,
		"OVS_SYSCONFDIR=" + h.Dir,
	}
}

// nsSysctls disables IPv6 in a fresh namespace (errors ignored: a kernel
// without IPv6 has nothing to disable).
func (l *Lab) nsSysctls(ns string) {
	_, _ = run(context.Background(), "ip", "netns", "exec", ns, "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
}

func (l *Lab) addVM(h *Host, n int) error {
	ctx := context.Background()
	if n > 250 {
		return fmt.Errorf("too many VMs")
	}
	v := &VM{
		Name:     fmt.Sprintf("vm%d", n),
		Host:     h,
		Netns:    fmt.Sprintf("vmflab%s-vm%d", l.ID, n),
		Dev:      "eth0",
		MAC:      net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, byte(n)},
		IP:       netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}),
		HostVeth: fmt.Sprintf("vnet%d", n),
	}
	v.Prefix = netip.PrefixFrom(v.IP, 24)
	if _, err := run(ctx, "ip", "netns", "add", v.Netns); err != nil {
		return err
	}
	l.vms = append(l.vms, v)
	h.VMs = append(h.VMs, v)
	l.nsSysctls(v.Netns)
	steps := [][]string{
		{"ip", "-n", h.Netns, "link", "add", v.HostVeth, "type", "veth", "peer", "name", v.Dev, "netns", v.Netns},
		{"ip", "-n", v.Netns, "link", "set", "lo", "up"},
		{"ip", "-n", v.Netns, "link", "set", v.Dev, "address", v.MAC.String()},
		{"ip", "-n", v.Netns, "addr", "add", v.Prefix.String(), "dev", v.Dev},
		{"ip", "netns", "exec", v.Netns, "ethtool", "-K", v.Dev, "tx", "off"},
		{"ip", "netns", "exec", h.Netns, "ethtool", "-K", v.HostVeth, "tx", "off"},
		{"ip", "-n", v.Netns, "link", "set", v.Dev, "up"},
		{"ip", "-n", h.Netns, "link", "set", v.HostVeth, "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	if _, err := l.Vsctl(h, "add-port", h.Bridge, v.HostVeth); err != nil {
		return err
	}
	idx, err := l.ifIndex(h.Netns, v.HostVeth)
	if err != nil {
		return err
	}
	v.IfIndex = idx
	of, err := l.ofPort(h, v.HostVeth)
	if err != nil {
		return err
	}
	v.OFPort = of
	return nil
}

func (l *Lab) ofPort(h *Host, iface string) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := l.Vsctl(h, "get", "interface", iface, "ofport")
		if err == nil {
			n, perr := strconv.Atoi(strings.TrimSpace(string(out)))
			if perr == nil && n > 0 {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("ofport of %s: %q %v", iface, out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *Lab) ifIndex(ns, dev string) (int, error) {
	out, err := run(context.Background(), "ip", "-n", ns, "-j", "link", "show", "dev", dev)
	if err != nil {
		return 0, err
	}
	var links []struct {
		IfIndex int `json:"ifindex"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ifindex of %s: %q: %v", dev, out, err)
	}
	return links[0].IfIndex, nil
}

func (l *Lab) trunkHosts(a, b *Host) error {
	ctx := context.Background()
	da, db := "trunk-"+b.Name, "trunk-"+a.Name
	if len(da) > 15 || len(db) > 15 {
		da, db = fmt.Sprintf("trunk%d", b.num), fmt.Sprintf("trunk%d", a.num)
	}
	steps := [][]string{
		{"ip", "-n", a.Netns, "link", "add", da, "type", "veth", "peer", "name", db, "netns", b.Netns},
		{"ip", "netns", "exec", a.Netns, "ethtool", "-K", da, "tx", "off"},
		{"ip", "netns", "exec", b.Netns, "ethtool", "-K", db, "tx", "off"},
		{"ip", "-n", a.Netns, "link", "set", da, "up"},
		{"ip", "-n", b.Netns, "link", "set", db, "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	if _, err := l.Vsctl(a, "add-port", a.Bridge, da); err != nil {
		return err
	}
	if _, err := l.Vsctl(b, "add-port", b.Bridge, db); err != nil {
		return err
	}
	l.trunk = append(l.trunk, [2]string{a.Netns + "/" + da, b.Netns + "/" + db})
	return nil
}

// staticNeighbours gives every VM a permanent ARP entry for every other VM.
func (l *Lab) staticNeighbours() error {
	for _, v := range l.vms {
		for _, o := range l.vms {
			if o == v {
				continue
			}
			if _, err := run(context.Background(), "ip", "-n", v.Netns, "neigh", "replace", o.IP.String(),
				"lladdr", o.MAC.String(), "dev", v.Dev, "nud", "permanent"); err != nil {
				return err
			}
		}
	}
	return nil
}

// warmUp makes every VM send one frame (a ping to the next VM, in a ring)
// before any export is enabled, so every bridge learns every VM's MAC and
// later unicast frames are never flooded to other VMs' ports (which would
// blur the per-port truth).
func (l *Lab) warmUp() error {
	if len(l.vms) < 2 {
		return nil
	}
	for i, v := range l.vms {
		next := l.vms[(i+1)%len(l.vms)]
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		out, err := l.Exec(ctx, v, "ping", "-n", "-q", "-c", "1", "-W", "5", next.IP.String())
		cancel()
		if err != nil {
			return fmt.Errorf("warm-up ping %s->%s: %w: %s", v.Name, next.Name, err, out)
		}
	}
	return nil
}

// EnableSFlow points the host's bridge sFlow export at CollectorAddr:CollectorPort.
func (l *Lab) EnableSFlow(h *Host, o SFlowOptions) error {
	if o.CollectorPort <= 0 {
		return fmt.Errorf("sflow: CollectorPort required")
	}
	if o.Sampling == 0 {
		o.Sampling = 64
	}
	if o.Polling == 0 {
		o.Polling = 10
	}
	if o.Header == 0 {
		o.Header = 128
	}
	target := netip.AddrPortFrom(h.CollectorAddr, uint16(o.CollectorPort)).String()
	_, err := l.Vsctl(h, "--", "--id=@s", "create", "sflow",
		"agent="+h.Addr.String(),
		fmt.Sprintf("target=%q", target),
		fmt.Sprintf("header=%d", o.Header),
		fmt.Sprintf("sampling=%d", o.Sampling),
		fmt.Sprintf("polling=%d", o.Polling),
		"--", "set", "bridge", h.Bridge, "sflow=@s")
	if err != nil {
		return fmt.Errorf("sflow on %s: %w", h.Name, err)
	}
	h.mu.Lock()
	h.sflow = &o
	h.mu.Unlock()
	return nil
}

// EnableIPFIX points the host's bridge IPFIX export at CollectorAddr:CollectorPort.
func (l *Lab) EnableIPFIX(h *Host, o IPFIXOptions) error {
	if o.CollectorPort <= 0 {
		return fmt.Errorf("ipfix: CollectorPort required")
	}
	if o.Sampling == 0 {
		o.Sampling = 1
	}
	if o.ObsDomainID == 0 {
		o.ObsDomainID = uint32(100 + h.num)
	}
	if o.ObsPointID == 0 {
		o.ObsPointID = 1
	}
	if o.CacheActiveTimeout == 0 {
		o.CacheActiveTimeout = 2
	}
	if o.CacheMaxFlows == 0 {
		o.CacheMaxFlows = 1000
	}
	target := netip.AddrPortFrom(h.CollectorAddr, uint16(o.CollectorPort)).String()
	_, err := l.Vsctl(h, "--", "set", "bridge", h.Bridge, "ipfix=@i",
		"--", "--id=@i", "create", "IPFIX",
		fmt.Sprintf("targets=%q", target),
		fmt.Sprintf("sampling=%d", o.Sampling),
		fmt.Sprintf("obs_domain_id=%d", o.ObsDomainID),
		fmt.Sprintf("obs_point_id=%d", o.ObsPointID),
		fmt.Sprintf("cache_active_timeout=%d", o.CacheActiveTimeout),
		fmt.Sprintf("cache_max_flows=%d", o.CacheMaxFlows))
	if err != nil {
		return fmt.Errorf("ipfix on %s: %w", h.Name, err)
	}
	h.mu.Lock()
	h.ipfix = &o
	h.obsDomainID = o.ObsDomainID
	h.mu.Unlock()
	return nil
}

// DisableExport removes the host bridge's sFlow and IPFIX configuration.
func (l *Lab) DisableExport(h *Host) error {
	_, err := l.Vsctl(h, "clear", "bridge", h.Bridge, "sflow", "ipfix")
	return err
}

// Vsctl runs ovs-vsctl against the host's database.
func (l *Lab) Vsctl(h *Host, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--db=unix:" + filepath.Join(h.Dir, "db.sock"), "--timeout=20"}, args...)
	return runEnv(ctx, h.env(), "ovs-vsctl", full...)
}

// Appctl runs ovs-appctl against the host's ovs-vswitchd.
func (l *Lab) Appctl(h *Host, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--target=" + filepath.Join(h.Dir, "vswitchd.ctl"), "--timeout=20"}, args...)
	return runEnv(ctx, h.env(), "ovs-appctl", full...)
}

// Ofctl runs ovs-ofctl against the host's bridge (its management socket
// in the host's dir), e.g. Ofctl(h, "add-flow", h.Bridge, "priority=100,tcp,tp_dst=7777,actions=drop").
func (l *Lab) Ofctl(h *Host, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.nsRun(ctx, h.Netns, h.env(), "ovs-ofctl", append([]string{"--timeout=20"}, args...)...)
}

// Exec runs a command inside a VM.
func (l *Lab) Exec(ctx context.Context, v *VM, name string, args ...string) ([]byte, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", v.Netns, name}, args...)...)
}

func (l *Lab) nsRun(ctx context.Context, ns string, env []string, name string, args ...string) ([]byte, error) {
	return runEnv(ctx, env, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runEnv(ctx, nil, name, args...)
}

func runEnv(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()+" "+stdout.String()))
	}
	return stdout.Bytes(), nil
}

// Diagnostics logs the OVS state and log tails of every host (called on failure).
func (l *Lab) Diagnostics() {
	for _, h := range l.hosts {
		if out, err := l.Vsctl(h, "show"); err == nil {
			l.t.Logf("ovslab %s: ovs-vsctl show:\n%s", h.Name, out)
		}
		if out, err := l.Appctl(h, "dpctl/show", "-s"); err == nil {
			l.t.Logf("ovslab %s: datapath:\n%s", h.Name, limit(out, 4000))
		}
		if out, err := l.Appctl(h, "dpctl/dump-flows"); err == nil {
			l.t.Logf("ovslab %s: datapath flows:\n%s", h.Name, limit(out, 4000))
		}
		if b, err := os.ReadFile(filepath.Join(h.Dir, "vswitchd.log")); err == nil {
			l.t.Logf("ovslab %s: vswitchd.log tail:\n%s", h.Name, tail(b, 3000))
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func limit(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func (l *Lab) cleanup() {
	if l.t.Failed() {
		l.Diagnostics()
	}
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		if p.Process != nil {
			_ = p.Process.Kill()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(l.hosts) - 1; i >= 0; i-- {
		h := l.hosts[i]
		// Stop the daemons: vswitchd first, then the database.
		for _, d := range []string{"vswitchd", "ovsdb"} {
			stopPidfile(filepath.Join(h.Dir, d+".pid"))
		}
	}
	for _, v := range l.vms {
		if _, err := run(ctx, "ip", "netns", "del", v.Netns); err != nil {
			l.t.Logf("ovslab cleanup: %v", err)
		}
	}
	for _, h := range l.hosts {
		_, _ = run(ctx, "ip", "link", "del", h.Uplink) // also gone with the namespace
		if _, err := run(ctx, "ip", "netns", "del", h.Netns); err != nil {
			l.t.Logf("ovslab cleanup: %v", err)
		}
	}
	_ = os.Remove(filepath.Join(registryDir, l.ID))
	if l.t.Failed() && os.Getenv("OVSLAB_KEEP") != "" {
		l.t.Logf("ovslab: keeping %s", l.Dir)
		return
	}
	_ = os.RemoveAll(l.Dir)
}

// registryDir lists the running labs (id -> "pid dir"), so that a lab left
// behind by a killed test process (go test -timeout) is removed by the next
// New.
const registryDir = "/run/vmflow-ovslab"

func register(l *Lab) error {
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(registryDir, l.ID), []byte(fmt.Sprintf("%d %s\n", os.Getpid(), l.Dir)), 0o644)
}

// sweepStale removes the labs whose test process is gone: their daemons,
// namespaces, uplinks and dirs.
func sweepStale(t testing.TB) {
	ents, err := os.ReadDir(registryDir)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range ents {
		id := e.Name()
		b, err := os.ReadFile(filepath.Join(registryDir, id))
		if err != nil {
			continue
		}
		var pid int
		var dir string
		if _, err := fmt.Sscanf(string(b), "%d %s", &pid, &dir); err != nil || alive(pid) {
			continue
		}
		t.Logf("ovslab: removing lab %s left by dead process %d", id, pid)
		if hosts, err := os.ReadDir(dir); err == nil && strings.HasPrefix(filepath.Base(dir), "ovslab-") {
			for _, h := range hosts {
				stopPidfile(filepath.Join(dir, h.Name(), "vswitchd.pid"))
				stopPidfile(filepath.Join(dir, h.Name(), "ovsdb.pid"))
			}
			_ = os.RemoveAll(dir)
		}
		if out, err := run(ctx, "ip", "netns", "list"); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "vmflab"+id+"-") {
					_, _ = run(ctx, "ip", "netns", "del", f[0])
				}
			}
		}
		_ = os.Remove(filepath.Join(registryDir, id))
	}
}

// stopPidfile sends SIGTERM to the process named in a pid file and waits
// up to 5 s for it to go, then kills it.
func stopPidfile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	_ = p.Signal(sigterm)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = p.Kill()
}
