package store

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

func TestLatencyColdRoundTripAndMerge(t *testing.T) {
	mk := func(vals ...uint32) *aggregate.Stats {
		st := &aggregate.Stats{Lat: &aggregate.Latency{}}
		for _, v := range vals {
			st.Lat.Handshake.Add(v)
			st.Lat.Guest.Add(v / 10)
			st.Lat.Client.Attempts++
			st.Lat.Client.Established++
		}
		st.Lat.Server.TimedOut = 3
		st.Lat.Echo.Add(0)
		return st
	}
	a, b := mk(1000, 2000, 2000), mk(5000, 1)
	var got aggregate.Stats
	decodeCold(encodeCold(nil, a), &got)
	require.Equal(t, a.Lat, got.Lat)
	// a row without latency stays without
	var none aggregate.Stats
	decodeCold(encodeCold(nil, &aggregate.Stats{Bytes: 1, SYN: 2}), &none)
	require.Nil(t, none.Lat)

	sa, sb := newSegment(1, 0), newSegment(1, 0)
	sa.appendRow(1, a, 1)
	sb.appendRow(1, b, 1)
	m := mergeSegments(sa, sb, 1)
	var st aggregate.Stats
	m.stats(0, &st)
	want := mk(1000, 2000, 2000, 5000, 1)
	want.Lat.Server.TimedOut = 6
	want.Lat.Echo.Add(0)
	require.Equal(t, want.Lat.Handshake, st.Lat.Handshake)
	require.Equal(t, want.Lat.Client, st.Lat.Client)
	require.Equal(t, want.Lat.Server, st.Lat.Server)
	require.Equal(t, want.Lat.Echo, st.Lat.Echo)
	// truncated bytes never panic
	enc := encodeCold(nil, a)
	for i := range enc {
		var x aggregate.Stats
		decodeCold(enc[:i], &x)
	}
}

// Version 2 (Unreachable, Ack) round-trips and merges; a row without them
// is still written as version 1, which older nodes read, and version 1
// bytes decode with the new fields zero.
func TestLatencyV2AckUnreachable(t *testing.T) {
	l := &aggregate.Latency{}
	l.Server.Attempts, l.Server.Established, l.Server.Unreachable = 5, 4, 1
	l.Ack.Add(2500)
	l.Ack.Add(2600)
	l.Guest.Add(30)
	enc := AppendLatency(nil, l)
	require.Equal(t, byte(latencyMarker), enc[0])
	require.Equal(t, l, DecodeLatency(enc))
	m := DecodeLatency(enc)
	m.Merge(DecodeLatency(enc))
	require.Equal(t, uint64(4), m.Ack.N)
	require.Equal(t, uint64(2), m.Server.Unreachable)

	old := &aggregate.Latency{}
	old.Client.Attempts, old.Client.TimedOut = 2, 2
	old.Handshake.Add(900)
	enc = AppendLatency(nil, old)
	require.Equal(t, byte(latencyMarkerV1), enc[0])
	require.Equal(t, old, DecodeLatency(enc))
	for i := range enc {
		DecodeLatency(enc[:i]) // never panics
	}
}
