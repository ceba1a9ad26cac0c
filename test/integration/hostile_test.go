package integration

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/collector/blast"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// TestHostileDatagrams is issue 2's hazard test: vmflow runs in-process
// with the whole pipeline, and over real UDP it receives, interleaved with
// the real OVS sFlow and IPFIX capture (testdata/ovs-lab-1), the crafted
// hazard datagrams of testdata/hazards, truncated prefixes of real capture
// datagrams and thousands of seeded-random garbage datagrams (0 to 65,507
// bytes) on each port. It then checks that vmflow is alive and answering,
// that every bad datagram is counted where the protocol says it must be
// (exactly, see hostileExpect), that the real traffic is still attributed
// exactly as a second vmflow that got only the real datagrams attributes
// it, and that the Go heap stayed bounded.
//
// Datagrams are sent with at most hostileInFlight not yet handled, so that
// neither the sockets nor the queues drop any (the test checks they did
// not): the exact accounting needs every datagram decoded.
//
// It runs twice: with the default zero-copy sFlow decoder and with the
// goflow2 one (decoder.sflow.fast_path=false), where the huge-count
// hazards reach goflow2's unbounded allocations unless vmflow's guards
// stop them first.
func TestHostileDatagrams(t *testing.T) {
	if os.Getenv("VMFLOW_INTEGRATION") != "1" {
		t.Skip("set VMFLOW_INTEGRATION=1 (make test)")
	}
	for _, fast := range []bool{true, false} {
		name := "fast_path"
		if !fast {
			name = "goflow2_path"
		}
		t.Run(name, func(t *testing.T) { runHostile(t, fast) })
	}
}

