package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/vmflow/vmflow/api/auth"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vmflow/vmflow/alert"
	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/internal/testenv/influxd"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// The acceptance tests of alerting (issue 7) on the real OVS lab: five
// namespace VMs on one userspace bridge exporting sFlow (1-in-16, counters
// every second) and IPFIX (every packet, 1 s active timeout) to vmflow
// running in-process with 2 s windows and the default rule pack, with only
// the learning periods shortened (labRuleOverrides, also in README
// "Alerts").

const alertWindow = 2 * time.Second

// labRuleOverrides are the only changes to the default pack in these
// tests: learning and warm-up periods measured in windows or hours are cut
// to fit a test of a few minutes, and exporter-silent waits for one silent
// window instead of six.
var labRuleOverrides = map[string]map[string]any{
	"pair-traffic-anomaly": {"warmup": 8},
	"vm-tx-anomaly":        {"warmup": 8},
	"new-peer":             {"learning": "16s", "hold": 2},
	"exporter-silent":      {"windows": 1},
}

// labExtraRules are added to the default pack in TestAlertsLab: a port
// scan detector by distinct destination ports (not in the default pack:
// a busy server's replies go to many ephemeral ports).
const labExtraRules = `
  - name: scan-fan-out-ports
    kind: fan_out
    by: ports
    severity: P1
    threshold: 200
    clear: 50
`

// patchedRules writes the default rule pack with overrides (rule name →
// key → value) and extra rules (YAML list items) to a file and returns
// its path.
func patchedRules(t *testing.T, overrides map[string]map[string]any, extra ...string) string {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(alert.DefaultRules, &doc))
	root := doc.Content[0]
	var rules *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "rules" {
			rules = root.Content[i+1]
		}
	}
	require.NotNil(t, rules)
	done := map[string]bool{}
	for _, r := range rules.Content {
		name := ""
		for i := 0; i+1 < len(r.Content); i += 2 {
			if r.Content[i].Value == "name" {
				name = r.Content[i+1].Value
			}
		}
		for key, val := range overrides[name] {
			var v yaml.Node
			require.NoError(t, v.Encode(val))
			set := false
			for i := 0; i+1 < len(r.Content); i += 2 {
				if r.Content[i].Value == key {
					r.Content[i+1] = &v
					set = true
				}
			}
			if !set {
				r.Content = append(r.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &v)
			}
			done[name] = true
		}
	}
	for name := range overrides {
		require.True(t, done[name], "override of rule %q: no such rule in the default pack", name)
	}
	for _, x := range extra {
		var more yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(x), &more))
		rules.Content = append(rules.Content, more.Content[0].Content...)
	}
	b, err := yaml.Marshal(&doc)
	require.NoError(t, err)
	_, err = alert.ParseRules(b)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

// procOutput collects a process's output.
type procOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *procOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *procOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// bgProc is a long-running command inside a VM, killed at the end of the test.
type bgProc struct {
	cmd  *exec.Cmd
	out  *procOutput
	done chan error
}

func startBG(t *testing.T, v *ovslab.VM, name string, args ...string) *bgProc {
	t.Helper()
	p := &bgProc{out: &procOutput{}, done: make(chan error, 1)}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", v.Netns, name}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start(), "%s %v in %s", name, args, v.Name)
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(p.stop)
	return p
}

// stop kills the process (if still running) and waits for it.
func (p *bgProc) stop() {
	_ = p.cmd.Process.Kill() // an error when it already exited
	select {
	case <-p.done:
		p.done <- nil
	case <-time.After(10 * time.Second):
	}
}

// wait waits for the process to exit by itself.
func (p *bgProc) wait(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(within):
		t.Fatalf("%v still running after %s: %s", p.cmd.Args, within, p.out.String())
	}
}

// waitTCPListen waits until something listens on port in v.
func waitTCPListen(t *testing.T, lab *ovslab.Lab, v *ovslab.VM, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := lab.Exec(context.Background(), v, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if len(bytes.TrimSpace(out)) > 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "nothing listens on %s:%d", v.Name, port)
		time.Sleep(100 * time.Millisecond)
	}
}

