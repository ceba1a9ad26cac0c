package enrich

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLearnConfigDefaultsAndValidation(t *testing.T) {
	d := DefaultConfig()
	require.NoError(t, d.Validate())
	assert.True(t, d.Learn.Enabled)
	assert.Equal(t, 10*time.Minute, d.Learn.Expiry)
	assert.Equal(t, 100000, d.Learn.Max)
	assert.Equal(t, time.Second, d.Learn.Interval)

	for _, tc := range []struct {
		mut func(*LearnConfig)
		key string
	}{
		{func(c *LearnConfig) { c.Expiry = 0 }, "enrich.learn.expiry"},
		{func(c *LearnConfig) { c.Max = 0 }, "enrich.learn.max:"},
		{func(c *LearnConfig) { c.MaxPerInterface = 0 }, "enrich.learn.max_per_interface"},
		{func(c *LearnConfig) { c.Interval = time.Millisecond }, "enrich.learn.interval"},
		{func(c *LearnConfig) { c.Interval = time.Hour }, "enrich.learn.interval"},
		{func(c *LearnConfig) { c.Queue = 0 }, "enrich.learn.queue"},
	} {
		c := DefaultConfig()
		tc.mut(&c.Learn)
		assert.ErrorContains(t, c.Validate(), tc.key)
		_, err := New(c, nil)
		assert.ErrorContains(t, err, tc.key, "New refuses it too")
	}
	off := DefaultConfig()
	off.Learn = LearnConfig{} // disabled: other fields are not checked
	require.NoError(t, off.Validate())
	e, err := New(off, nil)
	require.NoError(t, err)
	assert.Nil(t, e.Learner(), "no learner when enrich.learn.enabled is false")
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// learnEnricher is an Enricher with learning on and a settable clock.
func learnEnricher(t *testing.T, mut func(*LearnConfig)) (*Enricher, *testClock, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig()
	if mut != nil {
		mut(&cfg.Learn)
	}
	reg := prometheus.NewRegistry()
	e, err := New(cfg, reg)
	require.NoError(t, err)
	clk := &testClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	e.SetClock(clk.now)
	return e, clk, reg
}

// drain moves every queued report into the store, as the learn loop does.
func drain(e *Enricher) int {
	n := 0
	for {
		select {
		case o := <-e.learner.ch:
			e.learned.observe(o, e.now())
			n++
		default:
			return n
		}
	}
}

func port(x *Index, m byte) Port {
	p, _ := x.ByMAC(mac(m))
	return p
}

func TestLearnFilterReportsOnlyNewUnicastAddressesAndRateLimits(t *testing.T) {
	e, _, _ := learnEnricher(t, func(c *LearnConfig) { c.Interval = 100 * time.Millisecond; c.Expiry = 40 * time.Second })
	e.Publish(Snapshot{Source: "libvirt:x", VMs: []VM{vm("a", "", "hv1", 1, "10.0.0.1", "fd00::1")}})
	f := e.Learner().NewFilter()
	p := port(e.Index(), 1)
	require.NotNil(t, p.VM)
	t0 := int64(1_000_000_000_000)

	for _, s := range []string{"10.0.0.1", "fd00::1", "0.0.0.0", "::", "fe80::1", "169.254.3.4", "127.0.0.1", "224.0.0.5", "ff02::1", "255.255.255.255"} {
		f.Saw(p, netip.MustParseAddr(s), t0)
	}
	assert.Zero(t, drain(e), "inventory addresses, unspecified, link-local, loopback, multicast and broadcast are not reported")

	newIP := netip.MustParseAddr("10.0.0.50")
	f.Saw(p, newIP, t0)
	f.Saw(p, newIP, t0+int64(time.Millisecond))
	f.Saw(p, newIP, t0+int64(150*time.Millisecond))
	assert.Equal(t, 1, drain(e), "repeats within 2 × interval are not reported again")
	f.Saw(p, newIP, t0+int64(201*time.Millisecond))
	assert.Equal(t, 1, drain(e), "a missing address is reported again after 2 × interval (the first report may have been dropped)")

	// Once the index has it as learned, refreshes come every expiry/4.
	e.Publish(Snapshot{Source: "libvirt:x", VMs: []VM{vm("a", "", "hv1", 1, "10.0.0.1", "fd00::1")}})
	p = port(e.Index(), 1)
	require.Equal(t, AddrLearned, p.Iface.Addrs[len(p.Iface.Addrs)-1].Source)
	t1 := t0 + int64(201*time.Millisecond) // last report
	f.Saw(p, newIP, t1+int64(time.Second))
	f.Saw(p, newIP, t1+int64(9*time.Second))
	assert.Zero(t, drain(e), "a learned address is not re-reported within expiry/4")
	f.Saw(p, newIP, t1+int64(10*time.Second))
	assert.Equal(t, 1, drain(e), "refresh after expiry/4 keeps it alive")

	ll, _, _ := learnEnricher(t, func(c *LearnConfig) { c.LinkLocal = true })
	ll.Publish(Snapshot{Source: "libvirt:x", VMs: []VM{vm("a", "", "hv1", 1)}})
	fl := ll.Learner().NewFilter()
	fl.Saw(port(ll.Index(), 1), netip.MustParseAddr("fe80::5054:ff:fe00:1"), t0)
	assert.Equal(t, 1, drain(ll), "link-local learned when enrich.learn.link_local is set")
}

func TestLearnFilterAllocatesNothing(t *testing.T) {
	e, _, _ := learnEnricher(t, func(c *LearnConfig) { c.Queue = 1 })
	e.Publish(Snapshot{Source: "libvirt:x", VMs: []VM{vm("a", "", "hv1", 1, "10.0.0.1")}})
	f := e.Learner().NewFilter()
	p := port(e.Index(), 1)
	ips := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.77"), netip.MustParseAddr("2001:db8::7")}
	var now int64
	allocs := testing.AllocsPerRun(1000, func() {
		now += int64(time.Second) // every call reports (and the full queue drops)
		for _, ip := range ips {
			f.Saw(p, ip, now)
		}
	})
	assert.Zero(t, allocs)
}

func TestLearnedAddressesInTheIndex(t *testing.T) {
	e, clk, reg := learnEnricher(t, nil)
	b := vm("b", "", "hv1", 2, "10.0.0.2") // lease
	e.Publish(Snapshot{Source: "libvirt:x", VMs: []VM{vm("a", "", "hv1", 1, "10.0.0.1"), b}})
	x := e.Index()
	a := port(x, 1)
	l := e.Learner()
	l.Report(Observation{VM: a.VM.ID, MAC: mac(1), IP: netip.MustParseAddr("10.0.0.9")})
	l.Report(Observation{VM: a.VM.ID, MAC: mac(1), IP: netip.MustParseAddr("10.0.0.2")}) // b's lease
	l.Report(Observation{VM: a.VM.ID, MAC: mac(1), IP: netip.MustParseAddr("10.0.0.1")}) // its own: not doubled
	l.Report(Observation{VM: a.VM.ID + 100, MAC: mac(1), IP: netip.MustParseAddr("10.0.0.8")})
	require.Equal(t, 4, drain(e))
	seen := clk.now()
	assert.True(t, e.learned.needsRebuild(seen))
	e.rebuild()
	assert.False(t, e.learned.needsRebuild(seen), "nothing changed since the rebuild")
	x = e.Index()

	ai := port(x, 1).Iface
	assert.Equal(t, []Addr{
		{IP: netip.MustParseAddr("10.0.0.1"), Source: AddrLease},
		{IP: netip.MustParseAddr("10.0.0.2"), Source: AddrLearned, LastSeen: seen},
		{IP: netip.MustParseAddr("10.0.0.9"), Source: AddrLearned, LastSeen: seen},
	}, ai.Addrs, "learned addresses show on the interface; one learned for another VM id does not")
	p, ok := x.ByIP(0, netip.MustParseAddr("10.0.0.9"))
	require.True(t, ok)
	assert.Equal(t, "a", p.VM.Name, "ByIP finds a VM by a learned address")
	p, _ = x.ByIP(0, netip.MustParseAddr("10.0.0.2"))
	assert.Equal(t, "b", p.VM.Name, "a learned address never overrides another VM's lease")
	require.Len(t, x.Conflicts(), 1)
	c := x.Conflicts()[0]
	assert.Equal(t, "ip", c.Kind)
	assert.Equal(t, "10.0.0.2", c.Key)
	assert.Equal(t, []string{"a", "b"}, c.VMs)
	assert.Equal(t, "b", c.Chose)
	assert.Contains(t, c.Reason, "b has it as a lease address; a only learned it from traffic")
	assert.Equal(t, 1.0, testutil.ToFloat64(e.m.conflicts.WithLabelValues("ip")))
	assert.Equal(t, 4.0, testutil.ToFloat64(e.learned.entries), "the store keeps what it was told; only the index filters")

	// Expiry: not seen for enrich.learn.expiry, gone.
	clk.add(9 * time.Minute)
	l.Report(Observation{VM: a.VM.ID, MAC: mac(1), IP: netip.MustParseAddr("10.0.0.9")}) // refreshed
	drain(e)
	clk.add(2 * time.Minute)
	e.learned.expire(clk.now())
	require.True(t, e.learned.needsRebuild(clk.now()))
	e.rebuild()
	x = e.Index()
	ai = port(x, 1).Iface
	require.Len(t, ai.Addrs, 2)
	assert.Equal(t, "10.0.0.9", ai.Addrs[1].IP.String(), "the refreshed address stays")
	assert.Equal(t, seen.Add(9*time.Minute), ai.Addrs[1].LastSeen)
	assert.Empty(t, x.Conflicts(), "the expired address no longer conflicts")
	n, err := testutil.GatherAndCount(reg, "vmflow_enrich_learn_expired_total")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 3.0, testutil.ToFloat64(e.learned.expired))
}

