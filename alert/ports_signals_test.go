package alert

import (
	"net/netip"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/enrich"
)

// portOf is vm i's tap with the given per-window deltas over 10 s.
func portOf(i int, inErr, outDisc uint64) aggregate.PortStats {
	_, ep := vmEP(i)
	return aggregate.PortStats{Key: aggregate.PortKey{Agent: netip.MustParseAddr("10.9.0.1"), IfIndex: uint32(i)},
		Name: "vnet" + itoa(i), Host: ep.Host, VM: ep.VM, Tenant: ep.Tenant, VMID: enrich.VMID(i),
		Seconds: 10, Samples: 1, InErrors: inErr, OutDiscards: outDisc, InOctets: 1250000, IfSpeed: 1e9}
}

// TestPortSignals: the default rules file's port-errors rule fires on a
// VM whose port discards frames (also a VM with no pair traffic in the
// window), names the VM and clears when the port is clean again.
func TestPortSignals(t *testing.T) {
	def, err := os.ReadFile("default_rules.yaml")
	require.NoError(t, err)
	f := newFixture(t, string(def)+`
  - name: port-util
    kind: threshold
    subject: vm
    signal: port_in_util
    severity: P4
    threshold: 0.0005
`, nil)
	w := func(i int, ports ...aggregate.PortStats) *aggregate.Window {
		win := window(i, pair(1, 2, 1000))
		win.Ports = ports
		return win
	}
	f.e.Evaluate(w(0, portOf(1, 0, 0), portOf(3, 0, 50)))
	assert.Empty(t, f.firing("vm-port-errors"), "for: 2")
	f.e.Evaluate(w(1, portOf(1, 0, 0), portOf(3, 0, 50)))
	got := f.firing("vm-port-errors")
	require.Len(t, got, 1)
	assert.Equal(t, "vm-3", got[0].Labels["vm"], "a VM seen by its port only")
	assert.Equal(t, 5.0, got[0].Value, "50 discards in 10 s")
	util := f.firing("port-util")
	require.Len(t, util, 2)
	assert.InDelta(t, 0.001, util[0].Value, 1e-12, "1.25 MB in 10 s on 1 Gbit/s")
	for i := 2; i < 5; i++ {
		f.e.Evaluate(w(i, portOf(1, 0, 0), portOf(3, 0, 0)))
	}
	assert.Empty(t, f.firing("vm-port-errors"))
	// Errors on a VM that also has pair traffic.
	f.e.Evaluate(w(5, portOf(1, 30, 0)))
	f.e.Evaluate(w(6, portOf(1, 30, 0)))
	got = f.firing("vm-port-errors")
	require.Len(t, got, 1)
	assert.Equal(t, "vm-1", got[0].Labels["vm"])
	assert.Equal(t, 3.0, got[0].Value)
}

// TestConnHealthSignals: a threshold on the lower end of the failure
// interval fires for a pair whose SYNs mostly go unanswered with enough
// samples, not for one with the same ratio on two samples.
func TestConnHealthSignals(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: conn-fail
    kind: threshold
    subject: pair
    signal: conn_failure_lo
    severity: P2
    threshold: 0.5
`, nil)
	many := pair(1, 2, 1000)
	many.Stats.SYN, many.Stats.SYNACKIn, many.Stats.SampledPackets, many.Stats.Packets = 100, 10, 1, 1
	few := pair(3, 4, 1000)
	few.Stats.SYN, few.Stats.SYNACKIn, few.Stats.SampledPackets, few.Stats.Packets = 2, 0, 1, 1
	f.e.Evaluate(window(0, many, few))
	got := f.firing("conn-fail")
	require.Len(t, got, 1)
	assert.Equal(t, "vm-1", got[0].Labels["src"])
	assert.Greater(t, got[0].Value, 0.5)
	assert.Less(t, got[0].Value, 0.9)
}
