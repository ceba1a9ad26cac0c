package blast

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func capture(t *testing.T) string {
	const p = "../../testdata/ovs-lab-1/ovs-sflow16.pcapng" // committed with the repository
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the OVS capture is part of the repository: %v", err)
	}
	return p
}

func TestLoadPcapSFlow(t *testing.T) {
	ps, err := LoadPcap(capture(t), 6343)
	require.NoError(t, err)
	require.NotEmpty(t, ps)
	var prev uint32
	for i, p := range ps {
		h, ok := ParseSFlowHeader(p)
		require.True(t, ok, "datagram %d", i)
		assert.Equal(t, netip.MustParseAddr("127.0.0.1"), h.Agent)
		assert.Equal(t, 16, h.SeqOffset)
		assert.Equal(t, 12, h.SubAgentOffset)
		if i > 0 {
			assert.Equal(t, prev+1, h.Sequence, "the capture has no gaps")
		}
		prev = h.Sequence
	}
	avg := AvgSamples(ps)
	assert.Greater(t, avg, 1.0)
	_, err = LoadPcap(capture(t), 9)
	assert.Error(t, err, "no datagrams to port 9")
}

func TestParseSFlowHeaderRejects(t *testing.T) {
	for _, b := range [][]byte{nil, {0, 0, 0, 5}, {0, 0, 0, 4, 0, 0, 0, 1}, make([]byte, 40)} {
		_, ok := ParseSFlowHeader(b)
		assert.False(t, ok)
	}
	// IPv6 agent
	b := []byte{0, 0, 0, 5, 0, 0, 0, 2}
	b = append(b, netip.MustParseAddr("2001:db8::1").AsSlice()...)
	b = append(b, 0, 0, 0, 9, 0, 0, 0, 42, 0, 0, 1, 0, 0, 0, 0, 3)
	h, ok := ParseSFlowHeader(b)
	require.True(t, ok)
	assert.Equal(t, SFlowHeader{Agent: netip.MustParseAddr("2001:db8::1"), SubAgent: 9, Sequence: 42, Uptime: 256, Samples: 3, SubAgentOffset: 24, SeqOffset: 28}, h)
}

func TestLoadDir(t *testing.T) {
	d := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(d, "b"), []byte("two"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(d, "a"), []byte("one"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(d, "empty"), nil, 0o644))
	ps, err := LoadDir(d)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("one"), []byte("two")}, ps)
	_, err = LoadDir(t.TempDir())
	assert.Error(t, err)
}

// TestRunRewritesSequences receives what Run sends and checks that every
// socket's stream (its own sub-agent) is gap-free from 1, with and without
// GSO.
func TestRunRewritesSequences(t *testing.T) {
	ps, err := LoadPcap(capture(t), 6343)
	require.NoError(t, err)
	for _, gso := range []bool{false, true} {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		require.NoError(t, pc.SetReadBuffer(8<<20))
		const count = 3001
		res, err := Run(context.Background(), Config{
			Target: pc.LocalAddr().String(), Sockets: 2, Batch: 8, Rate: 50000, Count: count,
			RewriteSFlow: true, GSO: gso,
		}, ps)
		require.NoError(t, err)
		assert.Equal(t, uint64(count), res.Datagrams)
		next := map[uint32]uint32{}
		var samples, bytes uint64
		buf := make([]byte, 65536)
		require.NoError(t, pc.SetReadDeadline(time.Now().Add(5*time.Second)))
		for i := 0; i < count; i++ {
			n, err := pc.Read(buf)
			require.NoError(t, err)
			h, ok := ParseSFlowHeader(buf[:n])
			require.True(t, ok)
			if next[h.SubAgent] == 0 {
				next[h.SubAgent] = 1
			}
			require.Equal(t, next[h.SubAgent], h.Sequence, "sub-agent %d", h.SubAgent)
			next[h.SubAgent]++
			samples += uint64(h.Samples)
			bytes += uint64(n)
		}
		pc.Close()
		assert.Len(t, next, 2, "one stream per socket")
		assert.Equal(t, res.Samples, samples)
		assert.Equal(t, res.Bytes, bytes)
	}
}
