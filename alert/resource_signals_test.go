package alert

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/enrich"
)

// The default pack's resource rules on a VM's libvirt figures: CPU above
// 90% fires after 5 minutes (30 windows of 10 s), not before; swapping
// after 3 windows; a disk error at once; a counter reset gives no alert.
func TestResourceRulesDefaultPack(t *testing.T) {
	tr := enrich.NewResourceTracker(enrich.ResourceTrackerConfig{StaleAfter: time.Hour, Now: func() time.Time { return t0.Add(time.Hour) }})
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	e, err := New(DefaultConfig(), Deps{Registerer: reg, Gatherer: reg, Dispatcher: rec,
		Now: func() time.Time { return t0.Add(time.Hour) }, Resources: tr.All})
	require.NoError(t, err)
	firing := func(rule string) []string {
		var out []string
		for _, a := range rec.last() {
			if a.Rule == rule && a.State == "firing" {
				out = append(out, a.Labels["vm"])
			}
		}
		return out
	}
	var cpu, swap, derr uint64
	put := func(i int, busy float64, swapping bool, diskErr uint64) {
		w := window(i)
		cpu += uint64(busy * 2 * float64(w.End.Sub(w.Start)))
		if swapping {
			swap += 4096
		}
		derr += diskErr
		tr.PutVM(enrich.VMResourceSample{UUID: "u-db", Name: "db-1", Host: "hv1", Source: enrich.ResourceSourceLibvirt, Time: w.End, Incarnation: 1,
			CPU:   enrich.CPUSample{Have: enrich.HasCPUTime | enrich.HasVCPUs, TimeNs: cpu, VCPUs: 2},
			Mem:   enrich.MemSample{Have: enrich.HasMemAvailable | enrich.HasMemUnused | enrich.HasMemSwapIn | enrich.HasMemSwapOut, AvailableBytes: 100, UnusedBytes: 50, SwapInBytes: swap},
			Disks: []enrich.DiskSample{{Name: "vda", Have: enrich.HasDiskErrors, Errors: derr}},
		})
		e.Evaluate(w)
	}
	put(0, 0.95, false, 0)
	for i := 1; i < 30; i++ {
		put(i, 0.95, i >= 10, 0)
		if i < 30 {
			assert.Empty(t, firing("vm-cpu-high"), "window %d: not yet 5 minutes", i)
		}
		if i == 12 {
			assert.Equal(t, []string{"db-1"}, firing("vm-swapping"), "third swapping window")
		}
	}
	put(30, 0.95, false, 0)
	assert.Equal(t, []string{"db-1"}, firing("vm-cpu-high"), "30 windows above 90%")
	assert.Empty(t, firing("vm-disk-errors"))
	put(31, 0.5, false, 2)
	assert.Equal(t, []string{"db-1"}, firing("vm-disk-errors"), "new disk errors fire at once")
	a := e.Alerts(AlertFilter{})
	var found bool
	for _, x := range a {
		if x.Rule == "vm-disk-errors" {
			found = true
			assert.Equal(t, "libvirt", x.Labels["resource_source"])
			assert.Equal(t, "hv1", x.Labels["host"])
		}
	}
	assert.True(t, found)
	assert.Empty(t, firing("vm-memory-high"), "50% used")
	// A restart (new incarnation) in the next window: no rates, nothing fires.
	cpu = 0
	tr.PutVM(enrich.VMResourceSample{UUID: "u-db", Name: "db-1", Host: "hv1", Source: enrich.ResourceSourceLibvirt, Time: window(32).End, Incarnation: 2,
		CPU: enrich.CPUSample{Have: enrich.HasCPUTime | enrich.HasVCPUs, TimeNs: 5, VCPUs: 2}})
	e.Evaluate(window(32))
	assert.Empty(t, firing("vm-cpu-high"))
}
