package enrich

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleAt(t0 time.Time, sec int, cpuNs, rxBytes, rdReqs uint64, inc uint64) VMResourceSample {
	return VMResourceSample{
		UUID: "u1", Name: "vm1", Host: "hv1", Source: ResourceSourceLibvirt,
		Time: t0.Add(time.Duration(sec) * time.Second), Incarnation: inc,
		CPU:   CPUSample{Have: HasCPUTime | HasVCPUs, TimeNs: cpuNs, VCPUs: 2},
		Mem:   MemSample{Have: HasMemAvailable | HasMemUnused | HasMemSwapIn, AvailableBytes: 1000, UnusedBytes: 40, SwapInBytes: rxBytes},
		Disks: []DiskSample{{Name: "vda", Have: HasDiskIO | HasDiskErrors, ReadReqs: rdReqs}},
		NICs:  []NICSample{{Name: "vnet0", Have: HasNICBytes | HasNICErrors, RxBytes: rxBytes}},
	}
}

func TestDeriveRatesAndResets(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := sampleAt(t0, 0, 0, 0, 0, 7)
	b := sampleAt(t0, 10, 10e9, 1250, 500, 7) // 1 core for 10 s = 100% of a core, 50% of 2 vCPUs
	r := Derive(&a, &b)
	require.NotNil(t, r.CPU.PercentOfCore)
	assert.InDelta(t, 100, *r.CPU.PercentOfCore, 1e-9)
	assert.InDelta(t, 50, *r.CPU.PercentOfVCPUs, 1e-9)
	assert.InDelta(t, 1000, *r.NICs[0].RxBitsPerS, 1e-9)
	assert.InDelta(t, 50, *r.Disks[0].ReadIOPS, 1e-9)
	assert.InDelta(t, 125, *r.Mem.SwapInBytesPerS, 1e-9)
	assert.EqualValues(t, 960, *r.Mem.UsedBytes)
	assert.InDelta(t, 96, *r.Mem.UsedPercent, 1e-9)
	assert.False(t, r.Reset)

	// Counters went backwards (restart the incarnation did not show).
	c := sampleAt(t0, 20, 1e9, 10, 5, 7)
	r = Derive(&b, &c)
	assert.Nil(t, r.CPU.PercentOfCore)
	assert.Nil(t, r.NICs[0].RxBitsPerS)
	assert.Nil(t, r.Disks[0].ReadIOPS)
	assert.True(t, r.Reset)

	// New incarnation with counters already above the old ones: no rate.
	d := sampleAt(t0, 20, 20e9, 99999, 900, 8)
	r = Derive(&b, &d)
	assert.True(t, r.Reset)
	assert.Nil(t, r.CPU.PercentOfCore)
	assert.Nil(t, r.NICs[0].RxBitsPerS)

	// Implausible CPU (more than all vCPUs) is a reset, not a rate.
	e := sampleAt(t0, 20, 10e9+100e9, 1250, 500, 7)
	r = Derive(&b, &e)
	assert.Nil(t, r.CPU.PercentOfCore)
	assert.True(t, r.Reset)
}

func TestTrackerChoosesOneSource(t *testing.T) {
	now := time.Unix(2000, 0)
	tr := NewResourceTracker(ResourceTrackerConfig{StaleAfter: time.Minute, Now: func() time.Time { return now }})
	h := sampleAt(now, -10, 0, 0, 0, 1)
	h.Source = ResourceSourceHsflowd
	tr.PutVM(h)
	h2 := sampleAt(now, 0, 5e9, 0, 0, 1)
	h2.Source = ResourceSourceHsflowd
	tr.PutVM(h2)
	got, ok := tr.VM("u1")
	require.True(t, ok)
	assert.Equal(t, ResourceSourceHsflowd, got.Source)

	l := sampleAt(now, -5, 0, 0, 0, 1)
	tr.PutVM(l)
	got, _ = tr.VM("u1")
	assert.Equal(t, ResourceSourceLibvirt, got.Source, "libvirt wins while fresh")
	hosts := tr.Hosts()
	require.Len(t, hosts, 1)
	assert.Equal(t, 1, hosts[0].VMs, "one VM counted once, not per source")
	assert.Equal(t, 2, hosts[0].VCPUs)

	now = now.Add(2 * time.Minute) // libvirt silent, hsflowd silent too: most recent wins
	got, _ = tr.VM("u1")
	assert.Equal(t, ResourceSourceHsflowd, got.Source)
	assert.True(t, got.Stale, "no fresh source: the last figures, marked stale")
	assert.Empty(t, tr.Hosts(), "stale VMs leave the host sums")
	assert.Len(t, tr.Series("u1", time.Time{}, time.Time{}), 3)
}

func TestResourcePointJSON(t *testing.T) {
	t0 := time.Unix(1000, 0).UTC()
	a, b := sampleAt(t0, 0, 0, 0, 0, 7), sampleAt(t0, 10, 10e9, 1250, 500, 7)
	r := Derive(&a, &b)
	js, err := json.Marshal(pointOf(&r))
	require.NoError(t, err)
	assert.JSONEq(t, `{"time":"1970-01-01T00:16:50Z","source":"libvirt","cpu_percent":50,"cpu_core_percent":100,
		"mem_used_percent":96,"mem_used_bytes":960,"swap_in_bytes_per_s":125,"disk_read_iops":50,"disk_write_iops":0,
		"disk_read_bytes_per_s":0,"disk_write_bytes_per_s":0,"disk_errors":0,"nic_rx_bits_per_s":1000,"nic_tx_bits_per_s":0,"nic_errors":0}`, string(js))
}

// BenchmarkTrackerPoll10k: one poll's samples of 10,000 VMs into the
// tracker (derive, choose, series point).
func BenchmarkTrackerPoll10k(b *testing.B) {
	tr := NewResourceTracker(ResourceTrackerConfig{StaleAfter: time.Hour})
	t0 := time.Now()
	smp := make([]VMResourceSample, 10000)
	for i := range smp {
		smp[i] = sampleAt(t0, 0, 0, 0, 0, 1)
		smp[i].UUID = fmt.Sprintf("u-%05d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range smp {
			s := smp[i]
			s.Time = t0.Add(time.Duration(n+1) * 10 * time.Second)
			s.CPU.TimeNs = uint64(n+1) * 5e9
			tr.PutVM(s)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/VM")
}
