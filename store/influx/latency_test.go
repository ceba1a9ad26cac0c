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
	p.Stats.Lat.Client = aggregate.ConnCounts{Attempts: 4, Established: 3, Refused: 1}
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
	for _, f := range []string{"latency_count=3i", "latency_p50_us=", "connect_attempts=4i", "connect_refused=1i", "bytes=0"} {
		assert.Contains(t, probeLine, f)
	}
	for j := range e.vms {
		assert.NotContains(t, string(e.appendVM(nil, j)), "source=probe", "no vm point for the probe's pairs")
	}
}
