package libvirt

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the libvirt source's Prometheus metrics, shared by all
// connections (label "connection" is the URI).
type Metrics struct {
	events        *prometheus.CounterVec
	eventsDropped *prometheus.CounterVec
	resyncs       *prometheus.CounterVec
	rpcErrors     *prometheus.CounterVec
	addrErrors    *prometheus.CounterVec
	reconnects    *prometheus.CounterVec
	connected     *prometheus.GaugeVec
	domains       *prometheus.GaugeVec
	rpcLatency    *prometheus.HistogramVec
	resyncSeconds *prometheus.HistogramVec
	statsPolls    *prometheus.CounterVec
	statsErrors   *prometheus.CounterVec
	statsSeconds  *prometheus.HistogramVec
}

// NewMetrics creates and registers the metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	lc := []string{"connection"}
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_libvirt_events_total",
			Help: "Domain events received."}, append(lc, "kind")),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_libvirt_events_dropped_total",
			Help: "Domain events dropped because the event queue was full (each forces a full resync)."}, lc),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_libvirt_resyncs_total",
			Help: "Full re-lists of a daemon's domains."}, lc),
		rpcErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_libvirt_rpc_errors_total",
			Help: "Failed libvirt RPC calls and connection attempts."}, lc),
		addrErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_libvirt_address_errors_total",
			Help: "Interface address queries that failed (e.g. no guest agent), per address source."}, append(lc, "source")),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_libvirt_reconnects_total",
			Help: "Reconnection attempts after a lost or failed connection."}, lc),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmflow_libvirt_connected",
			Help: "1 while the connection is up and synced."}, lc),
		domains: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmflow_libvirt_domains",
			Help: "Domains known from the daemon."}, lc),
		rpcLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vmflow_libvirt_rpc_duration_seconds",
			Help: "libvirt RPC call latency.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, append(lc, "procedure")),
		resyncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vmflow_libvirt_resync_duration_seconds",
			Help: "Time of a full resync.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, lc),
		statsPolls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_libvirt_stats_polls_total",
			Help: "Resource stats polls of a daemon's domains, by path (bulk or per-domain)."}, append(lc, "mode")),
		statsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_libvirt_stats_errors_total",
			Help: "Resource stats figures a daemon refused (per kind: info, cpu, memory, block, interface, bulk)."}, append(lc, "kind")),
		statsSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vmflow_libvirt_stats_poll_duration_seconds",
			Help: "Time of one stats poll of all domains.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, append(lc, "mode")),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.eventsDropped, m.resyncs, m.rpcErrors, m.addrErrors,
			m.reconnects, m.connected, m.domains, m.rpcLatency, m.resyncSeconds, m.statsPolls, m.statsErrors, m.statsSeconds} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					continue
				}
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) observer(conn string) func(string, time.Duration, error) {
	return func(proc string, d time.Duration, err error) {
		m.rpcLatency.WithLabelValues(conn, proc).Observe(d.Seconds())
	}
}
