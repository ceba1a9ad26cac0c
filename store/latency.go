package store

import (
	"encoding/binary"
	"math"

	"github.com/vmflow/vmflow/aggregate"
)

// A row's latency (aggregate.Latency, probe pairs only) is the last part of
// its cold bytes: a marker byte, the 2×10 connection counts and the four
// histograms as uvarints (bucket indexes as deltas), the sums as float64
// bits. Histograms merge exactly, so the tiers' merged rows hold exactly
// the distribution of their windows.
const latencyMarker = 'L'

func latCounts(c *aggregate.ConnCounts) [10]*uint64 {
	return [10]*uint64{&c.Attempts, &c.Established, &c.Refused, &c.TimedOut, &c.SYNRetries,
		&c.FINClosed, &c.RSTClosed, &c.Echoes, &c.EchoLost, &c.ICMPErrors}
}

func latHists(l *aggregate.Latency) [4]*aggregate.Hist {
	return [4]*aggregate.Hist{&l.Handshake, &l.Guest, &l.Echo, &l.EchoServer}
}

func appendLatency(b []byte, l *aggregate.Latency) []byte {
	if l == nil {
		return b
	}
	b = append(b, latencyMarker)
	for _, c := range []*aggregate.ConnCounts{&l.Client, &l.Server} {
		for _, v := range latCounts(c) {
			b = binary.AppendUvarint(b, *v)
		}
	}
	for _, h := range latHists(l) {
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
	if len(b) == 0 || b[0] != latencyMarker {
		return nil
	}
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
		for _, v := range latCounts(c) {
			*v = uv()
		}
	}
	for _, h := range latHists(l) {
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
