package integration

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// TestConnHealthFromSFlow (issue 9, Part 2, connection health without a
// probe): vm1 makes 12 connection attempts to a closed port of vm2 (each
// one SYN answered by a RST) and 6 to an open one (SYN answered by a
// SYN-ACK); with real OVS sFlow at 1-in-1 the pairs API counts every
// SYN, SYN-ACK and RST and reports failure 12/18 and refused 12/18, each
// inside its 95% interval.
func TestConnHealthFromSFlow(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{})
	hv := lab.Hosts()[0]
	vm1, vm2 := lab.VM("vm1"), lab.VM("vm2")
	a := startVMFlow(t, writeInventory(t, lab), 2*time.Second)
	require.NoError(t, lab.EnableSFlow(hv, ovslab.SFlowOptions{CollectorPort: a.ListenPort(collector.ProtoSFlow), Sampling: 1, Polling: 10}))
	time.Sleep(time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const refused, accepted = 12, 6
	for i := 0; i < refused; i++ {
		_, _ = lab.Exec(ctx, vm1, "nc", "-z", "-w", "1", vm2.IP.String(), "7000")
	}
	srv := make(chan error, 1)
	go func() {
		_, err := lab.Exec(ctx, vm2, "sh", "-c", "for i in $(seq 6); do nc -l -p 7001 >/dev/null; done")
		srv <- err
	}()
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < accepted; i++ {
		out, err := lab.Exec(ctx, vm1, "sh", "-c", "echo hi | nc -q 1 -w 2 "+vm2.IP.String()+" 7001")
		require.NoError(t, err, "%s", out)
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, <-srv)
	time.Sleep(3 * 2 * time.Second)

	var out struct {
		Pairs []struct {
			Src struct {
				VM string `json:"vm"`
			} `json:"src"`
			Dst struct {
				VM string `json:"vm"`
			} `json:"dst"`
			TCP struct {
				SYN, SYNACK, RST float64
			} `json:"tcp"`
			ConnHealth *struct {
				SYN          float64    `json:"syn"`
				SYNACK       float64    `json:"synack_in"`
				RST          float64    `json:"rst_in"`
				FailureRatio float64    `json:"failure_ratio"`
				FailureCI95  [2]float64 `json:"failure_ci95"`
				RefusedRatio float64    `json:"refused_ratio"`
				RefusedCI95  [2]float64 `json:"refused_ci95"`
			} `json:"conn_health"`
		} `json:"pairs"`
	}
	getJSON(t, a, "/api/v1/pairs", url.Values{"source": {"sflow"}, "since": {"5m"}}, &out)
	found := false
	for _, p := range out.Pairs {
		if p.Src.VM != "vm1" || p.Dst.VM != "vm2" {
			continue
		}
		found = true
		h := p.ConnHealth
		require.NotNil(t, h, "conn_health of vm1 -> vm2")
		t.Logf("vm1 -> vm2 conn_health %+v", *h)
		assert.Equal(t, float64(refused+accepted), h.SYN)
		assert.Equal(t, float64(accepted), h.SYNACK)
		assert.Equal(t, float64(refused), h.RST)
		assert.InDelta(t, 12.0/18, h.FailureRatio, 1e-9)
		assert.InDelta(t, 12.0/18, h.RefusedRatio, 1e-9)
		assert.True(t, h.FailureCI95[0] < h.FailureRatio && h.FailureRatio < h.FailureCI95[1], "%v", h.FailureCI95)
		assert.True(t, h.RefusedCI95[0] < h.RefusedRatio && h.RefusedRatio < h.RefusedCI95[1], "%v", h.RefusedCI95)
	}
	require.True(t, found, "pair vm1 -> vm2 in %+v", out.Pairs)
}
