package influx

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

func portWin(base time.Time, k int) *aggregate.Window {
	w := mkWindow(base, k)
	for i := range w.Pairs { // answers for the connection health panel
		w.Pairs[i].Stats.SYNACKIn = w.Pairs[i].Stats.SYN / 2
	}
	w.Ports = []aggregate.PortStats{
		{Key: aggregate.PortKey{Agent: netip.MustParseAddr("10.9.0.1"), IfIndex: 7}, Name: "vnet7", Host: "hv1", VM: "web-1", Tenant: "acme",
			Seconds: 10, Samples: 1, IfSpeed: 1e9, InOctets: 1250000, OutOctets: 250000, InPackets: 1000, OutPackets: 200,
			InErrors: uint64(k), OutDiscards: 5},
		{Key: aggregate.PortKey{Agent: netip.MustParseAddr("10.9.0.1"), IfIndex: 9}, Seconds: 10, Samples: 1, Resets: 1, InOctets: 10},
	}
	return w
}

// TestPortPointsWritten: every window's ports become vm_port points (one
// series per port) with the deltas and rates, read back from a real
// InfluxDB; with influx.window the windows' deltas are merged per port.
func TestPortPointsWritten(t *testing.T) {
	const db = "vmflow_ports"
	srv := startInflux(t, db)
	for i, every := range []time.Duration{0, 30 * time.Second} {
		t.Run(fmt.Sprint(every), func(t *testing.T) {
			cfg := testConfig(t, srv.URL(), db)
			cfg.Window = every
			w := newTestWriter(t, cfg)
			require.NoError(t, w.Start(context.Background()))
			base := time.Now().Add(-2*time.Hour - time.Duration(i)*10*time.Minute).Truncate(time.Minute)
			for k := 0; k < 3; k++ {
				w.Write(portWin(base, k))
			}
			w.Stop()
			r, err := NewReader(cfg)
			require.NoError(t, err)
			defer r.Close()
			rows := fluxRows(t, r, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "vm_port")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> sort(columns: ["_time"])`, cfg.Bucket, fluxTime(base), fluxTime(base.Add(time.Minute))))
			var web, other []map[string]any
			for _, row := range rows {
				if row["vm"] == "web-1" {
					web = append(web, row)
				} else {
					other = append(other, row)
				}
			}
			want := 3
			if every > 0 {
				want = 1
			}
			require.Len(t, web, want)
			row := web[0]
			assert.Equal(t, "hv1", row["host"])
			assert.Equal(t, "vnet7", row["port"])
			assert.Equal(t, "acme", row["tenant"])
			if every == 0 {
				assert.Equal(t, int64(1250000), row["in_octets"])
				assert.Equal(t, 1e6, row["in_bps"])
				assert.Equal(t, int64(0), row["in_errors"])
				assert.Equal(t, 0.5, row["out_discards_ps"])
				assert.Equal(t, 0.001, row["in_util"])
				assert.Equal(t, int64(1e9), row["if_speed"])
				assert.Equal(t, 10.0, row["seconds"])
			} else {
				assert.Equal(t, int64(3*1250000), row["in_octets"])
				assert.Equal(t, int64(0+1+2), row["in_errors"])
				assert.Equal(t, 30.0, row["seconds"])
				assert.Equal(t, 1e6, row["in_bps"])
			}
			require.NotEmpty(t, other)
			assert.Equal(t, "-", other[0]["vm"], "an unattributed port")
			assert.Equal(t, "10.9.0.1", other[0]["host"])
			assert.Equal(t, "ifindex9", other[0]["port"])
			assert.NotNil(t, other[0]["resets"])
			assert.True(t, strings.HasPrefix(fmt.Sprint(other[0]["_measurement"]), "vm_port"))

			// History reads rebuild the windows' ports.
			ws, err := r.Windows(context.Background(), base, base.Add(time.Minute))
			require.NoError(t, err)
			var got []aggregate.PortStats
			for _, hw := range ws {
				got = aggregate.MergePorts(got, hw.Ports)
			}
			var wantPorts []aggregate.PortStats
			for k := 0; k < 3; k++ {
				wantPorts = aggregate.MergePorts(wantPorts, portWin(base, k).Ports)
			}
			require.Len(t, got, 2)
			byIf := func(a, b aggregate.PortStats) int { return int(a.Key.IfIndex) - int(b.Key.IfIndex) }
			slices.SortFunc(got, byIf)
			slices.SortFunc(wantPorts, byIf)
			for i := range wantPorts {
				wantPorts[i].UUID = "" // not in vm_port
				assert.Equal(t, wantPorts[i], got[i], "port %d read back", i)
			}
		})
	}
}
