package enrich

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRestrict: a tenant's view of the index has only its VMs, finds no
// other VM by MAC or IP, shows hosts without exporters and masks the other
// VMs of its conflicts.
func TestRestrict(t *testing.T) {
	e := newTestEnricher(t, MergeLibvirtFirst, nil)
	mine := vm("mine", "", "hv1", 1, "10.0.0.9")
	mine.Tenant = "acme"
	theirs := vm("theirs", "", "hv1", 2, "10.0.0.9") // same IP: a conflict
	theirs.Tenant = "globex"
	e.Publish(Snapshot{Source: "static", VMs: []VM{mine, theirs}})
	x := e.Index().Restrict(func(v *VM) bool { return v.Tenant == "acme" }, "(other)")
	if assert.Len(t, x.VMs(), 1) {
		assert.Equal(t, "mine", x.VMs()[0].Name)
	}
	_, ok := x.ByMAC(mac(2))
	assert.False(t, ok)
	p, ok := x.ByMAC(mac(1))
	assert.True(t, ok)
	assert.Equal(t, "mine", p.VM.Name)
	if p, ok := x.ByIP(0, netip.MustParseAddr("10.0.0.9")); ok {
		assert.Equal(t, "mine", p.VM.Name)
	}
	for _, c := range x.Conflicts() {
		assert.NotContains(t, c.VMs, "theirs")
		assert.NotEqual(t, "theirs", c.Chose)
		assert.Contains(t, c.VMs, "(other)")
	}
	assert.NotEmpty(t, x.Conflicts())
	for _, h := range x.Hosts() {
		assert.Empty(t, h.Exporters)
	}
	assert.Len(t, e.Index().VMs(), 2, "the index itself is unchanged")
}
