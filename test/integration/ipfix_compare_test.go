package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector/blast"
)

// TestIPFIXCompare is `make ipfix-compare`: nfdump's nfcapd and vmflow,
// each as its own process, take the same IPFIX replay (real OVS 3.1
// messages, one flow record each, from four exporters, templates first; see
// ipfixBlastConfig) at 100,000, 200,000 and 400,000 records/s
// (VMFLOW_COMPARE_RATES) for VMFLOW_COMPARE_SECONDS (default 10) each, one
// collector at a time, and the test prints one table: records each stored
// or decoded, loss, CPU seconds and records per CPU-second.
//
// The CPU of a collector is utime+stime from /proc/PID/stat, from just
// before the first datagram until its socket is drained and its CPU stops
// moving; the sender runs in this test process, so it is in neither.
// nfcapd (-w to a temporary directory, -B 32 MiB receive buffer, like
// vmflow's default) is counted with `nfdump -R DIR -I` (Flows) after it
// stopped; vmflow with its own metrics (IPFIX flow records decoded, those
// kept plus those skipped by flowDirection). Loss is records sent minus
// records counted. VMFLOW_COMPARE_REPEAT=N (default 1) runs everything N
// times, interleaved, and the table shows each row's median run.
// VMFLOW_COMPARE_VMFLOW_BIN runs that vmflow binary instead of building
// this tree's. Each collector runs in a session of its own (ownSession), so
// that the kernel's per-session CPU sharing does not make it share the
// sender's; the table's header gives the machine's load average.
func TestIPFIXCompare(t *testing.T) {
	if os.Getenv("VMFLOW_IPFIX_COMPARE") != "1" {
		t.Skip("set VMFLOW_IPFIX_COMPARE=1 (make ipfix-compare)")
	}
	for _, tool := range []string{"nfcapd", "nfdump"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s (Debian nfdump, scripts/install-deps.sh)", tool)
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	bin := os.Getenv("VMFLOW_COMPARE_VMFLOW_BIN") // another build, e.g. an older commit's
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "vmflow")
		out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd/vmflow")).CombinedOutput()
		require.NoError(t, err, "build vmflow: %s", out)
	}
	payloads, err := blast.LoadPcap(filepath.Join(root, "testdata/ovs-lab-1/ovs-ipfix1.pcapng"), 4739)
	require.NoError(t, err)

	secs := envFloat("VMFLOW_COMPARE_SECONDS", 10)
	repeat := int(envFloat("VMFLOW_COMPARE_REPEAT", 1))
	rates := []float64{100e3, 200e3, 400e3}
	if v := os.Getenv("VMFLOW_COMPARE_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			require.NoError(t, err)
			rates = append(rates, r)
		}
	}
	collectors := []string{"nfcapd", "vmflow"}
	runs := map[string][]compareRun{}
	load0 := loadAvg(t)
	for rep := range repeat {
		for _, rate := range rates {
			for _, name := range collectors {
				var r compareRun
				if name == "nfcapd" {
					r = runNfcapd(t, payloads, rate, secs)
				} else {
					r = runVmflow(t, bin, root, payloads, rate, secs)
				}
				k := fmt.Sprintf("%s@%.0f", name, rate)
				runs[k] = append(runs[k], r)
				t.Logf("run %d/%d %-6s %3.0fk/s: sent %d, counted %d, socket drops %d, CPU %.2f s => %.0f records/CPU-s (load average %s)",
					rep+1, repeat, name, rate/1000, r.sent, r.counted, r.sockDrops, r.cpu.Seconds(), r.perCPU(), loadAvg(t))
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nIPFIX side by side: real OVS 3.1 messages (1 record each), 4 exporters, %.0f s per rate, median of %d run(s); load average (1, 5, 15 min) %s at the start, %s at the end, %d CPUs\n",
		secs, repeat, load0, loadAvg(t), runtime.NumCPU())
	fmt.Fprintf(&b, "| offered records/s | collector | records sent | records counted | loss | CPU s | records per CPU-second | vmflow / nfcapd |\n|---|---|---|---|---|---|---|---|\n")
	for _, rate := range rates {
		var nf float64
		for _, name := range collectors {
			r := median(runs[fmt.Sprintf("%s@%.0f", name, rate)])
			ratio := ""
			if name == "nfcapd" {
				nf = r.perCPU()
			} else if nf > 0 {
				ratio = fmt.Sprintf("%.2f×", r.perCPU()/nf)
			}
			fmt.Fprintf(&b, "| %.0fk | %s | %d | %d | %.3f%% | %.2f | %.0f | %s |\n",
				rate/1000, name, r.sent, r.counted, r.lossPercent(), r.cpu.Seconds(), r.perCPU(), ratio)
		}
	}
	t.Log(b.String())
	fmt.Print(b.String())
}

// ownSession starts a collector in a session of its own, as a service
// runs. With the kernel's autogroup scheduling (sched_autogroup_enabled,
// on here) CPU time is shared fairly between sessions, not threads: in the
// test's session the collector would share one session's share of the
// loaded machine with the sender, so the sender's CPU would starve it (and
// how much depends on the sender, not the collector). Both collectors are
// started the same way.
var ownSession = &syscall.SysProcAttr{Setsid: true}

type compareRun struct {
	sent, counted, sockDrops uint64
	cpu                      time.Duration
}

func (r compareRun) perCPU() float64 { return float64(r.counted) / max(r.cpu.Seconds(), 1e-9) }

func (r compareRun) lossPercent() float64 {
	if r.sent == 0 || r.counted >= r.sent {
		return 0
	}
	return 100 * float64(r.sent-r.counted) / float64(r.sent)
}

// median returns the run with the median records per CPU-second.
func median(rs []compareRun) compareRun {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b compareRun) int {
		switch {
		case a.perCPU() < b.perCPU():
			return -1
		case a.perCPU() > b.perCPU():
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// loadAvg is the first three fields of /proc/loadavg: how loaded the
// (shared) machine was.
func loadAvg(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/loadavg")
	require.NoError(t, err)
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// procCPU is utime+stime of process pid (its threads included).
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	u, s := procUserSys(t, pid)
	return u + s
}

// procUserSys is utime and stime of process pid.
func procUserSys(t *testing.T, pid int) (user, sys time.Duration) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])                            // after "pid (comm) "
	ut, _ := strconv.ParseUint(f[11], 10, 64)                                           // field 14
	st, _ := strconv.ParseUint(f[12], 10, 64)                                           // field 15
	return time.Duration(ut) * time.Second / 100, time.Duration(st) * time.Second / 100 // USER_HZ
}

