package libvirt

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/testenv/libvirtd"
)

// snapRecorder keeps every snapshot a source publishes.
type snapRecorder struct {
	mu    sync.Mutex
	snaps []enrich.Snapshot
	ch    chan struct{}
}

func newRecorder() *snapRecorder { return &snapRecorder{ch: make(chan struct{}, 1)} }

func (r *snapRecorder) publish(s enrich.Snapshot) {
	r.mu.Lock()
	r.snaps = append(r.snaps, s)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *snapRecorder) last() (enrich.Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return enrich.Snapshot{}, false
	}
	return r.snaps[len(r.snaps)-1], true
}

// waitFor waits until the latest snapshot satisfies cond.
func (r *snapRecorder) waitFor(t *testing.T, within time.Duration, what string, cond func(enrich.Snapshot) bool) enrich.Snapshot {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		if s, ok := r.last(); ok && cond(s) {
			return s
		}
		select {
		case <-r.ch:
		case <-deadline.C:
			s, _ := r.last()
			t.Fatalf("within %s: %s; last snapshot: stale=%v vms=%v", within, what, s.Stale, vmNames(s))
		}
	}
}

func vmNames(s enrich.Snapshot) []string {
	var out []string
	for _, vm := range s.VMs {
		out = append(out, vm.Name+"("+vm.State+")")
	}
	return out
}

func findVM(s enrich.Snapshot, name string) (enrich.VM, bool) {
	for _, vm := range s.VMs {
		if vm.Name == name {
			return vm, true
		}
	}
	return enrich.VM{}, false
}

func nodeFixture(t testing.TB) string {
	p, err := filepath.Abs(fixtureDir + "node.xml")
	require.NoError(t, err)
	return p
}

func testConfig() Config {
	c := DefaultConfig()
	c.ReconnectMin = 100 * time.Millisecond
	c.ReconnectMax = 500 * time.Millisecond
	c.KeepaliveInterval = time.Second
	c.KeepaliveCount = 3
	c.CallTimeout = 10 * time.Second
	return c
}

func startSource(t *testing.T, uri string, cfg Config) (*Source, *snapRecorder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Connections = []ConnConfig{{URI: uri}}
	srcs, err := New(cfg, reg)
	require.NoError(t, err)
	require.Len(t, srcs, 1)
	src := srcs[0].(*Source)
	rec := newRecorder()
	require.NoError(t, src.Start(context.Background(), rec.publish))
	t.Cleanup(src.Stop)
	return src, rec, reg
}

type wantIface struct{ mac, tap, bridge, ifaceID string }
type wantVM struct {
	name, uuid, state, tenant, tenantName string
	vcpus                                 int
	memKiB                                uint64
	ifaces                                []wantIface
}

// The truth of testdata/libvirt/node.xml, written out by hand.
var nodeTruth = []wantVM{
	{"batch-7", "a1b2c3d4-0003-4000-8000-000000000003", "shutoff", "", "", 1, 1048576,
		[]wantIface{{"52:54:00:aa:00:07", "tapbatch-07", "br-int", "5c0e1f3a-3333-4000-8000-000000000007"}}},
	{"instance-00000001", "a1b2c3d4-0001-4000-8000-000000000001", "running", "9f1c2b7e-6d4a-4c3e-8b2a-1d0e5f6a7b01", "shop", 2, 2097152,
		[]wantIface{
			{"fa:16:3e:00:00:01", "tap1a2b3c4d-01", "br-int", "5c0e1f3a-1111-4000-8000-000000000001"},
			{"fa:16:3e:00:00:02", "tap1a2b3c4d-02", "br-int", "5c0e1f3a-1111-4000-8000-000000000002"}}},
	{"instance-00000002", "a1b2c3d4-0002-4000-8000-000000000002", "running", "3e2d1c0b-5a49-4e38-9c27-0f1e2d3c4b02", "billing", 4, 4194304,
		[]wantIface{{"fa:16:3e:00:00:03", "tap2b3c4d5e-03", "br-int", "5c0e1f3a-2222-4000-8000-000000000003"}}},
	{"plain-3", "a1b2c3d4-0004-4000-8000-000000000004", "running", "", "", 1, 524288,
		[]wantIface{{"52:54:00:aa:00:08", "tapplain-08", "br0", ""}}},
}

