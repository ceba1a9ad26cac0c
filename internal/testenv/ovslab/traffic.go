package ovslab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PortCounters are a VM port's counters read from its host-side veth. Rx is
// what the VM sent towards the bridge, Tx what the bridge delivered to it.
// Bytes are Ethernet frame bytes without FCS. Dropped counts the frames
// the userspace datapath's AF_PACKET socket on the port dropped (its
// buffer overflowed): they were sent by the VM but never entered the
// bridge, so nothing sampled them.
type PortCounters struct {
	RxBytes, RxPackets uint64
	TxBytes, TxPackets uint64
	Dropped            uint64
}

// Sub returns c - prev.
func (c PortCounters) Sub(prev PortCounters) PortCounters {
	return PortCounters{
		RxBytes: c.RxBytes - prev.RxBytes, RxPackets: c.RxPackets - prev.RxPackets,
		TxBytes: c.TxBytes - prev.TxBytes, TxPackets: c.TxPackets - prev.TxPackets,
		Dropped: c.Dropped - prev.Dropped,
	}
}

// Snapshot holds every VM port's counters, by VM name.
type Snapshot map[string]PortCounters

// Sub returns s - prev per VM.
func (s Snapshot) Sub(prev Snapshot) Snapshot {
	out := make(Snapshot, len(s))
	for k, v := range s {
		out[k] = v.Sub(prev[k])
	}
	return out
}

// Counters reads every VM port's counters.
func (l *Lab) Counters() (Snapshot, error) {
	snap := make(Snapshot, len(l.vms))
	for _, h := range l.hosts {
		out, err := run(context.Background(), "ip", "-n", h.Netns, "-j", "-s", "link", "show")
		if err != nil {
			return nil, err
		}
		var links []struct {
			IfName string `json:"ifname"`
			Stats  struct {
				Rx struct{ Bytes, Packets uint64 } `json:"rx"`
				Tx struct{ Bytes, Packets uint64 } `json:"tx"`
			} `json:"stats64"`
		}
		if err := json.Unmarshal(out, &links); err != nil {
			return nil, fmt.Errorf("parse ip -j -s link: %w", err)
		}
		byName := map[string]int{}
		for i, ln := range links {
			byName[ln.IfName] = i
		}
		drops, err := socketDrops(h.Netns)
		if err != nil {
			return nil, err
		}
		for _, v := range h.VMs {
			i, ok := byName[v.HostVeth]
			if !ok {
				return nil, fmt.Errorf("counters: %s not found in %s", v.HostVeth, h.Netns)
			}
			s := links[i].Stats
			snap[v.Name] = PortCounters{RxBytes: s.Rx.Bytes, RxPackets: s.Rx.Packets, TxBytes: s.Tx.Bytes, TxPackets: s.Tx.Packets,
				Dropped: drops[v.HostVeth]}
		}
	}
	return snap, nil
}

var skmemDrops = regexp.MustCompile(`skmem:\([^)]*\bd(\d+)\)`)

// socketDrops sums the drop counters of the packet sockets bound to each
// interface of a namespace (ss -0: ovs-vswitchd's AF_PACKET port sockets).
func socketDrops(ns string) (map[string]uint64, error) {
	out, err := run(context.Background(), "ip", "netns", "exec", ns, "ss", "-0", "-a", "-m", "-n", "-H")
	if err != nil {
		return nil, err
	}
	drops := map[string]uint64{}
	var dev string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(f[0], "p_") {
			dev = ""
			if _, d, ok := strings.Cut(f[4], ":"); ok {
				dev = d
			}
		}
		if m := skmemDrops.FindStringSubmatch(line); m != nil && dev != "" {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			drops[dev] += n
			dev = ""
		}
	}
	return drops, nil
}

// Pair is a directed VM pair by name.
type Pair struct{ Src, Dst string }

func (p Pair) String() string { return p.Src + "->" + p.Dst }

// PairTruth is the ground truth of one directed pair, from the VM ports.
//
// Sent is what the source VM put on its port (rx of its host-side veth).
// Bridged is what of it entered the source VM's bridge: Sent less the
// frames ovs-vswitchd's AF_PACKET socket on the port dropped (it overflows
// when ovs-vswitchd is starved of CPU). Those frames were never switched
// nor sampled, so Bridged is the truth an exporter at the source VM's
// bridge can report. Frames are of known size only in total, so
// BridgedBytes removes dropped frames at the phase's mean frame size (exact
// when no frame was dropped). Delivered is what the destination VM's port
// received (tx of its host-side veth) while the source was its only
// talker; it is lower still when a second bridge on the way drops frames.
type PairTruth struct {
	SentBytes, SentPackets           uint64
	BridgedBytes, BridgedPackets     uint64
	DeliveredBytes, DeliveredPackets uint64
}

