package api

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// The copy-free selector must pick exactly what aggregate.Select picks.
func TestSelectorAgreesWithAggregateSelect(t *testing.T) {
	ws := fixtureWindows()
	// A window where all three protocols see one pair and two see another.
	mixed := &aggregate.Window{Start: T, End: T}
	for _, src := range []decoder.Source{decoder.SourceSFlow, decoder.SourceNetFlow9, decoder.SourceIPFIX, decoder.SourceUnknown} {
		mixed.Pairs = append(mixed.Pairs, aggregate.Pair{Key: aggregate.PairKey{Src: web1.key(), Dst: db1.key(), Source: src}, Stats: aggregate.Stats{Bytes: float64(src)}})
	}
	for _, src := range []decoder.Source{decoder.SourceSFlow, decoder.SourceNetFlow9} {
		mixed.Pairs = append(mixed.Pairs, aggregate.Pair{Key: aggregate.PairKey{Src: db1.key(), Dst: web1.key(), Source: src}, Stats: aggregate.Stats{Bytes: float64(src)}})
	}
	mixed.Pairs = append(mixed.Pairs, aggregate.Pair{Key: aggregate.PairKey{Src: ext.key(), Dst: db1.key(), Source: decoder.SourceUnknown}})
	ws = append(ws, mixed)
	for _, source := range sourceNames {
		// over the whole range, and over each window alone
		ranges := [][]*aggregate.Window{ws}
		for _, w := range ws {
			ranges = append(ranges, []*aggregate.Window{w})
		}
		for _, r := range ranges {
			sel := newSelector(source)
			sel.prepare(r)
			var got, all []aggregate.Pair
			for _, w := range r {
				sel.each(w, func(p *aggregate.Pair) { got = append(got, *p) })
				all = append(all, w.Pairs...)
			}
			want := aggregate.Select(all, source)
			if len(want) == 0 {
				assert.Empty(t, got, source)
				continue
			}
			assert.Equal(t, want, got, "source=%s, %d windows from %s", source, len(r), r[0].End)
		}
	}
}
