package alert

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

func probePair(src, dst int, rtts []uint32, attempts, refused, timedOut uint64) aggregate.Pair {
	p := pair(src, dst, 0)
	p.Key.Source = decoder.SourceProbe
	p.Stats = aggregate.Stats{Lat: &aggregate.Latency{}}
	for _, v := range rtts {
		p.Stats.Lat.Handshake.Add(v)
	}
	p.Stats.Lat.Client = aggregate.ConnCounts{Attempts: attempts, Established: attempts - refused - timedOut, Refused: refused, TimedOut: timedOut}
	return p
}

// Latency signals: p95 above a threshold and the failure ratio, on the
// probe's pairs only; traffic rules never see the probe's pairs.
func TestLatencySignals(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: slow
    kind: threshold
    subject: pair
    signal: latency_p95_us
    severity: P2
    threshold: 5000
  - name: failing
    kind: threshold
    subject: pair
    signal: connect_failure_ratio
    severity: P1
    threshold: 0.2
  - name: quiet
    kind: threshold
    subject: pair
    signal: bytes
    op: below
    threshold: 10
    severity: P4
`, nil)
	fast := probePair(1, 2, []uint32{900, 1000, 1100}, 10, 0, 0)
	slow := probePair(3, 4, []uint32{900, 8000, 9000, 9500}, 10, 1, 2)
	f.e.Evaluate(window(0, pair(1, 2, 5000), fast, slow))
	got := f.firing("slow")
	require.Len(t, got, 1)
	assert.Equal(t, "vm-3", got[0].Labels["src"])
	assert.InDelta(t, 9500, got[0].Value, 100)
	got = f.firing("failing")
	require.Len(t, got, 1)
	assert.InDelta(t, 0.3, got[0].Value, 1e-9)
	assert.Empty(t, f.firing("quiet"), "the probe's pairs (no bytes) are no traffic")
}

// The README's latency rule examples parse.
func TestLatencyRuleExamplesParse(t *testing.T) {
	_, err := ParseRules([]byte(`
rules:
  - name: slow-handshakes
    kind: baseline
    subject: pair
    signal: latency_p95_us
    severity: P2
    deviations: 4
  - name: connections-failing
    kind: threshold
    subject: pair
    signal: connect_failure_ratio
    threshold: 0.2
    severity: P1
`))
	require.NoError(t, err)
}
