package alert

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
)

func TestDefaultPackParses(t *testing.T) {
	rules, err := ParseRules(DefaultRules)
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, r := range rules {
		kinds[r.kind] = true
	}
	for _, k := range []string{KindFanOut, KindFanIn, KindFailing, KindRSTStorm, KindICMPBurst, KindBaseline, KindNewPeer, KindExpSilent, KindThreshold, KindSelfDrops} {
		assert.True(t, kinds[k], "default pack has a %s rule", k)
	}
}

func TestRulesErrorsNameTheLine(t *testing.T) {
	cases := []struct{ body, want string }{
		{"rules:\n  - name: a\n    kind: rst_storm\n    severity: P1\n    treshold: 3\n", `line 5: unknown key "treshold"`},
		{"rules:\n  - name: a\n    kind: rst_storm\n    severity: P7\n    threshold: 3\n", `line 4 (rule "a"): severity`},
		{"rules:\n  - name: a\n    kind: baseline\n    subject: pair\n    signal: bps\n    severity: P1\n    threshold: 3\n", `line 7 (rule "a"): threshold: not a parameter of kind baseline`},
		{"rules:\n  - name: a\n    kind: threshold\n    subject: pair\n    signal: nope\n    severity: P1\n    threshold: 3\n", `line 5 (rule "a"): signal`},
		{"rules:\n  - name: a\n    kind: rst_storm\n    severity: P1\n    threshold: 3\n    for: x\n", "line 6"},
		{"rules:\n  - name: a\n    kind: rst_storm\n    severity: P1\n    threshold: 3\n    clear: 5\n", `line 6 (rule "a"): clear`},
		{"rules:\n  - name: a\n    kind: rst_storm\n    severity: P1\n    threshold: 3\n    match:\n      tenat: [x]\n", `line 7: unknown key "tenat" in match`},
		{"rules:\n  - name: a\n    kind: fan_out\n    severity: P1\n    threshold: 3\n    match:\n      port: [80]\n", "apply to pair rules only"},
		{"rules:\n  - name: a\n    kind: rst_storm\n    severity: P1\n    threshold: 3\n  - name: a\n    kind: rst_storm\n    severity: P1\n    threshold: 3\n", `line 6: rule name "a" already used at line 2`},
		{"rulez: []\n", "line 1: field rulez not found"},
		{"rules:\n  - name: a\n    kind: pair_absent\n    severity: P1\n    pairs: [web]\n", `line 5 (rule "a"): pairs`},
	}
	for _, c := range cases {
		_, err := ParseRules([]byte(c.body))
		if assert.Error(t, err, c.body) {
			assert.Contains(t, err.Error(), c.want, c.body)
		}
	}
}

