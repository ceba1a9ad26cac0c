package influx

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

func TestLatencyFieldsOnTheProbePoint(t *testing.T) {
	win := benchWindow(2, time.Unix(1_700_000_000, 0))
	p := win.Pairs[0]
	p.Key.Source = decoder.SourceProbe
	p.Stats = aggregate.Stats{Lat: &aggregate.Latency{}}
	for _, v := range []uint32{1000, 2000, 3000} {
		p.Stats.Lat.Handshake.Add(v)
	}
	p.Stats.Lat.Client = aggregate.ConnCounts{Attempts: 5, Established: 3, Refused: 1, Unreachable: 1}
	p.Stats.Lat.Ack.Add(2500)
	win.Pairs = append(win.Pairs, p)
	e := newEncoder()
	e.prepare(win)
	var out []byte
	for j := range e.pairs {
		out = e.appendPair(out, j)
	}
	var probeLine string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "source=probe") {
			probeLine = l
		} else if l != "" {
			assert.NotContains(t, l, "latency_", "traffic points carry no latency")
		}
	}
	for _, f := range []string{"latency_count=3i", "latency_p50_us=", "connect_attempts=5i", "connect_refused=1i", "interval=",
		"ack_count=1i", "ack_p50_us=", "connect_unreachable=1i"} {
		assert.Contains(t, probeLine, f)
	}
	assert.NotContains(t, probeLine, "bytes=", "no traffic fields on the probe's point")
	for j := range e.vms {
		assert.NotContains(t, string(e.appendVM(nil, j)), "source=probe", "no vm point for the probe's pairs")
	}
}

// withProbePairs adds the probe's latency pairs for every VM-to-VM or
// VM-to-external pair of w (the dashboards' latency panels read them).
func withProbePairs(w *aggregate.Window) *aggregate.Window {
	n := len(w.Pairs)
	for i := 0; i < n; i++ {
		p := w.Pairs[i]
		if p.Key.Source != decoder.SourceSFlow || p.Src.VM == "" {
			continue
		}
		p.Key.Source = decoder.SourceProbe
		p.Stats = aggregate.Stats{Lat: &aggregate.Latency{}}
		for _, v := range []uint32{900, 1000, 1200} {
			p.Stats.Lat.Handshake.Add(v)
			p.Stats.Lat.Guest.Add(v / 20)
			p.Stats.Lat.Echo.Add(v - 100)
			p.Stats.Lat.Ack.Add(v - 50)
		}
		p.Stats.Lat.Client = aggregate.ConnCounts{Attempts: 5, Established: 3, Refused: 1, TimedOut: 1, SYNRetries: 1, RSTClosed: 1}
		w.Pairs = append(w.Pairs, p)
	}
	return w
}