// (a) and (d): the published snapshot matches the node XML, and carries the
// test driver's interface addresses (the same 192.168.0.1 on several VMs).
func TestLibvirtSnapshotMatchesNodeXML(t *testing.T) {
	d := libvirtd.Start(t)
	uri := d.URI("test://" + nodeFixture(t))
	src, rec, reg := startSource(t, uri, testConfig())
	snap := rec.waitFor(t, 10*time.Second, "first snapshot", func(s enrich.Snapshot) bool { return len(s.VMs) > 0 })

	hostname, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, "libvirt:"+uri, snap.Source)
	assert.False(t, snap.Stale)
	require.Len(t, snap.Hosts, 1)
	assert.Equal(t, hostname, snap.Hosts[0].Name, "host is the daemon's CONNECT_GET_HOSTNAME")

	require.Len(t, snap.VMs, len(nodeTruth), "VMs: %v", vmNames(snap))
	for i, w := range nodeTruth {
		vm := snap.VMs[i]
		assert.Equal(t, w.name, vm.Name)
		assert.Equal(t, w.uuid, vm.UUID, w.name)
		assert.Equal(t, w.state, vm.State, w.name)
		assert.Equal(t, w.tenant, vm.Tenant, w.name)
		assert.Equal(t, w.tenantName, vm.TenantName, w.name)
		assert.Equal(t, w.vcpus, vm.VCPUs, w.name)
		assert.Equal(t, w.memKiB, vm.MemoryKiB, w.name)
		assert.Equal(t, hostname, vm.Host, w.name)
		assert.Equal(t, snap.Source, vm.Source, w.name)
		assert.False(t, vm.Stale)
		require.Len(t, vm.Interfaces, len(w.ifaces), w.name)
		for j, wi := range w.ifaces {
			ifc := vm.Interfaces[j]
			assert.Equal(t, wi.mac, ifc.MACString, w.name)
			assert.Equal(t, mac(wi.mac), ifc.MAC, w.name)
			assert.Equal(t, wi.tap, ifc.Tap, w.name)
			assert.Equal(t, wi.bridge, ifc.Bridge, w.name)
			assert.Equal(t, wi.ifaceID, ifc.InterfaceID, w.name)
			if wi.ifaceID != "" {
				assert.Equal(t, wi.tap, ifc.OVSPort, w.name)
			}
		}
	}
	web, _ := findVM(snap, "instance-00000001")
	assert.Equal(t, "web-1", web.Labels[LabelNovaName])
	assert.Equal(t, "m1.small", web.Labels[LabelNovaFlavor])
	assert.Equal(t, "alice", web.Labels[LabelNovaUser])

	// (d) Addresses: the test driver answers 192.168.0.<n> (n = interface
	// index + 1) for every running domain. Lease is asked first; agent and
	// ARP return the same addresses and are not repeated.
	owners := map[netip.Addr][]string{}
	for _, vm := range snap.VMs {
		for _, ifc := range vm.Interfaces {
			if vm.State != "running" {
				assert.Empty(t, ifc.Addrs, "a shut-off domain has no addresses")
			}
			for _, a := range ifc.Addrs {
				assert.Equal(t, enrich.AddrLease, a.Source)
				owners[a.IP] = append(owners[a.IP], vm.Name)
			}
		}
	}
	sort.Strings(owners[netip.MustParseAddr("192.168.0.1")])
	assert.Equal(t, []string{"instance-00000001", "instance-00000002", "plain-3"}, owners[netip.MustParseAddr("192.168.0.1")],
		"the same IP on three VMs: an IP conflict the Enricher must report")
	assert.Equal(t, []string{"instance-00000001"}, owners[netip.MustParseAddr("192.168.0.2")])

	st := src.Status()
	assert.Equal(t, "connected", st.State)
	assert.Equal(t, "libvirt", st.Kind)
	assert.Equal(t, 4, st.VMs)
	assert.False(t, st.LastSync.IsZero())
	assert.Equal(t, 1.0, testutil.ToFloat64(src.m.connected.WithLabelValues(uri)))
	n, err := testutil.GatherAndCount(reg, "vmflow_libvirt_rpc_duration_seconds")
	require.NoError(t, err)
	assert.Positive(t, n)
}

