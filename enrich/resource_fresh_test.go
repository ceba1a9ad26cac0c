package enrich

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHsflowdFreshAtItsOwnPace: hsflowd polls at its own interval (30 s by
// default) whatever vmflow's window; its samples stay fresh for 3 of its
// intervals even when StaleAfter (3 libvirt stats intervals) is shorter,
// and go stale after that.
func TestHsflowdFreshAtItsOwnPace(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tr := NewResourceTracker(ResourceTrackerConfig{StaleAfter: 6 * time.Second, Now: func() time.Time { return now }})
	put := func(at time.Time) {
		tr.PutVM(VMResourceSample{UUID: "u-1", Name: "web-1", Host: "hv1", Source: ResourceSourceHsflowd, Time: at,
			CPU: CPUSample{Have: HasCPUTime | HasVCPUs, TimeNs: uint64(at.Unix()) * 1e9, VCPUs: 2}})
		tr.PutHost(HostResourceSample{Host: "hv1", Source: ResourceSourceHsflowd, Time: at, CPUs: 8})
	}
	t0 := now
	put(t0)
	put(t0.Add(30 * time.Second))
	now = t0.Add(30*time.Second + 80*time.Second) // 80 s after the last sample: < 3 × 30 s
	r, ok := tr.Find("u-1", "web-1", "hv1")
	require.True(t, ok)
	require.False(t, r.Stale, "fresh within 3 of hsflowd's own intervals")
	hs := tr.Hosts()
	require.Len(t, hs, 1)
	require.NotNil(t, hs[0].Hypervisor, "the hypervisor's own figures are fresh too")
	now = t0.Add(30*time.Second + 100*time.Second)
	r, ok = tr.Find("u-1", "web-1", "hv1")
	require.True(t, ok)
	require.True(t, r.Stale, "stale after 3 intervals")
}