// Static threshold: `for` consecutive windows before firing, the clear
// threshold (hysteresis) before resolving; start, value and peak kept.
func TestThresholdForAndHysteresis(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: rst
    kind: rst_storm
    severity: P2
    threshold: 100
    clear: 20
    for: 2
`, nil)
	rst := func(i int, n float64) *aggregate.Window {
		p := pair(1, 2, 1000)
		p.Stats.RST = n
		return window(i, p)
	}
	f.e.Evaluate(rst(0, 150))
	assert.Empty(t, f.firing("rst"), "pending after one window")
	assert.Equal(t, StatePending, f.e.Alerts(AlertFilter{})[0].State)
	f.e.Evaluate(rst(1, 50)) // below threshold: pending reset
	assert.Empty(t, f.e.Alerts(AlertFilter{}))
	f.e.Evaluate(rst(2, 150))
	f.e.Evaluate(rst(3, 300))
	got := f.firing("rst")
	require.Len(t, got, 1)
	a := got[0]
	assert.Equal(t, "P2", a.Severity)
	assert.Equal(t, "vm-1", a.Labels["src"])
	assert.Equal(t, "vm-2", a.Labels["dst"])
	assert.Equal(t, "vm-1", a.Labels["vm"])
	assert.Equal(t, "t1", a.Labels["tenant"])
	assert.Equal(t, "/#/pair/vm-1/vm-2", a.GeneratorURL)
	assert.Equal(t, 300.0, a.Value)
	assert.Equal(t, window(3).End, a.StartsAt)
	f.e.Evaluate(rst(4, 50)) // between clear and threshold: still firing
	require.Len(t, f.firing("rst"), 1)
	assert.Equal(t, 300.0, f.firing("rst")[0].Peak)
	assert.Equal(t, 50.0, f.firing("rst")[0].Value)
	f.e.Evaluate(rst(5, 10))
	assert.Empty(t, f.firing("rst"))
	res := f.resolvedNow("rst")
	require.Len(t, res, 1)
	assert.Equal(t, window(5).End, res[0].EndsAt)
	f.e.Evaluate(rst(6, 10))
	assert.Empty(t, f.rec.last(), "a resolved alert is sent once")
	all := f.e.Alerts(AlertFilter{State: StateResolved})
	require.Len(t, all, 1)
	assert.Equal(t, 300.0, all[0].Peak)
	assert.Equal(t, 1.0, testutil.ToFloat64(f.e.m.transitions.WithLabelValues("P2", StateFiring)))
}

// Dynamic baseline: a noisy steady series never fires; a burst fires
// after `for` windows; the burst is not learned; it resolves after.
func TestBaselineFiresOnBurstNotOnNoise(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: bl
    kind: baseline
    subject: pair
    signal: bps
    severity: P2
    warmup: 10
    for: 2
    deviations: 6
    min_relative: 0.5
    min_absolute: 1000
`, nil)
	level := 1e6 // bytes per window
	noise := []float64{0.9, 1.1, 1.05, 0.95, 1.2, 0.8, 1.0, 1.15, 0.85, 1.0}
	i := 0
	for ; i < 60; i++ {
		f.e.Evaluate(window(i, pair(1, 2, level*noise[i%len(noise)])))
		require.Empty(t, f.e.Alerts(AlertFilter{}), "window %d", i)
	}
	var lv float32
	f.e.st.series.each(func(_ uint64, b *baseState) { lv = b.level })
	f.e.Evaluate(window(i, pair(1, 2, level*20)))
	i++
	assert.Empty(t, f.firing("bl"), "for: 2")
	f.e.Evaluate(window(i, pair(1, 2, level*20)))
	i++
	got := f.firing("bl")
	require.Len(t, got, 1)
	assert.Equal(t, "baseline", got[0].Kind)
	assert.InDelta(t, level*20*8/10, got[0].Value, 1)
	bl := got[0].Annotations["baseline"]
	assert.NotEmpty(t, bl)
	f.e.st.series.each(func(_ uint64, b *baseState) { assert.Equal(t, lv, b.level, "anomalous windows are not learned") })
	f.e.Evaluate(window(i, pair(1, 2, level)))
	assert.Len(t, f.resolvedNow("bl"), 1)
}

func TestBaselineSeriesIsSmall(t *testing.T) {
	// The state per series is 16 bytes (+ its 8-byte key in the map); the
	// benchmark measures the heap cost per series with the map overhead.
	var b baseState
	assert.LessOrEqual(t, int(unsafeSizeof(b)), 16)
}

