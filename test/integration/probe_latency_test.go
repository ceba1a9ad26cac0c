package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/internal/testenv/delayline"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// latHist / latPair: the part of GET /api/v1/pairs' latency the tests read.
type latHist struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	Max   float64 `json:"max"`
}

type latPair struct {
	Src     struct{ VM string } `json:"src"`
	Dst     struct{ VM string } `json:"dst"`
	Bytes   float64             `json:"bytes"`
	Latency *struct {
		Handshake *latHist `json:"handshake_us"`
		Guest     *latHist `json:"guest_us"`
		Network   *struct {
			P50 float64 `json:"p50"`
		} `json:"network_us"`
		Echo        *latHist `json:"echo_us"`
		Ack         *latHist `json:"ack_us"`
		Unreachable uint64   `json:"unreachable"`
		MeasuredAt  string   `json:"measured_at"`
		Attempts    uint64   `json:"attempts"`
		Established uint64   `json:"established"`
		Refused     uint64   `json:"refused"`
		TimedOut    uint64   `json:"timed_out"`
		SYNRetries  uint64   `json:"syn_retries"`
		FINClosed   uint64   `json:"fin_closed"`
		Echoes      uint64   `json:"echoes"`
	} `json:"latency"`
}

func latencyPairs(t *testing.T, a *app.App) map[string]latPair {
	t.Helper()
	var out struct {
		Pairs []latPair `json:"pairs"`
	}
	getJSON(t, a, "/api/v1/pairs", url.Values{"since": {"10m"}, "limit": {"1000"}}, &out)
	m := map[string]latPair{}
	for _, p := range out.Pairs {
		m[p.Src.VM+"->"+p.Dst.VM] = p
	}
	return m
}

// probeProc is a `vmflow probe` running in a hypervisor's namespace.
type probeProc struct {
	host *ovslab.Host
	cmd  *exec.Cmd
}

func startProbe(t *testing.T, h *ovslab.Host, ipfixPort int) *probeProc {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", h.Netns, buildVMFlow(t), "probe")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"VMFLOW_PROBE_COLLECTOR="+net.JoinHostPort(h.CollectorAddr.String(), strconv.Itoa(ipfixPort)),
		"VMFLOW_PROBE_HANDSHAKE_TIMEOUT=2s",
		"VMFLOW_PROBE_EXPORT_INTERVAL=200ms",
		"VMFLOW_PROBE_RESCAN=1s",
		"VMFLOW_LOG_LEVEL=warn",
	)
	cmd.Stdout = testLogWriter{t}
	cmd.Stderr = testLogWriter{t}
	require.NoError(t, cmd.Start())
	p := &probeProc{host: h, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	// ready when its metrics show the taps
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, err := p.metric("vmflow_probe_taps"); err == nil && v >= float64(len(h.VMs)) {
			return p
		}
		require.True(t, time.Now().Before(deadline), "probe on %s never watched its %d taps", h.Name, len(h.VMs))
		time.Sleep(200 * time.Millisecond)
	}
}

// metric reads one sample (summed over labels) from the probe's /metrics.
func (p *probeProc) metric(name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", p.host.Netns, "curl", "-sf", "http://127.0.0.1:9741/metrics").Output()
	if err != nil {
		return 0, err
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"{")) {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s not in the probe's metrics", name)
	}
	return sum, nil
}

