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
		sel := newSelector(source)
		for _, w := range ws {
			var got []aggregate.Pair
			sel.each(w, func(p *aggregate.Pair) { got = append(got, *p) })
			want := aggregate.Select(w.Pairs, source)
			if len(want) == 0 {
				assert.Empty(t, got, source)
				continue
			}
			assert.Equal(t, want, got, "source=%s window %s", source, w.End)
		}
	}
}
