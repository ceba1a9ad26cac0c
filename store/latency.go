package store

import (
	"encoding/binary"
	"math"

	"github.com/vmflow/vmflow/aggregate"
)

// A row's latency (aggregate.Latency, probe pairs only) is the last part of
// its cold bytes: a marker byte, the 2×11 connection counts and the five
// histograms as uvarints (bucket indexes as deltas), the sums as float64
// bits. Histograms merge exactly, so the tiers' merged rows hold exactly
// the distribution of their windows. Version 1 (marker 'L': 2×10 counts,
// four histograms, without Unreachable and Ack) is still read.
const (
	latencyMarker   = 'M'
	latencyMarkerV1 = 'L'
)

func latCounts(c *aggregate.ConnCounts, v1 bool) []*uint64 {
	p := []*uint64{&c.Attempts, &c.Established, &c.Refused, &c.TimedOut, &c.SYNRetries,
		&c.FINClosed, &c.RSTClosed, &c.Echoes, &c.EchoLost, &c.ICMPErrors, &c.Unreachable}
	if v1 {
		return p[:10]
	}
	return p
}

func latHists(l *aggregate.Latency, v1 bool) []*aggregate.Hist {
	h := []*aggregate.Hist{&l.Handshake, &l.Guest, &l.Echo, &l.EchoServer, &l.Ack}
	if v1 {
		return h[:4]
	}
	return h
}

func appendLatency(b []byte, l *aggregate.Latency) []byte {
	if l == nil {
		return b
	}
	// without the version 2 quantities, version 1: readable by older
	// nodes (store/peer) too
	v1 := l.Client.Unreachable == 0 && l.Server.Unreachable == 0 && l.Ack.N == 0
	if v1 {
		b = append(b, latencyMarkerV1)
	} else {
		b = append(b, latencyMarker)
	}
	for _, c := range []*aggregate.ConnCounts{&l.Client, &l.Server} {
		for _, v := range latCounts(c, v1) {
			b = binary.AppendUvarint(b, *v)
		}
	}
	for _, h := range latHists(l, v1) {
		b = binary.AppendUvarint(b, h.N)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(h.Sum))
		b = binary.AppendUvarint(b, uint64(h.Min))
		b = binary.AppendUvarint(b, uint64(h.Max))
		b = binary.AppendUvarint(b, uint64(len(h.B)))
		prev := int64(-1)
		for _, bk := range h.B {
			b = binary.AppendUvarint(b, uint64(int64(bk.I)-prev))
			b = binary.AppendUvarint(b, bk.C)
			prev = int64(bk.I)
		}
	}
	return b
}

// AppendLatency appends l's encoding (nothing for nil): the peer codec's
// form of a pair's latency too (store/peer).
func AppendLatency(b []byte, l *aggregate.Latency) []byte { return appendLatency(b, l) }

// DecodeLatency reads what AppendLatency wrote; nil when absent or corrupt.
func DecodeLatency(b []byte) *aggregate.Latency { return decodeLatency(b) }

// decodeLatency reads what appendLatency wrote (nil when absent or cut).
func decodeLatency(b []byte) *aggregate.Latency {
	if len(b) == 0 || (b[0] != latencyMarker && b[0] != latencyMarkerV1) {
		return nil
	}
	v1 := b[0] == latencyMarkerV1
	b = b[1:]
	ok := true
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			ok = false
			return 0
		}
		b = b[n:]
		return v
	}
	l := &aggregate.Latency{}
	for _, c := range []*aggregate.ConnCounts{&l.Client, &l.Server} {
		for _, v := range latCounts(c, v1) {
			*v = uv()
		}
	}
	for _, h := range latHists(l, v1) {
		h.N = uv()
		if len(b) < 8 {
			return nil
		}
		h.Sum = math.Float64frombits(binary.LittleEndian.Uint64(b))
		b = b[8:]
		h.Min, h.Max = uint32(uv()), uint32(uv())
		nb := uv()
		if !ok || nb > uint64(len(b)) {
			return nil
		}
		if nb == 0 {
			continue
		}
		h.B = make([]aggregate.HistBucket, nb)
		prev := int64(-1)
		for i := range h.B {
			prev += int64(uv())
			h.B[i] = aggregate.HistBucket{I: int32(prev), C: uv()}
		}
	}
	if !ok {
		return nil
	}
	return l
}