func TestFanOutPeersAndFlows(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: scan
    kind: fan_out
    by: peers
    severity: P1
    threshold: 20
    clear: 5
  - name: portscan
    kind: fan_out
    by: flows
    severity: P1
    threshold: 300
    max_bytes_per_flow: 200
  - name: ports
    kind: fan_out
    by: ports
    severity: P2
    threshold: 40
`, nil)
	var ps []aggregate.Pair
	for d := 100; d < 130; d++ {
		p := pair(7, d, 60)
		for j := range p.Stats.TopPorts {
			p.Stats.TopPorts[j] = aggregate.PortCount{Proto: 6, Port: uint16(1000 + d*8 + j), Bytes: 1}
		}
		ps = append(ps, p)
	}
	ps = append(ps, pair(8, 9, 1e6))
	w0 := window(0, ps...)
	// The aggregator's count over every flow (not the pairs' top ports).
	w0.DstPorts = []aggregate.VMPorts{{VM: 7, Source: decoder.SourceSFlow, Ports: 1000}, {VM: 8, Source: decoder.SourceSFlow, Ports: 1}}
	f.e.Evaluate(w0)
	got := f.firing("scan")
	require.Len(t, got, 1)
	assert.Equal(t, "vm-7", got[0].Labels["vm"])
	assert.Equal(t, 30.0, got[0].Value)
	assert.Contains(t, got[0].Annotations["summary"], "fan-out vm-7 → 30 peers")
	assert.Equal(t, "/#/vm/vm-7", got[0].GeneratorURL)
	ports := f.firing("ports")
	require.Len(t, ports, 1)
	assert.Equal(t, 1000.0, ports[0].Value)
	assert.Contains(t, ports[0].Annotations["summary"], "fan-out vm-7 → 1000 destination ports")
	assert.Empty(t, f.firing("portscan"))

	// One peer, 400 tiny flows: a port scan.
	p := pair(7, 100, 400*60)
	p.Stats.Flows = 400
	f.e.Evaluate(window(1, p, pair(8, 9, 1e6)))
	require.Len(t, f.firing("portscan"), 1)
	assert.Len(t, f.resolvedNow("scan"), 1)
	// 400 big flows: not a scan.
	p.Stats.Bytes = 400 * 5000
	f.e.Evaluate(window(2, p))
	assert.Empty(t, f.firing("portscan"))
}

func TestFanIn(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: fi\n    kind: fan_in\n    severity: P2\n    threshold: 10\n", nil)
	var ps []aggregate.Pair
	for s := 100; s < 120; s++ {
		ps = append(ps, pair(s, 5, 100))
	}
	f.e.Evaluate(window(0, ps...))
	got := f.firing("fi")
	require.Len(t, got, 1)
	assert.Equal(t, "vm-5", got[0].Labels["vm"])
	assert.Equal(t, 20.0, got[0].Value)
}

// SYN-ACKs come on the reverse pair.
func TestFailingConnections(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: fail\n    kind: failing_connections\n    severity: P2\n    threshold: 10\n    ratio: 0.5\n", nil)
	syn := pair(1, 2, 1000)
	syn.Stats.SYN = 40
	ans := pair(2, 1, 1000)
	ans.Stats.SYNACK = 38
	f.e.Evaluate(window(0, syn, ans))
	assert.Empty(t, f.firing("fail"), "answered")
	ans.Stats.SYNACK = 5
	f.e.Evaluate(window(1, syn, ans))
	got := f.firing("fail")
	require.Len(t, got, 1)
	assert.Equal(t, 35.0, got[0].Value)
	assert.Equal(t, "vm-2", got[0].Labels["dst"])
	f.e.Evaluate(window(2, syn)) // no answer at all
	require.Len(t, f.firing("fail"), 1)
	assert.Equal(t, 40.0, f.firing("fail")[0].Value)
	f.e.Evaluate(window(3, pair(1, 2, 100)))
	assert.Len(t, f.resolvedNow("fail"), 1)
}

func TestNewPeerLearningAndHold(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: np\n    kind: new_peer\n    severity: P4\n    learning: 30s\n    hold: 2\n", nil)
	f.e.Evaluate(window(0, pair(1, 2, 100)))
	f.e.Evaluate(window(2, pair(1, 3, 100))) // still learning (20 s after first seen)
	f.e.Evaluate(window(5, pair(1, 2, 100), pair(1, 3, 100)))
	assert.Empty(t, f.e.Alerts(AlertFilter{}))
	f.e.Evaluate(window(6, pair(1, 4, 100)))
	got := f.firing("np")
	require.Len(t, got, 1)
	assert.Equal(t, "vm-1", got[0].Labels["vm"])
	assert.Equal(t, "vm-4", got[0].Labels["peer"])
	f.e.Evaluate(window(7, pair(1, 4, 100)))
	require.Len(t, f.firing("np"), 1, "still firing while it talks")
	f.e.Evaluate(window(8))
	require.Len(t, f.firing("np"), 1, "hold: 2")
	f.e.Evaluate(window(9))
	assert.Len(t, f.resolvedNow("np"), 1)
	f.e.Evaluate(window(10, pair(1, 4, 100)))
	assert.Empty(t, f.rec.last(), "a learned peer is no longer new")
	// A VM first seen after the others learns on its own.
	f.e.Evaluate(window(11, pair(9, 1, 100)))
	f.e.Evaluate(window(12, pair(9, 2, 100)))
	assert.Empty(t, f.rec.last())
}

func TestPairAbsent(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: req\n    kind: pair_absent\n    severity: P1\n    pairs: [\"vm-1 -> vm-2\"]\n    for: 2\n", nil)
	f.e.Evaluate(window(0))
	f.e.Evaluate(window(1))
	f.e.Evaluate(window(2))
	assert.Empty(t, f.e.Alerts(AlertFilter{}), "never seen yet: not expected")
	f.e.Evaluate(window(3, pair(1, 2, 100)))
	f.e.Evaluate(window(4))
	assert.Empty(t, f.firing("req"))
	f.e.Evaluate(window(5))
	got := f.firing("req")
	require.Len(t, got, 1)
	assert.Equal(t, "vm-1", got[0].Labels["src"])
	f.e.Evaluate(window(6, pair(1, 2, 100)))
	assert.Len(t, f.resolvedNow("req"), 1)
}

func TestExporterSilentAndLoss(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: silent
    kind: exporter_silent
    severity: P1
    windows: 2
  - name: loss
    kind: threshold
    subject: exporter
    signal: lost_datagrams
    severity: P3
    threshold: 10
`, nil)
	set := func(i int, dgrams, lost uint64) {
		f.mu.Lock()
		f.exps = []collector.ExporterStatus{{Protocol: "sflow", Address: "10.9.0.1:40000", Agent: "10.9.0.1", Datagrams: dgrams, LostDatagrams: lost,
			FirstSeen: t0, LastSeen: window(i).End.Add(-time.Second)}}
		f.mu.Unlock()
	}
	set(0, 100, 0)
	f.e.Evaluate(window(0))
	set(1, 200, 50)
	f.e.Evaluate(window(1))
	got := f.firing("loss")
	require.Len(t, got, 1)
	assert.Equal(t, 50.0, got[0].Value)
	assert.Equal(t, "10.9.0.1", got[0].Labels["exporter"])
	f.e.Evaluate(window(2)) // no datagram since window 1
	assert.Empty(t, f.firing("silent"))
	f.e.Evaluate(window(3))
	s := f.firing("silent")
	require.Len(t, s, 1)
	assert.Contains(t, s[0].Annotations["summary"], "silent for 2 windows")
	set(4, 300, 50)
	f.e.Evaluate(window(4))
	assert.Len(t, f.resolvedNow("silent"), 1)
}

