package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector/blast"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/internal/testenv/influxd"
)

// The shutdown tests run the real vmflow binary against a real influxd,
// feed it the real OVS captures of testdata/ovs-lab-1 as UDP datagrams and
// stop it with SIGTERM (see README, "Stopping" and "Partial windows").

const (
	sflowCapture = "../../testdata/ovs-lab-1/ovs-sflow16.pcapng"
	ipfixCapture = "../../testdata/ovs-lab-1/ovs-ipfix1.pcapng"
	labInventory = "../../testdata/inventory/lab.yaml"
	stopWindow   = 2 * time.Second
)

// buildVMFlow builds cmd/vmflow once per test binary.
var buildOnce struct {
	sync.Once
	path string
	err  error
	out  []byte
}

func buildVMFlow(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vmflow-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "vmflow")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, "./cmd/vmflow")
		cmd.Dir = "../.."
		buildOnce.out, buildOnce.err = cmd.CombinedOutput()
	})
	require.NoError(t, buildOnce.err, "go build ./cmd/vmflow: %s", buildOnce.out)
	return buildOnce.path
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// vmflowProc is one run of the vmflow binary.
type vmflowProc struct {
	cmd    *exec.Cmd
	api    string
	stderr *bytes.Buffer
	mu     *sync.Mutex
	exited chan struct{}
	err    error
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// procEnv is the environment shared by the runs of one test.
type procEnv struct {
	bin                string
	sflowPort, ipfixPt int
	apiPort            int
	env                []string
}

func newProcEnv(t *testing.T, influxURL, spool string, extra ...string) *procEnv {
	t.Helper()
	inv, err := filepath.Abs(labInventory)
	require.NoError(t, err)
	p := &procEnv{bin: buildVMFlow(t), sflowPort: freeUDPPort(t), ipfixPt: freeUDPPort(t), apiPort: freeTCPPort(t)}
	p.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"VMFLOW_LOG_LEVEL=info",
		fmt.Sprintf("VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:%d", p.sflowPort),
		fmt.Sprintf("VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:%d", p.ipfixPt),
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=",
		fmt.Sprintf("VMFLOW_API_LISTEN=127.0.0.1:%d", p.apiPort),
		"VMFLOW_ENRICH_STATIC_FILE=" + inv,
		"VMFLOW_ENRICH_STATIC_RELOAD=0s",
		"VMFLOW_AGGREGATE_WINDOW=" + stopWindow.String(),
		"VMFLOW_INFLUX_ENABLED=true",
		"VMFLOW_INFLUX_URL=" + influxURL,
		"VMFLOW_INFLUX_BUCKET=vmflow/autogen",
		"VMFLOW_INFLUX_SPOOL_DIR=" + spool,
		"VMFLOW_INFLUX_FLUSH_INTERVAL=100ms",
		"VMFLOW_INFLUX_MAX_RETRIES=1",
		"VMFLOW_INFLUX_RETRY_MIN=100ms",
		"VMFLOW_INFLUX_RETRY_MAX=500ms",
		"VMFLOW_INFLUX_TIMEOUT=2s",
		"VMFLOW_SHUTDOWN_TIMEOUT=3s",
	}, extra...)
	return p
}

// start runs vmflow and waits until its API answers (it starts last).
func (p *procEnv) start(t *testing.T) *vmflowProc {
	t.Helper()
	var mu sync.Mutex
	buf := &bytes.Buffer{}
	cmd := exec.Command(p.bin)
	cmd.Dir = t.TempDir() // no configs/vmflow.yaml: defaults and environment
	cmd.Env = p.env
	cmd.Stdout = lockedBuffer{&mu, buf}
	cmd.Stderr = lockedBuffer{&mu, buf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	v := &vmflowProc{cmd: cmd, api: fmt.Sprintf("http://127.0.0.1:%d", p.apiPort), stderr: buf, mu: &mu, exited: make(chan struct{})}
	go func() {
		v.err = cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-v.exited:
		default:
			_ = cmd.Process.Kill()
			<-v.exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(v.api + "/metrics")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v
			}
		}
		select {
		case <-v.exited:
			t.Fatalf("vmflow exited during start-up: %v\n%s", v.err, v.log())
		default:
		}
		require.True(t, time.Now().Before(deadline), "vmflow API not up; log:\n%s", v.log())
		time.Sleep(20 * time.Millisecond)
	}
}

func (v *vmflowProc) log() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stderr.String()
}

// signal sends sig to the process.
func (v *vmflowProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, v.cmd.Process.Signal(sig))
}

// wait waits for the process to exit and returns its exit status.
func (v *vmflowProc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-v.exited:
	case <-time.After(within):
		t.Fatalf("vmflow did not exit within %s; log:\n%s", within, v.log())
	}
	var ee *exec.ExitError
	if errors.As(v.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, v.err)
	return 0
}

// metric returns the value of one exposition line of /metrics (name with
// labels, as printed), 0 when absent.
func (v *vmflowProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(v.api + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			f, err := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			require.NoError(t, err, line)
			return f
		}
	}
	return 0
}