// (d) continued: with agent asked first, the same addresses are flagged "agent".
func TestLibvirtAddressSourceOrder(t *testing.T) {
	d := libvirtd.Start(t)
	cfg := testConfig()
	cfg.AddressSources = []string{AddrSourceAgent, AddrSourceLease}
	_, rec, _ := startSource(t, d.URI("test://"+nodeFixture(t)), cfg)
	snap := rec.waitFor(t, 10*time.Second, "first snapshot", func(s enrich.Snapshot) bool { return len(s.VMs) == 4 })
	vm, ok := findVM(snap, "instance-00000002")
	require.True(t, ok)
	require.Len(t, vm.Interfaces[0].Addrs, 1)
	assert.Equal(t, enrich.Addr{IP: netip.MustParseAddr("192.168.0.1"), Source: enrich.AddrAgent}, vm.Interfaces[0].Addrs[0])
}

// eventDomainXML is testdata/libvirt/event-domain.xml: a domain with an OVS
// virtualport and Nova metadata, defined and removed by the event tests.
var eventDomainXML = mustReadFile("../../testdata/libvirt/event-domain.xml")

// (b) define, start, destroy and undefine show up within one second through
// events alone (resync interval one hour). test:///default is shared by all
// connections to a daemon (a test:///path file is private to each), so
// another connection acts like an operator's virsh.
func TestLibvirtEventsWithinOneSecond(t *testing.T) {
	d := libvirtd.Start(t)
	uri := d.URI("test:///default")
	cfg := testConfig()
	cfg.ResyncInterval = time.Hour
	src, rec, _ := startSource(t, uri, cfg)
	rec.waitFor(t, 10*time.Second, "initial sync", func(s enrich.Snapshot) bool { return len(s.VMs) > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op, err := Dial(ctx, uri, DialOptions{})
	require.NoError(t, err)
	defer op.Close()

	stateOf := func(want string) func(enrich.Snapshot) bool {
		return func(s enrich.Snapshot) bool {
			vm, ok := findVM(s, "ev-vm")
			return ok && vm.State == want
		}
	}
	dom, err := op.DefineXML(ctx, eventDomainXML)
	require.NoError(t, err)
	snap := rec.waitFor(t, time.Second, "defined domain appears", stateOf("shutoff"))
	vm, _ := findVM(snap, "ev-vm")
	assert.Equal(t, "aaaa0000-0000-4000-8000-00000000e0e0", vm.Tenant)
	require.Len(t, vm.Interfaces, 1)
	assert.Equal(t, "e0e0e0e0-1111-4000-8000-00000000e001", vm.Interfaces[0].InterfaceID)
	assert.Empty(t, vm.Interfaces[0].Addrs)

	require.NoError(t, op.Create(ctx, dom))
	snap = rec.waitFor(t, time.Second, "started domain is running", stateOf("running"))
	vm, _ = findVM(snap, "ev-vm")
	assert.NotEmpty(t, vm.Interfaces[0].Addrs, "a running domain's addresses are fetched on the event")

	require.NoError(t, op.Destroy(ctx, dom))
	rec.waitFor(t, time.Second, "destroyed domain is shut off", stateOf("shutoff"))

	require.NoError(t, op.Undefine(ctx, dom))
	rec.waitFor(t, time.Second, "undefined domain is gone", func(s enrich.Snapshot) bool {
		_, ok := findVM(s, "ev-vm")
		return !ok && len(s.VMs) > 0
	})

	assert.Equal(t, 1.0, testutil.ToFloat64(src.m.resyncs.WithLabelValues(uri)), "events alone, no resync")
	assert.GreaterOrEqual(t, src.Status().Events, uint64(4))
}

// (c) killing libvirtd keeps the VMs, flagged stale; restarting it (same
// socket) brings the source back without restarting anything.
func TestLibvirtDaemonRestart(t *testing.T) {
	d := libvirtd.Start(t)
	uri := d.URI("test://" + nodeFixture(t))
	src, rec, _ := startSource(t, uri, testConfig())
	rec.waitFor(t, 10*time.Second, "initial sync", func(s enrich.Snapshot) bool { return len(s.VMs) == 4 && !s.Stale })

	d.Kill()
	snap := rec.waitFor(t, 5*time.Second, "stale snapshot after the daemon died", func(s enrich.Snapshot) bool { return s.Stale })
	require.Len(t, snap.VMs, 4, "VMs kept")
	for _, vm := range snap.VMs {
		assert.True(t, vm.Stale, vm.Name)
		assert.NotEmpty(t, vm.Interfaces, vm.Name)
	}
	st := src.Status()
	assert.NotEqual(t, "connected", st.State)
	assert.Positive(t, st.Errors)
	assert.NotEmpty(t, st.LastError)
	syncBefore := st.LastSync

	time.Sleep(600 * time.Millisecond) // let a few reconnects fail
	d.Restart()
	snap = rec.waitFor(t, 10*time.Second, "fresh snapshot after restart", func(s enrich.Snapshot) bool { return !s.Stale })
	assert.Len(t, snap.VMs, 4)
	for _, vm := range snap.VMs {
		assert.False(t, vm.Stale)
	}
	st = src.Status()
	assert.Equal(t, "connected", st.State)
	assert.True(t, st.LastSync.After(syncBefore))
	assert.Positive(t, testutil.ToFloat64(src.m.reconnects.WithLabelValues(uri)))
}

// A frozen daemon (SIGSTOP: sockets open, nothing answers) is found dead by
// keepalive; its VMs go stale and come back fresh once it thaws.
func TestLibvirtFrozenDaemonGoesStale(t *testing.T) {
	d := libvirtd.Start(t)
	cfg := testConfig()
	cfg.KeepaliveInterval = 200 * time.Millisecond
	cfg.KeepaliveCount = 3
	cfg.CallTimeout = 2 * time.Second
	src, rec, _ := startSource(t, d.URI("test://"+nodeFixture(t)), cfg)
	rec.waitFor(t, 10*time.Second, "initial sync", func(s enrich.Snapshot) bool { return len(s.VMs) == 4 && !s.Stale })

	d.Pause()
	snap := rec.waitFor(t, 5*time.Second, "stale after the daemon froze", func(s enrich.Snapshot) bool { return s.Stale })
	assert.Len(t, snap.VMs, 4)
	assert.Contains(t, src.Status().LastError, "keepalive")
	d.Resume()
	snap = rec.waitFor(t, 10*time.Second, "fresh after the daemon thawed", func(s enrich.Snapshot) bool { return !s.Stale })
	assert.Len(t, snap.VMs, 4)
}

// With a one-slot event queue a burst of defines overflows it: each drop is
// counted and forces a resync, so the final view is still complete.
func TestLibvirtEventOverflowResyncs(t *testing.T) {
	d := libvirtd.Start(t)
	uri := d.URI("test:///default")
	cfg := testConfig()
	cfg.ResyncInterval = time.Hour
	cfg.EventBuffer = 1
	src, rec, _ := startSource(t, uri, cfg)
	rec.waitFor(t, 10*time.Second, "initial sync", func(s enrich.Snapshot) bool { return len(s.VMs) > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op, err := Dial(ctx, uri, DialOptions{})
	require.NoError(t, err)
	defer op.Close()
	const n = 40
	for i := 0; i < n; i++ {
		x := strings.Replace(eventDomainXML, "<name>ev-vm</name>", fmt.Sprintf("<name>burst-%02d</name>", i), 1)
		x = strings.Replace(x, "00000000e001</uuid>", fmt.Sprintf("%012x</uuid>", 0xb000+i), 1)
		x = strings.Replace(x, "fa:16:3e:ee:00:01", fmt.Sprintf("fa:16:3e:ee:01:%02x", i), 1)
		_, err := op.DefineXML(ctx, x)
		require.NoError(t, err)
	}
	rec.waitFor(t, 5*time.Second, "all burst domains present", func(s enrich.Snapshot) bool {
		c := 0
		for _, vm := range s.VMs {
			if strings.HasPrefix(vm.Name, "burst-") {
				c++
			}
		}
		return c == n
	})
	dropped := testutil.ToFloat64(src.m.eventsDropped.WithLabelValues(uri))
	resyncs := testutil.ToFloat64(src.m.resyncs.WithLabelValues(uri))
	t.Logf("events dropped %v, resyncs %v", dropped, resyncs)
	if dropped > 0 {
		assert.GreaterOrEqual(t, resyncs, 2.0, "a dropped event forces a resync")
	}
}

// writeBigNode writes a test-driver node file with n running domains.
func writeBigNode(tb testing.TB, dir string, n int) string {
	var b strings.Builder
	b.WriteString("<node>\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<domain type='test'><name>vm-%05d</name><uuid>b0000000-0000-4000-8000-%012x</uuid>
<metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"><nova:name>vm%d</nova:name>
<nova:owner><nova:project uuid="p-%d">proj%d</nova:project></nova:owner></nova:instance></metadata>
<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>
<interface type='bridge'><mac address='fa:16:3e:%02x:%02x:%02x'/><source bridge='br-int'/>
<virtualport type='openvswitch'><parameters interfaceid='c0000000-0000-4000-8000-%012x'/></virtualport>
<target dev='tap%05d'/></interface></devices></domain>
`, i, i, i, i%50, i%50, (i>>16)&0xff, (i>>8)&0xff, i&0xff, i, i)
	}
	b.WriteString("</node>\n")
	p := filepath.Join(dir, "node10k.xml")
	require.NoError(tb, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

// BenchmarkResync10k times a full resync (list + XML + state, and with the
// default address sources also three address queries per domain) of 10,000
// domains through a real libvirtd (test driver). Run it with -benchtime=1x:
// the test driver itself needs tens of seconds to load a 10k-domain node
// file on connect (not timed).
func BenchmarkResync10k(b *testing.B) {
	d := libvirtd.Start(b)
	node := writeBigNode(b, d.Dir, 10000)
	uri := d.URI("test://" + node)
	ctx := context.Background()
	t0 := time.Now()
	cl, err := Dial(ctx, uri, DialOptions{CallTimeout: 5 * time.Minute})
	require.NoError(b, err)
	defer cl.Close()
	b.Logf("connect (daemon loads the 10k-domain node file): %s", time.Since(t0))
	for _, bc := range []struct {
		name    string
		sources []string
	}{{"xml+state", nil}, {"xml+state+addrs", DefaultConfig().AddressSources}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.AddressSources = bc.sources
			s := NewSource(ConnConfig{URI: uri}, cfg, nil)
			s.host = "bench"
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.resync(ctx, cl); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/10000, "cpu-µs/domain")
			if len(s.vms) != 10000 {
				b.Fatalf("resync found %d domains", len(s.vms))
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/10000, "µs/domain")
		})
	}
}

// BenchmarkParse10kDomains is the client-side share of a 10k resync:
// parsing and mapping 10,000 domain XMLs (as the daemon returns them).
func BenchmarkParse10kDomains(b *testing.B) {
	dir := b.TempDir()
	doc, err := os.ReadFile(writeBigNode(b, dir, 10000))
	require.NoError(b, err)
	var docs [][]byte
	for _, part := range strings.Split(string(doc), "<domain ")[1:] {
		docs = append(docs, []byte("<domain "+strings.TrimSuffix(strings.TrimSpace(part), "</node>")))
	}
	require.Len(b, docs, 10000)
	m := NewMapper(DefaultConfig())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, d := range docs {
			dx, err := ParseDomainXML(d)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.ToVM(dx, "hv"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/10000, "µs/domain")
}

func mustReadFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}