func TestLearnedAddressPrecedence(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	learned := func(v VM, ip string, at time.Time) VM {
		v.Interfaces[0].Addrs = append(v.Interfaces[0].Addrs, Addr{IP: netip.MustParseAddr(ip), Source: AddrLearned, LastSeen: at})
		return v
	}
	arp := func(v VM, ip string) VM {
		v.Interfaces[0].Addrs = append(v.Interfaces[0].Addrs, Addr{IP: netip.MustParseAddr(ip), Source: AddrARP})
		return v
	}
	for _, tc := range []struct {
		name   string
		snaps  []Snapshot
		winner string
		reason string
	}{
		{"stale lease over fresh learned", []Snapshot{
			{Source: "libvirt:hv1", Stale: true, VMs: []VM{vm("owner", "", "hv1", 1, "10.0.0.5")}},
			{Source: "libvirt:hv2", VMs: []VM{learned(vm("guess", "", "hv2", 2), "10.0.0.5", ts)}},
		}, "owner", "a learned address never overrides"},
		{"IPv6: lease over learned", []Snapshot{{Source: "libvirt:x", VMs: []VM{
			vm("zz-lease", "", "hv1", 1, "2001:db8::5"), learned(vm("aa-learn", "", "hv1", 2), "2001:db8::5", ts)}}},
			"zz-lease", "a learned address never overrides"},
		{"arp over learned", []Snapshot{{Source: "libvirt:x", VMs: []VM{
			arp(vm("zz-arp", "", "hv1", 1), "10.0.0.5"), learned(vm("aa-learn", "", "hv1", 2), "10.0.0.5", ts)}}},
			"zz-arp", "a learned address never overrides"},
		{"lease over arp", []Snapshot{{Source: "libvirt:x", VMs: []VM{
			arp(vm("aa-arp", "", "hv1", 1), "10.0.0.5"), vm("zz-lease", "", "hv1", 2, "10.0.0.5")}}},
			"zz-lease", "only from the hypervisor's ARP table"},
		{"two learned: the last seen (a floating IP moved)", []Snapshot{{Source: "libvirt:x", VMs: []VM{
			learned(vm("aa-old", "", "hv1", 1), "10.0.0.5", ts), learned(vm("zz-new", "", "hv1", 2), "10.0.0.5", ts.Add(time.Second))}}},
			"zz-new", "was seen with it last"},
		{"same MAC from two sources: libvirt over static", []Snapshot{
			{Source: "static", VMs: []VM{vm("aa-static", "", "hv1", 1)}},
			{Source: "libvirt:x", VMs: []VM{vm("zz-libvirt", "", "hv2", 1)}},
		}, "zz-libvirt", "comes from source libvirt:x, which ranks before aa-static's source static (enrich.merge libvirt-first)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnricher(t, MergeLibvirtFirst, nil)
			for _, s := range tc.snaps {
				e.Publish(s)
			}
			x := e.Index()
			require.Len(t, x.Conflicts(), 1)
			c := x.Conflicts()[0]
			assert.Equal(t, tc.winner, c.Chose)
			assert.Contains(t, c.Reason, tc.reason)
			var p Port
			if c.Kind == "ip" {
				p, _ = x.ByIP(0, netip.MustParseAddr(c.Key))
			} else {
				p, _ = x.ByMAC(mac(1))
			}
			assert.Equal(t, tc.winner, p.VM.Name)
		})
	}
}