// iperfServer starts a persistent iperf3 server in v.
func iperfServer(t *testing.T, lab *ovslab.Lab, v *ovslab.VM, port int) {
	t.Helper()
	startBG(t, v, "iperf3", "-s", "-p", strconv.Itoa(port), "-B", v.IP.String())
	waitTCPListen(t, lab, v, port)
}

// steadyTraffic is the lab's normal life, running until the test ends:
// TCP vm1→vm2 at 2 Mbit/s, UDP vm3→vm4 at 1 Mbit/s, pings vm5→vm1 (5/s)
// and vm4→vm2 (2/s).
func steadyTraffic(t *testing.T, lab *ovslab.Lab) {
	t.Helper()
	vm1, vm2, vm3, vm4, vm5 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4"), lab.VM("vm5")
	iperfServer(t, lab, vm2, 5201)
	iperfServer(t, lab, vm4, 5202)
	startBG(t, vm1, "iperf3", "-c", vm2.IP.String(), "-p", "5201", "-t", "0", "-b", "2M")
	startBG(t, vm3, "iperf3", "-c", vm4.IP.String(), "-p", "5202", "-u", "-t", "0", "-b", "1M", "-l", "1000")
	startBG(t, vm5, "ping", "-q", "-i", "0.2", vm1.IP.String())
	startBG(t, vm4, "ping", "-q", "-i", "0.5", vm2.IP.String())
}

// exportAlertLab points every bridge at vmflow: sFlow 1-in-16 with
// counters every second, IPFIX every packet with a 1 s active timeout (so
// that a flow's bytes land in the 2 s window they were sent in).
func exportAlertLab(t *testing.T, lab *ovslab.Lab, a *app.App) {
	t.Helper()
	for _, h := range lab.Hosts() {
		require.NoError(t, lab.EnableSFlow(h, sflowAlertOpts(a)))
		require.NoError(t, lab.EnableIPFIX(h, ovslab.IPFIXOptions{
			CollectorPort: a.ListenPort(collector.ProtoIPFIX), Sampling: 1, CacheActiveTimeout: 1,
		}))
	}
}

func sflowAlertOpts(a *app.App) ovslab.SFlowOptions {
	return ovslab.SFlowOptions{CollectorPort: a.ListenPort(collector.ProtoSFlow), Sampling: 16, Polling: 1, Header: 128}
}

// apiAlerts returns GET /api/v1/alerts.
func apiAlerts(t *testing.T, a *app.App, q url.Values) []alert.AlertView {
	t.Helper()
	var out struct {
		Alerts []alert.AlertView `json:"alerts"`
	}
	getJSON(t, a, "/api/v1/alerts", q, &out)
	return out.Alerts
}

func describeAlerts(as []alert.AlertView) string {
	var b strings.Builder
	for _, x := range as {
		fmt.Fprintf(&b, "\n  %-8s %s %-22s %s starts=%s ends=%s value=%.4g threshold=%.4g",
			x.State, x.Severity, x.Rule, x.Annotations["summary"], x.StartsAt.Format("15:04:05.000"),
			x.EndsAt.Format("15:04:05.000"), x.Value, x.Threshold)
	}
	return b.String()
}