func runHostile(t *testing.T, fastPath bool) {
	deadline := time.Now().Add(25 * time.Second) // send to settle
	rng := rand.New(rand.NewPCG(2, 0x5eed))

	realS, err := blast.LoadPcap("../../testdata/ovs-lab-1/ovs-sflow16.pcapng", 6343)
	require.NoError(t, err)
	realI, err := blast.LoadPcap("../../testdata/ovs-lab-1/ovs-ipfix1.pcapng", 4739)
	require.NoError(t, err)
	require.NotEmpty(t, realS)
	require.Greater(t, len(realI), 1)
	hazards := loadHazards(t)

	env := "VMFLOW_DECODER_SFLOW_FAST_PATH=" + strconv.FormatBool(fastPath)
	clean := startHostileVMFlow(t, env)
	hostile := startHostileVMFlow(t, env)
	require.Equal(t, fastPath, hostile.cfg.Decoder.SFlow.FastPath)
	maxRecords := hostile.cfg.Decoder.Flow.MaxRecords

	// The real datagrams, in capture order, split in two parts: the first
	// goes with the exactly accounted hostile traffic (phase 1), the rest
	// with the bounded one (phase 2). The clean vmflow gets the same parts.
	splitS, splitI := len(realS)*4/5, len(realI)*4/5
	cleanS, cleanI := clean.sender(t, collector.ProtoSFlow), clean.sender(t, collector.ProtoIPFIX)
	sendAll(t, cleanS, realItems(realS[:splitS], collector.ProtoSFlow))
	sendAll(t, cleanI, realItems(realI[:splitI], collector.ProtoIPFIX))
	cleanS.wait(t, 0)
	cleanI.wait(t, 0)
	cleanA := clean.metrics(t)
	sendAll(t, cleanS, realItems(realS[splitS:], collector.ProtoSFlow))
	sendAll(t, cleanI, realItems(realI[splitI:], collector.ProtoIPFIX))
	cleanS.wait(t, 0)
	cleanI.wait(t, 0)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBase := ms.HeapAlloc
	goroutinesBase := runtime.NumGoroutine()
	peak := watchHeap(t)

	hs := map[collector.Protocol]*hostileSender{}
	for _, p := range []collector.Protocol{collector.ProtoSFlow, collector.ProtoIPFIX, collector.ProtoNetFlow9} {
		hs[p] = hostile.sender(t, p)
	}

	// ---- phase 1: the exactly accounted hostile traffic ----
	exp := newHostileExpect()
	var items []hostileItem
	const hazardRepeats = 3
	for _, h := range hazards {
		for range hazardRepeats {
			items = append(items, hostileItem{proto: h.proto, data: h.data, note: h.name, account: h.expect(exp, maxRecords)})
		}
	}
	// Truncated prefixes (every 7th length) of real datagrams: the first
	// (IPFIX: templates), the largest and the middle one of each capture.
	for _, d := range pickDatagrams(t, realS, collector.ProtoSFlow) {
		for n := 0; n < len(d); n += 7 {
			items = append(items, hostileItem{proto: collector.ProtoSFlow, data: d[:n], note: "sflow prefix", account: exp.sflowPrefix})
		}
	}
	// Truncated prefixes of an hsflowd datagram (host structures; see
	// hsflowd_e2e_test.go): its samples fill it exactly, so each is short.
	hsd := hsflowdPoll(0)
	for n := 0; n < len(hsd); n += 7 {
		items = append(items, hostileItem{proto: collector.ProtoSFlow, data: hsd[:n], note: "hsflowd prefix", account: exp.sflowPrefix})
	}
	for _, d := range pickDatagrams(t, realI, collector.ProtoIPFIX) {
		for n := 0; n < len(d); n += 7 {
			items = append(items, hostileItem{proto: collector.ProtoIPFIX, data: d[:n], note: "ipfix prefix", account: exp.ipfixPrefix})
		}
	}
	// Seeded random garbage, every version field wrong.
	const garbagePerPort = 2500
	for _, p := range []collector.Protocol{collector.ProtoSFlow, collector.ProtoIPFIX, collector.ProtoNetFlow9} {
		for i := range garbagePerPort {
			items = append(items, hostileItem{proto: p, gen: garbageGen(p, i), note: "garbage", account: exp.garbage})
		}
	}
	rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	// The real datagrams keep their order among themselves, spread evenly.
	items = interleave(items, realItems(realS[:splitS], collector.ProtoSFlow), realItems(realI[:splitI], collector.ProtoIPFIX))
	sent1 := runItems(t, hs, items, deadline)
	for _, s := range hs {
		s.wait(t, 0)
	}
	hostileA := hostile.metrics(t)
	exportersA := hostile.exporters(t)
	t.Logf("phase 1: sent %v", sent1)

	// Exact accounting of phase 1: every hazard, prefix and garbage
	// datagram, against what the same real datagrams gave the clean run.
	for _, p := range []collector.Protocol{collector.ProtoSFlow, collector.ProtoIPFIX, collector.ProtoNetFlow9} {
		key := fmt.Sprintf(`vmflow_collector_dropped_total{protocol=%q,reason="decode_error"}`, p.String())
		assert.Equal(t, exp.decodeErrors[p], hostileA[key], "%s: every bad datagram is one decode error", key)
		assert.Zero(t, cleanA[key], "clean run: %s", key)
	}
	keys := make([]string, 0, len(exp.counters))
	for k := range exp.counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got := hostileA[k] - cleanA[k]
		want := exp.counters[k]
		if alt, ok := exp.either[k]; ok {
			// k and alt share the datagrams that are both (see garbage)
			both := hostileA[alt] - cleanA[alt]
			assert.Equal(t, want+exp.counters[alt]+exp.eitherCount[k], got+both, "%s + %s: hostile run minus clean run", k, alt)
			assert.GreaterOrEqual(t, got, want, k)
			t.Logf("%-100s %9.0f (expected %9.0f + up to %.0f)", k, got, want, exp.eitherCount[k])
			continue
		}
		assert.Equal(t, want, got, "%s: hostile run minus clean run", k)
		t.Logf("%-100s %9.0f (expected %9.0f)", k, got, want)
	}
	// Nothing lost on the way, nothing crashed in a handler.
	for _, k := range []string{"socket_drops_total", "read_errors_total"} {
		assert.Zero(t, sumFamily(hostileA, "vmflow_collector_"+k), k)
	}
	for _, r := range []string{"queue_full", "not_allowed", "truncated", "handler_panic"} {
		assert.Zero(t, sumLabeled(hostileA, "vmflow_collector_dropped_total", `reason="`+r+`"`), r)
	}
	// Per exporter: every decode error is on an exporter of its protocol;
	// those with a readable sFlow header on their agent.
	byProto := map[string]uint64{}
	byAgent := map[string]uint64{}
	for _, e := range exportersA {
		byProto[e.Protocol] += e.DecodeErrors
		if e.Protocol == "sflow" && e.Agent != "" {
			byAgent[fmt.Sprintf("%s/%d", e.Agent, e.SubAgent)] += e.DecodeErrors
		}
	}
	for p, n := range exp.decodeErrors {
		assert.Equal(t, uint64(n), byProto[p.String()], "/api/v1/exporters decode_errors of %s", p)
	}
	// The lab exporter shows the errors of its truncated datagrams.
	labAgent := realAgent(t, realS)
	assert.Equal(t, exp.sflowAgentErrors[labAgent], byAgent[labAgent], "/api/v1/exporters decode_errors of the lab agent %s", labAgent)
	require.NotZero(t, byAgent[labAgent])
	if fastPath {
		// (The goflow2 path rejects the hazards in its guard, before it
		// reads the header: their errors are on the exporter address.)
		assert.Equal(t, exp.sflowAgentErrors, byAgent, "/api/v1/exporters decode_errors by sFlow agent/sub-agent")
	}

	// ---- phase 2: garbage behind a valid header (bounded) ----
	// A version-correct header followed by random sets or samples reaches
	// the decoders' inner checks. Whether one such datagram is malformed
	// depends on its random bytes (a random set may well be a valid
	// template set, or a data set of an unknown template): each is at
	// most one decode error.
	const validHeaderPerPort = 500
	items = items[:0]
	for _, p := range []collector.Protocol{collector.ProtoSFlow, collector.ProtoIPFIX, collector.ProtoNetFlow9} {
		for i := range validHeaderPerPort {
			items = append(items, hostileItem{proto: p, gen: validHeaderGen(p, i), note: "valid header garbage"})
		}
	}
	rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	items = interleave(items, realItems(realS[splitS:], collector.ProtoSFlow), realItems(realI[splitI:], collector.ProtoIPFIX))
	sent2 := runItems(t, hs, items, deadline)
	for _, s := range hs {
		s.wait(t, 0)
	}
	t.Logf("phase 2: sent %v", sent2)

	// ---- alive and answering ----
	health := waitHealthy(t, hostile, 5*time.Second)
	assert.Equal(t, "ok", health["status"])
	// The collector still decodes: one more real datagram is handled
	// without error.
	before := hostile.col.Stats()[collector.ProtoSFlow]
	hs[collector.ProtoSFlow].sendWait(t, realS[0])
	after := hostile.col.Stats()[collector.ProtoSFlow]
	assert.Equal(t, before.DroppedDecodeError, after.DroppedDecodeError)
	assert.Greater(t, after.Samples, before.Samples)

	hostileB := hostile.metrics(t)
	for _, p := range []collector.Protocol{collector.ProtoSFlow, collector.ProtoIPFIX, collector.ProtoNetFlow9} {
		key := fmt.Sprintf(`vmflow_collector_dropped_total{protocol=%q,reason="decode_error"}`, p.String())
		extra := hostileB[key] - hostileA[key]
		t.Logf("phase 2 %s: %d valid-header garbage datagrams, %0.f decode errors", p, validHeaderPerPort, extra)
		assert.GreaterOrEqual(t, extra, 0.0, key)
		assert.LessOrEqual(t, extra, float64(validHeaderPerPort), key)
		assert.Equal(t, float64(hs[p].sent), hostileB[fmt.Sprintf(`vmflow_collector_handled_datagrams_total{protocol=%q}`, p.String())],
			"%s: every datagram sent was handled", p)
	}
	for _, r := range []string{"queue_full", "not_allowed", "truncated", "handler_panic"} {
		assert.Zero(t, sumLabeled(hostileB, "vmflow_collector_dropped_total", `reason="`+r+`"`), r)
	}
	assert.Zero(t, sumFamily(hostileB, "vmflow_collector_socket_drops_total"))
	var expSum, gotSum uint64
	for _, e := range hostile.exporters(t) {
		gotSum += e.DecodeErrors
	}
	for _, p := range []collector.Protocol{collector.ProtoSFlow, collector.ProtoIPFIX, collector.ProtoNetFlow9} {
		expSum += uint64(hostileB[fmt.Sprintf(`vmflow_collector_dropped_total{protocol=%q,reason="decode_error"}`, p.String())])
	}
	assert.Equal(t, expSum, gotSum, "/api/v1/exporters decode_errors add up to the collector's")

	// ---- the real traffic is attributed as in the clean run ----
	settlePairs(t, clean, hostile, deadline)

	// ---- memory ----
	peakHeap := peak()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	growth := int64(ms.HeapAlloc) - int64(heapBase)
	t.Logf("heap: base %.1f MB, peak %.1f MB, after %.1f MB (growth %.1f MB); goroutines %d -> %d",
		mb(heapBase), mb(peakHeap), mb(ms.HeapAlloc), float64(growth)/(1<<20), goroutinesBase, runtime.NumGoroutine())
	assert.Less(t, growth, int64(200<<20), "heap growth after GC")
	assert.Less(t, int64(peakHeap)-int64(heapBase), int64(200<<20), "peak heap growth while sending")
	assert.Less(t, runtime.NumGoroutine(), goroutinesBase+50, "no goroutine pile-up")
	if t.Failed() {
		logIngest(t, hostile.App)
	}
}