func TestLearnStoreBounds(t *testing.T) {
	e, clk, _ := learnEnricher(t, func(c *LearnConfig) { c.Max = 5; c.MaxPerInterface = 3 })
	s := e.learned
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}) }
	for i := 1; i <= 4; i++ { // one interface: the oldest goes beyond 3
		clk.add(time.Second)
		s.observe(Observation{VM: 1, MAC: mac(1), IP: ip(i)}, clk.now())
	}
	assert.Equal(t, 3, s.len())
	assert.Equal(t, 1.0, testutil.ToFloat64(s.evicted.WithLabelValues("max_per_interface")))
	got := s.export(clk.now())[mac(1)]
	require.Len(t, got, 3)
	assert.Equal(t, ip(2), got[0].ip, "the least recently seen (10.9.0.1) was dropped")

	for i := 10; i < 13; i++ { // another interface: over the total of 5
		clk.add(time.Second)
		s.observe(Observation{VM: 2, MAC: mac(2), IP: ip(i)}, clk.now())
	}
	assert.Equal(t, 5, s.len())
	assert.Equal(t, 1.0, testutil.ToFloat64(s.evicted.WithLabelValues("max")))
	ex := s.export(clk.now())
	assert.Len(t, ex[mac(1)], 2, "the globally oldest (10.9.0.2) was dropped")
	assert.Equal(t, ip(3), ex[mac(1)][0].ip)
	assert.Len(t, ex[mac(2)], 3)
}

