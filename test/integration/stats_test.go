package integration

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The misses allowed by checkPairs: a correct vmflow exceeds them with
// probability <= 0.5%, and one more would be allowed only if it did not.
func TestAllowedMisses(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 1, 3: 2, 6: 2, 7: 2, 8: 3, 14: 3} {
		assert.Equal(t, want, allowedMisses(n, 0.05, 0.005), "n=%d", n)
	}
	// the tail beyond the bound is under alpha, the tail before it is not
	for n := 1; n <= 20; n++ {
		m := allowedMisses(n, 0.05, 0.005)
		tail := func(m int) float64 {
			s := 0.0
			for k := m + 1; k <= n; k++ {
				s += binomPMF(n, k, 0.05)
			}
			return s
		}
		assert.LessOrEqual(t, tail(m), 0.005, "n=%d", n)
		if m > 0 {
			assert.Greater(t, tail(m-1), 0.005, "n=%d", n)
		}
	}
}