// waitForAlert polls the API until an alert of rule matching want is in
// state (firing or resolved) and returns it.
func waitForAlert(t *testing.T, a *app.App, rule, state string, within time.Duration, want func(alert.AlertView) bool) alert.AlertView {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		as := apiAlerts(t, a, nil)
		for _, x := range as {
			if x.Rule == rule && x.State == state && want(x) {
				return x
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s alert of rule %s for the expected subject within %s; alerts:%s", state, rule, within, describeAlerts(as))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// windowsBetween is how many window closes fall in (from, to]: the number
// of windows vmflow evaluated from a condition's start to a transition.
func windowsBetween(from, to time.Time) int {
	w := alertWindow
	n := 0
	for e := from.Truncate(w).Add(w); !e.After(to); e = e.Add(w) {
		n++
	}
	return n
}

// alignToWindow sleeps until just after the next window boundary, so that
// a condition started now covers whole windows.
func alignToWindow() time.Time {
	now := time.Now()
	next := now.Truncate(alertWindow).Add(alertWindow).Add(150 * time.Millisecond)
	time.Sleep(time.Until(next))
	return time.Now()
}

func labels(kv ...string) func(alert.AlertView) bool {
	return func(x alert.AlertView) bool {
		for i := 0; i+1 < len(kv); i += 2 {
			if x.Labels[kv[i]] != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// scenario starts a condition at a window boundary, waits for its alert
// to fire, ends it, waits for the alert to resolve, and checks it fired
// within two windows with the right severity, and resolved within three
// windows of the condition's end.
type scenario struct {
	name, rule, severity string
	subject              []string
	start                func(t *testing.T) // starts the condition
	end                  func(t *testing.T) // ends it (after the alert fired)
	fireWithin           int                // windows (default 2)
	resolveWithin        int                // windows after the end (default 3)
}

func (s scenario) run(t *testing.T, a *app.App) {
	t.Helper()
	if s.fireWithin == 0 {
		s.fireWithin = 2
	}
	if s.resolveWithin == 0 {
		s.resolveWithin = 3
	}
	t0 := alignToWindow()
	s.start(t)
	fired := waitForAlert(t, a, s.rule, alert.StateFiring, time.Duration(s.fireWithin+3)*alertWindow+5*time.Second, labels(s.subject...))
	nFire := windowsBetween(t0, fired.StartsAt)
	s.end(t)
	t1 := time.Now()
	res := waitForAlert(t, a, s.rule, alert.StateResolved, time.Duration(s.resolveWithin+3)*alertWindow+10*time.Second,
		func(x alert.AlertView) bool { return x.Fingerprint == fired.Fingerprint })
	nRes := windowsBetween(t1, res.EndsAt)
	others := map[string]bool{}
	for _, x := range apiAlerts(t, a, nil) {
		if !x.StartsAt.Before(t0) || x.State != alert.StateResolved {
			others[x.Rule+" "+x.Annotations["summary"]] = true
		}
	}
	var also []string
	for k := range others {
		also = append(also, k)
	}
	sort.Strings(also)
	t.Logf("%s: %s %s %q fired %.1f s after the condition started (%d windows), value %.4g vs %.4g (baseline %.4g); "+
		"resolved %.1f s after it ended (%d windows); alerts of this phase: %s",
		s.name, fired.Severity, fired.Rule, fired.Annotations["summary"], fired.StartsAt.Sub(t0).Seconds(), nFire,
		fired.Value, fired.Threshold, fired.Baseline, res.EndsAt.Sub(t1).Seconds(), nRes, strings.Join(also, "; "))
	assert.Equal(t, s.severity, fired.Severity, s.name)
	assert.LessOrEqual(t, nFire, s.fireWithin, "%s: fired %d windows after the condition started", s.name, nFire)
	assert.LessOrEqual(t, nRes, s.resolveWithin, "%s: resolved %d windows after the condition ended", s.name, nRes)
	assert.Equal(t, fired.StartsAt, res.StartsAt, "%s: the resolved alert is the one that fired", s.name)
}

// TestAlertsLab: steady traffic for 30+ windows fires nothing (every rule
// of the default pack evaluated); then a new peer, failing connections to a
// port OVS drops, an iperf3 burst on a learned pair, an nmap scan and an
// sFlow export removed each fire their alert within two windows, with the
// right subject and severity, and resolve once the condition ends.
func TestAlertsLab(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{Hosts: []ovslab.HostOptions{{VMs: 5}}})
	for _, b := range []string{"nmap", "hping3", "ovs-ofctl"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv(ovslab.IntegrationEnv) == "1" {
				t.Fatalf("%s missing (scripts/install-deps.sh)", b)
			}
			t.Skipf("%s missing (scripts/install-deps.sh)", b)
		}
	}
	rules := patchedRules(t, labRuleOverrides, labExtraRules)
	a := startVMFlow(t, writeInventory(t, lab), alertWindow, "VMFLOW_ALERT_RULES_FILE="+rules)
	exportAlertLab(t, lab, a)
	vm1, vm2, vm3, vm4, vm5 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4"), lab.VM("vm5")
	hv := lab.Hosts()[0]
	defer func() {
		if t.Failed() {
			logIngest(t, a)
			lab.Diagnostics()
		}
	}()

	// 1. Steady traffic only, 32 windows: nothing pending, firing or resolved.
	steadyTraffic(t, lab)
	w0 := metricSum(t, a, "vmflow_alert_windows_total")
	for metricSum(t, a, "vmflow_alert_windows_total")-w0 < 32 {
		time.Sleep(alertWindow)
		if as := apiAlerts(t, a, nil); len(as) > 0 {
			t.Fatalf("steady traffic raised alerts:%s", describeAlerts(as))
		}
	}
	var rs alert.RulesStatus
	getJSON(t, a, "/api/v1/alerts/rules", nil, &rs)
	def, err := alert.ParseRules(alert.DefaultRules)
	require.NoError(t, err)
	require.Len(t, rs.Rules, len(def)+1)
	require.Empty(t, rs.Error)
	for _, r := range rs.Rules {
		assert.False(t, r.LastEval.IsZero(), "rule %s never evaluated", r.Name)
		assert.Zero(t, r.Firing+r.Pending, "rule %s", r.Name)
	}
	require.Empty(t, apiAlerts(t, a, nil))
	t.Logf("steady: %.0f windows, %d rules (the default pack and scan-fan-out-ports) evaluated, no alert; baseline series %.0f, peer memory %.0f",
		metricSum(t, a, "vmflow_alert_windows_total")-w0, len(rs.Rules),
		metricSum(t, a, "vmflow_alert_baseline_series"), metricSum(t, a, "vmflow_alert_peer_memory_entries"))

	// (d) vm3 pings vm5: they never talked.
	var ping *bgProc
	scenario{
		name: "new peer", rule: "new-peer", severity: "P4", subject: []string{"src", "vm3", "dst", "vm5", "vm", "vm3"},
		start: func(t *testing.T) { ping = startBG(t, vm3, "ping", "-q", "-c", "10", "-i", "0.2", vm5.IP.String()) },
		end:   func(t *testing.T) { ping.wait(t, 10*time.Second) },
	}.run(t, a)

	// (c) vm4 connects to vm2:7777, whose SYNs the bridge drops.
	var loop *bgProc
	scenario{
		name: "failing connections", rule: "failing-connections", severity: "P2", subject: []string{"src", "vm4", "dst", "vm2"},
		start: func(t *testing.T) {
			_, err := lab.Ofctl(hv, "add-flow", hv.Bridge, "priority=200,tcp,nw_dst="+vm2.IP.String()+",tp_dst=7777,actions=drop")
			require.NoError(t, err)
			// 100 connection attempts (SYNs) a second, each from a new
			// source port. (sFlow sees them: OVS's IPFIX has no per-flow
			// TCP flags, see alert "auto+tcp".)
			loop = startBG(t, vm4, "hping3", "-q", "-S", "-p", "7777", "-i", "u10000", vm2.IP.String())
		},
		end: func(t *testing.T) {
			loop.stop()
			_, err := lab.Ofctl(hv, "del-flows", hv.Bridge, "tcp,nw_dst="+vm2.IP.String()+",tp_dst=7777")
			require.NoError(t, err)
		},
	}.run(t, a)

	// (b) iperf3 burst of 60 Mbit/s on vm1→vm2 (normally 2 Mbit/s).
	iperfServer(t, lab, vm2, 5301)
	var burst *bgProc
	scenario{
		name: "traffic burst", rule: "pair-traffic-anomaly", severity: "P2", subject: []string{"src", "vm1", "dst", "vm2"},
		start: func(t *testing.T) {
			burst = startBG(t, vm1, "iperf3", "-c", vm2.IP.String(), "-p", "5301", "-t", "60", "-b", "60M")
		},
		end: func(t *testing.T) { burst.stop() },
	}.run(t, a)

	// (a) vm5 scans its four neighbours (1,500 TCP ports each).
	var scan *bgProc
	targets := []string{vm1.IP.String(), vm2.IP.String(), vm3.IP.String(), vm4.IP.String()}
	scenario{
		name: "scan", rule: "scan-fan-out-flows", severity: "P1", subject: []string{"vm", "vm5"},
		start: func(t *testing.T) {
			scan = startBG(t, vm5, "nmap", append([]string{"-sS", "-n", "-Pn", "--send-ip", "--max-retries", "0",
				"--min-rate", "1200", "--max-rate", "1500", "-p", "1-1500"}, targets...)...)
		},
		end: func(t *testing.T) {
			// The same scan by distinct destination ports: the
			// aggregator counts them over every flow of the window (the
			// pairs' top-8 ports would give at most 4 × 8 = 32).
			ports := waitForAlert(t, a, "scan-fan-out-ports", alert.StateFiring, 3*alertWindow, labels("vm", "vm5"))
			t.Logf("scan: %s %s %q, peak %.0f", ports.Severity, ports.Rule, ports.Annotations["summary"], ports.Peak)
			assert.Greater(t, ports.Peak, 200.0)
			scan.wait(t, 60*time.Second)
		},
	}.run(t, a)

	// (e) the bridge's sFlow export is removed (IPFIX goes on).
	scenario{
		name: "exporter silent", rule: "exporter-silent", severity: "P1",
		subject: []string{"exporter", hv.Addr.String(), "protocol", "sflow"},
		start: func(t *testing.T) {
			_, err := lab.Vsctl(hv, "clear", "bridge", hv.Bridge, "sflow")
			require.NoError(t, err)
		},
		end: func(t *testing.T) { require.NoError(t, lab.EnableSFlow(hv, sflowAlertOpts(a))) },
	}.run(t, a)
}

// postSilence creates a silence through the API and returns its ID.
func postSilence(t *testing.T, a *app.App, token, body string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+a.APIAddr()+"/api/v1/silences", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Silence alert.Silence `json:"silence"`
	}
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	require.NoError(t, json.Unmarshal(b, &out))
	return out.Silence.ID
}

func byFingerprint(as []alert.AlertView, rule string) map[string]alert.AlertView {
	m := map[string]alert.AlertView{}
	for _, x := range as {
		if rule == "" || x.Rule == rule {
			m[x.Fingerprint] = x
		}
	}
	return m
}

// TestAlertsSurviveRestart (issue 7 point 3): vmflow learns the lab's
// steady traffic, two alerts fire (failing connections and the new peer
// of the same connection attempts) and one is silenced; vmflow stops and
// a new one starts on the same ports and state file
// (alert.snapshot_file). After the restart: the same two alerts, firing
// since the same time, the silence still in force, no alert for a peer
// learned before, a new peer alerts at once (no new learning period) and
// a burst on a learned pair fires within two windows (no new warm-up).
func TestAlertsSurviveRestart(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{Hosts: []ovslab.HostOptions{{VMs: 4}}})
	if _, err := exec.LookPath("hping3"); err != nil {
		if os.Getenv(ovslab.IntegrationEnv) == "1" {
			t.Fatalf("hping3 missing (scripts/install-deps.sh)")
		}
		t.Skip("hping3 missing (scripts/install-deps.sh)")
	}
	vm1, vm2, vm3, vm4 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3"), lab.VM("vm4")
	hv := lab.Hosts()[0]
	rules := patchedRules(t, map[string]map[string]any{
		"pair-traffic-anomaly": {"warmup": 8},
		"vm-tx-anomaly":        {"warmup": 8},
		"new-peer":             {"learning": "12s", "hold": 2},
	})
	snap := filepath.Join(t.TempDir(), "alert-state.json.gz")
	inv := writeInventory(t, lab)
	srv := influxd.Start(t)
	srv.CreateDatabase(t, "vmflow")
	// Silences need an operator (anonymous access is read-only).
	tokens := filepath.Join(t.TempDir(), "tokens.jsonl")
	opToken, err := auth.AppendToken(tokens, auth.TokenEntry{Name: "alerts-lab-operator", Role: auth.RoleOperator}, time.Now())
	require.NoError(t, err)
	env := []string{"VMFLOW_ALERT_RULES_FILE=" + rules, "VMFLOW_ALERT_SNAPSHOT_FILE=" + snap,
		"VMFLOW_API_AUTH_TOKENS_FILE=" + tokens,
		"VMFLOW_INFLUX_ENABLED=true", "VMFLOW_INFLUX_URL=" + srv.URL(), "VMFLOW_INFLUX_BUCKET=vmflow/autogen",
		"VMFLOW_INFLUX_SPOOL_DIR=" + t.TempDir(), "VMFLOW_INFLUX_FLUSH_INTERVAL=100ms"}
	a1 := startVMFlow(t, inv, alertWindow, env...)
	exportAlertLab(t, lab, a1)
	defer func() {
		if t.Failed() {
			lab.Diagnostics()
		}
	}()

	iperfServer(t, lab, vm2, 5201)
	startBG(t, vm1, "iperf3", "-c", vm2.IP.String(), "-p", "5201", "-t", "0", "-b", "2M")
	startBG(t, vm3, "ping", "-q", "-i", "0.2", vm4.IP.String())
	for metricSum(t, a1, "vmflow_alert_windows_total") < 12 {
		time.Sleep(alertWindow / 2)
	}
	require.Empty(t, apiAlerts(t, a1, nil), "steady traffic")

	// vm3 tries vm2:7777, whose SYNs the bridge drops: failing connections,
	// and vm3 → vm2 is a new peer.
	_, err = lab.Ofctl(hv, "add-flow", hv.Bridge, "priority=200,tcp,nw_dst="+vm2.IP.String()+",tp_dst=7777,actions=drop")
	require.NoError(t, err)
	startBG(t, vm3, "hping3", "-q", "-S", "-p", "7777", "-i", "u10000", vm2.IP.String())
	subj := labels("src", "vm3", "dst", "vm2")
	failing := waitForAlert(t, a1, "failing-connections", alert.StateFiring, 20*time.Second, subj)
	peer := waitForAlert(t, a1, "new-peer", alert.StateFiring, 20*time.Second, subj)
	sid := postSilence(t, a1, opToken, `{"matchers":[{"name":"rule","value":"failing-connections"}],"endsAt":"`+
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`","createdBy":"test","comment":"known: port 7777 is filtered"}`)
	time.Sleep(alertWindow)
	before := apiAlerts(t, a1, nil)
	series := metricSum(t, a1, "vmflow_alert_baseline_series")
	peers := metricSum(t, a1, "vmflow_alert_peer_memory_entries")
	sflowPort, ipfixPort := a1.ListenPort(collector.ProtoSFlow), a1.ListenPort(collector.ProtoIPFIX)
	require.NotZero(t, series)
	t.Logf("before the restart: %d alerts, %.0f baseline series, %.0f peer memory entries:%s", len(before), series, peers, describeAlerts(before))

	stopped := time.Now()
	a1.Stop()
	st, err := os.Stat(snap)
	require.NoError(t, err, "state file written at stop")
	a2 := startVMFlow(t, inv, alertWindow, append(env,
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=:"+strconv.Itoa(sflowPort), "VMFLOW_COLLECTOR_IPFIX_LISTEN=:"+strconv.Itoa(ipfixPort))...)
	t.Logf("restart took %s; state file %d bytes", time.Since(stopped).Round(time.Millisecond), st.Size())

	// Restored before any window: baselines, peer memory, silence, alerts.
	assert.Equal(t, series, metricSum(t, a2, "vmflow_alert_baseline_series"), "baseline series restored")
	assert.Equal(t, peers, metricSum(t, a2, "vmflow_alert_peer_memory_entries"), "peer memory restored")
	var sl struct {
		Silences []alert.Silence `json:"silences"`
	}
	getJSON(t, a2, "/api/v1/silences", nil, &sl)
	require.Len(t, sl.Silences, 1)
	assert.Equal(t, sid, sl.Silences[0].ID)
	assert.Equal(t, "active", sl.Silences[0].State)

	// Three windows of the same traffic after the restart: the same alerts.
	w0 := metricSum(t, a2, "vmflow_alert_windows_total")
	for metricSum(t, a2, "vmflow_alert_windows_total")-w0 < 3 {
		time.Sleep(alertWindow / 2)
	}
	after := apiAlerts(t, a2, nil)
	t.Logf("after the restart:%s", describeAlerts(after))
	for _, want := range []alert.AlertView{failing, peer} {
		got, ok := byFingerprint(after, want.Rule)[want.Fingerprint]
		require.True(t, ok, "alert %s %s lost in the restart", want.Rule, want.Fingerprint)
		assert.Equal(t, alert.StateFiring, got.State, want.Rule)
		assert.True(t, want.StartsAt.Equal(got.StartsAt), "%s firing since %s, not %s", want.Rule, want.StartsAt, got.StartsAt)
	}
	assert.True(t, byFingerprint(after, "")[failing.Fingerprint].Silenced, "the silence still applies")
	assert.Len(t, byFingerprint(after, "new-peer"), 1, "no new-peer alert for peers learned before the restart")
	assert.Len(t, byFingerprint(after, "failing-connections"), 1)

	// A new peer after the restart alerts at once: vm4's learning period
	// (12 s, long over) was not restarted.
	startBG(t, vm4, "ping", "-q", "-c", "5", "-i", "0.2", vm1.IP.String())
	np := waitForAlert(t, a2, "new-peer", alert.StateFiring, 3*alertWindow+3*time.Second, labels("src", "vm4", "dst", "vm1"))
	t.Logf("new peer after the restart: %s", np.Annotations["summary"])

	// A burst on the learned pair vm1 → vm2 fires within two windows: its
	// baseline (warm-up 8 windows) was not re-learned.
	iperfServer(t, lab, vm2, 5301)
	t0 := alignToWindow()
	startBG(t, vm1, "iperf3", "-c", vm2.IP.String(), "-p", "5301", "-t", "20", "-b", "60M")
	burst := waitForAlert(t, a2, "pair-traffic-anomaly", alert.StateFiring, 4*alertWindow+3*time.Second, labels("src", "vm1", "dst", "vm2"))
	n := windowsBetween(t0, burst.StartsAt)
	t.Logf("burst after the restart: fired after %d windows: %s", n, burst.Annotations["summary"])
	assert.LessOrEqual(t, n, 2)

	// InfluxDB's alert measurement: one firing point per alert, the ones
	// from before the restart not doubled, at the alerts' start times.
	type point struct{ rule, vm, state string }
	var got map[point][]string
	deadline := time.Now().Add(15 * time.Second)
	for {
		raw, err := srv.Query("vmflow", `SELECT "summary" FROM "alert" GROUP BY "rule", "vm", "state", "fingerprint"`)
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
		got = map[point][]string{}
		for _, r := range res.Results {
			for _, sr := range r.Series {
				k := point{sr.Tags["rule"], sr.Tags["vm"], sr.Tags["state"]}
				for _, v := range sr.Values {
					got[k] = append(got[k], fmt.Sprint(v[0]))
				}
			}
		}
		if len(got[point{"pair-traffic-anomaly", "vm1", "firing"}]) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("influx alert points: %v", got)
	ts := func(x alert.AlertView) []string { return []string{x.StartsAt.UTC().Format(time.RFC3339)} }
	assert.Equal(t, ts(failing), got[point{"failing-connections", "vm3", "firing"}], "one firing point, at its start")
	assert.Equal(t, ts(peer), got[point{"new-peer", "vm3", "firing"}])
	assert.Equal(t, ts(np), got[point{"new-peer", "vm4", "firing"}])
	assert.Equal(t, ts(burst), got[point{"pair-traffic-anomaly", "vm1", "firing"}])
	assert.Empty(t, got[point{"failing-connections", "vm3", "resolved"}], "the restart resolved nothing")
}
