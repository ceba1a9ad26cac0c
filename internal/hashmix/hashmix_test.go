package hashmix

import "testing"

// Keys that differ only in their top byte (IPv4 addresses 10.0.0.x packed
// high in a word) spread over 4 buckets by the low bits.
func TestMix64SpreadsHighBits(t *testing.T) {
	buckets := map[uint64]int{}
	for x := uint64(0); x < 64; x++ {
		buckets[Mix64(x<<56)%4]++
	}
	if len(buckets) != 4 {
		t.Fatalf("64 keys into %d of 4 buckets: %v", len(buckets), buckets)
	}
	for b, n := range buckets {
		if n < 6 {
			t.Errorf("bucket %d holds %d of 64 keys", b, n)
		}
	}
}