// udpSockets sums rx_queue and drops of the IPv4 UDP sockets bound to
// 127.0.0.1:port (from /proc/net/udp); n is how many there are.
func udpSockets(t *testing.T, port int) (n int, rxQueue, drops uint64) {
	t.Helper()
	f, err := os.Open("/proc/net/udp")
	require.NoError(t, err)
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 13 || fs[1] != want {
			continue
		}
		n++
		if _, rx, ok := strings.Cut(fs[4], ":"); ok {
			v, _ := strconv.ParseUint(rx, 16, 64)
			rxQueue += v
		}
		d, _ := strconv.ParseUint(fs[len(fs)-1], 10, 64)
		drops += d
	}
	return n, rxQueue, drops
}

// waitBound waits until a socket is bound to 127.0.0.1:port.
func waitBound(t *testing.T, port int) {
	t.Helper()
	require.Eventually(t, func() bool { n, _, _ := udpSockets(t, port); return n > 0 }, 20*time.Second, 10*time.Millisecond)
}

// measure replays at rate to port and returns what was sent, the CPU pid
// spent from the first datagram until its sockets were drained and its CPU
// stopped moving, and the kernel's drops on those sockets.
func measure(t *testing.T, pid, port int, payloads [][]byte, rate, secs float64) (blast.Result, time.Duration, uint64) {
	t.Helper()
	_, _, drops0 := udpSockets(t, port)
	u0, s0 := procUserSys(t, pid)
	cpu0 := u0 + s0
	bc := ipfixBlastConfig(fmt.Sprintf("127.0.0.1:%d", port), rate, time.Duration(secs*float64(time.Second)))
	sent, err := blast.Run(context.Background(), bc, payloads)
	require.NoError(t, err)
	cpu := procCPU(t, pid)
	for still := 0; still < 3; {
		time.Sleep(100 * time.Millisecond)
		_, rx, _ := udpSockets(t, port)
		c := procCPU(t, pid)
		if rx == 0 && c == cpu {
			still++
		} else {
			still = 0
		}
		cpu = c
	}
	_, _, drops1 := udpSockets(t, port)
	u1, s1 := procUserSys(t, pid)
	t.Logf("pid %d: user %.2f s, system %.2f s", pid, (u1 - u0).Seconds(), (s1 - s0).Seconds())
	return sent, cpu - cpu0, drops1 - drops0
}

