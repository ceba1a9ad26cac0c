package synth

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var scaleCloud *Cloud

func benchCloud(b *testing.B) (*Cloud, Config) {
	cfg := ScaleConfig()
	cfg.SFlowTarget = "bench"
	if testing.Short() {
		cfg.MaxDatagram = 1400
	}
	if scaleCloud == nil {
		c, err := Build(cfg)
		require.NoError(b, err)
		scaleCloud = c
	}
	return scaleCloud, cfg
}

// BenchmarkGenerateScale: the generator at 10,000 VMs on 500 hypervisors
// with 200,000 active pairs, 1,000,000 samples/s: each op is 1 ms of
// simulated time (1,000 flow samples plus the counter samples due), into a
// sink that discards; ns/sample is the figure (cpu-ns/sample: the
// process's CPU time, steadier on a shared machine).
func BenchmarkGenerateScale(b *testing.B) {
	c, cfg := benchCloud(b)
	benchAdvance(b, New(c, cfg, &discard{}, benchStart))
}

// BenchmarkGenerateDemo: the demo's cloud with everything it sends (OVS
// sFlow and IPFIX, the probes' IPFIX, hsflowd's host structures), 1 ms of
// simulated time per op: 0 allocations too.
func BenchmarkGenerateDemo(b *testing.B) {
	cfg := DemoConfig()
	cfg.SFlowTarget, cfg.IPFIXTarget = "bench", "bench"
	c, err := Build(cfg)
	require.NoError(b, err)
	g := New(c, cfg, &discard{}, benchStart)
	// past the first hsflowd polls and template sends, the scan's pairs made
	runFor(g, benchStart, 70*time.Second)
	benchAdvanceFrom(b, g, benchStart.Add(70*time.Second))
	st := g.Stats()
	b.ReportMetric(float64(st.ProbeRecords), "probe-records")
	b.ReportMetric(float64(st.HostSamples), "host-samples")
}

// BenchmarkSendScale is the same with every datagram sent over loopback
// with sendmmsg (64 per call) to a UDP socket (not read: the figure is the
// sender's cost, the kernel's loopback delivery included).
func BenchmarkSendScale(b *testing.B) {
	c, cfg := benchCloud(b)
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(b, err)
	defer ln.Close()
	cfg.SFlowTarget = ln.LocalAddr().String()
	sink, err := NewUDPSink(c, cfg.SFlowTarget, "", cfg.Batch, cfg.MaxDatagram)
	require.NoError(b, err)
	defer sink.Close()
	benchAdvance(b, New(c, cfg, sink, benchStart))
	assert.Zero(b, sink.Errors, "send errors: %v", sink.Err())
}

var benchStart = time.Unix(1_800_000_000, 0)

// benchAdvance advances g by 1 ms per op and reports per sample.
func benchAdvance(b *testing.B, g *Generator) { benchAdvanceFrom(b, g, benchStart) }

func benchAdvanceFrom(b *testing.B, g *Generator, t time.Time) {
	for range 100 { // warm up: every host's buffers in use
		t = t.Add(time.Millisecond)
		g.Advance(t)
	}
	s0 := g.Stats()
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t = t.Add(time.Millisecond)
		g.Advance(t)
	}
	b.StopTimer()
	s := g.Stats()
	n := float64(s.FlowSamples - s0.FlowSamples)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/sample")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/n, "cpu-ns/sample")
	b.ReportMetric(n/float64(b.N), "samples/op")
	b.ReportMetric(n/float64(s.SFlowDatagrams-s0.SFlowDatagrams), "samples/datagram")
}

// TestUDPSinkSourceAddresses: over real loopback sockets each datagram
// arrives from its hypervisor's own 127.x address (the IPFIX exporter
// identity), sFlow and IPFIX at their own targets.
func TestUDPSinkSourceAddresses(t *testing.T) {
	cfg := DemoConfig()
	c, err := Build(cfg)
	require.NoError(t, err)
	sf, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer sf.Close()
	ix, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ix.Close()
	cfg.SFlowTarget, cfg.IPFIXTarget = sf.LocalAddr().String(), ix.LocalAddr().String()
	sink, err := NewUDPSink(c, cfg.SFlowTarget, cfg.IPFIXTarget, cfg.Batch, cfg.MaxDatagram)
	require.NoError(t, err)
	defer sink.Close()
	hosts := map[netip.Addr]bool{}
	for _, h := range c.Hosts {
		hosts[h.Addr] = true
	}
	type got struct {
		from netip.Addr
		b    []byte
	}
	// read while the generator runs (the socket buffer would overflow otherwise)
	recv := func(conn *net.UDPConn, out chan<- []got) {
		var all []got
		buf := make([]byte, 65536)
		for {
			k, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				out <- all
				return
			}
			all = append(all, got{from.Addr().Unmap(), append([]byte(nil), buf[:k]...)})
		}
	}
	sfc, ixc := make(chan []got, 1), make(chan []got, 1)
	go recv(sf, sfc)
	go recv(ix, ixc)
	g := New(c, cfg, sink, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	require.NoError(t, Run(ctx, g, 0, 0))
	st := g.Stats()
	require.NoError(t, sink.Err())
	assert.Equal(t, st.SFlowDatagrams+st.IPFIXMessages, sink.Sent)
	for _, conn := range []*net.UDPConn{sf, ix} {
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	}
	sfs, ixs := <-sfc, <-ixc
	require.Len(t, sfs, int(st.SFlowDatagrams))
	require.Len(t, ixs, int(st.IPFIXMessages))
	for _, d := range sfs {
		require.True(t, hosts[d.from], "datagram from %s, not a hypervisor address", d.from)
		h, ok := netip.AddrFromSlice(d.b[8:12])
		require.True(t, ok)
		assert.Equal(t, d.from, h, "sFlow agent address = source address")
		assert.EqualValues(t, 5, be.Uint32(d.b))
	}
	domains, probes := map[netip.Addr]uint32{}, map[netip.Addr]uint32{}
	for _, d := range ixs {
		require.True(t, hosts[d.from], "datagram from %s, not a hypervisor address", d.from)
		assert.EqualValues(t, 10, be.Uint16(d.b))
		assert.EqualValues(t, len(d.b), be.Uint16(d.b[2:]))
		if dom := be.Uint32(d.b[12:]); dom < probeDomain0 {
			domains[d.from] = dom
		} else {
			probes[d.from] = dom
		}
	}
	assert.Len(t, domains, cfg.Hosts/2, "OVS IPFIX from half the hypervisors")
	assert.Len(t, probes, cfg.Hosts, "probe IPFIX from every hypervisor")
}

// cpuTime is the process's user + system CPU time: on a shared machine it
// is a steadier figure than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
