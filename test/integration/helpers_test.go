package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// writeInventory writes a static inventory of the lab (tenant "lab").
func writeInventory(t *testing.T, lab *ovslab.Lab) string {
	t.Helper()
	return lab.WriteInventory(t, "lab")
}

// testLogWriter sends vmflow's log lines to t.Log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startVMFlow runs vmflow in-process: collectors on ephemeral ports on
// every address (the lab's hypervisors send from their own namespaces),
// the API on loopback, the given inventory, windows of `window`.
func startVMFlow(t *testing.T, inventory string, window time.Duration, env ...string) *app.App {
	t.Helper()
	cfg, _, err := app.Load("", append([]string{
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=:0",
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=:0",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=",
		"VMFLOW_API_LISTEN=127.0.0.1:0",
		"VMFLOW_ENRICH_STATIC_FILE=" + inventory,
		"VMFLOW_ENRICH_STATIC_RELOAD=0s",
		"VMFLOW_AGGREGATE_WINDOW=" + window.String(),
	}, env...))
	require.NoError(t, err)
	var logOut io.Writer = testLogWriter{t}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() {
		cancel()
		a.Stop()
	})
	require.NotZero(t, a.ListenPort(collector.ProtoSFlow))
	require.NotZero(t, a.ListenPort(collector.ProtoIPFIX))
	require.NotEmpty(t, a.APIAddr())
	return a
}

// startVMFlow's env overrides the defaults above (the last value of a
// variable wins).

// apiPair is the part of GET /api/v1/pairs the tests read.
type apiPair struct {
	Src struct {
		VM   string `json:"vm"`
		Host string `json:"host"`
		IP   string `json:"ip"`
		MAC  string `json:"mac"`
	} `json:"src"`
	Dst struct {
		VM   string `json:"vm"`
		Host string `json:"host"`
		IP   string `json:"ip"`
		MAC  string `json:"mac"`
	} `json:"dst"`
	Bytes     float64    `json:"bytes"`
	Packets   float64    `json:"packets"`
	Samples   uint64     `json:"samples"`
	BytesCI95 [2]float64 `json:"bytes_ci95"`
	Source    string     `json:"source"`
	Protocols map[string]struct {
		Bytes   float64 `json:"bytes"`
		Packets float64 `json:"packets"`
	} `json:"protocols"`
}

func (p apiPair) key() ovslab.Pair {
	src, dst := p.Src.VM, p.Dst.VM
	if src == "" {
		src = "ip:" + p.Src.IP
	}
	if dst == "" {
		dst = "ip:" + p.Dst.IP
	}
	return ovslab.Pair{Src: src, Dst: dst}
}

func getJSON(t *testing.T, a *app.App, path string, q url.Values, out any) {
	t.Helper()
	u := "http://" + a.APIAddr() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", u, body)
	require.NoError(t, json.Unmarshal(body, out), "GET %s: %s", u, body)
}

// pairs returns the API's pairs for one export protocol over the last 10 minutes.
func pairs(t *testing.T, a *app.App, source string) map[ovslab.Pair]apiPair {
	t.Helper()
	var out struct {
		Pairs []apiPair `json:"pairs"`
	}
	getJSON(t, a, "/api/v1/pairs", url.Values{"source": {source}, "since": {"10m"}, "limit": {"1000"}}, &out)
	m := map[ovslab.Pair]apiPair{}
	for _, p := range out.Pairs {
		_, dup := m[p.key()]
		require.False(t, dup, "pair %s reported twice for %s", p.key(), source)
		m[p.key()] = p
	}
	return m
}

func total(m map[ovslab.Pair]apiPair) (bytes float64) {
	for _, p := range m {
		bytes += p.Bytes
	}
	return bytes
}

// waitSettled waits until every closed window holding the traffic is in the
// store: both protocols' totals stop changing over two polls a window apart.
func waitSettled(t *testing.T, a *app.App, window time.Duration) {
	t.Helper()
	// IPFIX active timeout (2 s) + one window + the window's closing.
	time.Sleep(2*time.Second + 2*window)
	deadline := time.Now().Add(60 * time.Second)
	prevS, prevI := -1.0, -1.0
	for {
		s, i := total(pairs(t, a, "sflow")), total(pairs(t, a, "ipfix"))
		if s == prevS && i == prevI && i > 0 {
			return
		}
		prevS, prevI = s, i
		if time.Now().After(deadline) {
			t.Fatalf("vmflow totals still changing after 60 s (sflow %.0f, ipfix %.0f)", s, i)
		}
		time.Sleep(window + 500*time.Millisecond)
	}
}

// metricSum sums every sample of a metric family in /metrics.
func metricSum(t *testing.T, a *app.App, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.APIAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// within reports whether got is within frac of want.
func within(got, want, frac float64) bool {
	return math.Abs(got-want) <= frac*want
}

// logIngest logs what vmflow received and dropped (for failures).
func logIngest(t *testing.T, a *app.App) {
	t.Helper()
	exps := exporters(t, a)
	for _, e := range exps {
		t.Logf("exporter %s %s agent=%s domain=%d datagrams=%d samples=%d errors=%d lost=%d/%d records",
			e.Protocol, e.Address, e.Agent, e.ObsDomain, e.Datagrams, e.Samples, e.DecodeErrors, e.LostDatagrams, e.LostRecords)
	}
	resp, err := http.Get("http://" + a.APIAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "vmflow_") && (strings.Contains(line, "drop") || strings.Contains(line, "error") ||
			strings.Contains(line, "suppressed") || strings.Contains(line, "unknown") || strings.Contains(line, "lost") || strings.Contains(line, "records_total")) {
			if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] != "0" {
				t.Log(line)
			}
		}
	}
}

// exporters returns GET /api/v1/exporters.
func exporters(t *testing.T, a *app.App) []collector.ExporterStatus {
	t.Helper()
	var out struct {
		Exporters []collector.ExporterStatus `json:"exporters"`
	}
	getJSON(t, a, "/api/v1/exporters", nil, &out)
	return out.Exporters
}

// oneHostTraffic runs the standard traffic on a four-VM lab: TCP vm2→vm3
// and UDP vm4→vm1 at once for 5 s, then 10 pings vm2→vm4; it returns the
// truth read from the ports.
func oneHostTraffic(t *testing.T, lab *ovslab.Lab) ovslab.Truth {
	t.Helper()
	vm1, vm2, vm3, vm4 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4")
	truth := ovslab.Truth{}
	require.NoError(t, lab.Phase(truth, map[string]string{"vm2": "vm3", "vm3": "vm2", "vm4": "vm1", "vm1": "vm4"}, func() error {
		return parallel(
			func() error {
				_, err := lab.IperfTCP(vm2, vm3, ovslab.IperfOptions{Duration: 5 * time.Second, Bitrate: "20M", Port: 5201})
				return err
			},
			func() error {
				_, err := lab.IperfUDP(vm4, vm1, ovslab.IperfOptions{Duration: 5 * time.Second, Bitrate: "8M", Length: 1000, Port: 5202})
				return err
			},
		)
	}))
	require.NoError(t, lab.Phase(truth, map[string]string{"vm2": "vm4", "vm4": "vm2"}, func() error {
		_, err := lab.Ping(vm2, vm4, 10, 100*time.Millisecond)
		return err
	}))
	return truth
}
