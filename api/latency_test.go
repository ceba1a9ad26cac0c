package api

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

type jLatency struct {
	Handshake *struct {
		Count uint64  `json:"count"`
		P50   float64 `json:"p50"`
		Max   float64 `json:"max"`
	} `json:"handshake_us"`
	Network *struct {
		P50 float64 `json:"p50"`
	} `json:"network_us"`
	Ack *struct {
		Count uint64  `json:"count"`
		Max   float64 `json:"max"`
	} `json:"ack_us"`
	MeasuredAt   string  `json:"measured_at"`
	Unreachable  uint64  `json:"unreachable"`
	Attempts     uint64  `json:"attempts"`
	Refused      uint64  `json:"refused"`
	FailureRatio float64 `json:"failure_ratio"`
}

type jLatPair struct {
	jPair
	Latency *jLatency `json:"latency"`
}

func probeWindowPair(rtt uint32) aggregate.Pair {
	l := &aggregate.Latency{}
	l.Handshake.Add(rtt)
	l.Guest.Add(rtt / 10)
	l.Ack.Add(2 * rtt)
	l.Client = aggregate.ConnCounts{Attempts: 3, Established: 1, Refused: 1, Unreachable: 1}
	return aggregate.Pair{Key: aggregate.PairKey{Src: web1.key(), Dst: db1.key(), Source: decoder.SourceProbe},
		Src: web1.endpoint(), Dst: db1.endpoint(), Stats: aggregate.Stats{Lat: l}}
}

// The probe's pairs add latency to the pair of the selected protocol and
// change nothing else: same pairs, same bytes, on both read paths.
func TestPairsCarryLatency(t *testing.T) {
	for _, path := range []string{"fast", "windows"} {
		t.Run(path, func(t *testing.T) {
			var base jPairs
			newEnv(t, nil).get(t, "/api/v1/pairs?since=1m", &base)
			e := newEnv(t, func(d *Deps, _ *Config) {
				if path == "windows" {
					d.Store = windowsOnly{d.Store}
				}
			})
			// windows 1 and 2 (of the fixture's 6) get probe measurements
			for i, rtt := range []uint32{1000, 3000} {
				w := fixtureWindows()[i+1]
				w.Pairs = []aggregate.Pair{probeWindowPair(rtt)}
				w.Start, w.End = w.Start.Add(1), w.End.Add(1) // beside the fixture's own windows
				e.mem.Write(w)
			}
			for _, src := range []string{"auto", "sflow", "ipfix"} {
				var r struct {
					Pairs []jLatPair `json:"pairs"`
				}
				require.Equal(t, 200, e.get(t, "/api/v1/pairs?since=1m&source="+src, &r))
				var ref jPairs
				newEnv(t, nil).get(t, "/api/v1/pairs?since=1m&source="+src, &ref)
				var ps []jPair
				for _, p := range r.Pairs {
					ps = append(ps, p.jPair)
					if name(p.Src) == "web-1" && name(p.Dst) == "db-1" {
						require.NotNil(t, p.Latency, src)
						assert.Equal(t, uint64(2), p.Latency.Handshake.Count, src)
						assert.Equal(t, 3000.0, p.Latency.Handshake.Max, src)
						assert.Equal(t, uint64(6), p.Latency.Attempts, src)
						assert.Equal(t, uint64(2), p.Latency.Refused, src)
						assert.Equal(t, uint64(2), p.Latency.Unreachable, src)
						assert.InDelta(t, 4.0/6, p.Latency.FailureRatio, 1e-9, src)
						require.NotNil(t, p.Latency.Ack, src)
						assert.Equal(t, uint64(2), p.Latency.Ack.Count, src)
						assert.Equal(t, 6000.0, p.Latency.Ack.Max, src)
						assert.Equal(t, "client", p.Latency.MeasuredAt, src)
						require.NotNil(t, p.Latency.Network, src)
					} else {
						assert.Nil(t, p.Latency, "%s>%s", name(p.Src), name(p.Dst))
					}
				}
				assert.Equal(t, names(ref.Pairs), names(ps), "%s: same pairs with and without the probe", src)
				for i := range ps {
					assert.Equal(t, ref.Pairs[i].Bytes, ps[i].Bytes, "%s: bytes unchanged", src)
				}
			}
		})
	}
}
