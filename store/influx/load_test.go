package influx

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/internal/testenv/influxd"
)

// cloudWindow is one 10 s window of a synthetic cloud: pairs directed
// pairs among vms VMs on hosts hypervisors (each VM talks to pairs/vms
// peers), 5% of them to external addresses; sFlow 1-in-512 with a
// heavy-tailed number of samples per pair, 80% TCP / 20% UDP, a few
// destination ports. seed varies the counters from window to window.
func cloudWindow(pairs, vms, hosts int, seed uint64) *aggregate.Window {
	rng := rand.New(rand.NewPCG(seed, 42))
	w := &aggregate.Window{Pairs: make([]aggregate.Pair, pairs)}
	ep := func(i int) aggregate.Endpoint {
		return aggregate.Endpoint{
			VM: fmt.Sprintf("vm-%05d", i), UUID: fmt.Sprintf("6f1c%04x-8e2b-4d7a-9c3e-%012x", i%65536, i),
			Host: fmt.Sprintf("hv-%03d", i%hosts), Tenant: fmt.Sprintf("tenant-%03d", i%200),
			MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i)),
			IP:  netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(),
		}
	}
	per := pairs / vms
	for i := range w.Pairs {
		p := &w.Pairs[i]
		s := i % vms
		p.Key.Src = aggregate.EndpointKey{VM: enrich.VMID(s + 1)}
		p.Src = ep(s)
		if i%20 == 19 {
			ip := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
			p.Key.Dst = aggregate.EndpointKey{IP: ip}
			p.Dst = aggregate.Endpoint{IP: ip.String()}
		} else {
			d := (s + 1 + (i/vms)*(vms/per)) % vms
			p.Key.Dst = aggregate.EndpointKey{VM: enrich.VMID(d + 1)}
			p.Dst = ep(d)
		}
		p.Key.Source = decoder.SourceSFlow
		st := &p.Stats
		samples := 1 + int(rng.ExpFloat64()*rng.ExpFloat64()*20) // heavy tail
		const rate = 512.0
		var sb, sb2 float64
		for k := 0; k < min(samples, 64); k++ {
			b := float64(64 + rng.IntN(1450))
			sb += b
			sb2 += b * b
		}
		if samples > 64 {
			f := float64(samples) / 64
			sb, sb2 = sb*f, sb2*f
		}
		n := float64(samples)
		st.Samples = uint64(samples)
		st.Bytes = sb * rate
		st.Packets = n * rate
		st.BytesVar = rate * (rate - 1) * sb2
		st.PacketsVar = rate * (rate - 1) * n
		st.SampledBytes, st.SampledPackets = uint64(sb), uint64(samples)
		st.Flows = uint64(1 + rng.IntN(8))
		port := uint16([]int{443, 80, 5432, 6379, 53, 8080}[i%6])
		if i%5 == 4 {
			st.UDPBytes, st.UDPPackets = st.Bytes, st.Packets
			st.TopPorts[0] = aggregate.PortCount{Proto: 17, Port: port, Bytes: st.Bytes}
		} else {
			st.TCPBytes, st.TCPPackets = st.Bytes, st.Packets
			if rng.IntN(4) == 0 {
				st.SYN, st.FIN = rate, rate
			}
			st.TopPorts[0] = aggregate.PortCount{Proto: 6, Port: port, Bytes: st.Bytes * 0.9}
			st.TopPorts[1] = aggregate.PortCount{Proto: 6, Port: 30000 + uint16(i%1000), Bytes: st.Bytes * 0.1}
		}
		now := time.Now().UnixNano()
		st.First, st.Last = now-int64(rng.IntN(9e9)), now
		if ip, err := netip.ParseAddr(p.Src.IP); err == nil {
			st.SrcIP = ip
		}
		if ip, err := netip.ParseAddr(p.Dst.IP); err == nil {
			st.DstIP = ip
		}
	}
	return w
}