// cpuSeconds is the probe process's user+system CPU time.
func (p *probeProc) cpuSeconds(t *testing.T) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	require.NoError(t, err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// serve accepts (and closes) TCP connections on addr inside vm's namespace.
func serve(t *testing.T, vm *ovslab.VM, port int) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, delayline.InNetns(vm.Netns, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(vm.IP.String(), strconv.Itoa(port)))
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dialTimes connects n times from src to dst:port inside src's namespace,
// one after another. It returns, per connection, the client kernel's own
// SYN → SYN-ACK time (TCP_INFO tcpi_rtt right after the handshake: the
// first RTT sample, in µs) — the truth the probe's client-side handshake
// time is compared with — and the dialer's connect() time (which adds the
// client's scheduling), and the failures.
func dialTimes(t *testing.T, src, dst *ovslab.VM, port, n int, timeout time.Duration) (kernel []float64, connect []time.Duration, failed int) {
	t.Helper()
	addr := net.JoinHostPort(dst.IP.String(), strconv.Itoa(port))
	require.NoError(t, delayline.InNetns(src.Netns, func() error {
		d := net.Dialer{Timeout: timeout}
		for i := 0; i < n; i++ {
			t0 := time.Now()
			c, err := d.Dial("tcp", addr)
			el := time.Since(t0)
			if err != nil {
				failed++
				continue
			}
			connect = append(connect, el)
			raw, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				return err
			}
			var rtt uint32
			var ierr error
			if err := raw.Control(func(fd uintptr) {
				var info *unix.TCPInfo
				if info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); ierr == nil {
					rtt = info.Rtt
				}
			}); err != nil {
				return err
			}
			if ierr != nil {
				return ierr
			}
			kernel = append(kernel, float64(rtt))
			c.Close()
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	}))
	return kernel, connect, failed
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// pingTimes returns ping's own round-trip times, µs.
func pingTimes(t *testing.T, lab *ovslab.Lab, src, dst *ovslab.VM, n int) []float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := lab.Exec(ctx, src, "ping", "-n", "-c", strconv.Itoa(n), "-i", "0.05", dst.IP.String())
	var us []float64
	for _, m := range pingTime.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		us = append(us, v*1000)
	}
	// the lab's userspace datapath may lose a few under load: the probe
	// must count exactly what ping got
	require.GreaterOrEqual(t, len(us), n/2, "ping replies: %s", out)
	return us
}

func medianUS(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)+1)/2-1] // rank ⌈n/2⌉, as the histogram's p50
}

func durationsUS(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Nanoseconds()) / 1e3
	}
	return out
}

func tolUS(truth float64) float64 { return math.Max(0.10*truth, 200) }

