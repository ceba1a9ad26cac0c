package enrich

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadInventoryLab(t *testing.T) {
	snap, err := LoadInventory("../testdata/inventory/lab.yaml")
	require.NoError(t, err)
	require.Len(t, snap.VMs, 4)
	require.Len(t, snap.Hosts, 1)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, snap.Hosts[0].Exporters)
	vm := snap.VMs[1]
	assert.Equal(t, "vm2", vm.Name)
	assert.Equal(t, "lab-hv1", vm.Host)
	assert.Equal(t, "running", vm.State, "state defaults to running")
	assert.Equal(t, "static", vm.Source)
	require.Len(t, vm.Interfaces, 1)
	assert.Equal(t, [6]byte{0x52, 0x54, 0, 0, 0, 2}, vm.Interfaces[0].MAC)
	assert.Equal(t, "52:54:00:00:00:02", vm.Interfaces[0].MACString)
	assert.Equal(t, []Addr{{IP: netip.MustParseAddr("10.0.0.2"), Source: AddrStatic}}, vm.Interfaces[0].Addrs)
	assert.Equal(t, "vnet2", vm.Interfaces[0].Tap)

	// The shipped example config is the same file.
	a, err := os.ReadFile("../configs/inventory.yaml")
	require.NoError(t, err)
	b, err := os.ReadFile("../testdata/inventory/lab.yaml")
	require.NoError(t, err)
	assert.Equal(t, string(a), string(b), "testdata/inventory/lab.yaml should be a copy of configs/inventory.yaml")
}

func TestLoadInventoryTwoHostsDomains(t *testing.T) {
	snap, err := LoadInventory("../testdata/inventory/two-hosts.yaml")
	require.NoError(t, err)
	require.Len(t, snap.Hosts, 2)
	assert.Equal(t, []ExporterID{{Addr: netip.MustParseAddr("127.0.0.1"), Domain: 2}}, snap.Hosts[1].ExporterDomains)
	assert.Equal(t, uint32(5001), snap.VMs[3].Interfaces[0].VNI)
}