func TestLearnedNeedsNoRebuildForRefreshesAlone(t *testing.T) {
	e, clk, _ := learnEnricher(t, nil) // expiry 10m: refresh-only rebuilds at most every minute
	s := e.learned
	s.observe(Observation{VM: 1, MAC: mac(1), IP: netip.MustParseAddr("10.0.0.3")}, clk.now())
	s.export(clk.now())
	clk.add(time.Second)
	s.observe(Observation{VM: 1, MAC: mac(1), IP: netip.MustParseAddr("10.0.0.3")}, clk.now())
	assert.False(t, s.needsRebuild(clk.now()), "a last-seen refresh alone waits")
	clk.add(time.Minute)
	assert.True(t, s.needsRebuild(clk.now()))
}

func TestIPConflictKeyNamesTheVNI(t *testing.T) {
	e := newTestEnricher(t, MergeLibvirtFirst, nil)
	a, b := vm("a", "", "hv1", 1, "10.0.0.5"), vm("b", "", "hv2", 2, "10.0.0.5")
	a.Interfaces[0].VNI, b.Interfaces[0].VNI = 70000, 70000
	e.Publish(Snapshot{Source: "static", VMs: []VM{a, b}})
	require.Len(t, e.Index().Conflicts(), 1)
	assert.Equal(t, "vni 70000 10.0.0.5", e.Index().Conflicts()[0].Key)
}
