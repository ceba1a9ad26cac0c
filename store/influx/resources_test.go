package influx

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/enrich"
)

// VM resource figures written through the Writer into a real influxd read
// back with Flux: one vm_resources, vm_disk and vm_nic point each, fields
// as written, rates absent where the tracker had none.
func TestWriteResourcesReadBack(t *testing.T) {
	const db = "vmflow_res"
	srv := startInflux(t, db)
	cfg := testConfig(t, srv.URL(), db)
	w := newTestWriter(t, cfg)
	require.NoError(t, w.Start(context.Background()))

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	tr := enrich.NewResourceTracker(enrich.ResourceTrackerConfig{StaleAfter: 2 * time.Hour, Forget: 24 * time.Hour})
	tr.OnUpdate(w.WriteResources)
	smp := func(at time.Duration, cpu, rx uint64) enrich.VMResourceSample {
		return enrich.VMResourceSample{UUID: "u-1", Name: "web 1", Host: "hv1", Source: enrich.ResourceSourceLibvirt, Time: base.Add(at), Incarnation: 1,
			CPU:   enrich.CPUSample{Have: enrich.HasCPUTime | enrich.HasVCPUs, TimeNs: cpu, VCPUs: 2},
			Mem:   enrich.MemSample{Have: enrich.HasMemAvailable | enrich.HasMemUnused, AvailableBytes: 1000, UnusedBytes: 250},
			Disks: []enrich.DiskSample{{Name: "vda", Have: enrich.HasDiskIO | enrich.HasDiskErrors, ReadReqs: rx / 10, Errors: 3}},
			NICs:  []enrich.NICSample{{Name: "vnet0", MAC: [6]byte{0x52, 0x54, 0, 0, 0, 1}, Have: enrich.HasNICBytes, RxBytes: rx}},
		}
	}
	tr.PutVM(smp(0, 0, 0))
	tr.PutVM(smp(10*time.Second, 10e9, 12500))
	w.Stop()

	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()
	q := func(m string) []map[string]any {
		return fluxRows(t, r, fmt.Sprintf(`from(bucket: %q) |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %q)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value") |> sort(columns: ["_time"])`,
			cfg.Bucket, fluxTime(base.Add(-time.Minute)), fluxTime(base.Add(time.Hour)), m))
	}
	res := q(MeasurementVMResources)
	require.Len(t, res, 2)
	assert.Equal(t, "web 1", res[1]["vm"])
	assert.Equal(t, "hv1", res[1]["host"])
	assert.Equal(t, "libvirt", res[1]["source"])
	assert.Equal(t, 50.0, res[1]["cpu_percent"])
	assert.Equal(t, 100.0, res[1]["cpu_core_percent"])
	assert.Equal(t, 75.0, res[1]["mem_used_percent"])
	assert.EqualValues(t, 750, res[1]["mem_used_bytes"])
	assert.Equal(t, "u-1", res[1]["uuid"])
	assert.Nil(t, res[0]["cpu_percent"], "first sample: no rate")
	nics := q(MeasurementVMNIC)
	require.Len(t, nics, 1, "the first sample has no vNIC rates: no point")
	assert.Equal(t, 10000.0, nics[0]["rx_bits_per_s"])
	assert.Equal(t, "52:54:00:00:00:01", nics[0]["mac"])
	disks := q(MeasurementVMDisk)
	require.Len(t, disks, 1)
	assert.Equal(t, 125.0, disks[0]["read_iops"])
	assert.EqualValues(t, 0, disks[0]["errors"])
}

// resourceSample is VM vm's k-th poll, 10 s apart: every counter grows.
func resourceSample(vm string, at time.Time, k uint64) enrich.VMResourceSample {
	all := enrich.HasNICBytes | enrich.HasNICPackets | enrich.HasNICErrors | enrich.HasNICDrops
	return enrich.VMResourceSample{UUID: "u-" + vm, Name: vm, Host: "hv1", Source: enrich.ResourceSourceLibvirt, Time: at, Incarnation: 1,
		CPU: enrich.CPUSample{Have: enrich.HasCPUTime | enrich.HasVCPUs, TimeNs: k * 5e9, VCPUs: 2},
		Mem: enrich.MemSample{Have: enrich.HasMemAvailable | enrich.HasMemUnused | enrich.HasMemBalloon | enrich.HasMemRSS | enrich.HasMemSwapIn | enrich.HasMemSwapOut | enrich.HasMemMajorFault,
			AvailableBytes: 1 << 30, UnusedBytes: 1 << 28, BalloonBytes: 1 << 30, RSSBytes: 1 << 29, SwapInBytes: k * 4096, SwapOutBytes: k * 8192, MajorFaults: k * 3},
		Disks: []enrich.DiskSample{{Name: "vda", Have: enrich.HasDiskIO | enrich.HasDiskErrors, ReadReqs: k * 100, ReadBytes: k * 409600, WriteReqs: k * 50, WriteBytes: k * 204800, Errors: k / 3}},
		NICs: []enrich.NICSample{{Name: "vnet0", Have: all, RxBytes: k * 125000, TxBytes: k * 250000, RxPackets: k * 100, TxPackets: k * 200,
			RxErrors: k / 2, TxErrors: k / 5, RxDrops: k / 4, TxDrops: k / 6}},
	}
}