// TestProbeLatencyDelayLine is issue 9's point 1: two OVS hypervisors
// joined through a user-space delay line, a probe on each; handshake and
// ping times against the truth measured inside the client namespace;
// refused and timed-out connections counted exactly.
func TestProbeLatencyDelayLine(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{Hosts: []ovslab.HostOptions{{VMs: 2}, {VMs: 2}}})
	hv1, hv2 := lab.Host("hv1"), lab.Host("hv2")
	vm1, vm2, vm3, vm4 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4")
	line := delayline.Insert(t, lab, hv1, hv2, time.Millisecond)

	const window = 2 * time.Second
	a := startVMFlow(t, writeInventory(t, lab), window)
	port := a.ListenPort(collector.ProtoIPFIX)
	p1, p2 := startProbe(t, hv1, port), startProbe(t, hv2, port)

	serve(t, vm3, 8080)
	serve(t, vm4, 8080)
	// SYNs to vm3:8082 are dropped by an OVS flow on hv2's bridge.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", hv2.Netns, "env", "OVS_RUNDIR="+hv2.Dir,
		"ovs-ofctl", "add-flow", hv2.Bridge, "priority=100,tcp,nw_dst="+vm3.IP.String()+",tp_dst=8082,actions=drop").CombinedOutput()
	require.NoError(t, err, "%s", out)

	const n = 200
	// 1 ms one way: vm1 → vm3
	line.TakeHolds()
	truthA, connA, failA := dialTimes(t, vm1, vm3, 8080, n, 5*time.Second)
	require.Zero(t, failA)
	pingA := pingTimes(t, lab, vm1, vm3, 20)
	_, _, refused := dialTimes(t, vm1, vm3, 8081, 10, 5*time.Second) // closed port: RST
	require.Equal(t, 10, refused)
	var wg sync.WaitGroup
	var timedOut atomic.Int32
	for i := 0; i < 5; i++ { // SYNs dropped: no answer within 1.5 s (one retransmission at 1 s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, f := dialTimes(t, vm1, vm3, 8082, 1, 1500*time.Millisecond)
			timedOut.Add(int32(f))
		}()
	}
	wg.Wait()
	require.Equal(t, int32(5), timedOut.Load())
	// 5 attempts answered by an ICMP error: vm1 routes 198.51.100.0/24
	// via vm3, which forwards but has a "prohibit" route for it (ICMP
	// destination unreachable, administratively prohibited, quoting the SYN)
	for _, c := range [][]string{
		{vm1.Netns, "ip", "route", "add", "198.51.100.0/24", "via", vm3.IP.String()},
		{vm3.Netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{vm3.Netns, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"}, // every SYN answered
		{vm3.Netns, "ip", "route", "add", "prohibit", "198.51.100.0/24"},
	} {
		out, err := exec.Command("ip", append([]string{"netns", "exec"}, c...)...).CombinedOutput()
		require.NoError(t, err, "%v: %s", c, out)
	}
	unreach := 0
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		err := delayline.InNetns(vm1.Netns, func() error {
			c, err := net.DialTimeout("tcp", "198.51.100.7:80", 1500*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
		t.Logf("connect to the prohibited destination: %v after %v", err, time.Since(t0).Round(time.Microsecond))
		if errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EACCES) {
			unreach++
		}
	}
	require.Equal(t, 5, unreach, "connects answered by ICMP errors")

	holdA := medianUS(durationsUS(line.TakeHolds()))

	// 5 ms one way: vm2 → vm4
	line.SetDelay(5 * time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	line.TakeHolds()
	truthB, connB, failB := dialTimes(t, vm2, vm4, 8080, n, 5*time.Second)
	require.Zero(t, failB)
	pingB := pingTimes(t, lab, vm2, vm4, 20)
	holdB := medianUS(durationsUS(line.TakeHolds()))

	// the timeouts expire after probe.handshake_timeout (2 s), then a window closes
	time.Sleep(3*time.Second + 2*window)
	var pa, pb latPair
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps := latencyPairs(t, a)
		pa, pb = ps["vm1->vm3"], ps["vm2->vm4"]
		if pa.Latency != nil && pb.Latency != nil && pa.Latency.Attempts >= n+20 && pb.Latency.Established >= n &&
			pa.Latency.Guest != nil && pb.Latency.Guest != nil && pa.Latency.Guest.Count >= n && pb.Latency.Guest.Count >= n {
			break
		}
		require.True(t, time.Now().Before(deadline), "latency never complete: %+v / %+v", pa.Latency, pb.Latency)
		time.Sleep(time.Second)
	}
	la, lb := pa.Latency, pb.Latency
	tA, tB := medianUS(truthA), medianUS(truthB)
	cA, cB := medianUS(durationsUS(connA)), medianUS(durationsUS(connB))
	t.Logf("1 ms: truth (client kernel) p50 %.0f µs, connect() p50 %.0f; probe client p50 %.0f (p95 %.0f), guest p50 %.0f, network p50 %.0f; ping %.0f vs probe echo %.0f",
		tA, cA, la.Handshake.P50, la.Handshake.P95, la.Guest.P50, la.Network.P50, medianUS(pingA), la.Echo.P50)
	t.Logf("5 ms: truth (client kernel) p50 %.0f µs, connect() p50 %.0f; probe client p50 %.0f (p95 %.0f), guest p50 %.0f, network p50 %.0f; ping %.0f vs probe echo %.0f",
		tB, cB, lb.Handshake.P50, lb.Handshake.P95, lb.Guest.P50, lb.Network.P50, medianUS(pingB), lb.Echo.P50)
	t.Logf("vm1->vm3 counts: %+v", *la)
	if la.Ack != nil && lb.Ack != nil {
		t.Logf("SYN-ACK → ACK at the server's tap: 1 ms: p50 %.0f µs (%d timed), 5 ms: p50 %.0f µs (%d timed); network p50 %.0f / %.0f",
			la.Ack.P50, la.Ack.Count, lb.Ack.P50, lb.Ack.Count, la.Network.P50, lb.Network.P50)
	}
	// the prohibited destination's frames carry vm3's MAC (its router), so
	// vmflow puts those attempts on vm1 → vm3
	assert.Equal(t, uint64(5), la.Unreachable, "attempts answered by an ICMP error counted unreachable, exactly")
	t.Logf("delay line forwarded %d frames, dropped %d; median hold per frame %.0f µs (1 ms) and %.0f µs (5 ms)",
		line.Forwarded.Load(), line.Dropped.Load(), holdA, holdB)

	assert.Equal(t, "client", la.MeasuredAt)
	assert.Equal(t, uint64(n+10+5+5), la.Attempts, "attempts vm1→vm3")
	// SYN-ACK → ACK at the server's tap (hv2's probe): the round trip back
	// to the client, which is the network part seen from the other end
	for _, c := range []struct {
		name string
		l    *latHist
		net  float64
	}{{"1 ms", la.Ack, la.Network.P50}, {"5 ms", lb.Ack, lb.Network.P50}} {
		if assert.NotNil(t, c.l, "%s: SYN-ACK → ACK measured", c.name) {
			assert.GreaterOrEqual(t, c.l.Count, uint64(n*95/100), "%s: final ACKs timed", c.name)
			assert.InDelta(t, c.net, c.l.P50, math.Max(0.10*c.net, 400), "%s: SYN-ACK → ACK p50 vs the network part", c.name)
		}
	}
	// every handshake answered at hv2's server taps is accounted for: its
	// final ACK timed, missed (it came before the filter slot) or not
	// tried (no free slot)
	fa := finalAcks(p2)
	t.Logf("hv2's probe: final ACKs %v", fa)
	assert.Equal(t, float64(la.Established+lb.Established), fa["timed"]+fa["missed"]+fa["no_slot"], "final ACKs accounted for")
	if la.Ack != nil && lb.Ack != nil {
		assert.Equal(t, float64(la.Ack.Count+lb.Ack.Count), fa["timed"], "timed final ACKs = ack_us counts")
		assert.InDelta(t, 2*(holdB-holdA), lb.Ack.P50-la.Ack.P50, math.Max(0.20*(holdB-holdA), 400), "SYN-ACK → ACK grows by twice the added delay")
	}
	assert.Equal(t, uint64(n), la.Established)
	assert.Equal(t, uint64(10), la.Refused, "refused (closed port) counted exactly")
	assert.Equal(t, uint64(5), la.TimedOut, "timed out (SYNs dropped by OVS) counted exactly")
	assert.Equal(t, uint64(5), la.SYNRetries, "one retransmission per timed-out attempt")
	assert.Equal(t, uint64(n), la.Handshake.Count)
	assert.Equal(t, uint64(n), lb.Established)
	assert.Zero(t, pa.Bytes+pb.Bytes, "measurements never count as traffic (no sFlow/IPFIX export in this lab)")

	assert.InDelta(t, tA, la.Handshake.P50, tolUS(tA), "1 ms: client-side p50 vs the client kernel's")
	assert.InDelta(t, tB, lb.Handshake.P50, tolUS(tB), "5 ms: client-side p50 vs the client kernel's")
	assert.GreaterOrEqual(t, cA, la.Handshake.P50, "connect() includes the handshake")
	assert.GreaterOrEqual(t, cB, lb.Handshake.P50, "connect() includes the handshake")
	added := 2 * (holdB - holdA) // the round trip's added delay, as the line really held the frames
	assert.InDelta(t, 8000, added, 1000, "the delay line adds about 2×4 ms")
	assert.InDelta(t, added, lb.Network.P50-la.Network.P50, math.Max(0.10*added, 400), "network part grows by twice the added delay")
	for _, g := range []*latHist{la.Guest, lb.Guest} {
		assert.Greater(t, g.P50, 0.0, "guest part positive")
		assert.Less(t, g.P50, 1000.0, "guest part small")
	}
	pA, pB := medianUS(pingA), medianUS(pingB)
	require.NotNil(t, la.Echo)
	require.NotNil(t, lb.Echo)
	assert.Equal(t, uint64(len(pingA)), la.Echo.Count, "echo replies timed: as many as ping got")
	assert.Equal(t, uint64(len(pingB)), lb.Echo.Count, "echo replies timed: as many as ping got")
	assert.Equal(t, uint64(20), la.Echoes, "echo requests")
	assert.InDelta(t, pA, la.Echo.P50, tolUS(pA), "1 ms: echo p50 vs ping's")
	assert.InDelta(t, pB, lb.Echo.P50, tolUS(pB), "5 ms: echo p50 vs ping's")
	for _, p := range []*probeProc{p1, p2} {
		ov, _ := p.metric("vmflow_probe_pending_overflow_total")
		dr, _ := p.metric("vmflow_probe_kernel_drops_total")
		assert.Zero(t, ov+dr, "probe on %s lost measurements", p.host.Name)
	}
}

// storm connects from src to dst:port with workers parallel dialers for d
// and returns the connections established.
func storm(t *testing.T, src, dst *ovslab.VM, port, workers int, d time.Duration) (ok, failed int64) {
	t.Helper()
	addr := net.JoinHostPort(dst.IP.String(), strconv.Itoa(port))
	var nOK, nFail atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = delayline.InNetns(src.Netns, func() error {
				dl := net.Dialer{Timeout: 3 * time.Second}
				for time.Now().Before(end) {
					c, err := dl.Dial("tcp", addr)
					if err != nil {
						nFail.Add(1)
						continue
					}
					nOK.Add(1)
					c.Close()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return nOK.Load(), nFail.Load()
}

// TestProbeCost is issue 9's point 2: the probe's CPU while iperf3 pushes
// data through the taps (data never reaches it), and a handshake storm
// timed with under 1% of attempts lost.
func TestProbeCost(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{})
	h := lab.Host("hv1")
	vm1, vm2, vm3, vm4 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4")
	const window = 2 * time.Second
	a := startVMFlow(t, writeInventory(t, lab), window)
	p := startProbe(t, h, a.ListenPort(collector.ProtoIPFIX))

	// the tap set follows the host: a new tap is watched, a gone one released
	run := func(args ...string) {
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %v: %s", args, out)
	}
	taps := func() float64 { v, _ := p.metric("vmflow_probe_taps"); return v }
	require.Equal(t, 4.0, taps())
	run("-n", h.Netns, "link", "add", "vnet99", "type", "veth", "peer", "name", "peer99")
	run("-n", h.Netns, "link", "set", "vnet99", "up")
	require.Eventually(t, func() bool { return taps() == 5 }, 10*time.Second, 200*time.Millisecond, "new tap picked up")
	run("-n", h.Netns, "link", "del", "vnet99")
	require.Eventually(t, func() bool { return taps() == 4 }, 10*time.Second, 200*time.Millisecond, "gone tap released")

	// iperf3 at the lab's top rate through vm1's and vm2's taps
	f0, _ := p.metric("vmflow_probe_frames_total")
	c0, t0 := p.cpuSeconds(t), time.Now()
	res, err := lab.IperfTCP(vm1, vm2, ovslab.IperfOptions{Duration: 5 * time.Second})
	require.NoError(t, err)
	cpu := (p.cpuSeconds(t) - c0) / time.Since(t0).Seconds()
	f1, _ := p.metric("vmflow_probe_frames_total")
	gbps := float64(res.SentBytes) * 8 / 5 / 1e9
	segments := float64(res.SentBytes) / 1448 // data segments, each seen on two taps
	t.Logf("iperf3 %.2f Gbit/s for 5 s (~%.0f data segments): probe CPU %.2f%% of a core, %v frames reached it (SYN/FIN of iperf3's two connections, and the RSTs its server's closed socket sends to the last segments in flight)",
		gbps, segments, cpu*100, f1-f0)
	assert.Less(t, cpu, 0.02, "probe CPU under iperf3")
	assert.Less(t, f1-f0, segments/100, "data packets reached the probe")

	// handshake storm vm3 → vm4
	serve(t, vm4, 8080)
	e0, _ := p.metric("vmflow_probe_events_total")
	acks0 := finalAcks(p)
	fu0, _ := p.metric("vmflow_probe_filter_updates_total")
	const dur = 3 * time.Second
	sc0, st0 := p.cpuSeconds(t), time.Now()
	ok, failed := storm(t, vm3, vm4, 8080, 8, dur)
	rate := float64(ok) / dur.Seconds()
	stormCPU := (p.cpuSeconds(t) - sc0) / time.Since(st0).Seconds()
	time.Sleep(3*time.Second + 2*window)
	var lat *struct {
		est, att uint64
	}
	deadline := time.Now().Add(30 * time.Second)
	for lat == nil || int64(lat.est) < ok*99/100 {
		ps := latencyPairs(t, a)
		if l := ps["vm3->vm4"].Latency; l != nil {
			lat = &struct{ est, att uint64 }{l.Established, l.Attempts}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	require.NotNil(t, lat)
	e1, _ := p.metric("vmflow_probe_events_total")
	ov, _ := p.metric("vmflow_probe_pending_overflow_total")
	drops, _ := p.metric("vmflow_probe_kernel_drops_total")
	lost := ok - int64(lat.est)
	acks1 := finalAcks(p)
	fu1, _ := p.metric("vmflow_probe_filter_updates_total")
	ferr, _ := p.metric("vmflow_probe_filter_errors_total")
	expErr, _ := p.metric("vmflow_probe_export_errors_total")
	t.Logf("storm: %d connections in %s (%.0f/s), %d failed; probe timed %d established of %d attempts at the client tap (%d lost = %.2f%%); probe events %v, overflow %v, kernel drops %v, export errors %v; probe CPU %.1f%% of a core",
		ok, dur, rate, failed, lat.est, lat.att, lost, 100*float64(lost)/float64(ok), e1-e0, ov, drops, expErr, 100*stormCPU)
	for k := range acks1 {
		acks1[k] -= acks0[k]
	}
	t.Logf("storm: final ACKs at the server's tap %v; filter re-attachments %v (%.0f/s), failed %v",
		acks1, fu1-fu0, (fu1-fu0)/dur.Seconds(), ferr)
	// The rate is the lab's, not the probe's: on this shared 2-core machine
	// it varies with the load, so it is reported (the target is
	// 2,000/s) and the test fails only on lost attempts.
	if rate < 2000 {
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("NOTE: storm rate %.0f/s is below the 2,000/s target on this run (load average %s)", rate, strings.TrimSpace(string(load)))
	}
	assert.Greater(t, ok, int64(1000), "the storm made connections")
	assert.Less(t, math.Abs(float64(lost)), float64(ok)/100, "under 1%% of the storm's handshakes lost")
	assert.Zero(t, ferr, "filter re-attachments failed")
}

// finalAcks reads vmflow_probe_final_acks_total by result.
func finalAcks(p *probeProc) map[string]float64 {
	out := map[string]float64{}
	for _, r := range []string{"timed", "missed", "no_slot", "other"} {
		v, _ := p.metric(`vmflow_probe_final_acks_total{result="` + r + `"}`)
		out[r] = v
	}
	return out
}
