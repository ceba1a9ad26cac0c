package store

import (
	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// entry is one row identity of the memory store: a pair key (endpoints and
// export protocol) with the endpoints as the aggregator resolved them. A
// pair whose displayed endpoints change (a VM migrated, a new last-seen IP)
// gets a new entry. Entries are immutable.
type entry struct {
	key      aggregate.PairKey
	src, dst aggregate.Endpoint
	group    uint32 // the pair's PairID, as a dense id
}

// dict numbers entries and groups (PairIDs) densely, so that queries can
// accumulate in flat arrays instead of maps.
//
// Readers take a snapshot of the slices (under Memory.mu) and read only
// indices below its length: the writer only ever appends, so what a reader
// sees never changes. A compaction (dropping entries no segment holds any
// more) builds a new dict and new segments and swaps both at once.
//
// Memory: about 330 bytes per entry (the entry with its endpoint string
// headers, the map slots) and 100 per group; strings are shared with the
// inventory's.
type dict struct {
	entries   []entry
	entGroup  []uint32         // entries[i].group, for scans
	entSource []decoder.Source // entries[i].key.Source, for scans
	groupRep  []uint32         // an entry of each group (names, ordering)
	// Endpoints numbered densely by EndpointID (see scan.go): entSrc[i],
	// entDst[i] are entries[i]'s, epIDs the identity of each.
	entSrc, entDst []uint32
	epIDs          []EndpointID

	// Writer-side only (guarded by Memory.wmu).
	byKey   []uint32 // open addressing by PairKey.Hash: 1 + the latest entry of a key, 0 empty
	byGroup map[PairID]uint32
	byEP    map[EndpointID]uint32
	lastEnd []int64 // unix ns end of the newest segment holding the entry
}

func newDict(n int) *dict {
	return &dict{
		entries:   make([]entry, 0, n),
		entGroup:  make([]uint32, 0, n),
		entSource: make([]decoder.Source, 0, n),
		byKey:     make([]uint32, tableSize(n)),
		byGroup:   make(map[PairID]uint32, n),
		byEP:      make(map[EndpointID]uint32),
		lastEnd:   make([]int64, 0, n),
	}
}

// intern returns the entry of p, adding one when p's key is new or its
// endpoints differ from the key's latest entry.
func (d *dict) intern(p *aggregate.Pair) uint32 {
	if i := d.slot(&p.Key); d.byKey[i] != 0 {
		id := d.byKey[i] - 1
		e := &d.entries[id]
		if e.src == p.Src && e.dst == p.Dst {
			return id
		}
	}
	return d.add(entry{key: p.Key, src: p.Src, dst: p.Dst})
}

// tableSize is the power of two holding n keys at most half full.
func tableSize(n int) int {
	s := 1024
	for s < 2*n {
		s <<= 1
	}
	return s
}

// slot is where key k is in byKey, or the empty slot where it would go.
func (d *dict) slot(k *aggregate.PairKey) int {
	mask := len(d.byKey) - 1
	for i := int(k.Hash()) & mask; ; i = (i + 1) & mask {
		v := d.byKey[i]
		if v == 0 || d.entries[v-1].key == *k {
			return i
		}
	}
}

func (d *dict) add(e entry) uint32 {
	p := aggregate.Pair{Key: e.key, Src: e.src, Dst: e.dst}
	pid := PairIDOf(&p)
	id := uint32(len(d.entries))
	g, ok := d.byGroup[pid]
	if !ok {
		g = uint32(len(d.groupRep))
		d.groupRep = append(d.groupRep, id)
		d.byGroup[pid] = g
	}
	e.group = g
	d.entSrc = append(d.entSrc, d.endpoint(pid.Src))
	d.entDst = append(d.entDst, d.endpoint(pid.Dst))
	d.entries = append(d.entries, e)
	d.entGroup = append(d.entGroup, g)
	d.entSource = append(d.entSource, e.key.Source)
	d.lastEnd = append(d.lastEnd, 0)
	if 2*len(d.entries) > len(d.byKey) {
		d.byKey = make([]uint32, 2*len(d.byKey))
		for j := range d.entries { // later entries of a key replace earlier ones
			d.byKey[d.slot(&d.entries[j].key)] = uint32(j) + 1
		}
	} else {
		d.byKey[d.slot(&e.key)] = id + 1
	}
	return id
}

// endpoint returns the dense id of an endpoint identity, adding it.
func (d *dict) endpoint(id EndpointID) uint32 {
	if n, ok := d.byEP[id]; ok {
		return n
	}
	n := uint32(len(d.epIDs))
	d.epIDs = append(d.epIDs, id)
	d.byEP[id] = n
	return n
}

// compact returns a dict of the entries with lastEnd >= oldestEnd, in the
// same order, and the old → new id map (-1: dropped). Order is kept, so
// segments stay sorted after renumbering.
func (d *dict) compact(oldestEnd int64) (*dict, []int32) {
	remap := make([]int32, len(d.entries))
	live := 0
	for i := range d.entries {
		if d.lastEnd[i] >= oldestEnd {
			live++
		}
	}
	nd := newDict(live + live/4)
	for i := range d.entries {
		if d.lastEnd[i] < oldestEnd {
			remap[i] = -1
			continue
		}
		e := d.entries[i]
		id := nd.add(e)
		nd.lastEnd[id] = d.lastEnd[i]
		remap[i] = int32(id)
	}
	return nd, remap
}

// pair builds the key and endpoints of entry id (no stats).
func (d *dict) pair(id uint32) aggregate.Pair {
	e := &d.entries[id]
	return aggregate.Pair{Key: e.key, Src: e.src, Dst: e.dst}
}
