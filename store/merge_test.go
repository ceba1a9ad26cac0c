package store

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/vmflow/vmflow/aggregate"
)

func TestMergeSamePairs(t *testing.T) {
	mk := func(src, dst, host string, b float64) aggregate.Pair {
		return aggregate.Pair{Key: aggregate.PairKey{Src: aggregate.EndpointKey{VM: 1}, Dst: aggregate.EndpointKey{VM: 2}},
			Src: aggregate.Endpoint{VM: src, Host: host}, Dst: aggregate.Endpoint{VM: dst},
			Stats: aggregate.Stats{Bytes: b, BytesVar: b, Samples: 1}}
	}
	w := &aggregate.Window{Pairs: []aggregate.Pair{mk("a", "b", "h1", 1), mk("c", "d", "h1", 2), mk("a", "b", "h1", 4), mk("a", "b", "h2", 8)}}
	MergeSamePairs(w)
	assert.Len(t, w.Pairs, 3)
	assert.Equal(t, 5.0, w.Pairs[0].Stats.Bytes)
	assert.Equal(t, 5.0, w.Pairs[0].Stats.BytesVar, "variances add")
	assert.Equal(t, uint64(2), w.Pairs[0].Stats.Samples)
	assert.Equal(t, "c", w.Pairs[1].Src.VM)
	assert.Equal(t, 8.0, w.Pairs[2].Stats.Bytes, "another host: another pair (a move between collectors)")
}