// sender sends datagrams from 127.0.0.1 (the lab inventory's exporter).
type sender struct {
	conn    *net.UDPConn
	handled string // metric line counting what vmflow handled
	sent    int    // in the current run
}

func newSender(t *testing.T, port int, proto string) *sender {
	t.Helper()
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &sender{conn: c, handled: fmt.Sprintf(`vmflow_collector_handled_datagrams_total{protocol=%q}`, proto)}
}

func (s *sender) send(t *testing.T, dgs [][]byte, gap time.Duration) {
	t.Helper()
	for _, d := range dgs {
		_, err := s.conn.Write(d)
		require.NoError(t, err)
		s.sent++
		if gap > 0 {
			time.Sleep(gap)
		}
	}
}

// waitHandled waits until vmflow handled every datagram sent in this run.
func waitHandled(t *testing.T, v *vmflowProc, ss ...*sender) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, s := range ss {
			if int(v.metric(t, s.handled)) < s.sent {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "vmflow did not handle the datagrams sent")
	for _, s := range ss {
		require.Equal(t, s.sent, int(v.metric(t, s.handled)), "%s: every datagram handled, none dropped", s.handled)
	}
}

// labVMs maps the lab's MACs and IPs to VM names (testdata/ovs-lab-1/README.md,
// testdata/inventory/lab.yaml).
func labVM(mac [6]byte, ip netip.Addr, l3 bool) string {
	if mac[0] == 0x52 && mac[1] == 0x54 && mac[2] == 0 && mac[3] == 0 && mac[4] == 0 && mac[5] >= 1 && mac[5] <= 4 {
		return fmt.Sprintf("vm%d", mac[5])
	}
	if l3 && ip.Is4() {
		if b := ip.As4(); b[0] == 10 && b[1] == 0 && b[2] == 0 && b[3] >= 1 && b[3] <= 4 {
			return fmt.Sprintf("vm%d", b[3])
		}
	}
	return "(external)"
}

// captureTotals decodes the datagrams with a decoder of its own and sums
// the scaled bytes (bytes × sampling rate) per src_vm|dst_vm|source, the
// way InfluxDB's vm_pair series group them.
func captureTotals(t *testing.T, sflow, ipfix [][]byte) map[string]float64 {
	t.Helper()
	dec, err := decoder.New(decoder.DefaultConfig(), nil)
	require.NoError(t, err)
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	out := map[string]float64{}
	var b decoder.Batch
	for _, c := range []struct {
		src decoder.Source
		dgs [][]byte
	}{{decoder.SourceSFlow, sflow}, {decoder.SourceIPFIX, ipfix}} {
		for _, d := range c.dgs {
			require.NoError(t, dec.Decode(c.src, from, d, time.Now().UnixNano(), &b))
			for i := range b.Records {
				r := &b.Records[i]
				l3 := r.Flags&decoder.FlagL3 != 0
				n := float64(r.SamplingRate)
				if n == 0 {
					n = 1
				}
				k := labVM(r.SrcMAC, r.SrcIP, l3) + "|" + labVM(r.DstMAC, r.DstIP, l3) + "|" + c.src.String()
				out[k] += float64(r.Bytes) * n
			}
		}
	}
	return out
}