func TestSelfDrops(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: drops\n    kind: self_drops\n    severity: P2\n", nil)
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_collector_dropped_total", Help: "x"}, []string{"reason"})
	f.reg.MustRegister(c)
	c.WithLabelValues("queue_full").Add(5)
	f.e.Evaluate(window(0))
	assert.Empty(t, f.firing("drops"), "the first reading is the reference")
	f.e.Evaluate(window(1))
	assert.Empty(t, f.firing("drops"))
	c.WithLabelValues("queue_full").Add(3)
	f.e.Evaluate(window(2))
	got := f.firing("drops")
	require.Len(t, got, 1)
	assert.Equal(t, `vmflow_collector_dropped_total{reason="queue_full"}`, got[0].Labels["metric"])
	assert.Equal(t, 3.0, got[0].Value)
	f.e.Evaluate(window(3))
	assert.Len(t, f.resolvedNow("drops"), 1)
}

func TestFiltersAndExclusions(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: rst
    kind: rst_storm
    severity: P2
    threshold: 10
    match:
      tenant: [t1]
      protocol: [tcp]
    exclude:
      vm: ["vm-3?"]
      pair: ["vm-5 -> vm-6"]
      cidr: [10.0.0.7/32]
      port: [873]
`, nil)
	mk := func(s, d int, port uint16) aggregate.Pair {
		p := pair(s, d, 100)
		p.Stats.RST = 50
		p.Stats.TopPorts[0] = aggregate.PortCount{Proto: 6, Port: port, Bytes: 100}
		return p
	}
	udp := mk(9, 11, 80)
	udp.Stats.TCPPackets, udp.Stats.UDPPackets = 0, 1
	f.e.Evaluate(window(0,
		mk(1, 3, 80),    // tenant t1: fires
		mk(2, 4, 80),    // tenant t0 both: no
		mk(31, 1, 80),   // vm-31 excluded
		mk(5, 6, 80),    // pair excluded
		mk(7, 9, 80),    // 10.0.0.7 excluded
		mk(11, 13, 873), // port excluded
		udp,             // not tcp
	))
	var subj []string
	for _, a := range f.rec.last() {
		subj = append(subj, a.Labels["src"]+">"+a.Labels["dst"])
	}
	assert.Equal(t, []string{"vm-1>vm-3"}, subj)
}

func TestSourceSelection(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: rst\n    kind: rst_storm\n    severity: P2\n    threshold: 10\n", nil)
	s := pair(1, 2, 100)
	s.Stats.RST = 50
	i := s
	i.Key.Source = decoder.SourceIPFIX
	i.Stats.RST = 5
	f.e.Evaluate(window(0, s, i))
	assert.Empty(t, f.firing("rst"), "auto: IPFIX wins when both see the pair")
	f.e.Evaluate(window(1, s))
	assert.Len(t, f.firing("rst"), 1)
}

func TestSilenceAndInhibition(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: big
    kind: fan_out
    severity: P0
    threshold: 2
  - name: rst
    kind: rst_storm
    severity: P3
    threshold: 10
`, func(c *Config) { c.Inhibit = true })
	rst := pair(1, 2, 100)
	rst.Stats.RST = 50
	rst2 := pair(4, 2, 100)
	rst2.Stats.RST = 50
	f.e.Evaluate(window(0, rst, pair(1, 3, 10), pair(1, 5, 10), rst2))
	by := map[string]bool{}
	for _, a := range f.rec.last() {
		by[a.Rule+"/"+a.Labels["vm"]] = a.Inhibited
	}
	assert.Equal(t, map[string]bool{"big/vm-1": false, "rst/vm-1": true, "rst/vm-4": false}, by)

	_, err := f.e.AddSilence(Silence{Matchers: []Matcher{{Name: "vm", Value: ""}}, EndsAt: t0.Add(2 * time.Hour), Comment: "x"})
	assert.Error(t, err, "a silence matching everything is refused")
	s, err := f.e.AddSilence(Silence{Matchers: []Matcher{{Name: "vm", Value: "vm-4"}, {Name: "rule", Value: "r.*", IsRegex: true}},
		EndsAt: t0.Add(2 * time.Hour), Comment: "maintenance", CreatedBy: "ops"})
	require.NoError(t, err)
	assert.Equal(t, "active", s.State)
	f.e.Evaluate(window(1, rst, pair(1, 3, 10), pair(1, 5, 10), rst2))
	for _, a := range f.rec.last() {
		assert.Equal(t, a.Labels["vm"] == "vm-4", a.Silenced, a.Rule+" "+a.Labels["vm"])
	}
	assert.True(t, f.e.Alerts(AlertFilter{VM: "vm-4"})[0].Silenced)
	require.NoError(t, f.e.DeleteSilence(s.ID))
	assert.Equal(t, "expired", f.e.Silences()[0].State)
	assert.ErrorIs(t, f.e.DeleteSilence("nope"), ErrNoSilence)
}

