package enrich

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeSource publishes whatever the test hands it.
type fakeSource struct {
	name    string
	mu      sync.Mutex
	publish func(Snapshot)
	initial *Snapshot
}

func (f *fakeSource) Name() string { return f.name }
func (f *fakeSource) Start(ctx context.Context, publish func(Snapshot)) error {
	f.mu.Lock()
	f.publish = publish
	f.mu.Unlock()
	if f.initial != nil {
		publish(*f.initial)
	}
	return nil
}
func (f *fakeSource) Stop() {}
func (f *fakeSource) Status() SourceStatus {
	return SourceStatus{Name: f.name, Kind: "fake", State: "connected"}
}
func (f *fakeSource) send(s Snapshot) {
	f.mu.Lock()
	p := f.publish
	f.mu.Unlock()
	p(s)
}

func mac(last byte) [6]byte { return [6]byte{0x52, 0x54, 0, 0, 0, last} }

func vm(name, uuid, host string, m byte, ips ...string) VM {
	it := Interface{MAC: mac(m), MACString: FormatMAC(mac(m)), Tap: fmt.Sprintf("vnet%d", m)}
	for _, ip := range ips {
		it.Addrs = append(it.Addrs, Addr{IP: netip.MustParseAddr(ip), Source: AddrLease})
	}
	return VM{Name: name, UUID: uuid, Host: host, State: "running", Interfaces: []Interface{it}}
}

func newTestEnricher(t *testing.T, merge string, reg prometheus.Registerer) *Enricher {
	t.Helper()
	e, err := New(Config{Merge: merge}, reg)
	require.NoError(t, err)
	return e
}

