package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/synth"
)

func getAPI(t *testing.T, addr, path string, out any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "GET %s: %s", path, b)
	}
}

// TestDemo: the demo (default cloud, vmflow in-process on random ports)
// shows, within 30 s of start, pairs in at least 2 tenants and on at least
// 3 hypervisors, and every hypervisor's exporters healthy (sFlow from all,
// IPFIX from half, nothing lost, no decode errors); the console answers.
func TestDemo(t *testing.T) {
	cfg := synth.DemoConfig()
	d, err := app.StartDemo(context.Background(), cfg, app.DemoOptions{Listen: "127.0.0.1:0", Window: 2 * time.Second, Dir: t.TempDir()},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(d.Stop)
	started := time.Now()
	addr := d.App.APIAddr()
	type side struct {
		VM, Host, Tenant string
	}
	var tenants, hosts map[string]bool
	var lastWhy string
	healthy := func() bool {
		var pairs struct {
			Pairs []struct{ Src, Dst side } `json:"pairs"`
		}
		getAPI(t, addr, "/api/v1/pairs?since=5m&limit=1000", &pairs)
		tenants, hosts = map[string]bool{}, map[string]bool{}
		for _, p := range pairs.Pairs {
			for _, s := range []side{p.Src, p.Dst} {
				if s.VM != "" {
					tenants[s.Tenant] = true
					hosts[s.Host] = true
				}
			}
		}
		var exps struct {
			Exporters []struct {
				Protocol      string `json:"protocol"`
				Address       string `json:"address"`
				SubAgent      uint32 `json:"sub_agent"`
				Domain        uint32 `json:"observation_domain"`
				Datagrams     uint64 `json:"datagrams"`
				DecodeErrors  uint64 `json:"decode_errors"`
				LostDatagrams uint64 `json:"lost_datagrams"`
				LostRecords   uint64 `json:"lost_records"`
			} `json:"exporters"`
		}
		getAPI(t, addr, "/api/v1/exporters", &exps)
		n := map[string]int{}
		for _, e := range exps.Exporters {
			if e.Datagrams == 0 || e.DecodeErrors > 0 || e.LostDatagrams+e.LostRecords > 0 {
				lastWhy = "unhealthy exporter " + e.Protocol + " " + e.Address
				return false
			}
			switch {
			case e.Protocol == "sflow" && e.SubAgent == 1:
				n["hsflowd"]++
			case e.Protocol == "ipfix" && e.Domain > 1000:
				n["probe"]++
			default:
				n[e.Protocol]++
			}
		}
		lastWhy = fmt.Sprint(n)
		return len(tenants) >= 2 && len(hosts) >= 3 && n["sflow"] == cfg.Hosts && n["ipfix"] == cfg.Hosts/2 &&
			n["hsflowd"] == cfg.Hosts && n["probe"] == cfg.Hosts
	}
	for !healthy() {
		require.Less(t, time.Since(started), 30*time.Second, "demo not populated after 30 s: tenants %v, hosts %v %s", tenants, hosts, lastWhy)
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("populated after %.1f s: %d tenants, %d hosts", time.Since(started).Seconds(), len(tenants), len(hosts))
	var inv struct {
		VMs []struct {
			Name, Tenant, Host string
		} `json:"vms"`
	}
	getAPI(t, addr, "/api/v1/vms", &inv)
	assert.Len(t, inv.VMs, cfg.VMs, "the generated inventory is loaded")
	getAPI(t, addr, "/", nil)
	demoExtras(t, d, addr, started)
}

// demoExtras: within 30 s of start the demo's other inputs show: port
// counters on the VMs (sFlow counter samples), latency on pairs (the
// probes' IPFIX), resources of the busy VM near 100% CPU and every
// hypervisor's own figures (hsflowd).
func demoExtras(t *testing.T, d *app.Demo, addr string, started time.Time) {
	busy := d.Cloud.VMs[d.Cloud.BusyVM()].Name
	var portsAt, latencyAt, resourcesAt, hostsAt time.Duration
	var why string
	for portsAt == 0 || latencyAt == 0 || resourcesAt == 0 || hostsAt == 0 {
		require.Less(t, time.Since(started), 30*time.Second, "after 30 s: ports %v, latency %v, resources %v, hosts %v: %s",
			portsAt, latencyAt, resourcesAt, hostsAt, why)
		var vms struct {
			VMs []struct {
				Name  string
				Ports []struct {
					Name     string
					InOctets uint64 `json:"in_octets"`
				} `json:"ports"`
			} `json:"vms"`
		}
		getAPI(t, addr, "/api/v1/vms", &vms)
		withPorts := 0
		for _, v := range vms.VMs {
			if len(v.Ports) > 0 && v.Ports[0].InOctets > 0 && strings.HasPrefix(v.Ports[0].Name, "vnet") {
				withPorts++
			}
		}
		if portsAt == 0 && withPorts >= len(vms.VMs)/2 {
			portsAt = time.Since(started)
		}
		var pairs struct {
			Pairs []struct {
				Latency *struct {
					Handshake *struct{ P50 float64 } `json:"handshake_us"`
					Attempts  uint64                 `json:"attempts"`
					Refused   uint64                 `json:"refused"`
					TimedOut  uint64                 `json:"timed_out"`
				} `json:"latency"`
			} `json:"pairs"`
		}
		getAPI(t, addr, "/api/v1/pairs?since=5m&limit=1000", &pairs)
		timed, failed := 0, 0
		for _, p := range pairs.Pairs {
			if l := p.Latency; l != nil {
				if l.Handshake != nil && l.Handshake.P50 > 50 && l.Handshake.P50 < 20000 {
					timed++
				}
				failed += int(l.Refused + l.TimedOut)
			}
		}
		if latencyAt == 0 && timed >= 10 && failed > 0 {
			latencyAt = time.Since(started)
		}
		var res struct {
			Source string
			CPU    *struct{ Percent float64 } `json:"cpu"`
		}
		getAPI(t, addr, "/api/v1/vms/"+busy+"/resources", &res)
		if resourcesAt == 0 && res.Source == "hsflowd" && res.CPU != nil && res.CPU.Percent > 90 {
			resourcesAt = time.Since(started)
		}
		var hosts struct {
			Hosts []struct {
				Host       string
				VMs        int `json:"vms"`
				Hypervisor *struct {
					Source     string
					CPUs       int     `json:"cpus"`
					CPUPercent float64 `json:"cpu_percent"`
				} `json:"hypervisor"`
			} `json:"hosts"`
		}
		getAPI(t, addr, "/api/v1/hosts", &hosts)
		hv := 0
		for _, h := range hosts.Hosts {
			if h.Hypervisor != nil && h.Hypervisor.Source == "hsflowd" && h.Hypervisor.CPUs == 32 && h.Hypervisor.CPUPercent > 0 {
				hv++
			}
		}
		if hostsAt != 0 {
			assert.Equal(t, len(d.Cloud.Hosts), hv, "hypervisors stay fresh between hsflowd polls")
		}
		if hostsAt == 0 && hv == len(d.Cloud.Hosts) {
			hostsAt = time.Since(started)
		}
		why = fmt.Sprintf("%d VMs with ports, %d timed pairs, %d failed attempts, %s: %+v, %d hypervisors", withPorts, timed, failed, busy, res, hv)
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("port counters after %.1f s, latency after %.1f s, %s's resources after %.1f s, hypervisors after %.1f s (%s)",
		portsAt.Seconds(), latencyAt.Seconds(), busy, resourcesAt.Seconds(), hostsAt.Seconds(), why)
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoCommand: `vmflow demo` prints the console URL, serves it, and
// stops cleanly on the signal (the context), saying what it sent.
func TestDemoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--window", "1s", "--vms", "20", "--hosts", "4", "--pairs", "40"}, nil, &out, &errOut)
	}()
	re := regexp.MustCompile(`console on http://([0-9.:]+)/`)
	deadline := time.Now().Add(20 * time.Second)
	var addr string
	for addr == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case c := <-code:
			t.Fatalf("vmflow demo exited %d: %s %s", c, out.String(), errOut.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "no console URL: %s %s", out.String(), errOut.String())
		time.Sleep(100 * time.Millisecond)
	}
	assert.Contains(t, out.String(), "4 hypervisors")
	var vms struct {
		VMs []json.RawMessage `json:"vms"`
	}
	getAPI(t, addr, "/api/v1/vms", &vms)
	assert.Len(t, vms.VMs, 20)
	time.Sleep(1500 * time.Millisecond)
	cancel()
	select {
	case c := <-code:
		assert.Equal(t, 0, c, errOut.String())
	case <-time.After(15 * time.Second):
		t.Fatal("vmflow demo did not stop")
	}
	assert.Regexp(t, `sent [1-9][0-9]* flow samples`, out.String())
}

// TestSynthCommand: `vmflow synth` writes the inventory vmflow's static
// source accepts, then sends for --duration and reports what it sent.
func TestSynthCommand(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	truth := filepath.Join(dir, "truth.json")
	code, _, errOut := runCmd(t, nil, "synth", "--preset", "scale", "--vms", "2000", "--hosts", "100", "--pairs", "20000",
		"--inventory-out", inv, "--inventory-only")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "100 hypervisors")
	snap, err := enrich.LoadInventory(inv)
	require.NoError(t, err)
	assert.Len(t, snap.VMs, 2000)
	assert.Len(t, snap.Hosts, 100)

	// nobody listens on these ports: the kernel takes the datagrams anyway
	code, out, errOut := runCmd(t, nil, "synth", "--sflow", "127.0.0.1:9", "--ipfix", "127.0.0.1:9", "--duration", "1s",
		"--rate", "5000", "--stats", "0", "--truth-out", truth, "--dest-samples=false", "--events=false", "--day", "0")
	require.Equal(t, 0, code, errOut)
	var st struct {
		FlowSamples uint64  `json:"flow_samples"`
		Seconds     float64 `json:"seconds"`
		Sent        uint64  `json:"datagrams_sent"`
	}
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &st), out)
	assert.InEpsilon(t, 5000, float64(st.FlowSamples)/st.Seconds, 0.1, "samples/s = --rate")
	assert.Positive(t, st.Sent)
	b, err := os.ReadFile(truth)
	require.NoError(t, err)
	var pairs []synth.PairTruth
	require.NoError(t, json.Unmarshal(b, &pairs))
	assert.NotEmpty(t, pairs)

	code, _, _ = runCmd(t, nil, "synth", "--preset", "huge")
	assert.Equal(t, 2, code)
	code, _, _ = runCmd(t, nil, "synth", "--vms", "1")
	assert.Equal(t, 2, code)
}

