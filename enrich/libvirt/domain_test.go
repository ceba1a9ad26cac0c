package libvirt

import (
	"encoding/xml"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"

	"github.com/vmflow/vmflow/enrich"
)

const fixtureDir = "../../testdata/libvirt/"

func mac(s string) [6]byte {
	var m [6]byte
	hw, err := parseMAC(s)
	if err != nil {
		panic(err)
	}
	copy(m[:], hw)
	return m
}

func TestParseNovaLiveDomain(t *testing.T) {
	doc, err := os.ReadFile(fixtureDir + "domain-nova-live.xml")
	require.NoError(t, err)
	dx, err := ParseDomainXML(doc)
	require.NoError(t, err)
	vm, err := NewMapper(DefaultConfig()).ToVM(dx, "hv-7")
	require.NoError(t, err)

	want := enrich.VM{
		Name: "instance-0000002a", UUID: "6a1e0c7b-94b1-4e0f-9c2d-3b4a5d6e7f80", Host: "hv-7",
		Tenant: "0c1d2e3f4a5b4c6d8e9f0a1b2c3d4e5f", TenantName: "web-prod",
		VCPUs: 2, MemoryKiB: 4 << 20,
		Labels: map[string]string{
			LabelNovaName: "frontend-0", LabelNovaFlavor: "m1.medium", LabelNovaUser: "carol",
			LabelNovaUserID: "f2b7a3c1d4e54f6a8b9c0d1e2f3a4b5c", LabelNovaProject: "web-prod",
		},
		Interfaces: []enrich.Interface{
			{MAC: mac("fa:16:3e:5b:2c:11"), MACString: "fa:16:3e:5b:2c:11", Tap: "tapb1c2d3e4-f5", Bridge: "br-int",
				OVSPort: "tapb1c2d3e4-f5", InterfaceID: "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e", Addrs: []enrich.Addr{}},
			{MAC: mac("52:54:00:12:34:56"), MACString: "52:54:00:12:34:56", Tap: "vnet3", Bridge: "virbr0", Addrs: []enrich.Addr{}},
			// the interface with an unreadable MAC is skipped
		},
	}
	if d := cmp.Diff(want, vm); d != "" {
		t.Fatalf("VM mismatch (-want +got):\n%s", d)
	}
}

// nodeXML is the test driver's node file: a list of domains.
type nodeXML struct {
	Raw     []libvirtxml.Domain `xml:"domain"`
	Domains []*DomainXML        `xml:"-"`
}

func TestMapNodeFixture(t *testing.T) {
	doc, err := os.ReadFile(fixtureDir + "node.xml")
	require.NoError(t, err)
	var n nodeXML
	require.NoError(t, xml.Unmarshal(doc, &n))
	for i := range n.Raw {
		dx, err := FromLibvirtXML(&n.Raw[i])
		require.NoError(t, err)
		n.Domains = append(n.Domains, dx)
	}
	require.Len(t, n.Domains, 4)

	cfg := DefaultConfig()
	cfg.TenantMetadata = MetadataKey{Namespace: "http://vmflow.io/xmlns/vm/1", Element: "meta/tenant", Attr: "id"}
	cfg.MetadataLabels = []MetadataLabel{
		{MetadataKey: MetadataKey{Namespace: "http://vmflow.io/xmlns/vm/1", Element: "meta/team"}, Label: "team"},
		{MetadataKey: MetadataKey{Namespace: "http://vmflow.io/xmlns/vm/1", Element: "meta/tenant"}, Label: "tenant_display"},
	}
	cfg.StaticTenants = []StaticTenant{{NamePrefix: "plain-", Tenant: "t-static", TenantName: "Static"}}
	m := NewMapper(cfg)
	byName := map[string]enrich.VM{}
	for i := range n.Domains {
		vm, err := m.ToVM(n.Domains[i], "hv")
		require.NoError(t, err)
		byName[vm.Name] = vm
	}
	web := byName["instance-00000001"]
	assert.Equal(t, "9f1c2b7e-6d4a-4c3e-8b2a-1d0e5f6a7b01", web.Tenant)
	assert.Equal(t, "shop", web.TenantName)
	assert.Equal(t, "web-1", web.Labels[LabelNovaName])
	require.Len(t, web.Interfaces, 2)
	assert.Equal(t, "5c0e1f3a-1111-4000-8000-000000000002", web.Interfaces[1].InterfaceID)
	assert.Equal(t, "tap1a2b3c4d-02", web.Interfaces[1].OVSPort)

	batch := byName["batch-7"]
	assert.Equal(t, "t-batch", batch.Tenant, "tenant from the configured metadata attribute")
	assert.Equal(t, "data", batch.Labels["team"])
	assert.Equal(t, "Batch team", batch.Labels["tenant_display"])

	plain := byName["plain-3"]
	assert.Equal(t, "t-static", plain.Tenant, "tenant from the static prefix mapping")
	assert.Equal(t, "", plain.Interfaces[0].InterfaceID, "no virtualport, no interfaceid")
	assert.Equal(t, "br0", plain.Interfaces[0].Bridge)

	// tenant_from order: static first wins over nova.
	cfg.TenantFrom = []string{TenantFromStatic, TenantFromNova}
	cfg.StaticTenants = []StaticTenant{{NamePrefix: "instance-", Host: "hv", Tenant: "t-override"}}
	vm, err := NewMapper(cfg).ToVM(n.Domains[0], "hv")
	require.NoError(t, err)
	assert.Equal(t, "t-override", vm.Tenant)
	vm, err = NewMapper(cfg).ToVM(n.Domains[0], "other-host")
	require.NoError(t, err)
	assert.Equal(t, "9f1c2b7e-6d4a-4c3e-8b2a-1d0e5f6a7b01", vm.Tenant, "static rule bound to another host falls through to nova")
}

func TestParseDomainXMLErrors(t *testing.T) {
	for _, doc := range []string{"", "<domain>", "<domain><uuid>x</uuid></domain>", "<node/>"} {
		_, err := ParseDomainXML([]byte(doc))
		assert.Error(t, err, doc)
	}
	dx, err := ParseDomainXML([]byte(`<domain><name>x</name><memory unit='parsecs'>1</memory></domain>`))
	require.NoError(t, err)
	_, err = NewMapper(DefaultConfig()).ToVM(dx, "")
	assert.ErrorContains(t, err, "memory")
}

func TestMemoryUnits(t *testing.T) {
	for _, c := range []struct {
		unit, v string
		kib     uint64
	}{{"", "1024", 1024}, {"KiB", "2", 2}, {"MiB", "2", 2048}, {"G", "1", 1 << 20}, {"bytes", "4096", 4}, {"MB", "1", 976}} {
		got, err := memoryKiB(c.unit, c.v)
		require.NoError(t, err)
		assert.Equal(t, c.kib, got, c.unit)
	}
}

func BenchmarkParseDomainXML(b *testing.B) {
	doc, err := os.ReadFile(fixtureDir + "domain-nova-live.xml")
	require.NoError(b, err)
	m := NewMapper(DefaultConfig())
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for i := 0; i < b.N; i++ {
		dx, err := ParseDomainXML(doc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.ToVM(dx, "hv"); err != nil {
			b.Fatal(err)
		}
	}
}
