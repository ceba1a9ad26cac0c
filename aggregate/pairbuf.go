package aggregate

import (
	"runtime"
	"slices"
	"sync"
	"unsafe"
)

// pairBufs recycles the Pairs arrays of closed windows. A window's Pairs
// belong to whoever references them, for as long as anything does: the
// window, a copy of its slice, a pointer to one pair. The runtime
// finalizer set on the array runs only once nothing references it any
// more (the garbage collector decides, so no sink needs to say when it is
// done), and hands the array back here for a later window instead of
// freeing it. A steady state of windows then allocates no pair memory:
// at 200,000 pairs that is 140 MB per window not faulted in, zeroed and
// paid for in GC assists (the close's largest cost when the heap is near
// runtime.memory_limit_mb).
//
// A recycled array holds the stale pairs of its last window: merge
// overwrites every field of every pair it hands out, and clears the rest.
type pairBufs struct {
	mu   sync.Mutex
	free [][]Pair // full capacity
}

// pairBufsKeep bounds the arrays waiting for reuse: one, so that the
// recycling costs no more memory than the window in flight did (a second
// window in flight, queued for InfluxDB say, gets a new array, and of two
// returned the larger is kept).
const pairBufsKeep = 1

// get returns n pairs (contents undefined: the caller writes every pair)
// whose array comes back to b once unreferenced.
func (b *pairBufs) get(n int) []Pair {
	if n == 0 {
		return nil
	}
	var buf []Pair
	if recyclePairs {
		b.mu.Lock()
		best := -1
		for i, f := range b.free {
			// the smallest array that fits, unless much too large
			if cap(f) >= n && cap(f) <= 2*n+1024 && (best < 0 || cap(f) < cap(b.free[best])) {
				best = i
			}
		}
		if best >= 0 {
			buf = b.free[best]
			b.free = slices.Delete(b.free, best, best+1)
		}
		b.mu.Unlock()
	}
	if buf == nil {
		if !recyclePairs {
			return make([]Pair, n)
		}
		buf = make([]Pair, n+n/16) // room for a growing window
	}
	c := cap(buf)
	clear(buf[n:c]) // stale pairs beyond this window keep nothing alive
	runtime.SetFinalizer(&buf[0], func(p *Pair) { b.put(unsafe.Slice(p, c)) })
	return buf[:n:n]
}

// put takes back an array nothing references (the finalizer).
func (b *pairBufs) put(buf []Pair) {
	b.mu.Lock()
	if len(b.free) < pairBufsKeep {
		b.free = append(b.free, buf)
	} else {
		// keep the larger ones: replace the smallest if this is larger
		mi := 0
		for i := range b.free {
			if cap(b.free[i]) < cap(b.free[mi]) {
				mi = i
			}
		}
		if cap(buf) > cap(b.free[mi]) {
			b.free[mi] = buf
		}
	}
	b.mu.Unlock()
}
