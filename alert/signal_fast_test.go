package alert

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

// TestStatSignalReadsThePair: every traffic signal reads the pair's own
// statistics (and its reverse pair's answers) through the view's copies,
// and every other pair signal is a latency or connection-health one.
func TestStatSignalReadsThePair(t *testing.T) {
	p := &aggregate.Pair{Stats: aggregate.Stats{Bytes: 123456, Packets: 789, Flows: 17, SYN: 12.5, RST: 3, ICMPErrors: 2}}
	pv := new(newPview(0, 1, 2, p))
	pv.synAns, pv.rstIn = 4, 1.5
	want := map[string]float64{
		"bytes": 123456, "packets": 789, "bps": 123456 * 8 / 10.0, "pps": 78.9, "flows": 17,
		"syn": 12.5, "synack": 4, "syn_unanswered": 8.5, "rst": 3, "rst_in": 1.5, "icmp_errors": 2,
	}
	covered := 0
	for _, sig := range pairSignals {
		get := statSignal(sig)
		if get == nil {
			require.True(t, slices.Contains(latencySignals, sig) || slices.Contains([]string{"conn_failure", "conn_failure_lo", "conn_refused"}, sig),
				"%s: neither a traffic, latency nor health signal", sig)
			continue
		}
		covered++
		w, ok := want[sig]
		require.True(t, ok, sig)
		require.InDelta(t, w, get(pv, 10), 1e-9, sig)
	}
	require.Equal(t, len(want), covered, "every traffic signal is a pair signal")
}