func mb(v uint64) float64 { return float64(v) / (1 << 20) }

// ---------------------------------------------------------------------------
// vmflow under test

type hostileApp struct {
	*app.App
	cfg app.Config
	col *collector.Collector
}

// startHostileVMFlow runs vmflow in-process: every collector on
// 127.0.0.1:0, the API on loopback, the lab inventory, 1 s windows.
func startHostileVMFlow(t *testing.T, env ...string) *hostileApp {
	t.Helper()
	cfg, _, err := app.Load("", append([]string{
		"VMFLOW_LOG_LEVEL=warn",
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=127.0.0.1:0",
		"VMFLOW_API_LISTEN=127.0.0.1:0",
		"VMFLOW_ENRICH_STATIC_FILE=../../configs/inventory.yaml",
		"VMFLOW_AGGREGATE_WINDOW=1s",
	}, env...))
	require.NoError(t, err)
	a, err := app.New(cfg, cfg.Log.NewLogger(testLogWriter{t}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() {
		cancel()
		stopped := make(chan struct{})
		go func() { a.Stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second): // a worker stuck in a loop
			t.Error("vmflow did not stop within 10 s")
		}
	})
	for _, p := range []collector.Protocol{collector.ProtoSFlow, collector.ProtoIPFIX, collector.ProtoNetFlow9} {
		require.NotZero(t, a.ListenPort(p), p.String())
	}
	return &hostileApp{App: a, cfg: cfg, col: a.Collector()}
}

// metrics reads GET /metrics into "name{labels}" -> value.
func (a *hostileApp) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.APIAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "metrics line %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "metrics line %q", line)
		out[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return out
}

func sumFamily(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

func sumLabeled(m map[string]float64, name, label string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, name+"{") && strings.Contains(k, label) {
			s += v
		}
	}
	return s
}

func (a *hostileApp) exporters(t *testing.T) []collector.ExporterStatus {
	t.Helper()
	return exporters(t, a.App)
}

// waitHealthy polls GET /api/v1/health until it answers 200 (each request
// with a short timeout) or the deadline passes.
func waitHealthy(t *testing.T, a *hostileApp, within time.Duration) map[string]any {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	end := time.Now().Add(within)
	var last error
	for time.Now().Before(end) {
		resp, err := c.Get("http://" + a.APIAddr() + "/api/v1/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var out map[string]any
				require.NoError(t, json.Unmarshal(body, &out))
				return out
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET /api/v1/health did not answer within %s: %v", within, last)
	return nil
}

// ---------------------------------------------------------------------------
// sending

// hostileInFlight bounds the datagrams sent and not yet handled (a queue
// holds 8192), and hostileInFlightLarge those after a datagram over 8 KB:
// well under 1 MB waits in a socket buffer (32 MB as root, a few MB
// otherwise).
const (
	hostileInFlight      = 64
	hostileInFlightLarge = 8
)

type hostileSender struct {
	a     *hostileApp
	proto collector.Protocol
	conn  *net.UDPConn
	sent  uint64
	notes [hostileInFlight + 1]string // what the last datagrams were (for a stall report)
}

func (a *hostileApp) sender(t *testing.T, p collector.Protocol) *hostileSender {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: a.ListenPort(p)})
	require.NoError(t, err)
	require.NoError(t, conn.SetWriteBuffer(8<<20))
	t.Cleanup(func() { conn.Close() })
	return &hostileSender{a: a, proto: p, conn: conn}
}