func runNfcapd(t *testing.T, payloads [][]byte, rate, secs float64) compareRun {
	t.Helper()
	dir := t.TempDir()
	port := freeUDPPort(t)
	cmd := exec.Command("nfcapd", "-w", dir, "-b", "127.0.0.1", "-p", strconv.Itoa(port),
		"-t", "3600", "-B", strconv.Itoa(32<<20))
	logf, err := os.Create(filepath.Join(dir, "..", "nfcapd.log"))
	require.NoError(t, err)
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = ownSession
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	waitBound(t, port)
	sent, cpu, drops := measure(t, cmd.Process.Pid, port, payloads, rate, secs)
	// SIGTERM: nfcapd writes its last block and closes the file
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_, err = cmd.Process.Wait()
	require.NoError(t, err)
	out, err := exec.Command("nfdump", "-R", dir, "-I").CombinedOutput()
	require.NoError(t, err, "nfdump -I: %s", out)
	m := regexp.MustCompile(`(?m)^Flows: (\d+)$`).FindSubmatch(out)
	require.NotNil(t, m, "nfdump -I: %s", out)
	flows, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return compareRun{sent: sent.Samples, counted: flows, sockDrops: drops, cpu: cpu}
}

func runVmflow(t *testing.T, bin, root string, payloads [][]byte, rate, secs float64) compareRun {
	t.Helper()
	port := freeUDPPort(t)
	apiPort := freeUDPPort(t) // a free UDP port is nearly always a free TCP port too
	api := fmt.Sprintf("127.0.0.1:%d", apiPort)
	cmd := exec.Command(bin, "--config", filepath.Join(root, "configs/vmflow.yaml"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"VMFLOW_LOG_LEVEL=warn",
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=",
		fmt.Sprintf("VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:%d", port),
		"VMFLOW_API_LISTEN="+api)
	logf, err := os.Create(filepath.Join(t.TempDir(), "vmflow.log"))
	require.NoError(t, err)
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = ownSession
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	waitBound(t, port)
	require.Eventually(t, func() bool { _, err := vmflowMetric(api, nil); return err == nil }, 20*time.Second, 20*time.Millisecond)
	sent, cpu, drops := measure(t, cmd.Process.Pid, port, payloads, rate, secs)
	n, err := vmflowMetric(api, []string{
		`vmflow_decoder_flow_records_total{source="ipfix"}`,
		`vmflow_decoder_flow_direction_skipped_total{source="ipfix"}`,
	})
	require.NoError(t, err)
	return compareRun{sent: sent.Samples, counted: uint64(n), sockDrops: drops, cpu: cpu}
}

// vmflowMetric sums the named series (name{labels} as exposed) of vmflow's
// /metrics.
func vmflowMetric(api string, series []string) (float64, error) {
	resp, err := http.Get("http://" + api + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if ok && slices.Contains(series, name) {
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return 0, err
			}
			sum += v
		}
	}
	return sum, nil
}