func TestAlertsFilterAndOrder(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: rst\n    kind: rst_storm\n    severity: P2\n    threshold: 10\n", nil)
	a := pair(1, 2, 100)
	a.Stats.RST = 50
	b := pair(2, 3, 100)
	b.Stats.RST = 50
	f.e.Evaluate(window(0, a))
	f.e.Evaluate(window(1, a, b))
	f.e.Evaluate(window(2, b))
	all := f.e.Alerts(AlertFilter{})
	require.Len(t, all, 2)
	assert.Equal(t, StateResolved, all[0].State, "newest change first: resolved at window 2")
	assert.Equal(t, StateFiring, all[1].State)
	assert.Len(t, f.e.Alerts(AlertFilter{Tenant: "t0"}), 2, "either side")
	assert.Len(t, f.e.Alerts(AlertFilter{Tenant: "t9"}), 0)
	assert.Len(t, f.e.Alerts(AlertFilter{VM: "vm-3"}), 1)
	assert.Len(t, f.e.Alerts(AlertFilter{Severity: "P1"}), 0)
	assert.Len(t, f.e.Alerts(AlertFilter{State: StateFiring}), 1)
}

// A broken edit keeps the last good rules and shows the error.
func TestReloadKeepsLastGoodRules(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: rst\n    kind: rst_storm\n    severity: P2\n    threshold: 10\n", nil)
	path := f.e.cfg.RulesFile
	require.NoError(t, os.WriteFile(path, []byte("rules:\n  - name: rst\n    kind: rst_storm\n    severity: P9\n    threshold: 10\n"), 0o644))
	bump(t, path, 1)
	f.e.checkReload()
	rs := f.e.Rules()
	assert.Contains(t, rs.Error, "line 4")
	require.Len(t, rs.Rules, 1)
	assert.Equal(t, "P2", rs.Rules[0].Severity)
	assert.Equal(t, 1.0, testutil.ToFloat64(f.e.m.ruleErrors))
	assert.Equal(t, 0.0, testutil.ToFloat64(f.e.m.ruleOK))
	require.NoError(t, os.WriteFile(path, []byte("rules:\n  - name: rst2\n    kind: rst_storm\n    severity: P1\n    threshold: 10\n"), 0o644))
	bump(t, path, 2)
	f.e.checkReload()
	rs = f.e.Rules()
	assert.Empty(t, rs.Error)
	require.Len(t, rs.Rules, 1)
	assert.Equal(t, "rst2", rs.Rules[0].Name)
	assert.Equal(t, 1.0, testutil.ToFloat64(f.e.m.ruleOK))
}

