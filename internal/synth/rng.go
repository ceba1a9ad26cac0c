package synth

import (
	"math"
	"math/bits"
)

// rng is wyrand: fast, small, deterministic for a seed (the generator draws
// several numbers per sample, so math/rand's interface costs show).
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed ^ 0x2d358dccaa6c78a5} }

func (r *rng) u64() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

func (r *rng) u32() uint32 { return uint32(r.u64() >> 32) }

// float is uniform in [0, 1).
func (r *rng) float() float64 { return float64(r.u64()>>11) / (1 << 53) }

// intn is uniform in [0, n) for 0 < n < 2^32.
func (r *rng) intn(n int) int {
	return int((uint64(r.u32()) * uint64(n)) >> 32)
}

// geometric returns the packets one 1-in-n sample stands for: the number of
// Bernoulli(1/n) trials up to and including the sampled one (mean n,
// variance n(n-1)); lnq is log(1 - 1/n).
func (r *rng) geometric(n uint32, lnq float64) uint64 {
	if n <= 1 {
		return 1
	}
	u := 1 - r.float() // (0, 1]
	return 1 + uint64(math.Log(u)/lnq)
}

// alias is Vose's alias table over weights: pick in O(1).
type alias struct {
	prob  []uint32 // threshold × 2^32
	alias []int32
	items []int32 // what each slot stands for
}

// build (re)builds the table over items with weights w (reusing memory).
func (a *alias) build(items []int32, w func(int32) float64) {
	n := len(items)
	a.items = append(a.items[:0], items...)
	a.prob = growU32(a.prob, n)
	a.alias = growI32(a.alias, n)
	if n == 0 {
		return
	}
	total := 0.0
	for _, it := range items {
		total += w(it)
	}
	scaled := make([]float64, n)
	small := make([]int32, 0, n)
	large := make([]int32, 0, n)
	for i, it := range items {
		scaled[i] = w(it) * float64(n) / total
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s] = uint32(scaled[s] * (1 << 32))
		a.alias[s] = l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, l := range large {
		a.prob[l], a.alias[l] = math.MaxUint32, l
	}
	for _, s := range small {
		a.prob[s], a.alias[s] = math.MaxUint32, s
	}
}

func (a *alias) pick(r *rng) int32 {
	x := r.u64()
	i := int32((uint64(uint32(x)) * uint64(len(a.items))) >> 32)
	if uint32(x>>32) > a.prob[i] {
		i = a.alias[i]
	}
	return a.items[i]
}

func growU32(b []uint32, n int) []uint32 {
	if cap(b) < n {
		return make([]uint32, n)
	}
	return b[:n]
}

func growI32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}
