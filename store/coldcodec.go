package store

import (
	"encoding/binary"
	"math"

	"github.com/vmflow/vmflow/aggregate"
)

// The cold part of a row (segment.cold), compact form:
//
//	uvarint presence mask   bit i: cold field i (coldFields) is non-zero
//	uvarint raw mask        bit i: field i is stored as 8 little-endian bytes
//	each present field      raw: 8 bytes (float64 bits, or the integer);
//	                        else a uvarint of its integer value
//	count of top ports, then each: proto, port (2 bytes), uvarint u of its
//	                        bytes (u&1 == 0: the integer u>>1; u == 1: 8 raw
//	                        bytes of float64 bits follow)
//	the latency (latency.go), if any
//
// Estimates scaled by an integer sampling rate, sampled counts, sums of
// those (tier merges) and their variances are integers, so most fields
// take 2–5 bytes instead of 8 (BenchmarkMemoryHour200k: bytes per row).
// A float is stored as a uvarint only when that is exact: not negative, no
// sign bit, integral and below 2^49 (larger integers are no shorter as
// varints); Last is stored as Last-First. Nothing is lost: decode(encode(st))
// == st for every field kept.
const (
	coldVarintMax = 1 << 49
	coldFirst     = 19 // index of First in coldFields (Last is coldFirst+1)
)

// coldFloat tells which cold fields are float64 bits (the others are
// integers: SampledBytes, SampledPackets, First, Last).
const coldInts = 1<<2 | 1<<3 | 1<<coldFirst | 1<<(coldFirst+1)

// coldInt is the integer field i of value x stores as a uvarint, if exact.
func coldInt(i int, x uint64, v *[nCold]uint64) (uint64, bool) {
	if coldInts&(1<<i) != 0 {
		if i == coldFirst+1 { // Last, as Last-First
			if x < v[coldFirst] {
				return 0, false
			}
			x -= v[coldFirst]
		}
		return x, x < coldVarintMax
	}
	return floatInt(math.Float64frombits(x))
}

// floatInt is f as an integer when that is exact and short.
func floatInt(f float64) (uint64, bool) {
	if f >= 0 && f < coldVarintMax && !math.Signbit(f) && f == math.Trunc(f) {
		return uint64(f), true
	}
	return 0, false
}

// encodeCold appends the cold part of st.
func encodeCold(b []byte, st *aggregate.Stats) []byte {
	v := coldFields(st)
	var mask, raw uint64
	for i, x := range v {
		if x != 0 {
			mask |= 1 << i
			if _, ok := coldInt(i, x, &v); !ok {
				raw |= 1 << i
			}
		}
	}
	b = binary.AppendUvarint(b, mask)
	b = binary.AppendUvarint(b, raw)
	for i, x := range v {
		switch {
		case x == 0:
		case raw&(1<<i) != 0:
			b = binary.LittleEndian.AppendUint64(b, x)
		default:
			n, _ := coldInt(i, x, &v)
			b = binary.AppendUvarint(b, n)
		}
	}
	n := 0
	for n < len(st.TopPorts) && (st.TopPorts[n].Bytes > 0 || st.TopPorts[n].Port != 0) {
		n++
	}
	b = append(b, byte(n))
	for _, p := range st.TopPorts[:n] {
		b = append(b, p.Proto)
		b = binary.LittleEndian.AppendUint16(b, p.Port)
		if u, ok := floatInt(p.Bytes); ok {
			b = binary.AppendUvarint(b, u<<1)
		} else {
			b = append(b, 1)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Bytes))
		}
	}
	return appendLatency(b, st.Lat) // latency.go
}

// coldReader walks the cold part of a row (the segment's own bytes: no
// validation beyond bounds; a truncated row reads as zeros).
type coldReader struct {
	b         []byte
	mask, raw uint64
	ok        bool
}

func newColdReader(b []byte) coldReader {
	r := coldReader{b: b, ok: true}
	r.mask = r.uvarint()
	r.raw = r.uvarint()
	return r
}

func (r *coldReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.ok, r.b = false, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *coldReader) u64() uint64 {
	if len(r.b) < 8 {
		r.ok, r.b = false, nil
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// field reads cold field i (the fields must be read in order; absent
// ones read nothing and are 0). For Last, v[coldFirst] must be set.
func (r *coldReader) field(i int, v *[nCold]uint64) uint64 {
	if r.mask&(1<<i) == 0 {
		return 0
	}
	if r.raw&(1<<i) != 0 {
		return r.u64()
	}
	n := r.uvarint()
	switch {
	case i == coldFirst+1:
		return n + v[coldFirst]
	case coldInts&(1<<i) != 0:
		return n
	}
	return math.Float64bits(float64(n))
}

// decodeCold reads what encodeCold wrote.
func decodeCold(b []byte, st *aggregate.Stats) {
	r := newColdReader(b)
	var v [nCold]uint64
	for i := range v {
		v[i] = r.field(i, &v)
	}
	if !r.ok {
		clear(v[:])
	}
	setColdFields(st, &v)
	b = r.b
	if len(b) == 0 {
		return
	}
	np := int(b[0])
	b = b[1:]
	for i := 0; i < np && i < len(st.TopPorts) && len(b) >= 4; i++ {
		pc := aggregate.PortCount{Proto: b[0], Port: binary.LittleEndian.Uint16(b[1:])}
		u, n := binary.Uvarint(b[3:])
		if n <= 0 {
			return
		}
		b = b[3+n:]
		if u&1 == 0 {
			pc.Bytes = float64(u >> 1)
		} else {
			if len(b) < 8 {
				return
			}
			pc.Bytes = math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
		}
		st.TopPorts[i] = pc
	}
	if np > len(st.TopPorts) {
		return
	}
	st.Lat = decodeLatency(b) // latency.go
}