// influxTotals sums vm_pair bytes per src_vm|dst_vm|source over all time.
func influxTotals(t *testing.T, srv *influxd.Server) map[string]float64 {
	t.Helper()
	raw, err := srv.Query("vmflow", `SELECT sum("bytes") FROM "vm_pair" GROUP BY "src_vm", "dst_vm", "source"`)
	require.NoError(t, err)
	var res struct {
		Results []struct {
			Series []struct {
				Tags   map[string]string `json:"tags"`
				Values [][]any           `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal(raw, &res), string(raw))
	out := map[string]float64{}
	for _, r := range res.Results {
		for _, s := range r.Series {
			k := s.Tags["src_vm"] + "|" + s.Tags["dst_vm"] + "|" + s.Tags["source"]
			out[k] += s.Values[0][1].(float64)
		}
	}
	return out
}

var spooledRE = regexp.MustCompile(`sinks drained.*influx_spool_pending_points=(\d+)`)

// stopRun is one run of vmflow in TestStopKeepsEveryByte.
type stopRun struct {
	offset     time.Duration // SIGTERM this far into a window
	influxDown bool          // influxd is stopped before the SIGTERM
}

// TestStopKeepsEveryByte streams the OVS captures into vmflow over several
// runs on one spool and stops each run with SIGTERM at a different offset
// into a 2 s window (100 ms and 300 ms after a boundary among them), with
// datagrams counted in that partial window; in one run InfluxDB is down
// when the stop comes, so the last window goes to the spool, and the next
// run replays it. In the end the bytes per pair in InfluxDB equal the
// bytes the datagrams contain, to the byte.
func TestStopKeepsEveryByte(t *testing.T) {
	srv := influxd.Start(t)
	srv.CreateDatabase(t, "vmflow")
	sflow, err := blast.LoadPcap(sflowCapture, 6343)
	require.NoError(t, err)
	ipfix, err := blast.LoadPcap(ipfixCapture, 4739)
	require.NoError(t, err)
	require.NotEmpty(t, sflow)
	require.NotEmpty(t, ipfix)
	want := captureTotals(t, sflow, ipfix)
	require.Greater(t, len(want), 4, "the capture has several pairs")

	runs := []stopRun{
		{offset: 300 * time.Millisecond},
		{offset: 1500 * time.Millisecond},
		{offset: 100 * time.Millisecond, influxDown: true},
		{offset: 900 * time.Millisecond},
		{offset: 1900 * time.Millisecond},
	}
	pe := newProcEnv(t, srv.URL(), t.TempDir())
	ss, si := newSender(t, pe.sflowPort, "sflow"), newSender(t, pe.ipfixPt, "ipfix")
	chunk := func(dgs [][]byte, i, n int) [][]byte { return dgs[len(dgs)*i/n : len(dgs)*(i+1)/n] }
	for i, run := range runs {
		v := pe.start(t)
		ss.sent, si.sent = 0, 0
		sf, ix := chunk(sflow, i, len(runs)), chunk(ipfix, i, len(runs))
		// Most of this run's datagrams, spread over about a window...
		keep := min(5, len(sf))
		si.send(t, ix, 0)
		ss.send(t, sf[:len(sf)-keep], stopWindow/time.Duration(len(sf)))
		waitHandled(t, v, ss, si)
		if run.influxDown {
			srv.Stop()
		}
		// ... then a few right after the next boundary, in the window the
		// SIGTERM cuts short.
		b := time.Now().Truncate(stopWindow).Add(stopWindow)
		time.Sleep(time.Until(b.Add(10 * time.Millisecond)))
		ss.send(t, sf[len(sf)-keep:], 0)
		waitHandled(t, v, ss, si)
		time.Sleep(time.Until(b.Add(run.offset)))
		v.signal(t, syscall.SIGTERM)
		into := time.Since(b)
		require.Less(t, into, stopWindow, "run %d: SIGTERM in the window that started at the boundary", i)
		if run.offset < time.Second {
			require.Less(t, into, time.Second, "run %d: SIGTERM within the first second after a boundary", i)
		}
		status := v.wait(t, 10*time.Second)
		require.Equal(t, 0, status, "run %d exit status; log:\n%s", i, v.log())
		m := spooledRE.FindStringSubmatch(v.log())
		require.NotNil(t, m, "run %d: the stop logs the drain; log:\n%s", i, v.log())
		t.Logf("run %d: SIGTERM %v after a boundary, %d+%d datagrams, influx down: %v, spooled at exit: %s points",
			i, into.Round(time.Millisecond), len(sf), len(ix), run.influxDown, m[1])
		if run.influxDown {
			n, _ := strconv.Atoi(m[1])
			require.Positive(t, n, "run %d: with InfluxDB down the last window is in the spool; log:\n%s", i, v.log())
			srv.Restart()
		} else {
			assert.Equal(t, "0", m[1], "run %d: InfluxDB up: nothing left in the spool", i)
		}
	}
	// Totals are exact already; a last run without traffic must not change
	// them (its own partial windows are empty).
	require.Equal(t, want, influxTotals(t, srv), "bytes per pair in InfluxDB = bytes in the datagrams")
	v := pe.start(t)
	time.Sleep(stopWindow / 2)
	v.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, v.wait(t, 10*time.Second))
	assert.Equal(t, want, influxTotals(t, srv))
}

// TestSecondSignalExitsAtOnce: while vmflow waits for an InfluxDB that does
// not answer (up to shutdown.timeout, here 60 s), a second SIGTERM ends it
// at once with status 143.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	// a TCP server that accepts and never answers: writes hang
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	pe := newProcEnv(t, "http://"+l.Addr().String(), t.TempDir(),
		"VMFLOW_SHUTDOWN_TIMEOUT=60s", "VMFLOW_INFLUX_TIMEOUT=60s", "VMFLOW_INFLUX_MAX_RETRIES=10")
	v := pe.start(t)
	sflow, err := blast.LoadPcap(sflowCapture, 6343)
	require.NoError(t, err)
	s := newSender(t, pe.sflowPort, "sflow")
	s.send(t, sflow[:50], 0)
	waitHandled(t, v, s)

	v.signal(t, syscall.SIGTERM)
	select {
	case <-v.exited:
		t.Fatalf("vmflow exited at the first signal although InfluxDB holds its last window; log:\n%s", v.log())
	case <-time.After(time.Second):
	}
	t0 := time.Now()
	v.signal(t, syscall.SIGTERM)
	assert.Equal(t, 128+int(syscall.SIGTERM), v.wait(t, 5*time.Second))
	t.Logf("exited %v after the second SIGTERM", time.Since(t0).Round(time.Millisecond))
	assert.Contains(t, v.log(), "exiting at once")
}
