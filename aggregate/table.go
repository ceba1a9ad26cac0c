package aggregate

// pairTable is a shard's index from pair to slot: open addressing with
// linear probing over one array of 8-byte entries (the hash's high 32 bits
// as a tag, and the slot + 1; 0 is empty), at most half full. A look-up
// reads one entry (one cache line) and the slot's key; Go's map read a
// control word and a 16-byte slot of a 136-byte group, then the key. The
// array keeps its size across windows (reset clears it), so a steady state
// allocates nothing.
type pairTable struct {
	ent  []uint64
	mask uint64
	n    int
}

func (t *pairTable) lookup(h uint64, slots []slot, k *PairKey) (int32, bool) {
	if t.n == 0 {
		return 0, false
	}
	tag := h >> 32
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		e := t.ent[i]
		if e == 0 {
			return 0, false
		}
		if e>>32 == tag {
			if j := int32(uint32(e)) - 1; slots[j].key == *k {
				return j, true
			}
		}
	}
}

// add indexes slot j (hash h): slots[:j] are indexed, j is not.
func (t *pairTable) add(h uint64, j int32, slots []slot) {
	if 2*(t.n+1) > len(t.ent) {
		t.grow(slots[:j])
	}
	t.put(h, j)
}

func (t *pairTable) put(h uint64, j int32) {
	i := h & t.mask
	for t.ent[i] != 0 {
		i = (i + 1) & t.mask
	}
	t.ent[i] = h>>32<<32 | uint64(uint32(j)+1)
	t.n++
}

// grow doubles the array and re-indexes slots (every slot of the shard).
func (t *pairTable) grow(slots []slot) {
	size := max(64, 2*len(t.ent))
	t.ent, t.mask, t.n = make([]uint64, size), uint64(size-1), 0
	for j := range slots {
		t.put(pairHash(&slots[j].key), int32(j))
	}
}

func (t *pairTable) reset() {
	if t.n > 0 {
		clear(t.ent)
		t.n = 0
	}
}

// flowSet is a shard's set of distinct flow hashes: open addressing with
// linear probing over 8-byte entries (0 is empty; the hash 0 is kept
// aside), at most half full, one probe sequence for look-up and insert.
type flowSet struct {
	ent  []uint64
	mask uint64
	n    int
	zero bool
}

// add inserts h and reports whether it was new.
func (f *flowSet) add(h uint64) bool {
	if h == 0 {
		if f.zero {
			return false
		}
		f.zero = true
		return true
	}
	if 2*(f.n+1) > len(f.ent) {
		f.grow()
	}
	for i := h & f.mask; ; i = (i + 1) & f.mask {
		switch f.ent[i] {
		case h:
			return false
		case 0:
			f.ent[i] = h
			f.n++
			return true
		}
	}
}

func (f *flowSet) has(h uint64) bool {
	if h == 0 {
		return f.zero
	}
	if f.n == 0 {
		return false
	}
	for i := h & f.mask; ; i = (i + 1) & f.mask {
		switch f.ent[i] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

func (f *flowSet) grow() {
	old := f.ent
	size := max(256, 2*len(old))
	f.ent, f.mask = make([]uint64, size), uint64(size-1)
	for _, h := range old {
		if h != 0 {
			i := h & f.mask
			for f.ent[i] != 0 {
				i = (i + 1) & f.mask
			}
			f.ent[i] = h
		}
	}
}

func (f *flowSet) reset() {
	if f.n > 0 {
		clear(f.ent)
		f.n = 0
	}
	f.zero = false
}

// len is the number of distinct hashes.
func (f *flowSet) len() int {
	if f.zero {
		return f.n + 1
	}
	return f.n
}
