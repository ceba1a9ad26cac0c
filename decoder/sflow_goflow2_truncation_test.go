package decoder

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSFlowTruncatedPrefixesBothPaths: every strict prefix of a real OVS
// datagram (whose samples fill it exactly) is short of a sample or record,
// and both decoder paths reject it as truncated. goflow2 v2.2.6 stops
// silently at a length that runs past its container and returns what it
// decoded so far; the goflow2 path must not accept that as a good datagram
// (its missing samples would be dropped without a counter).
func TestSFlowTruncatedPrefixesBothPaths(t *testing.T) {
	dgs := readCaptureUDP(t, sflowCapture, 6343)
	require.NotEmpty(t, dgs)
	decs := map[bool]*Decoder{true: newTestDecoder(t, true), false: newTestDecoder(t, false)}
	for _, i := range []int{0, len(dgs) / 2, len(dgs) - 1} {
		d := dgs[i].Payload
		for n := 0; n < len(d); n++ {
			for _, fast := range []bool{true, false} {
				var b Batch
				err := decs[fast].Decode(SourceSFlow, dgs[i].From, d[:n], 1, &b)
				if !assert.ErrorIs(t, err, ErrTruncated, "datagram %d prefix %d of %d fast=%v", i, n, len(d), fast) {
					return
				}
			}
		}
	}
}