// TestDemoConsoleWithin30s: what `make demo` shows (default 10 s windows,
// the demo's rules, configs/demo-rules.yaml): within 30 s of start the
// overview has traffic in several tenants, the map has edges and the
// alerts list has a firing alert.
func TestDemoConsoleWithin30s(t *testing.T) {
	d, err := app.StartDemo(context.Background(), synth.DemoConfig(), app.DemoOptions{Listen: "127.0.0.1:0", Window: 10 * time.Second, Dir: t.TempDir()},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(d.Stop)
	started := time.Now()
	addr := d.App.APIAddr()
	var ov struct {
		Totals struct{ Bytes float64 } `json:"totals"`
		Groups []struct{ Key string }  `json:"groups"`
	}
	var g struct {
		Edges []struct{ Src, Dst string } `json:"edges"`
	}
	var al struct {
		Alerts []struct {
			Rule, State, Severity string
		} `json:"alerts"`
	}
	var overviewAt, mapAt, alertsAt time.Duration
	for overviewAt == 0 || mapAt == 0 || alertsAt == 0 {
		require.Less(t, time.Since(started), 30*time.Second, "after 30 s: overview %v (%d groups), map %v (%d edges), alerts %v %+v",
			overviewAt, len(ov.Groups), mapAt, len(g.Edges), alertsAt, al.Alerts)
		getAPI(t, addr, "/api/v1/overview?since=1h", &ov)
		if overviewAt == 0 && ov.Totals.Bytes > 0 && len(ov.Groups) >= 2 {
			overviewAt = time.Since(started)
		}
		getAPI(t, addr, "/api/v1/graph?since=5m", &g)
		if mapAt == 0 && len(g.Edges) > 10 {
			mapAt = time.Since(started)
		}
		getAPI(t, addr, "/api/v1/alerts?state=firing", &al)
		if alertsAt == 0 && len(al.Alerts) > 0 {
			alertsAt = time.Since(started)
		}
		time.Sleep(500 * time.Millisecond)
	}
	rules := map[string]int{}
	for _, a := range al.Alerts {
		rules[a.Rule]++
	}
	t.Logf("overview populated after %.1f s, map after %.1f s, first firing alert after %.1f s (%v)",
		overviewAt.Seconds(), mapAt.Seconds(), alertsAt.Seconds(), rules)
}
