package alert

import (
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/alert/notify"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const win = 10 * time.Second

// vm i is "vm-i" with VMID i, IP 10.0.i/256.i%256, tenant "t" + i%2.
func vmEP(i int) (aggregate.EndpointKey, aggregate.Endpoint) {
	ip := netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i % 256)})
	return aggregate.EndpointKey{VM: enrich.VMID(i)},
		aggregate.Endpoint{VM: "vm-" + itoa(i), Tenant: "t" + itoa(i%2), Host: "hv" + itoa(i%4), IP: ip.String()}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

func pair(src, dst int, bytes float64) aggregate.Pair {
	sk, se := vmEP(src)
	dk, de := vmEP(dst)
	p := aggregate.Pair{Key: aggregate.PairKey{Src: sk, Dst: dk, Source: decoder.SourceSFlow}, Src: se, Dst: de}
	p.Stats.Bytes = bytes
	p.Stats.Packets = bytes / 1000
	p.Stats.TCPPackets = p.Stats.Packets
	p.Stats.Flows = 1
	p.Stats.SrcIP = netip.MustParseAddr(se.IP)
	p.Stats.DstIP = netip.MustParseAddr(de.IP)
	return p
}

func window(i int, pairs ...aggregate.Pair) *aggregate.Window {
	end := t0.Add(time.Duration(i+1) * win)
	return &aggregate.Window{Start: end.Add(-win), End: end, Pairs: pairs}
}

type recorder struct {
	mu    sync.Mutex
	calls [][]notify.Alert
}

func (r *recorder) Notify(_ time.Time, as []notify.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, as)
}

func (r *recorder) last() []notify.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return nil
	}
	return r.calls[len(r.calls)-1]
}

type fixture struct {
	e    *Engine
	rec  *recorder
	reg  *prometheus.Registry
	exps []collector.ExporterStatus
	mu   sync.Mutex
	dir  string
}

func newFixture(t *testing.T, rules string, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{rec: &recorder{}, reg: prometheus.NewRegistry(), dir: t.TempDir()}
	cfg := DefaultConfig()
	cfg.SnapshotFile = filepath.Join(f.dir, "state.gz")
	if rules != "" {
		cfg.RulesFile = filepath.Join(f.dir, "rules.yaml")
		require.NoError(t, os.WriteFile(cfg.RulesFile, []byte(rules), 0o644))
	}
	if mod != nil {
		mod(&cfg)
	}
	f.e = f.build(t, cfg)
	return f
}

func (f *fixture) build(t *testing.T, cfg Config) *Engine {
	t.Helper()
	f.reg = prometheus.NewRegistry()
	e, err := New(cfg, Deps{Registerer: f.reg, Gatherer: f.reg, Dispatcher: f.rec,
		Exporters: func() []collector.ExporterStatus {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]collector.ExporterStatus(nil), f.exps...)
		},
		Now: func() time.Time { return t0.Add(time.Hour) }})
	require.NoError(t, err)
	return e
}

// firing returns the firing alerts of the last evaluation by rule.
func (f *fixture) firing(rule string) []notify.Alert {
	var out []notify.Alert
	for _, a := range f.rec.last() {
		if a.Rule == rule && a.State == notify.StateFiring {
			out = append(out, a)
		}
	}
	return out
}

func (f *fixture) resolvedNow(rule string) []notify.Alert {
	var out []notify.Alert
	for _, a := range f.rec.last() {
		if a.Rule == rule && a.State == notify.StateResolved {
			out = append(out, a)
		}
	}
	return out
}

func unsafeSizeof(b baseState) uintptr { return unsafe.Sizeof(b) }
