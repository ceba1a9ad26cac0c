// Package hashmix holds the 64-bit finaliser the hot paths use to spread
// keys (exporter addresses over workers, pair keys over map shards, learned
// addresses over slots): every input bit affects every output bit, so the
// low bits taken by a modulo or a mask are well mixed. No allocations.
package hashmix

// Mix64 is MurmurHash3's fmix64.
func Mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
