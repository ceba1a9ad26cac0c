package api

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fixture's port vnet0 of web-1 (fixtureWindows): in 12,500 B/s, out
// 2,500 B/s, speed 10 Mbit/s, errors from window 3 on.
func TestVMPortsInListDetailAndSeries(t *testing.T) {
	e := newEnv(t, nil)

	var list struct {
		VMs []struct {
			Name  string    `json:"name"`
			Ports []portOut `json:"ports"`
		} `json:"vms"`
	}
	require.Equal(t, 200, e.get(t, "/api/v1/vms", &list))
	byName := map[string][]portOut{}
	for _, v := range list.VMs {
		byName[v.Name] = v.Ports
	}
	require.Len(t, byName["web-1"], 1)
	p := byName["web-1"][0]
	assert.Equal(t, "vnet0", p.Name)
	assert.Equal(t, "hv1", p.Host)
	assert.Equal(t, uint32(7), p.IfIndex)
	assert.Equal(t, T.Add(60e9), *p.Time, "latest window")
	assert.Equal(t, 100000.0, p.InBPS)
	assert.Equal(t, 20000.0, p.OutBPS)
	assert.Equal(t, 0.1, p.InErrorsPS)
	assert.Equal(t, 0.2, p.OutDiscardsPS)
	require.NotNil(t, p.InUtil)
	assert.InDelta(t, 0.01, *p.InUtil, 1e-12)
	assert.Empty(t, byName["db-1"], "no counters for db-1: an empty list")
	assert.NotNil(t, byName["db-1"])

	var det vmDetailOut
	require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1?since=1m", &det))
	require.Len(t, det.Ports, 1)
	d := det.Ports[0]
	assert.Equal(t, uint64(12500*65), d.InOctets, "windows 0..5 summed")
	assert.Equal(t, 65.0, d.Seconds)
	assert.Equal(t, uint32(7), d.Samples)
	assert.Equal(t, uint64(3), d.InErrors)
	assert.Equal(t, uint64(6), d.OutDiscards)
	assert.Equal(t, 100000.0, d.InBPS, "rate over the covered time: no spike from the window with two samples")
	assert.InDelta(t, 3.0/65, d.InErrorsPS, 1e-12)
	require.NotNil(t, det.VM)
	assert.Equal(t, "web-1", det.VM.Name)
	assert.Equal(t, 404, e.get(t, "/api/v1/vms/nosuch", nil))
	assert.Equal(t, 200, e.get(t, "/api/v1/vms/11111111-1111-1111-1111-111111111111", &det), "by UUID")
	assert.Len(t, det.Ports, 1)

	var ser vmSeriesOut
	require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1/series?since=1h", &ser))
	withPort := 0
	for _, pt := range ser.Points {
		if pt.Port != nil {
			withPort++
			assert.Equal(t, 100000.0, pt.Port.InBPS, "%s", pt.Time)
		}
	}
	assert.Equal(t, 6, withPort)
	require.Equal(t, 200, e.get(t, "/api/v1/vms/web-1/series?since=1h&step=1m", &ser))
	var errs uint64
	for _, pt := range ser.Points {
		require.NotNil(t, pt.Port)
		errs += pt.Port.InErrors
		assert.Equal(t, 100000.0, pt.Port.InBPS)
	}
	assert.Equal(t, uint64(3), errs)
}

// TestPairConnHealth: web-1 → db-1 (IPFIX) sent 6 SYNs over the fixture,
// 3 answered by SYN-ACKs: failure ratio 0.5 with its Wilson interval.
func TestPairConnHealth(t *testing.T) {
	e := newEnv(t, nil)
	var out pairsOut
	require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1h&source=ipfix", &out))
	var h *connHealthOut
	for _, p := range out.Pairs {
		if p.Src.VM == "web-1" && p.Dst.VM == "db-1" {
			h = p.ConnHealth
		}
	}
	require.NotNil(t, h)
	assert.Equal(t, 6.0, h.SYN)
	assert.Equal(t, 3.0, h.SYNACK)
	assert.Equal(t, 0.5, h.FailureRatio)
	assert.Equal(t, 6.0, h.SampledSYN, "1-in-1")
	// Wilson on 3 answers of 9 (answers + SYNs): [0.1206, 0.6458] →
	// answered ratio [0.137, 1.824] → failure [0, 0.863].
	assert.Equal(t, 0.0, h.FailureCI95[0])
	assert.InDelta(t, 0.863, h.FailureCI95[1], 1e-3)
	assert.Equal(t, 0.0, h.RefusedRatio)
}