func bump(t *testing.T, path string, s int) {
	mt := time.Now().Add(time.Duration(s) * time.Second)
	require.NoError(t, os.Chtimes(path, mt, mt))
}

func TestWriteNeverBlocks(t *testing.T) {
	f := newFixture(t, "", func(c *Config) { c.Queue = 2 })
	for i := 0; i < 5; i++ {
		f.e.Write(window(i)) // not started: nobody drains
	}
	assert.Equal(t, 3.0, testutil.ToFloat64(f.e.m.windowsDropped))
	f.e.Stop() // evaluates what was queued
	assert.Equal(t, 2.0, testutil.ToFloat64(f.e.m.windows))
}

func TestStartStopEvaluatesTheFinalWindow(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: rst\n    kind: rst_storm\n    severity: P2\n    threshold: 10\n", nil)
	require.NoError(t, f.e.Start(t.Context()))
	p := pair(1, 2, 100)
	p.Stats.RST = 50
	f.e.Write(window(0, p))
	f.e.Stop()
	require.Len(t, f.firing("rst"), 1)
	_, err := os.Stat(f.e.cfg.SnapshotFile)
	assert.NoError(t, err, "snapshot written on Stop")
	f.e.Stop()
}

// Baselines, new-peer memory, silences and firing alerts survive a restart.
func TestSnapshotRestart(t *testing.T) {
	rules := `
rules:
  - name: bl
    kind: baseline
    subject: pair
    signal: bps
    severity: P2
    warmup: 5
  - name: np
    kind: new_peer
    severity: P4
    learning: 20s
    hold: 3
  - name: rst
    kind: rst_storm
    severity: P2
    threshold: 10
`
	f := newFixture(t, rules, nil)
	rst := pair(5, 6, 100)
	rst.Stats.RST = 50
	for i := 0; i < 10; i++ {
		f.e.Evaluate(window(i, pair(1, 2, 1e6), pair(1, 3, 1e6)))
	}
	f.e.Evaluate(window(10, pair(1, 2, 1e6), pair(1, 3, 1e6), pair(1, 4, 100), rst))
	require.Len(t, f.firing("np"), 1)
	require.Len(t, f.firing("rst"), 1)
	started := f.firing("rst")[0].StartsAt
	s, err := f.e.AddSilence(Silence{Matchers: []Matcher{{Name: "vm", Value: "vm-5"}}, EndsAt: t0.Add(3 * time.Hour), Comment: "keep"})
	require.NoError(t, err)
	series := f.e.st.series.len()
	f.e.Stop()

	g := &fixture{rec: &recorder{}, dir: f.dir}
	g.e = g.build(t, f.e.cfg)
	assert.Equal(t, series, g.e.st.series.len())
	assert.Len(t, g.e.Silences(), 1)
	assert.Equal(t, s.ID, g.e.Silences()[0].ID)
	assert.Len(t, g.e.Alerts(AlertFilter{State: StateFiring}), 2)
	// The same traffic after the restart: nothing new, the same alerts.
	g.e.Evaluate(window(11, pair(1, 2, 1e6), pair(1, 3, 1e6), pair(1, 4, 100), rst))
	var names []string
	for _, a := range g.rec.last() {
		names = append(names, a.Rule+":"+string(a.State))
		if a.Rule == "rst" {
			assert.Equal(t, started, a.StartsAt, "firing since before the restart")
			assert.True(t, a.Silenced)
		}
	}
	assert.ElementsMatch(t, []string{"np:firing", "rst:firing"}, names)
	// The baseline is learned: a burst fires at once (no new warm-up).
	g.e.Evaluate(window(12, pair(1, 2, 1e8)))
	assert.Len(t, g.firing("bl"), 1)
	assert.Equal(t, 0, strings.Count(g.e.cfg.SnapshotFile, "\n"))
}

