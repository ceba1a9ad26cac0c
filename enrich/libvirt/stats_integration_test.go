package libvirt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/testenv/libvirtd"
)

// startStatsSource starts a daemon with testdata/libvirt/stats-node.xml
// and a synced source whose polls the test drives (stats_interval 0).
func startStatsSource(t *testing.T) (*Source, *Client, *libvirtd.Daemon) {
	t.Helper()
	d := libvirtd.Start(t)
	node, err := filepath.Abs(fixtureDir + "stats-node.xml")
	require.NoError(t, err)
	cfg := testConfig()
	cfg.StatsInterval = 0
	cfg.Connections = []ConnConfig{{URI: d.URI("test://" + node)}}
	srcs, err := New(cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	src := srcs[0].(*Source)
	rec := newRecorder()
	require.NoError(t, src.Start(context.Background(), rec.publish))
	t.Cleanup(src.Stop)
	rec.waitFor(t, 10*time.Second, "first snapshot", func(s enrich.Snapshot) bool { return len(s.VMs) == 3 })
	src.mu.Lock()
	cl := src.client
	src.mu.Unlock()
	require.NotNil(t, cl)
	return src, cl, d
}

// virshKV runs virsh and returns its "key value" lines (the last field is
// the value; a leading device name such as "vda" is dropped).
func virshKV(t *testing.T, uri string, args ...string) map[string]string {
	t.Helper()
	bin, err := exec.LookPath("virsh")
	if err != nil {
		if os.Getenv("VMFLOW_INTEGRATION") == "1" {
			t.Fatalf("virsh not found (install libvirt-clients): %v", err)
		}
		t.Skip("virsh not found")
	}
	out, err := exec.Command(bin, append([]string{"-c", uri}, args...)...).CombinedOutput()
	require.NoError(t, err, "virsh %v: %s", args, out)
	kv := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok {
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
			continue
		}
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == "seconds" {
			f = f[:len(f)-1]
		}
		if len(f) >= 2 {
			kv[f[len(f)-2]] = f[len(f)-1]
		}
	}
	return kv
}

func kvUint(t *testing.T, kv map[string]string, k string) uint64 {
	t.Helper()
	s, ok := kv[k]
	require.True(t, ok, "virsh printed no %q: %v", k, kv)
	s = strings.Fields(s)[0]
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, k)
	return v
}

func kvSeconds(t *testing.T, kv map[string]string, k string) float64 {
	t.Helper()
	s, ok := kv[k]
	require.True(t, ok, "virsh printed no %q: %v", k, kv)
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(s)[0], "s"), 64)
	require.NoError(t, err, k)
	return v
}

