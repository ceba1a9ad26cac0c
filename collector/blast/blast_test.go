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

func TestAnalyzeIPFIXCapture(t *testing.T) {
	ps, err := LoadPcap("../../testdata/ovs-lab-1/ovs-ipfix1.pcapng", 4739)
	require.NoError(t, err)
	ms, ok := AnalyzeIPFIX(ps)
	require.True(t, ok)
	setup, flows := 0, 0
	next := ms[0].Header.Sequence // OVS starts at 1
	for i, m := range ms {
		if m.Setup {
			setup++
		} else {
			flows += m.FlowRecords
			assert.Equal(t, 1, m.FlowRecords, "OVS at sampling=1 sends one record per message (message %d)", i)
		}
		// OVS numbers the messages of all its domains with one counter:
		// the capture has no gaps, so each message's sequence is the
		// records before it.
		require.Equal(t, next, m.Header.Sequence, "message %d", i)
		next += uint32(m.Records)
	}
	assert.Equal(t, 20, setup, "18 template messages, the options template and its data")
	assert.Equal(t, len(ms)-setup, flows)
}

// TestRunRewritesIPFIX: each socket is an exporter of its own (source
// address) whose stream starts with the template messages and whose
// sequence numbers count the data records sent before, without gaps.
func TestRunRewritesIPFIX(t *testing.T) {
	ps, err := LoadPcap("../../testdata/ovs-lab-1/ovs-ipfix1.pcapng", 4739)
	require.NoError(t, err)
	ms, _ := AnalyzeIPFIX(ps)
	for _, gso := range []bool{false, true} {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		require.NoError(t, pc.SetReadBuffer(8<<20))
		const count = 2001
		t0 := time.Now().Unix()
		res, err := Run(context.Background(), Config{
			Target: pc.LocalAddr().String(), Sockets: 2, Batch: 8, Rate: 50000, Count: count,
			RewriteIPFIX: true, GSO: gso, Sources: []string{"127.0.0.1", "127.0.0.2"},
		}, ps)
		require.NoError(t, err)
		assert.Equal(t, uint64(count), res.Datagrams)
		type stream struct {
			addr   netip.Addr
			domain uint32
		}
		next := map[stream]uint32{}
		msgs := map[netip.Addr]int{}
		var flows uint64
		buf := make([]byte, 65536)
		require.NoError(t, pc.SetReadDeadline(time.Now().Add(5*time.Second)))
		for i := 0; i < count; i++ {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			require.NoError(t, err)
			h, ok := ParseIPFIXHeader(buf[:n])
			require.True(t, ok)
			got, _ := AnalyzeIPFIX([][]byte{buf[:n]})
			m := got[0]
			a := from.Addr()
			if msgs[a] < 18 {
				assert.True(t, m.Setup, "%s: message %d must carry templates", a, msgs[a])
			}
			msgs[a]++
			k := stream{a, h.Domain}
			require.Equal(t, next[k], h.Sequence, "%v message %d", k, msgs[a])
			assert.GreaterOrEqual(t, int64(h.ExportTime), t0)
			if !m.Setup {
				// a data message is one of the capture's: count its records
				for _, c := range ms {
					if !c.Setup && c.Header.Length == h.Length {
						next[k] += uint32(c.Records)
						flows += uint64(c.FlowRecords)
						break
					}
				}
			} else {
				next[k] += uint32(m.Records)
			}
		}
		pc.Close()
		assert.Len(t, msgs, 2, "one exporter per socket")
		assert.Equal(t, res.Samples, flows)
	}
}