func (s *hostileSender) send(t *testing.T, data []byte, note string) {
	t.Helper()
	n, err := s.conn.Write(data)
	require.NoError(t, err, "send %s (%d bytes)", note, len(data))
	require.Equal(t, len(data), n)
	s.notes[s.sent%uint64(len(s.notes))] = note
	s.sent++
	if len(data) > 8<<10 {
		s.wait(t, hostileInFlightLarge)
	} else {
		s.wait(t, hostileInFlight)
	}
}

func (s *hostileSender) sendWait(t *testing.T, data []byte) {
	t.Helper()
	s.send(t, data, "real datagram")
	s.wait(t, 0)
}

// pending says what the datagrams sent and not yet handled were.
func (s *hostileSender) pending(done uint64) string {
	count := map[string]int{}
	for i := max(done, s.sent-min(s.sent, uint64(len(s.notes)))); i < s.sent; i++ {
		count[s.notes[i%uint64(len(s.notes))]]++
	}
	var out []string
	for n, c := range count {
		out = append(out, fmt.Sprintf("%d x %s", c, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// wait returns when at most inFlight datagrams sent are neither handled
// nor dropped. vmflow not making progress for 10 s is a hang: the test
// fails naming the datagram sent last.
func (s *hostileSender) wait(t *testing.T, inFlight uint64) {
	t.Helper()
	var done, lastDone uint64
	lastMove := time.Now()
	for {
		st := s.a.col.Stats()[s.proto]
		done = st.Handled + st.DroppedQueueFull + st.DroppedNotAllowed + st.DroppedTruncated + st.SocketDrops
		if done+inFlight >= s.sent && (inFlight > 0 || st.Queued == 0) {
			return
		}
		if done != lastDone {
			lastDone, lastMove = done, time.Now()
		} else if time.Since(lastMove) > 10*time.Second {
			t.Fatalf("%s: vmflow stalled: %d of %d datagrams handled or dropped for 10 s; not handled: %s", s.proto, done, s.sent, s.pending(done))
		}
		time.Sleep(20 * time.Microsecond)
	}
}

func sendAll(t *testing.T, s *hostileSender, items []hostileItem) {
	t.Helper()
	for _, it := range items {
		s.send(t, it.data, it.note)
		if it.sync {
			s.wait(t, 0)
		}
	}
}

// hostileItem is one datagram to send: data, or gen to build it (garbage is
// built when sent, into a reused buffer). account records what it must
// change in vmflow's counters.
type hostileItem struct {
	proto   collector.Protocol
	data    []byte
	gen     func(buf []byte) []byte
	note    string
	account func(p collector.Protocol, data []byte)
	// sync: wait until it is handled before sending anything else (IPFIX
	// templates: the two workers of a listener must not decode data
	// before the templates it needs).
	sync bool
}

func realItems(dgs [][]byte, p collector.Protocol) []hostileItem {
	out := make([]hostileItem, len(dgs))
	for i, d := range dgs {
		out[i] = hostileItem{proto: p, data: d, note: "real " + p.String(), sync: p == collector.ProtoIPFIX && hasTemplateSet(d)}
	}
	return out
}

// hasTemplateSet reports whether an IPFIX message holds a template or
// options template set.
func hasTemplateSet(m []byte) bool {
	if len(m) < 16 {
		return false
	}
	b := m[16:min(len(m), int(binary.BigEndian.Uint16(m[2:])))]
	for len(b) >= 4 {
		id, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if id == 2 || id == 3 {
			return true
		}
		if l < 4 || l > len(b) {
			return false
		}
		b = b[l:]
	}
	return false
}

// interleave spreads each list of real items evenly through items, keeping
// their order.
func interleave(items []hostileItem, reals ...[]hostileItem) []hostileItem {
	type pos struct {
		at   float64
		item hostileItem
	}
	var ps []pos
	for i, it := range items {
		ps = append(ps, pos{float64(i), it})
	}
	for k, r := range reals {
		for i, it := range r {
			ps = append(ps, pos{(float64(i) + 0.5 + float64(k)*0.1) * float64(len(items)) / float64(len(r)), it})
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].at < ps[j].at })
	out := make([]hostileItem, len(ps))
	for i, p := range ps {
		out[i] = p.item
	}
	return out
}

// runItems sends items in order and returns how many went to each protocol.
func runItems(t *testing.T, hs map[collector.Protocol]*hostileSender, items []hostileItem, deadline time.Time) map[string]int {
	t.Helper()
	buf := make([]byte, maxUDPPayload)
	sent := map[string]int{}
	for i, it := range items {
		data := it.data
		if it.gen != nil {
			data = it.gen(buf)
		}
		if it.account != nil {
			it.account(it.proto, data)
		}
		hs[it.proto].send(t, data, it.note)
		if it.sync {
			hs[it.proto].wait(t, 0)
		}
		sent[it.proto.String()]++
		if i%512 == 0 && time.Now().After(deadline) {
			t.Fatalf("out of time after %d of %d datagrams", i, len(items))
		}
	}
	return sent
}

// watchHeap samples HeapAlloc every 10 ms until the returned function is
// called; it returns the peak.
func watchHeap(t *testing.T) func() uint64 {
	var mu sync.Mutex
	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapAlloc)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	var once sync.Once
	get := func() uint64 {
		once.Do(func() { close(stop); <-done })
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
	t.Cleanup(func() { get() })
	return get
}

// ---------------------------------------------------------------------------
// hazard files and their expected effect

type hazardFile struct {
	name  string
	proto collector.Protocol
	data  []byte
	// expect returns what sending the file once must add to e.
	expect func(e *hostileExpect, maxRecords int) func(p collector.Protocol, data []byte)
}

// maxUDPPayload is the largest UDP payload over IPv4.
const maxUDPPayload = 65507

// hostileExpect accumulates, per datagram sent, what vmflow must count:
// decode errors per protocol, and deltas of counters keyed as in /metrics.
type hostileExpect struct {
	decodeErrors     map[collector.Protocol]float64
	counters         map[string]float64
	sflowAgentErrors map[string]uint64 // "agent/sub-agent" -> decode errors
	// Datagrams that are one error of either of two reasons: either[a] =
	// b and either[b] = a; eitherCount[a] = eitherCount[b] = how many.
	either      map[string]string
	eitherCount map[string]float64
}

func newHostileExpect() *hostileExpect {
	return &hostileExpect{decodeErrors: map[collector.Protocol]float64{}, counters: map[string]float64{},
		sflowAgentErrors: map[string]uint64{}, either: map[string]string{}, eitherCount: map[string]float64{}}
}

// The /metrics keys (labels in Prometheus' sorted order).
func decErrKey(src, reason string) string {
	return fmt.Sprintf(`vmflow_decoder_errors_total{reason=%q,source=%q}`, reason, src)
}

func flowErrKey(src, reason string) string {
	return fmt.Sprintf(`vmflow_decoder_flow_errors_total{reason=%q,source=%q}`, reason, src)
}

func flowKey(name, src string) string { return fmt.Sprintf(`%s{source=%q}`, name, src) }

// decodeError: the datagram is one decode error of this decoder reason.
func (e *hostileExpect) decodeError(p collector.Protocol, data []byte, reason string) {
	e.decodeErrors[p]++
	e.counters[decErrKey(p.String(), reason)]++
	if p == collector.ProtoSFlow {
		// With the whole header readable (agent address and the four
		// words after it), the error is the agent's.
		if h, ok := blast.ParseSFlowHeader(data); ok {
			e.sflowAgentErrors[fmt.Sprintf("%s/%d", h.Agent, h.SubAgent)]++
		}
	}
}

// flowDecodeError: an IPFIX/NetFlow v9 decode error of a flow decoder
// reason, which maps to a decoder reason.
func (e *hostileExpect) flowDecodeError(p collector.Protocol, data []byte, flowReason string) {
	reason := map[string]string{
		"short": "truncated", "set_length": "truncated", "record_truncated": "truncated",
		"version": "bad_version", "length": "bad_length", "template_malformed": "malformed",
	}[flowReason]
	if reason == "" {
		panic("unmapped flow reason " + flowReason)
	}
	e.decodeError(p, data, reason)
	e.counters[flowErrKey(p.String(), flowReason)]++
}

// sflowPrefix: a strict prefix of a real sFlow datagram whose samples fill
// it exactly (pickDatagrams checks) cannot hold all the samples its header
// announces: truncated.
func (e *hostileExpect) sflowPrefix(p collector.Protocol, data []byte) {
	e.decodeError(p, data, "truncated")
}

// ipfixPrefix: a strict prefix of a real IPFIX message is shorter than the
// 16-byte header or than the message length in its header.
func (e *hostileExpect) ipfixPrefix(p collector.Protocol, data []byte) {
	if len(data) < 16 {
		e.flowDecodeError(p, data, "short")
	} else {
		e.flowDecodeError(p, data, "length")
	}
}

// garbage: random bytes whose version field is never the protocol's
// (garbageGen sees to it).
func (e *hostileExpect) garbage(p collector.Protocol, data []byte) {
	switch p {
	case collector.ProtoSFlow:
		switch {
		case len(data) < 4: // no version
			e.decodeError(p, data, "truncated")
		case len(data) < 8:
			// a wrong version, and no agent address type: either
			// (the fast path checks the length first, goflow2 the
			// version)
			a, b := decErrKey("sflow", "truncated"), decErrKey("sflow", "bad_version")
			e.decodeErrors[p]++
			e.either[a], e.either[b] = b, a
			e.eitherCount[a]++
			e.eitherCount[b]++
			e.counters[a] += 0
			e.counters[b] += 0
		default:
			e.decodeError(p, data, "bad_version")
		}
	case collector.ProtoIPFIX:
		if len(data) < 16 {
			e.flowDecodeError(p, data, "short")
		} else {
			e.flowDecodeError(p, data, "version")
		}
	case collector.ProtoNetFlow9:
		if len(data) < 20 {
			e.flowDecodeError(p, data, "short")
		} else {
			e.flowDecodeError(p, data, "version")
		}
	}
}

// loadHazards reads testdata/hazards: every .bin file must have an entry in
// the table below, and every entry a file. The table says what one copy of
// the file must do (see testdata/hazards/README.md for why).
func loadHazards(t *testing.T) []hazardFile {
	t.Helper()
	type entry struct {
		proto  collector.Protocol
		expect func(e *hostileExpect, maxRecords int) func(p collector.Protocol, data []byte)
	}
	sflowErr := func(reason string) func(*hostileExpect, int) func(collector.Protocol, []byte) {
		return func(e *hostileExpect, _ int) func(collector.Protocol, []byte) {
			return func(p collector.Protocol, d []byte) { e.decodeError(p, d, reason) }
		}
	}
	flowErr := func(reason string) func(*hostileExpect, int) func(collector.Protocol, []byte) {
		return func(e *hostileExpect, _ int) func(collector.Protocol, []byte) {
			return func(p collector.Protocol, d []byte) { e.flowDecodeError(p, d, reason) }
		}
	}
	hostErr := func(reason, kind string) func(*hostileExpect, int) func(collector.Protocol, []byte) {
		return func(e *hostileExpect, _ int) func(collector.Protocol, []byte) {
			return func(p collector.Protocol, d []byte) {
				e.decodeError(p, d, reason)
				e.counters[fmt.Sprintf(`vmflow_decoder_host_malformed_total{kind=%q}`, kind)]++
			}
		}
	}
	table := map[string]entry{
		"sflow-expanded-flow-huge-records": {collector.ProtoSFlow, sflowErr("too_many_records")},
		"sflow-expanded-flow-1m-records":   {collector.ProtoSFlow, sflowErr("too_many_records")},
		"sflow-flow-huge-records":          {collector.ProtoSFlow, sflowErr("too_many_records")},
		"sflow-counter-huge-records":       {collector.ProtoSFlow, sflowErr("too_many_records")},
		"sflow-expanded-counter-huge":      {collector.ProtoSFlow, sflowErr("too_many_records")},
		"sflow-drop-huge-records":          {collector.ProtoSFlow, sflowErr("too_many_records")},
		"sflow-huge-sample-count":          {collector.ProtoSFlow, sflowErr("too_many_samples")},
		// hsflowd host structures past their bounds (decoder/sflow_host_hazard_test.go):
		// one decode error and one vmflow_decoder_host_malformed_total of the record's kind.
		"sflow-host-adapters-huge-count":    {collector.ProtoSFlow, hostErr("truncated", "host_adapters")},
		"sflow-host-adapters-huge-macs":     {collector.ProtoSFlow, hostErr("truncated", "host_adapters")},
		"sflow-host-descr-huge-hostname":    {collector.ProtoSFlow, hostErr("malformed", "host_descr")},
		"sflow-host-descr-release-past-end": {collector.ProtoSFlow, hostErr("truncated", "host_descr")},
		"sflow-host-cpu-short":              {collector.ProtoSFlow, hostErr("malformed", "host_cpu")},
		// A template record with no fields withdraws (RFC 7011 8.1):
		// the data set after it has no template.
		"ipfix-zero-field-template": {collector.ProtoIPFIX, func(e *hostileExpect, _ int) func(collector.Protocol, []byte) {
			return func(p collector.Protocol, _ []byte) {
				e.counters[flowKey("vmflow_decoder_flow_unknown_template_total", "ipfix")]++
			}
		}},
		// Three records of one-byte-length strings: decoded.
		"ipfix-all-varlen-template": {collector.ProtoIPFIX, func(e *hostileExpect, _ int) func(collector.Protocol, []byte) {
			return func(p collector.Protocol, _ []byte) {
				e.counters[flowKey("vmflow_decoder_flow_records_total", "ipfix")] += 3
			}
		}},
		"ipfix-huge-varlen":            {collector.ProtoIPFIX, flowErr("record_truncated")},
		"ipfix-huge-field-count":       {collector.ProtoIPFIX, flowErr("template_malformed")},
		"ipfix-huge-scope-count":       {collector.ProtoIPFIX, flowErr("template_malformed")},
		"ipfix-length-beyond-datagram": {collector.ProtoIPFIX, flowErr("length")},
		// 65,000 records: max_records decoded, the rest counted.
		"ipfix-65000-records": {collector.ProtoIPFIX, func(e *hostileExpect, maxRecords int) func(collector.Protocol, []byte) {
			return func(p collector.Protocol, _ []byte) {
				kept := min(65000, maxRecords)
				e.counters[flowKey("vmflow_decoder_flow_records_total", "ipfix")] += float64(kept)
				e.counters[flowErrKey("ipfix", "records_limit")] += float64(65000 - kept)
			}
		}},
		// NetFlow v9 has no withdrawal: a template without fields is
		// rejected, and its data set has no template.
		"nf9-zero-field-template": {collector.ProtoNetFlow9, func(e *hostileExpect, _ int) func(collector.Protocol, []byte) {
			return func(p collector.Protocol, _ []byte) {
				e.counters[`vmflow_decoder_flow_templates_rejected_total{reason="no_fields",source="netflow9"}`]++
				e.counters[flowKey("vmflow_decoder_flow_unknown_template_total", "netflow9")]++
			}
		}},
		"nf9-huge-field-count":     {collector.ProtoNetFlow9, flowErr("template_malformed")},
		"nf9-huge-options-lengths": {collector.ProtoNetFlow9, flowErr("template_malformed")},
		"nf9-set-length-beyond":    {collector.ProtoNetFlow9, flowErr("set_length")},
	}
	files, err := filepath.Glob("../../testdata/hazards/*.bin")
	require.NoError(t, err)
	seen := map[string]bool{}
	var out []hazardFile
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bin")
		ent, ok := table[name]
		require.True(t, ok, "hazard file %s has no expectation in hostile_test.go", f)
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		seen[name] = true
		out = append(out, hazardFile{name: name, proto: ent.proto, data: data, expect: ent.expect})
	}
	for name := range table {
		require.True(t, seen[name], "testdata/hazards/%s.bin missing", name)
	}
	return out
}

// pickDatagrams returns three real datagrams to truncate: the first, the
// largest and the middle one. sFlow ones must be exactly filled by their
// samples (so that every strict prefix is short of a sample).
func pickDatagrams(t *testing.T, dgs [][]byte, p collector.Protocol) [][]byte {
	t.Helper()
	largest := 0
	for i, d := range dgs {
		if len(d) > len(dgs[largest]) {
			largest = i
		}
	}
	out := [][]byte{dgs[0], dgs[largest], dgs[len(dgs)/2]}
	for _, d := range out {
		switch p {
		case collector.ProtoSFlow:
			require.Equal(t, len(d), sflowSamplesEnd(t, d), "sFlow datagram with bytes after its samples")
		case collector.ProtoIPFIX:
			require.Equal(t, len(d), int(binary.BigEndian.Uint16(d[2:])), "IPFIX message length")
		}
	}
	return out
}

// sflowSamplesEnd walks an sFlow v5 datagram's sample headers (format,
// length) and returns where the last sample ends.
func sflowSamplesEnd(t *testing.T, d []byte) int {
	h, ok := blast.ParseSFlowHeader(d)
	require.True(t, ok)
	off := h.SeqOffset + 12
	for range h.Samples {
		require.LessOrEqual(t, off+8, len(d))
		off += 8 + int(binary.BigEndian.Uint32(d[off+4:]))
	}
	return off
}

func realAgent(t *testing.T, dgs [][]byte) string {
	h, ok := blast.ParseSFlowHeader(dgs[0])
	require.True(t, ok)
	return fmt.Sprintf("%s/%d", h.Agent, h.SubAgent)
}

// ---------------------------------------------------------------------------
// garbage

// garbageLen draws a datagram length: a few fixed edge cases, then mostly
// small, some up to jumbo size, a few up to the UDP maximum.
func garbageLen(r *rand.Rand, i int) int {
	switch i {
	case 0, 1:
		return 0
	case 2, 3:
		return maxUDPPayload
	case 4:
		return 1
	}
	switch x := r.IntN(100); {
	case x < 70:
		return r.IntN(1501)
	case x < 95:
		return 1501 + r.IntN(9000-1500)
	default:
		return r.IntN(maxUDPPayload + 1)
	}
}

// garbageGen returns datagram i of the random garbage for protocol p:
// random bytes of a random length, with the version field (when present)
// changed if it happens to be p's.
func garbageGen(p collector.Protocol, i int) func(buf []byte) []byte {
	return func(buf []byte) []byte {
		r := rand.New(rand.NewPCG(uint64(p)<<32|0x6a7b, uint64(i)))
		d := buf[:garbageLen(r, i)]
		fillRandom(r, d)
		switch p {
		case collector.ProtoSFlow:
			if len(d) >= 4 && binary.BigEndian.Uint32(d) == 5 {
				d[3] ^= 0xff
			}
		case collector.ProtoIPFIX:
			if len(d) >= 2 && binary.BigEndian.Uint16(d) == 10 {
				d[1] ^= 0xff
			}
		case collector.ProtoNetFlow9:
			if len(d) >= 2 && binary.BigEndian.Uint16(d) == 9 {
				d[1] ^= 0xff
			}
		}
		return d
	}
}

func fillRandom(r *rand.Rand, d []byte) {
	for i := 0; i < len(d); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(d); j++ {
			d[i+j] = byte(v >> (8 * j))
		}
	}
}

// validHeaderGen returns datagram i of the phase-2 garbage: a valid header
// (sFlow: version 5, an IPv4 agent in 203.0.113.0/24, 1-4 samples; IPFIX:
// version 10, the right length, a domain >= 1000; NetFlow v9: version 9, a
// source id >= 1000) followed by random samples or sets with random ids
// and random contents.
func validHeaderGen(p collector.Protocol, i int) func(buf []byte) []byte {
	return func(buf []byte) []byte {
		r := rand.New(rand.NewPCG(uint64(p)<<32|0x7c8d, uint64(i)))
		d := buf[:0]
		u32 := func(v uint32) { d = binary.BigEndian.AppendUint32(d, v) }
		u16 := func(v uint16) { d = binary.BigEndian.AppendUint16(d, v) }
		randBytes := func(n int) {
			start := len(d)
			d = d[:start+n]
			fillRandom(r, d[start:])
		}
		switch p {
		case collector.ProtoSFlow:
			n := 1 + r.IntN(4)
			u32(5)
			u32(1)
			d = append(d, 203, 0, 113, byte(r.IntN(256)))
			u32(r.Uint32N(4)) // sub-agent
			u32(r.Uint32())   // sequence
			u32(r.Uint32())   // uptime
			u32(uint32(n))
			for range n {
				format := []uint32{1, 2, 3, 4, 5, r.Uint32()}[r.IntN(6)]
				u32(format)
				lenAt := len(d)
				u32(0)
				// the sample's fixed words (random), then records
				words := map[uint32]int{1: 7, 2: 2, 3: 10, 4: 3, 5: 7}[format]
				for range words {
					u32(r.Uint32() >> uint(r.IntN(33)))
				}
				nrec := r.IntN(4)
				u32(uint32(nrec))
				for range nrec {
					rf := []uint32{1, 2, 3, 4, 1001, 1004, 1023, 1024, 1029, 1030, 2, 1005, r.Uint32()}[r.IntN(13)]
					u32(rf)
					rl := 4 * r.IntN(40)
					if rf == 1 && rl >= 16 { // raw header: Ethernet, a plausible header length
						u32(uint32(rl))
						u32(1)
						u32(uint32(64 + r.IntN(1500)))
						u32(uint32(r.IntN(5)))
						u32(uint32(rl - 16))
						hdr := len(d)
						randBytes(rl - 16)
						if rl-16 >= 34 && r.IntN(2) == 0 { // IPv4 in Ethernet
							d[hdr+12], d[hdr+13], d[hdr+14] = 0x08, 0x00, 0x45
						}
						continue
					}
					u32(uint32(rl))
					randBytes(rl)
				}
				binary.BigEndian.PutUint32(d[lenAt:], uint32(len(d)-lenAt-4))
			}
			if r.IntN(4) == 0 { // sometimes cut short
				d = d[:r.IntN(len(d)+1)]
			}
		case collector.ProtoIPFIX, collector.ProtoNetFlow9:
			ipfix := p == collector.ProtoIPFIX
			if ipfix {
				u16(10)
				u16(0) // length, below
				u32(r.Uint32())
				u32(r.Uint32())
				u32(1000 + r.Uint32N(1<<20))
			} else {
				u16(9)
				u16(uint16(r.IntN(65536)))
				u32(r.Uint32())
				u32(r.Uint32())
				u32(r.Uint32())
				u32(1000 + r.Uint32N(1<<20))
			}
			tmpl, opt := uint16(2), uint16(3)
			if !ipfix {
				tmpl, opt = 0, 1
			}
			for range 1 + r.IntN(3) {
				id := []uint16{tmpl, opt, uint16(4 + r.IntN(252)), uint16(256 + r.IntN(65280))}[r.IntN(4)]
				l := 4 + r.IntN(200)
				u16(id)
				u16(uint16(l))
				randBytes(l - 4)
			}
			if ipfix {
				binary.BigEndian.PutUint16(d[2:], uint16(len(d)))
			}
		}
		return d
	}
}

// ---------------------------------------------------------------------------
// pairs

// vmPairs returns the pairs with a VM at either end (queried per VM of the
// inventory, so that pairs of random addresses cannot crowd them out of
// ?limit=), and how many pairs there are in all.
func vmPairs(t *testing.T, a *hostileApp, source string) (map[ovslab.Pair]apiPair, int) {
	t.Helper()
	var vms struct {
		VMs []struct {
			Name string `json:"name"`
		} `json:"vms"`
	}
	getJSON(t, a.App, "/api/v1/vms", nil, &vms)
	require.NotEmpty(t, vms.VMs)
	m := map[ovslab.Pair]apiPair{}
	var all struct {
		TotalPairs int `json:"total_pairs"`
	}
	getJSON(t, a.App, "/api/v1/pairs", url.Values{"source": {source}, "since": {"10m"}, "limit": {"1"}}, &all)
	for _, vm := range vms.VMs {
		var out struct {
			Pairs []apiPair `json:"pairs"`
		}
		getJSON(t, a.App, "/api/v1/pairs", url.Values{"source": {source}, "since": {"10m"}, "limit": {"1000"}, "vm": {vm.Name}}, &out)
		for _, p := range out.Pairs {
			m[p.key()] = p
		}
	}
	return m, all.TotalPairs
}

// settlePairs waits until the hostile vmflow reports, for sFlow and IPFIX,
// exactly the VM pairs the clean vmflow reports (the same bytes, packets
// and samples, no pair more or less), and checks the clean run found the
// lab's pairs.
func settlePairs(t *testing.T, clean, hostile *hostileApp, deadline time.Time) {
	t.Helper()
	time.Sleep(1500 * time.Millisecond) // the last 1 s window closes
	var diffs []string
	for {
		diffs = diffs[:0]
		for _, src := range []string{"sflow", "ipfix"} {
			c, _ := vmPairs(t, clean, src)
			h, _ := vmPairs(t, hostile, src)
			for k, cp := range c {
				hp, ok := h[k]
				switch {
				case !ok:
					diffs = append(diffs, fmt.Sprintf("%s %s: missing (clean: %.0f bytes)", src, k, cp.Bytes))
				case hp.Bytes != cp.Bytes || hp.Packets != cp.Packets || hp.Samples != cp.Samples:
					diffs = append(diffs, fmt.Sprintf("%s %s: %.0f bytes %.0f packets %d samples, clean run %.0f / %.0f / %d",
						src, k, hp.Bytes, hp.Packets, hp.Samples, cp.Bytes, cp.Packets, cp.Samples))
				}
			}
			for k, hp := range h {
				if _, ok := c[k]; !ok {
					diffs = append(diffs, fmt.Sprintf("%s %s: extra pair (%.0f bytes)", src, k, hp.Bytes))
				}
			}
		}
		if len(diffs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pairs differ from the clean run:\n%s", strings.Join(diffs, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, src := range []string{"sflow", "ipfix"} {
		c, nc := vmPairs(t, clean, src)
		h, nh := vmPairs(t, hostile, src)
		for _, k := range []ovslab.Pair{{Src: "vm2", Dst: "vm3"}, {Src: "vm3", Dst: "vm2"}, {Src: "vm4", Dst: "vm1"}, {Src: "vm2", Dst: "vm4"}, {Src: "vm4", Dst: "vm2"}} {
			assert.Contains(t, c, k, "clean run, %s", src)
		}
		assert.Equal(t, len(c), nc, "clean run, %s: every pair has a VM", src)
		t.Logf("%s: %d VM pairs equal to the clean run's (vm4->vm1 %.0f bytes, vm2->vm3 %.0f bytes); %d pairs without a VM in the hostile run",
			src, len(h), h[ovslab.Pair{Src: "vm4", Dst: "vm1"}].Bytes, h[ovslab.Pair{Src: "vm2", Dst: "vm3"}].Bytes, nh-len(h))
	}
	// The clean run itself against the capture's truth: vm4 -> vm1 carried
	// 19,998 UDP datagrams of 1,042-byte frames (testdata/ovs-lab-1).
	c, _ := vmPairs(t, clean, "ipfix")
	assert.InEpsilon(t, 19998*1042.0, c[ovslab.Pair{Src: "vm4", Dst: "vm1"}].Bytes, 0.02, "clean IPFIX vm4->vm1 bytes vs the capture's truth")
}
