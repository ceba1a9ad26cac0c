package aggregate

// The shard merge of a window close (Aggregator.merge): the first shard
// is the base; every further shard's pairs are looked up in (or added to)
// it, then its flows are counted into the base's pairs exactly.
//
// A flow (its hash covers the pair key) can be in two shards only if its
// pair is, so the flows of a pair held by one shard only are distinct by
// construction: they are counted without a look-up in the base's flow
// set. With sFlow every worker takes datagrams from every exporter, and
// pairs with more than a few samples per window are in every shard; the
// small pairs of a heavy-tailed mix, and with per-exporter routing
// (IPFIX, NetFlow v9) nearly every pair, are in one.

// shardSpan is, per base slot, the first and the last shard (0: the base)
// holding the pair.
type shardSpan struct{ first, last int32 }

// mergePairs adds every pair of rest into base: a pair new to the base is
// copied (its own flow count stands: distinct within its shard), a pair
// already there is merged without its flow count (mergeFlows counts the
// flows it adds). It records each shard's slot remap and each base slot's
// shard span.
func (a *Aggregator) mergePairs(base *shard, rest []*shard) {
	spans := a.span[:0]
	for range base.slots {
		spans = append(spans, shardSpan{})
	}
	for len(a.remaps) < len(rest) {
		a.remaps = append(a.remaps, nil)
	}
	for si, sh := range rest {
		s := int32(si + 1)
		remap := a.remaps[si][:0]
		for i := range sh.slots {
			sl := &sh.slots[i]
			h := pairHash(&sl.key)
			j, ok := base.pairs.lookup(h, base.slots, &sl.key)
			if !ok {
				j = base.insertHash(h, &sl.key)
				base.slots[j].st = sl.st
				spans = append(spans, shardSpan{first: s, last: s})
			} else {
				st := &base.slots[j].st
				fl := st.Flows
				st.Merge(&sl.st)
				st.Flows = fl
				spans[j].last = s
			}
			remap = append(remap, j)
		}
		a.remaps[si] = remap
	}
	a.span = spans
}

// mergeFlows counts the flows of rest into base's pairs and appends them
// to base.flowList, which then holds every distinct flow of the window
// once (for dstPorts). A flow of a pair no earlier shard holds is new;
// others are looked up in the base's set. The set only grows by flows of
// pairs a later shard holds too.
func (a *Aggregator) mergeFlows(base *shard, rest []*shard) {
	spans := a.span
	for si, sh := range rest {
		s := int32(si + 1)
		remap := a.remaps[si]
		for _, fe := range sh.flowList {
			j := remap[fe.slot]
			fe.slot = j
			sp := spans[j]
			if sp.first != s { // an earlier shard holds the pair: maybe seen
				if base.flows.has(fe.h) {
					continue
				}
				base.slots[j].st.Flows++
			} // else counted in the copied stats
			if sp.last != s {
				base.flows.add(fe.h)
			}
			base.flowList = append(base.flowList, fe)
		}
	}
}