func TestParseInventoryErrors(t *testing.T) {
	cases := []struct {
		name, file, yaml string
		want             []string
	}{
		{name: "unknown key", file: "../testdata/inventory/bad-unknown-key.yaml", want: []string{"line 5", "ipz"}},
		{name: "bad mac", file: "../testdata/inventory/bad-mac.yaml", want: []string{":7:", "vms[1].interfaces[0].mac", "52:54:00:zz:00:02"}},
		{name: "dup ip", file: "../testdata/inventory/bad-dup-ip.yaml", want: []string{":7:", "duplicate IP 10.0.0.1", `"vm1"`}},
		{name: "dup name", yaml: "vms:\n  - name: a\n  - name: a\n", want: []string{":3:", "duplicate VM name"}},
		{name: "missing name", yaml: "vms:\n  - uuid: 6f1c2b9e-0000-4000-8000-000000000001\n", want: []string{":2:", "name is required"}},
		{name: "bad uuid", yaml: "vms:\n  - name: a\n    uuid: nope\n", want: []string{":3:", "invalid UUID"}},
		{name: "dup uuid", yaml: "vms:\n  - {name: a, uuid: 6F1C2B9E-0000-4000-8000-000000000001}\n  - {name: b, uuid: 6f1c2b9e-0000-4000-8000-000000000001}\n", want: []string{":3:", "duplicate UUID"}},
		{name: "bad ip", yaml: "vms:\n  - name: a\n    interfaces:\n      - mac: 52:54:00:00:00:01\n        ips: [10.0.0.300]\n", want: []string{":5:", "invalid IP address"}},
		{name: "long mac", yaml: "vms:\n  - name: a\n    interfaces:\n      - mac: 00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01\n", want: []string{"invalid MAC"}},
		{name: "dup mac", yaml: "vms:\n  - {name: a, interfaces: [{mac: 52:54:00:00:00:01}]}\n  - {name: b, interfaces: [{mac: 52-54-00-00-00-01}]}\n", want: []string{":3:", "duplicate MAC 52:54:00:00:00:01"}},
		{name: "bad exporter", yaml: "hosts:\n  - name: h\n    exporters: [1.2.3]\n", want: []string{":3:", "invalid exporter address"}},
		{name: "exporter two hosts", yaml: "hosts:\n  - {name: h1, exporters: [10.0.0.1]}\n  - {name: h2, exporters: [10.0.0.1]}\n", want: []string{":3:", `already belongs to host "h1"`}},
		{name: "exporter unknown key", yaml: "hosts:\n  - name: h1\n    exporters:\n      - {address: 10.0.0.1, domain: 3}\n", want: []string{"line 4", "domain"}},
		{name: "dup host", yaml: "hosts:\n  - {name: h1}\n  - {name: h1}\n", want: []string{":3:", "duplicate host"}},
		{name: "top-level unknown", yaml: "vm:\n  - name: a\n", want: []string{"line 1", "vm"}},
		{name: "dup tap", yaml: "vms:\n  - {name: a, host: h, interfaces: [{mac: 52:54:00:00:00:01, tap: vnet1}]}\n  - {name: b, host: h, interfaces: [{mac: 52:54:00:00:00:02, tap: vnet1}]}\n", want: []string{":3:", "duplicate tap"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.file != "" {
				_, err = LoadInventory(tc.file)
			} else {
				_, err = ParseInventory([]byte(tc.yaml), "inv.yaml")
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseInventoryOverlappingIPsInDifferentVNIs(t *testing.T) {
	snap, err := ParseInventory([]byte(`
vms:
  - {name: a, interfaces: [{mac: "52:54:00:00:00:01", ips: [10.0.0.1], vni: 1}]}
  - {name: b, interfaces: [{mac: "52:54:00:00:00:02", ips: [10.0.0.1], vni: 2}]}
`), "x")
	require.NoError(t, err)
	assert.Len(t, snap.VMs, 2)
}

func TestStaticSourceReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "inv.yaml")
	write := func(s string) {
		// Write to a temp file and rename, as editors do; bump mtime so
		// that coarse file system timestamps still see a change.
		tmp := p + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(s), 0o644))
		require.NoError(t, os.Rename(tmp, p))
		future := time.Now().Add(time.Duration(len(s)) * time.Second)
		require.NoError(t, os.Chtimes(p, future, future))
	}
	write("vms:\n  - {name: a, interfaces: [{mac: \"52:54:00:00:00:01\", ips: [10.0.0.1]}]}\n")

	e, err := New(Config{Static: StaticConfig{File: p, Reload: 100 * time.Millisecond}, Merge: MergeLibvirtFirst}, nil)
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	defer e.Stop()
	_, ok := e.Index().ByMAC([6]byte{0x52, 0x54, 0, 0, 0, 1})
	require.True(t, ok, "the file is indexed when Start returns")
	v := e.Version()

	// Broken edit: last good snapshot stays, error is reported.
	write("vms:\n  - {name: a, interfaces: [{mac: \"52:54:00:00:00:0g\"}]}\n")
	require.Eventually(t, func() bool { return e.Sources()[0].State == "error" }, 5*time.Second, 20*time.Millisecond)
	st := e.Sources()[0]
	assert.Contains(t, st.LastError, "invalid MAC")
	assert.Equal(t, uint64(1), st.Errors)
	assert.Equal(t, v, e.Version(), "no new index from a broken file")
	_, ok = e.Index().ByMAC([6]byte{0x52, 0x54, 0, 0, 0, 1})
	assert.True(t, ok, "last good inventory still answers")

	// Fixed edit: new VM appears.
	write("vms:\n  - {name: a, interfaces: [{mac: \"52:54:00:00:00:01\"}]}\n  - {name: b, interfaces: [{mac: \"52:54:00:00:00:02\", ips: [10.0.0.2]}]}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, e.WaitVersion(ctx, v+1))
	p2, ok := e.Index().ByIP(0, netip.MustParseAddr("10.0.0.2"))
	require.True(t, ok)
	assert.Equal(t, "b", p2.VM.Name)
	st = e.Sources()[0]
	assert.Equal(t, "loaded", st.State)
	assert.Empty(t, st.LastError)
	assert.Equal(t, 2, st.VMs)
}

func TestStaticSourceStartFailsOnBrokenFile(t *testing.T) {
	e, err := New(Config{Static: StaticConfig{File: "../testdata/inventory/bad-mac.yaml"}, Merge: MergeLibvirtFirst}, nil)
	require.NoError(t, err)
	err = e.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad-mac.yaml:7")
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	c := DefaultConfig()
	c.Merge = "newest"
	assert.ErrorContains(t, c.Validate(), "enrich.merge")
	c = DefaultConfig()
	c.Static.Reload = -time.Second
	assert.ErrorContains(t, c.Validate(), "enrich.static.reload")
	_, err := New(c, nil)
	assert.Error(t, err)
}

func TestStaticSourceMissingFileCountedOnce(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "inv.yaml")
	require.NoError(t, os.WriteFile(p, []byte("vms: []\n"), 0o644))
	s := NewStaticSource(p, 100*time.Millisecond)
	published := 0
	require.NoError(t, s.Start(context.Background(), func(Snapshot) { published++ }))
	defer s.Stop()
	require.NoError(t, os.Remove(p))
	require.Eventually(t, func() bool { return s.Status().State == "error" }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(350 * time.Millisecond) // several more checks
	st := s.Status()
	assert.Equal(t, uint64(1), st.Errors)
	assert.Contains(t, st.LastError, "no such file")
	assert.Equal(t, 1, published)
}