// A window cut short (the first after a start, the last at a stop) holds
// only part of every count: it keeps a firing alert and a pending one, is
// not learned by baselines, and the next full window decides.
func TestShortWindowNeverResolves(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: rst
    kind: rst_storm
    severity: P2
    threshold: 100
    for: 2
  - name: bl
    kind: baseline
    subject: pair
    signal: bytes
    severity: P3
    warmup: 3
    min_relative: 0.2
    direction: both
`, nil)
	f.e.deps.Window = win
	rst := func(i int, n float64, length time.Duration) *aggregate.Window {
		p := pair(1, 2, 1000*float64(length)/float64(win))
		p.Stats.RST = n
		w := window(i, p)
		w.Start = w.End.Add(-length)
		return w
	}
	for i := 0; i < 4; i++ {
		f.e.Evaluate(rst(i, 0, win))
	}
	f.e.Evaluate(rst(4, 150, win))
	f.e.Evaluate(rst(5, 20, win/5)) // short: pending kept
	f.e.Evaluate(rst(6, 150, win))
	require.Len(t, f.firing("rst"), 1)
	started := f.firing("rst")[0].StartsAt
	f.e.Evaluate(rst(7, 30, 2*time.Second)) // short, e.g. the last window at a stop
	require.Len(t, f.firing("rst"), 1, "a short window does not resolve")
	assert.Empty(t, f.resolvedNow("rst"))
	assert.Empty(t, f.firing("bl"), "a short window's smaller byte count is no anomaly")
	f.e.Evaluate(rst(8, 150, win))
	require.Len(t, f.firing("rst"), 1)
	assert.Equal(t, started, f.firing("rst")[0].StartsAt, "the same alert")
	f.e.Evaluate(rst(9, 30, win))
	assert.Len(t, f.resolvedNow("rst"), 1, "a full window below the threshold resolves")
}

// Silence is per exporter over all its observation domains: OVS sends
// on IPFIX domain 0 once at start, then only on its own domain.
func TestExporterSilentOverDomains(t *testing.T) {
	f := newFixture(t, `
rules:
  - name: silent
    kind: exporter_silent
    severity: P1
    windows: 1
`, nil)
	row := func(dom uint32, dgrams uint64, last time.Time) collector.ExporterStatus {
		return collector.ExporterStatus{Protocol: "ipfix", Address: "10.9.0.1:40000", ObsDomain: dom, Datagrams: dgrams, FirstSeen: t0, LastSeen: last}
	}
	for i := 0; i < 5; i++ {
		f.mu.Lock()
		f.exps = []collector.ExporterStatus{row(0, 2, t0.Add(time.Second)), row(101, uint64(10*(i+1)), window(i).End.Add(-time.Second))}
		f.mu.Unlock()
		f.e.Evaluate(window(i))
		assert.Empty(t, f.e.Alerts(AlertFilter{}), "window %d: domain 0 fell quiet, the exporter did not", i)
	}
	f.e.Evaluate(window(5))
	f.e.Evaluate(window(6))
	s := f.firing("silent")
	require.Len(t, s, 1, "both domains quiet: one alert for the exporter")
	assert.Equal(t, "10.9.0.1", s[0].Labels["exporter"])
}

// auto for TCP-flag rules: OVS's IPFIX records carry no per-flow flags, so
// a pair's SYNs come from its sFlow samples even when IPFIX has the pair.
func TestAutoTCPFlagsFromSFlowWhenIPFIXHasNone(t *testing.T) {
	f := newFixture(t, "rules:\n  - name: fail\n    kind: failing_connections\n    severity: P2\n    threshold: 10\n", nil)
	s := pair(1, 2, 1000)
	s.Stats.SYN = 48 // 3 samples × 16
	i := s
	i.Key.Source = decoder.SourceIPFIX
	i.Stats.SYN = 0 // no tcpControlBits
	f.e.Evaluate(window(0, s, i))
	got := f.firing("fail")
	require.Len(t, got, 1)
	assert.Equal(t, 48.0, got[0].Value)
	// An IPFIX exporter that reports flags is preferred again.
	i.Stats.SYN, i.Stats.SYNACK = 2, 0
	r := pair(2, 1, 1000)
	r.Key.Source = decoder.SourceIPFIX
	r.Stats.SYNACK = 2
	f.e.Evaluate(window(1, s, i, r))
	assert.Empty(t, f.firing("fail"))
}
