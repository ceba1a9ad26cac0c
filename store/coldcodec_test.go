package store

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
)

// Every cold field comes back bit for bit, whatever its value: integral
// estimates (varints), fractions, negatives, -0, huge values, Last before
// First; and the compact form is shorter for the common integral rows.
func TestColdCodecExact(t *testing.T) {
	vals := []float64{0, 1, 512, 3.5, -2, math.Copysign(0, -1), 1 << 49, 1<<49 - 1, 1e300, math.MaxFloat64, 7e15}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func() float64 { return vals[rng.IntN(len(vals))] }
	for n := 0; n < 2000; n++ {
		st := aggregate.Stats{
			BytesVar: pick(), PacketsVar: pick(), SampledBytes: uint64(rng.Int64()) >> uint(rng.IntN(64)), SampledPackets: uint64(rng.IntN(3)),
			TCPPackets: pick(), UDPPackets: pick(), ICMPPackets: pick(), OtherPackets: pick(),
			TCPBytes: pick(), UDPBytes: pick(), ICMPBytes: pick(), OtherBytes: pick(),
			SYN: pick(), SYNACK: pick(), RST: pick(), FIN: pick(), ICMPErrors: pick(),
			DroppedPackets: pick(), DroppedBytes: pick(), SYNACKIn: pick(), RSTIn: pick(),
			First: rng.Int64() >> uint(rng.IntN(64)), Last: rng.Int64() >> uint(rng.IntN(64)),
		}
		for i := 0; i < rng.IntN(aggregate.TopPortsN+1); i++ {
			st.TopPorts[i] = aggregate.PortCount{Proto: 6, Port: uint16(i + 1), Bytes: pick() + 1}
		}
		var got aggregate.Stats
		decodeCold(encodeCold(nil, &st), &got)
		want := coldFields(&st)
		require.Equal(t, want, coldFields(&got), "row %d", n)
		for i := range st.TopPorts {
			require.Equal(t, st.TopPorts[i].Port, got.TopPorts[i].Port)
			require.Equal(t, math.Float64bits(st.TopPorts[i].Bytes), math.Float64bits(got.TopPorts[i].Bytes))
		}
		var split, splitWant [4][2]float64
		s := newSegment(1, 0)
		s.appendRow(1, &st, 1)
		s.protoSplit(0, &split)
		splitWant[0] = [2]float64{st.TCPBytes, st.TCPPackets}
		splitWant[1] = [2]float64{st.UDPBytes, st.UDPPackets}
		splitWant[2] = [2]float64{st.ICMPBytes, st.ICMPPackets}
		splitWant[3] = [2]float64{st.OtherBytes, st.OtherPackets}
		for p := range split {
			for k := range split[p] {
				require.Equal(t, math.Float64bits(splitWant[p][k]+0), math.Float64bits(split[p][k]+0))
			}
		}
		enc := encodeCold(nil, &st)
		for i := range enc { // truncated rows never panic
			var x aggregate.Stats
			decodeCold(enc[:i], &x)
		}
	}
	// A typical sFlow row (rate 512, a few hundred samples): well under the
	// 8 bytes per field of the fixed form (95 bytes for this row).
	typical := aggregate.Stats{BytesVar: 512 * 511 * 1500 * 1500 * 300, PacketsVar: 512 * 511 * 300, SampledBytes: 450000, SampledPackets: 300,
		TCPPackets: 153600, TCPBytes: 230400000, SYN: 1024, FIN: 512, First: 1767225600_000000000, Last: 1767225609_900000000}
	typical.TopPorts[0] = aggregate.PortCount{Proto: 6, Port: 443, Bytes: 230400000}
	enc := encodeCold(nil, &typical)
	require.LessOrEqual(t, len(enc), 55, "compact cold row: %d bytes", len(enc))
}