// procCPU is a process's user+system CPU time from /proc/PID/stat.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// pointShape is the average size and field count of a measurement's lines.
func pointShape(lp []byte, meas string) (bytesPer, fieldsPer float64, n int) {
	var tb, tf int
	for _, line := range bytes.Split(lp, []byte{'\n'}) {
		if !bytes.HasPrefix(line, []byte(meas+",")) {
			continue
		}
		n++
		tb += len(line) + 1
		// the field set: after the first unescaped space, before the last space
		i := 0
		for i < len(line) && !(line[i] == ' ' && line[i-1] != '\\') {
			i++
		}
		fs := line[i+1 : bytes.LastIndexByte(line, ' ')]
		inq := false
		tf++
		for k, c := range fs {
			switch {
			case c == '"' && (k == 0 || fs[k-1] != '\\'):
				inq = !inq
			case c == ',' && !inq:
				tf++
			}
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	return float64(tb) / float64(n), float64(tf) / float64(n), n
}

// TestInfluxLoad (figure "InfluxDB write cost" in the README) writes a
// synthetic cloud's windows — 200,000 pairs among 10,000 VMs on 500
// hosts per 10 s window, one window every 10 s of wall time — into a local
// influxd for VMFLOW_INFLUX_LOAD (e.g. 3m) per variant: full points, lean
// points, lean points with influx.window=60s. It fails if the spool grows
// or a point is dropped or rejected; it logs bytes and fields per vm_pair
// point, points/s and influxd's CPU per point. Skipped unless the variable
// is set (it takes minutes and both cores). VMFLOW_INFLUX_LOAD_VARIANTS
// (comma-separated names) runs only some variants.
func TestInfluxLoad(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("VMFLOW_INFLUX_LOAD"))
	if err != nil || dur <= 0 {
		t.Skip("set VMFLOW_INFLUX_LOAD=3m to run the InfluxDB load figure")
	}
	const (
		pairs, vms, hosts = 200_000, 10_000, 500
		window            = 10 * time.Second
	)
	srv := influxd.Start(t)
	wins := []*aggregate.Window{cloudWindow(pairs, vms, hosts, 1), cloudWindow(pairs, vms, hosts, 2)}
	type variant struct {
		name   string
		fields string
		merge  time.Duration
	}
	only := os.Getenv("VMFLOW_INFLUX_LOAD_VARIANTS") // e.g. "lean,lean+window=60s"; empty: all
	for _, v := range []variant{{"full", PairFieldsFull, 0}, {"lean", PairFieldsLean, 0}, {"lean+window=60s", PairFieldsLean, time.Minute}} {
		if only != "" && !slices.Contains(strings.Split(only, ","), v.name) {
			continue
		}
		db := "vmflow_load_" + strings.NewReplacer("+", "_", "=", "_").Replace(v.name)
		srv.CreateDatabase(t, db)
		cfg := testConfig(t, srv.URL(), db)
		cfg.FlushInterval = time.Second
		cfg.RetryMin, cfg.RetryMax = time.Second, 30*time.Second
		cfg.Timeout = 30 * time.Second
		cfg.PairFields, cfg.Window = v.fields, v.merge
		cfg.Spool.MaxBytes = 4 << 30

		// shape of one window's points
		e := newEncoderFor(v.fields == PairFieldsFull, cfg.InfoInterval)
		win := *wins[0]
		win.End = time.Now().Truncate(window)
		win.Start = win.End.Add(-window)
		e.prepare(&win)
		var lp []byte
		for i := range e.pairs {
			lp = e.appendPair(lp, i)
		}
		bpp, fpp, npairs := pointShape(lp, MeasurementPair)

		w := newTestWriter(t, cfg)
		require.NoError(t, w.Start(context.Background()))
		pid := srv.PID()
		cpu0, self0, t0 := procCPU(t, pid), cpuTime(), time.Now()
		base := time.Now().Add(-48 * time.Hour).Truncate(time.Hour)
		var maxSpool int64
		n := int(dur / window)
		if v.merge > 0 { // whole merged windows
			per := int(v.merge / window)
			n = (n + per - 1) / per * per
		}
		tick := time.NewTicker(window)
		for k := 0; k < n; k++ {
			win := *wins[k%len(wins)]
			win.Start = base.Add(time.Duration(k) * window)
			win.End = win.Start.Add(window)
			w.Write(&win)
			<-tick.C
			if sp := w.Health()["spool_pending_points"].(int64); sp > maxSpool {
				maxSpool = sp
			}
		}
		tick.Stop()
		// not require: the next variants still run and report
		assert.Eventually(t, func() bool {
			h := w.Health()
			return h["queue_windows"] == 0 && h["queue_batches"] == 0 && h["spool_pending_points"] == int64(0)
		}, 5*time.Minute, 100*time.Millisecond, "%s: writer did not catch up: %v", v.name, w.Health())
		el := time.Since(t0)
		cpu, self := procCPU(t, pid)-cpu0, cpuTime()-self0
		w.Stop()
		h := w.Health()
		written := testutil.ToFloat64(w.m.pointsWritten) + testutil.ToFloat64(w.m.replayedPoints)
		assert.EqualValues(t, 0, h["dropped_points"], v.name)
		assert.EqualValues(t, 0, h["rejected_points"], v.name)
		assert.EqualValues(t, 0, h["spool_dropped_points"], v.name)
		assert.Zero(t, maxSpool, "%s: the spool stays empty", v.name)
		encoded := testutil.ToFloat64(w.m.encodedPoints)
		// a batch whose write timed out on our side but landed is sent
		// again from the spool (idempotent: the same points overwritten)
		assert.GreaterOrEqual(t, written, encoded, v.name)
		t.Logf("%-16s %d windows of %d pairs in %s: vm_pair %.0f bytes, %.1f fields per point (%d points/window); "+
			"%.0f points encoded, %.0f written (%.0f/s); influxd CPU %s = %.1f µs/point (%.0f%% of a core); writer CPU %.2f µs/point; spool max %d points",
			v.name, n, pairs, el.Round(time.Second), bpp, fpp, npairs, encoded, written, encoded/el.Seconds(),
			cpu.Round(time.Second), float64(cpu.Microseconds())/encoded, 100*cpu.Seconds()/el.Seconds(),
			float64(self.Microseconds())/encoded, maxSpool)
	}
}
