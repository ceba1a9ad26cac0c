package alert

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

// TestStatSignalEqualsPairSignal: the per-rule resolved readers give what
// the general pairSignal gives, for every signal they cover.
func TestStatSignalEqualsPairSignal(t *testing.T) {
	p := &aggregate.Pair{Stats: aggregate.Stats{Bytes: 123456, Packets: 789, Flows: 17, SYN: 12.5, RST: 3, ICMPErrors: 2}}
	pv := new(newPview(0, 1, 2, p))
	pv.synAns, pv.rstIn = 4, 1.5
	covered := 0
	for _, sig := range pairSignals {
		get := statSignal(sig)
		if get == nil {
			continue
		}
		covered++
		require.Equal(t, pairSignal(sig, p, pv, 10), get(pv, 10), sig)
	}
	require.Equal(t, 11, covered, "every fast signal is a pair signal")
}