func TestIndexLookups(t *testing.T) {
	e := newTestEnricher(t, MergeLibvirtFirst, nil)
	assert.NotNil(t, e.Index(), "empty index before the first snapshot")
	_, ok := e.Index().ByMAC(mac(1))
	assert.False(t, ok)

	v1 := vm("a", "", "hv1", 1, "10.0.0.1")
	v2 := vm("b", "", "hv2", 2, "10.0.0.1") // same IP in another VNI
	v2.Interfaces[0].VNI = 7
	e.Publish(Snapshot{Source: "static", VMs: []VM{v1, v2}, Hosts: []Host{
		{Name: "hv1", Exporters: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
		{Name: "hv2", ExporterDomains: []ExporterID{{Addr: netip.MustParseAddr("127.0.0.1"), Domain: 2}}},
	}})
	x := e.Index()
	p, ok := x.ByMAC(mac(2))
	require.True(t, ok)
	assert.Equal(t, "b", p.VM.Name)
	assert.Equal(t, "52:54:00:00:00:02", p.Iface.MACString)

	p, ok = x.ByIP(0, netip.MustParseAddr("10.0.0.1"))
	require.True(t, ok)
	assert.Equal(t, "a", p.VM.Name)
	p, ok = x.ByIP(7, netip.MustParseAddr("10.0.0.1"))
	require.True(t, ok)
	assert.Equal(t, "b", p.VM.Name, "per-VNI lookup")
	p, ok = x.ByIP(9, netip.MustParseAddr("10.0.0.1"))
	require.True(t, ok)
	assert.Equal(t, "a", p.VM.Name, "unknown VNI falls back to VNI 0")
	assert.Empty(t, x.Conflicts(), "same IP in two VNIs is no conflict")

	h, ok := x.HostOfExporter(netip.MustParseAddr("192.0.2.1"))
	assert.True(t, ok)
	assert.Equal(t, "hv1", h)
	h, ok = x.HostOfObservation(netip.MustParseAddr("127.0.0.1"), 2)
	assert.True(t, ok)
	assert.Equal(t, "hv2", h)
	_, ok = x.HostOfObservation(netip.MustParseAddr("127.0.0.1"), 3)
	assert.False(t, ok)
	assert.True(t, x.HostObserved("hv1"))
	assert.False(t, x.HostObserved("hv3"))

	p, ok = x.ByTap("hv2", "vnet2")
	require.True(t, ok)
	assert.Equal(t, "b", p.VM.Name)
	_, ok = x.ByTap("hv1", "vnet2")
	assert.False(t, ok, "taps are per host")

	assert.Equal(t, p.VM, x.VM(p.VM.ID))
	assert.Len(t, x.VMs(), 2)
	assert.Equal(t, "a", x.VMs()[0].Name)
	assert.Len(t, x.Hosts(), 2)
}

func TestMergeLibvirtFirstAndStaticFirst(t *testing.T) {
	const uuid = "6f1c2b9e-0000-4000-8000-000000000001"
	static := vm("web1", "", "hv-static", 1, "10.0.0.1") // name only: joins the UUID identity
	static.Tenant = "acme"
	static.Labels = map[string]string{"role": "web"}
	lv := vm("web1", uuid, "hv-libvirt", 1)
	lv.Source = "libvirt:qemu:///system"
	lv.Labels = map[string]string{"zone": "a"}

	for _, tc := range []struct {
		merge, host, source string
	}{
		{MergeLibvirtFirst, "hv-libvirt", "libvirt:qemu:///system"},
		{MergeStaticFirst, "hv-static", "static"},
	} {
		t.Run(tc.merge, func(t *testing.T) {
			e := newTestEnricher(t, tc.merge, nil)
			e.Publish(Snapshot{Source: "static", VMs: []VM{static}})
			idBefore := e.Index().VMs()[0].ID
			e.Publish(Snapshot{Source: "libvirt:qemu:///system", VMs: []VM{lv}})
			x := e.Index()
			require.Len(t, x.VMs(), 1, "one VM per identity")
			got := x.VMs()[0]
			assert.Equal(t, idBefore, got.ID, "a VM known by name keeps its id when its UUID shows up")
			assert.Equal(t, tc.host, got.Host)
			assert.Equal(t, tc.source, got.Source)
			assert.Equal(t, uuid, got.UUID)
			assert.Equal(t, "acme", got.Tenant, "empty fields filled from the other source")
			assert.Equal(t, map[string]string{"role": "web", "zone": "a"}, got.Labels)
			p, ok := x.ByIP(0, netip.MustParseAddr("10.0.0.1"))
			require.True(t, ok, "addresses are the union per MAC")
			assert.Equal(t, got, p.VM)
			assert.Empty(t, x.Conflicts())
		})
	}
}

func TestConflictsAreReportedWithDeterministicWinner(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newTestEnricher(t, MergeLibvirtFirst, reg)
	off := vm("old", "", "hv1", 1, "10.0.0.9")
	off.State = "shutoff"
	on := vm("new", "", "hv1", 1, "10.0.0.9") // clone with the same MAC and IP
	on.Interfaces[0].Tap = "vnet9"
	z1 := vm("zz", "", "hv1", 3, "192.168.0.1")
	a1 := vm("aa", "", "hv1", 4, "192.168.0.1")
	e.Publish(Snapshot{Source: "static", VMs: []VM{off, on, z1, a1}})
	x := e.Index()

	p, _ := x.ByMAC(mac(1))
	assert.Equal(t, "new", p.VM.Name, "running VM wins the MAC over a shut-off one")
	p, _ = x.ByIP(0, netip.MustParseAddr("10.0.0.9"))
	assert.Equal(t, "new", p.VM.Name)
	p, _ = x.ByIP(0, netip.MustParseAddr("192.168.0.1"))
	assert.Equal(t, "aa", p.VM.Name, "ties go to the lower name")

	assert.Equal(t, []Conflict{
		{Kind: "ip", Key: "10.0.0.9", VMs: []string{"new", "old"}, Chose: "new", Reason: "new is running, old is shutoff"},
		{Kind: "ip", Key: "192.168.0.1", VMs: []string{"aa", "zz"}, Chose: "aa", Reason: "aa and zz have equal standing (both running, from static); the lower name wins"},
		{Kind: "mac", Key: "52:54:00:00:00:01", VMs: []string{"new", "old"}, Chose: "new", Reason: "new is running, old is shutoff"},
	}, x.Conflicts())
	assert.Equal(t, 2.0, testutil.ToFloat64(e.m.conflicts.WithLabelValues("ip")))
	assert.Equal(t, 1.0, testutil.ToFloat64(e.m.conflicts.WithLabelValues("mac")))
	assert.Equal(t, 4.0, testutil.ToFloat64(e.m.vms))

	// Stale loses to fresh, whatever the names.
	st := vm("aaa", "", "hv2", 5)
	fresh := vm("zzz", "", "hv1", 5)
	e.Publish(Snapshot{Source: "libvirt:hv2", VMs: []VM{st}, Stale: true})
	e.Publish(Snapshot{Source: "libvirt:hv1", VMs: []VM{fresh}})
	p, _ = e.Index().ByMAC(mac(5))
	assert.Equal(t, "zzz", p.VM.Name)
	for _, v := range e.Index().VMs() {
		assert.Equal(t, v.Name == "aaa", v.Stale, "stale flag carried onto %s", v.Name)
	}
}

func TestLearnedIPLosesToLease(t *testing.T) {
	e := newTestEnricher(t, MergeLibvirtFirst, nil)
	a := vm("a", "", "hv1", 1)
	a.Interfaces[0].Addrs = []Addr{{IP: netip.MustParseAddr("10.1.1.1"), Source: AddrLearned}}
	b := vm("b", "", "hv1", 2, "10.1.1.1")
	e.Publish(Snapshot{Source: "libvirt:x", VMs: []VM{a, b}})
	p, _ := e.Index().ByIP(0, netip.MustParseAddr("10.1.1.1"))
	assert.Equal(t, "b", p.VM.Name)
}

func TestIDsStableAndNeverReused(t *testing.T) {
	e := newTestEnricher(t, MergeLibvirtFirst, nil)
	a := vm("a", "aaaaaaaa-0000-4000-8000-000000000001", "hv1", 1)
	b := vm("b", "", "hv1", 2)
	e.Publish(Snapshot{Source: "static", VMs: []VM{a, b}})
	ids := map[string]VMID{}
	for _, v := range e.Index().VMs() {
		ids[v.Name] = v.ID
		assert.NotZero(t, v.ID)
	}
	assert.NotEqual(t, ids["a"], ids["b"])

	// a leaves; a new VM with a's name but another UUID arrives.
	a2 := vm("a", "aaaaaaaa-0000-4000-8000-000000000002", "hv1", 3)
	e.Publish(Snapshot{Source: "static", VMs: []VM{b, a2}})
	x := e.Index()
	assert.Nil(t, x.VM(ids["a"]), "departed VM is not in the index")
	gone := e.Describe(ids["a"])
	require.NotNil(t, gone, "Describe still knows the departed VM")
	assert.Equal(t, "aaaaaaaa-0000-4000-8000-000000000001", gone.UUID)
	p, _ := x.ByMAC(mac(3))
	assert.NotEqual(t, ids["a"], p.VM.ID, "a new identity never reuses an old id")
	assert.NotEqual(t, ids["b"], p.VM.ID)
	p, _ = x.ByMAC(mac(2))
	assert.Equal(t, ids["b"], p.VM.ID, "ids are stable across reloads")

	// a comes back: same id.
	e.Publish(Snapshot{Source: "static", VMs: []VM{a, b, a2}})
	p, _ = e.Index().ByMAC(mac(1))
	assert.Equal(t, ids["a"], p.VM.ID)
	assert.Nil(t, e.Describe(0))
	assert.Nil(t, e.Describe(9999))
}

func TestMigrationSetsPrevHost(t *testing.T) {
	e := newTestEnricher(t, MergeLibvirtFirst, nil)
	const u = "bbbbbbbb-0000-4000-8000-000000000001"
	src := vm("m", u, "hv1", 1)
	e.Publish(Snapshot{Source: "libvirt:hv1", VMs: []VM{src}})
	id := e.Index().VMs()[0].ID

	// During the move both daemons list it: the running one wins.
	dst := vm("m", u, "hv2", 1)
	dst.State = "paused"
	e.Publish(Snapshot{Source: "libvirt:hv2", VMs: []VM{dst}})
	got := e.Index().VMs()
	require.Len(t, got, 1)
	assert.Equal(t, "hv1", got[0].Host)
	assert.Empty(t, got[0].PrevHost)

	// Switch-over: hv1 pauses, hv2 runs.
	src.State = "paused"
	dst.State = "running"
	before := time.Now()
	e.Publish(Snapshot{Source: "libvirt:hv1", VMs: []VM{src}})
	e.Publish(Snapshot{Source: "libvirt:hv2", VMs: []VM{dst}})
	v := e.Index().VMs()[0]
	assert.Equal(t, id, v.ID, "identity kept across the move")
	assert.Equal(t, "hv2", v.Host)
	assert.Equal(t, "hv1", v.PrevHost)
	assert.False(t, v.MovedAt.Before(before))

	// hv1 forgets it; the move stays recorded.
	e.Publish(Snapshot{Source: "libvirt:hv1"})
	v2 := e.Index().VMs()[0]
	assert.Equal(t, "hv1", v2.PrevHost)
	assert.Equal(t, v.MovedAt, v2.MovedAt)
}

func TestExporterClaimedByTwoHostsIsAConflict(t *testing.T) {
	e := newTestEnricher(t, MergeLibvirtFirst, nil)
	a := netip.MustParseAddr("10.9.9.9")
	e.Publish(Snapshot{Source: "static", Hosts: []Host{{Name: "hvS", Exporters: []netip.Addr{a}}}})
	e.Publish(Snapshot{Source: "libvirt:x", Hosts: []Host{{Name: "hvL", Exporters: []netip.Addr{a}}}})
	h, _ := e.Index().HostOfExporter(a)
	assert.Equal(t, "hvL", h, "libvirt-first")
	assert.Equal(t, []Conflict{{Kind: "exporter", Key: "10.9.9.9", VMs: []string{"hvL", "hvS"}, Chose: "hvL",
		Reason: "source libvirt:x lists it for hvL and ranks before source static, which lists it for hvS (enrich.merge libvirt-first)"}}, e.Index().Conflicts())
}

func TestEnricherWithSourcesAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	fs := &fakeSource{name: "libvirt:test", initial: &Snapshot{VMs: []VM{vm("x", "", "hv1", 1)}}}
	e, err := New(Config{Merge: MergeLibvirtFirst, Static: StaticConfig{File: "../testdata/inventory/lab.yaml"}}, reg, fs)
	require.NoError(t, err)
	_, err = New(Config{Merge: MergeLibvirtFirst}, nil, fs, fs)
	assert.ErrorContains(t, err, "two inventory sources")

	require.NoError(t, e.Start(context.Background()))
	defer e.Stop()
	assert.Len(t, e.Index().VMs(), 5, "both sources merged by the end of Start")
	v := e.Version()
	fs.send(Snapshot{VMs: []VM{vm("x", "", "hv1", 1), vm("y", "", "hv1", 0x42)}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, e.WaitVersion(ctx, v+1))
	assert.Len(t, e.Index().VMs(), 6)

	sts := e.Sources()
	require.Len(t, sts, 2)
	assert.Equal(t, "static", sts[0].Name)
	assert.Equal(t, "loaded", sts[0].State)

	n, err := testutil.GatherAndCount(reg, "vmflow_enrich_vms", "vmflow_enrich_reloads_total", "vmflow_enrich_reload_errors_total", "vmflow_enrich_source_up")
	require.NoError(t, err)
	assert.Equal(t, 1+2+2+2, n)
	assert.Equal(t, 6.0, testutil.ToFloat64(e.m.vms))
	assert.Equal(t, 6.0, testutil.ToFloat64(e.m.interfaces))
	assert.Equal(t, 2.0, testutil.ToFloat64(e.m.snapshots.WithLabelValues("libvirt:test")))

	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	assert.Error(t, e.WaitVersion(ctx2, e.Version()+1), "WaitVersion honours its context")
}