func sampleOf(t *testing.T, samples []enrich.VMResourceSample, name string) enrich.VMResourceSample {
	t.Helper()
	for _, s := range samples {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sample of %s in %d samples", name, len(samples))
	return enrich.VMResourceSample{}
}

func disk(s enrich.VMResourceSample, name string) enrich.DiskSample {
	for _, d := range s.Disks {
		if d.Name == name {
			return d
		}
	}
	return enrich.DiskSample{}
}

func nic(s enrich.VMResourceSample, name string) enrich.NICSample {
	for _, n := range s.NICs {
		if n.Name == name {
			return n
		}
	}
	return enrich.NICSample{}
}

// between asserts lo <= v <= hi (the test driver's counters grow with the
// wall clock, so virsh before and after a poll bracket the polled value).
func between(t *testing.T, lo, v, hi uint64, what string) {
	t.Helper()
	assert.True(t, lo <= v && v <= hi, "%s: %d not within virsh's [%d, %d]", what, v, lo, hi)
}

// What it must show (1): against the real libvirtd test driver, every
// figure of a per-domain stats poll equals what virsh prints for the same
// domain around the same poll; rates follow the counters' growth; a
// domain restarted between polls gives no rate at all.
func TestLibvirtStatsMatchVirsh(t *testing.T) {
	src, cl, d := startStatsSource(t)
	node, err := filepath.Abs(fixtureDir + "stats-node.xml")
	require.NoError(t, err)
	uri := src.cc.URI
	vuri := "test+unix://" + node + "?socket=" + d.Socket
	tr := enrich.NewResourceTracker(enrich.ResourceTrackerConfig{})
	src.sink = tr
	ctx := context.Background()

	type snap struct{ info, mem, cpu, vda, vdb, if0, if1 map[string]string }
	read := func(dom string) snap {
		return snap{
			info: virshKV(t, vuri, "dominfo", dom), mem: virshKV(t, vuri, "dommemstat", dom),
			cpu: virshKV(t, vuri, "cpu-stats", dom, "--total"),
			vda: virshKV(t, vuri, "domblkstat", dom, "vda"), vdb: virshKV(t, vuri, "domblkstat", dom, "vdb"),
			if0: virshKV(t, vuri, "domifstat", dom, "tapdb1-0"), if1: virshKV(t, vuri, "domifstat", dom, "tapdb1-1"),
		}
	}
	poll := func() []enrich.VMResourceSample {
		bulk := true
		require.NoError(t, src.pollStats(ctx, cl, &bulk))
		assert.False(t, bulk, "the test driver answers only the state group in bulk: per-domain path")
		return src.LastStats()
	}

	before := read("db-1")
	t0 := time.Now()
	samples1 := poll()
	after := read("db-1")
	require.Len(t, samples1, 3)
	s1 := sampleOf(t, samples1, "db-1")

	assert.Equal(t, "c0ffee00-0001-4000-8000-000000000001", s1.UUID)
	assert.Equal(t, enrich.ResourceSourceLibvirt, s1.Source)
	assert.Equal(t, "running", s1.State)
	assert.Equal(t, strings.ToLower(before.info["State"]), s1.State)
	assert.EqualValues(t, kvUint(t, before.info, "CPU(s)"), s1.CPU.VCPUs)
	assert.EqualValues(t, kvUint(t, before.info, "Max memory")*1024, s1.Mem.MaxBytes)
	cpuSec := float64(s1.CPU.TimeNs) / 1e9
	assert.True(t, kvSeconds(t, before.info, "CPU time")-0.05 <= cpuSec && cpuSec <= kvSeconds(t, after.info, "CPU time")+0.05,
		"cpu time %f within virsh's [%s, %s]", cpuSec, before.info["CPU time"], after.info["CPU time"])
	// dommemstat: fixed values in the test driver, equal.
	for k, got := range map[string]uint64{"actual": s1.Mem.BalloonBytes, "swap_in": s1.Mem.SwapInBytes, "swap_out": s1.Mem.SwapOutBytes,
		"unused": s1.Mem.UnusedBytes, "available": s1.Mem.AvailableBytes, "usable": s1.Mem.UsableBytes, "rss": s1.Mem.RSSBytes} {
		assert.Equal(t, kvUint(t, before.mem, k)*1024, got, "dommemstat %s", k)
	}
	assert.Equal(t, kvUint(t, before.mem, "major_fault"), s1.Mem.MajorFaults)
	assert.Equal(t, kvUint(t, before.mem, "minor_fault"), s1.Mem.MinorFaults)
	// cpu-stats --total: user and system time.
	assert.InDelta(t, kvSeconds(t, before.cpu, "user_time"), float64(s1.CPU.UserNs)/1e9, 1e-9)
	assert.InDelta(t, kvSeconds(t, before.cpu, "system_time"), float64(s1.CPU.SystemNs)/1e9, 1e-9)
	// domblkstat / domifstat: growing counters, bracketed.
	require.Len(t, s1.Disks, 2)
	for name, pair := range map[string][2]map[string]string{"vda": {before.vda, after.vda}, "vdb": {before.vdb, after.vdb}} {
		dk := disk(s1, name)
		between(t, kvUint(t, pair[0], "rd_req"), dk.ReadReqs, kvUint(t, pair[1], "rd_req"), name+" rd_req")
		between(t, kvUint(t, pair[0], "rd_bytes"), dk.ReadBytes, kvUint(t, pair[1], "rd_bytes"), name+" rd_bytes")
		between(t, kvUint(t, pair[0], "wr_req"), dk.WriteReqs, kvUint(t, pair[1], "wr_req"), name+" wr_req")
		between(t, kvUint(t, pair[0], "wr_bytes"), dk.WriteBytes, kvUint(t, pair[1], "wr_bytes"), name+" wr_bytes")
		between(t, kvUint(t, pair[0], "errs"), dk.Errors, kvUint(t, pair[1], "errs"), name+" errs")
	}
	require.Len(t, s1.NICs, 2)
	for name, pair := range map[string][2]map[string]string{"tapdb1-0": {before.if0, after.if0}, "tapdb1-1": {before.if1, after.if1}} {
		n := nic(s1, name)
		for k, got := range map[string]uint64{"rx_bytes": n.RxBytes, "rx_packets": n.RxPackets, "rx_errs": n.RxErrors, "rx_drop": n.RxDrops,
			"tx_bytes": n.TxBytes, "tx_packets": n.TxPackets, "tx_errs": n.TxErrors, "tx_drop": n.TxDrops} {
			between(t, kvUint(t, pair[0], k), got, kvUint(t, pair[1], k), name+" "+k)
		}
	}
	assert.Equal(t, mac("fa:16:3e:10:00:01"), nic(s1, "tapdb1-0").MAC)
	// A domain without a memballoon has no balloon figures, still CPU and devices.
	c3 := sampleOf(t, samples1, "cache-3")
	assert.False(t, c3.Mem.Have.Has(enrich.HasMemAvailable))
	assert.Len(t, c3.Disks, 1)

	// Rates: the next poll against the growth virsh sees over the same span.
	time.Sleep(1500 * time.Millisecond)
	t1 := time.Now()
	samples2 := poll()
	late := read("db-1")
	span := time.Since(t0).Seconds()
	_ = t1
	r, ok := tr.VM("c0ffee00-0001-4000-8000-000000000001")
	require.True(t, ok)
	require.False(t, r.Reset)
	require.NotNil(t, r.CPU.PercentOfCore)
	// The test driver's CPU time is the wall clock: one core, fully busy.
	assert.InDelta(t, 100, *r.CPU.PercentOfCore, 5)
	assert.InDelta(t, 25, *r.CPU.PercentOfVCPUs, 1.25, "one core of 4 vCPUs")
	wantRx := float64(kvUint(t, late.if0, "rx_bytes")-kvUint(t, before.if0, "rx_bytes")) * 8 / span
	require.NotNil(t, r.NICs[0].RxBitsPerS)
	assert.InEpsilon(t, wantRx, *r.NICs[0].RxBitsPerS, 0.1, "rx bit/s vs virsh's growth")
	wantRd := float64(kvUint(t, late.vda, "rd_req")-kvUint(t, before.vda, "rd_req")) / span
	var vda enrich.DiskRates
	for _, dr := range r.Disks {
		if dr.Name == "vda" {
			vda = dr
		}
	}
	require.NotNil(t, vda.ReadIOPS)
	assert.InEpsilon(t, wantRd, *vda.ReadIOPS, 0.1, "read IOPS vs virsh's growth")
	t.Logf("db-1 over %.2fs: cpu %.1f%% of a core (%.1f%% of %d vCPUs), tapdb1-0 rx %.0f bit/s (virsh growth %.0f), vda %.0f read IOPS (virsh %.0f)",
		r.IntervalSeconds, *r.CPU.PercentOfCore, *r.CPU.PercentOfVCPUs, r.CPU.VCPUs, *r.NICs[0].RxBitsPerS, wantRx, *vda.ReadIOPS, wantRd)
	assert.NotNil(t, r.Mem.SwapInBytesPerS)
	assert.Zero(t, *r.Mem.SwapInBytesPerS)
	_ = samples2

	// Restart db-1 between polls: a new domain id, no rate across it.
	dom, err := cl.LookupByName(ctx, "db-1")
	require.NoError(t, err)
	require.NoError(t, cl.Destroy(ctx, dom))
	require.NoError(t, cl.Create(ctx, dom))
	time.Sleep(200 * time.Millisecond)
	poll()
	r, _ = tr.VM("c0ffee00-0001-4000-8000-000000000001")
	assert.True(t, r.Reset, "restart seen")
	assert.Nil(t, r.CPU.PercentOfCore, "no CPU rate across a restart")
	for _, n := range r.NICs {
		assert.Nil(t, n.RxBitsPerS, "no vNIC rate across a restart")
	}
	for _, dr := range r.Disks {
		assert.Nil(t, dr.ReadIOPS, "no disk rate across a restart")
	}
	time.Sleep(500 * time.Millisecond)
	poll()
	r, _ = tr.VM("c0ffee00-0001-4000-8000-000000000001")
	require.NotNil(t, r.CPU.PercentOfCore, "rates again on the next poll")
	assert.InDelta(t, 100, *r.CPU.PercentOfCore, 10)
	assert.Positive(t, testutil.ToFloat64(src.m.statsPolls.WithLabelValues(uri, "per-domain")))
}