// Dropped is what the source sent that never entered its bridge.
func (p PairTruth) Dropped() uint64 { return p.SentPackets - p.BridgedPackets }

// Truth is the ground truth per directed pair, accumulated over phases.
type Truth map[Pair]PairTruth

// Pairs returns the pairs in a stable order.
func (t Truth) Pairs() []Pair {
	out := make([]Pair, 0, len(t))
	for p := range t {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Phase runs fn while measuring the VM ports. talks maps each VM that may
// send during the phase to the one VM it sends to; it must be symmetric
// (if a talks to b, b talks to a), so that every destination has exactly
// one talker and what it received can be attributed. What a VM sent (rx
// of its host-side veth) and what its peer received (tx of the peer's
// host-side veth) are added to truth[{vm, talks[vm]}]. A VM not in talks
// that sent or received anything is an error: the truth would be ambiguous.
func (l *Lab) Phase(truth Truth, talks map[string]string, fn func() error) error {
	for a, b := range talks {
		if talks[b] != a {
			return fmt.Errorf("phase: talks must be symmetric: %s->%s but %s->%q", a, b, b, talks[b])
		}
	}
	before, err := l.Counters()
	if err != nil {
		return err
	}
	if err := fn(); err != nil {
		return err
	}
	// Let the last frames (final ACKs, FINs) cross the bridge.
	time.Sleep(300 * time.Millisecond)
	after, err := l.Counters()
	if err != nil {
		return err
	}
	delta := after.Sub(before)
	var stray []string
	for vm, c := range delta {
		dst, ok := talks[vm]
		if !ok {
			if c.RxPackets != 0 || c.TxPackets != 0 {
				stray = append(stray, fmt.Sprintf("%s sent %d frames and received %d", vm, c.RxPackets, c.TxPackets))
			}
			continue
		}
		if c.RxPackets == 0 {
			continue
		}
		p := Pair{vm, dst}
		pt := truth[p]
		pt.SentBytes += c.RxBytes
		pt.SentPackets += c.RxPackets
		dropped := min(c.Dropped, c.RxPackets)
		pt.BridgedPackets += c.RxPackets - dropped
		pt.BridgedBytes += c.RxBytes - uint64(float64(c.RxBytes)*float64(dropped)/float64(c.RxPackets)+0.5)
		pt.DeliveredBytes += delta[dst].TxBytes
		pt.DeliveredPackets += delta[dst].TxPackets
		truth[p] = pt
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		return fmt.Errorf("phase: VMs outside the schedule had traffic: %s", strings.Join(stray, "; "))
	}
	return nil
}

// IperfOptions configures one iperf3 run.
type IperfOptions struct {
	Duration time.Duration // default 2 s
	Bitrate  string        // iperf3 -b, e.g. "50M"; "" = iperf3 default (unlimited TCP, 1M UDP)
	Length   int           // iperf3 -l (UDP payload bytes), 0 = default
	Port     int           // server port, default 5201
}

// IperfResult is iperf3's own account of a run (client side -J output).
type IperfResult struct {
	SentBytes     uint64 // payload bytes sent
	ReceivedBytes uint64 // payload bytes received by the server
	Packets       uint64 // UDP datagrams sent
	LostPackets   uint64 // UDP datagrams lost (server's view)
	Seconds       float64
	JSON          []byte
}

// IperfTCP runs an iperf3 TCP test from src to dst.
func (l *Lab) IperfTCP(src, dst *VM, o IperfOptions) (IperfResult, error) {
	return l.iperf(src, dst, o, false)
}

// IperfUDP runs an iperf3 UDP test from src to dst.
func (l *Lab) IperfUDP(src, dst *VM, o IperfOptions) (IperfResult, error) {
	return l.iperf(src, dst, o, true)
}

func (l *Lab) iperf(src, dst *VM, o IperfOptions, udp bool) (IperfResult, error) {
	if o.Duration == 0 {
		o.Duration = 2 * time.Second
	}
	if o.Port == 0 {
		o.Port = 5201
	}
	port := strconv.Itoa(o.Port)
	srv := exec.Command("ip", "netns", "exec", dst.Netns, "iperf3", "-s", "-1", "-J", "-p", port, "-B", dst.IP.String())
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 server: %w", err)
	}
	l.track(srv)
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	if err := l.waitListen(dst, o.Port, srvDone); err != nil {
		_ = srv.Process.Kill()
		return IperfResult{}, fmt.Errorf("iperf3 server on %s: %w: %s", dst.Name, err, srvOut.String())
	}
	secs := o.Duration.Seconds()
	args := []string{"-c", dst.IP.String(), "-p", port, "-J", "-t", strconv.FormatFloat(secs, 'f', -1, 64)}
	if udp {
		args = append(args, "-u")
	}
	if o.Bitrate != "" {
		args = append(args, "-b", o.Bitrate)
	}
	if o.Length > 0 {
		args = append(args, "-l", strconv.Itoa(o.Length))
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Duration+60*time.Second)
	defer cancel()
	out, cerr := l.Exec(ctx, src, "iperf3", args...)
	select {
	case <-srvDone:
	case <-time.After(15 * time.Second):
		_ = srv.Process.Kill()
		<-srvDone
	}
	res, perr := parseIperf(out, udp)
	if cerr != nil && perr == nil {
		perr = cerr
	}
	if perr != nil {
		return res, fmt.Errorf("iperf3 %s->%s: %w", src.Name, dst.Name, perr)
	}
	return res, nil
}

func (l *Lab) track(c *exec.Cmd) {
	l.mu.Lock()
	l.procs = append(l.procs, c)
	l.mu.Unlock()
}

func (l *Lab) waitListen(v *VM, port int, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := l.Exec(context.Background(), v, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %d after 10s", port)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func parseIperf(out []byte, udp bool) (IperfResult, error) {
	var j struct {
		Error string `json:"error"`
		End   struct {
			Sum struct {
				Bytes       uint64  `json:"bytes"`
				Packets     uint64  `json:"packets"`
				LostPackets uint64  `json:"lost_packets"`
				Seconds     float64 `json:"seconds"`
			} `json:"sum"`
			SumSent struct {
				Bytes   uint64  `json:"bytes"`
				Packets uint64  `json:"packets"`
				Seconds float64 `json:"seconds"`
			} `json:"sum_sent"`
			SumReceived struct {
				Bytes uint64 `json:"bytes"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	res := IperfResult{JSON: out}
	if err := json.Unmarshal(out, &j); err != nil {
		return res, fmt.Errorf("parse iperf3 -J output: %w: %.300s", err, out)
	}
	if j.Error != "" {
		return res, fmt.Errorf("iperf3: %s", j.Error)
	}
	res.SentBytes = j.End.SumSent.Bytes
	res.ReceivedBytes = j.End.SumReceived.Bytes
	res.Seconds = j.End.SumSent.Seconds
	if udp {
		res.Packets = j.End.Sum.Packets
		if res.Packets == 0 {
			res.Packets = j.End.SumSent.Packets
		}
		res.LostPackets = j.End.Sum.LostPackets
	}
	if res.SentBytes == 0 {
		return res, fmt.Errorf("iperf3 sent nothing: %.300s", out)
	}
	return res, nil
}

// PingResult is ping's summary.
type PingResult struct {
	Transmitted, Received int
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// Ping sends count ICMP echo requests from src to dst, interval apart.
func (l *Lab) Ping(src, dst *VM, count int, interval time.Duration) (PingResult, error) {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count)*interval+30*time.Second)
	defer cancel()
	out, err := l.Exec(ctx, src, "ping", "-n", "-q", "-c", strconv.Itoa(count),
		"-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), "-W", "2", dst.IP.String())
	m := pingSummary.FindSubmatch(out)
	if m == nil {
		return PingResult{}, fmt.Errorf("ping %s->%s: %v: %s", src.Name, dst.Name, err, out)
	}
	tx, _ := strconv.Atoi(string(m[1]))
	rx, _ := strconv.Atoi(string(m[2]))
	res := PingResult{Transmitted: tx, Received: rx}
	if rx == 0 {
		return res, fmt.Errorf("ping %s->%s: no replies: %s", src.Name, dst.Name, out)
	}
	return res, nil
}
