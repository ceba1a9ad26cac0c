//go:build race

package aggregate

// recyclePairs is off under the race detector: it cannot see that the
// garbage collector orders a sink's last read of a window's pairs before
// their reuse, and would report the reuse as a race.
const recyclePairs = false
