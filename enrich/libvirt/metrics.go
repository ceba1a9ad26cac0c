package libvirt

import (
	"errors"
	"strconv"
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
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.eventsDropped, m.resyncs, m.rpcErrors, m.addrErrors,
			m.reconnects, m.connected, m.domains, m.rpcLatency, m.resyncSeconds} {
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

var procNames = map[int32]string{
	ProcConnectOpen: "connect_open", ProcConnectClose: "connect_close", ProcDomainCreate: "domain_create",
	ProcDomainDefineXML: "domain_define_xml", ProcDomainDestroy: "domain_destroy",
	ProcDomainGetXMLDesc: "domain_get_xml_desc", ProcDomainGetInfo: "domain_get_info",
	ProcDomainLookupByName: "domain_lookup_by_name", ProcDomainUndefine: "domain_undefine",
	ProcConnectGetHostname: "connect_get_hostname", ProcConnectSupportsFeature: "connect_supports_feature",
	ProcAuthList: "auth_list", ProcAuthPolkit: "auth_polkit", ProcDomainGetState: "domain_get_state",
	ProcConnectListAllDomains:                   "connect_list_all_domains",
	ProcConnectDomainEventCallbackRegisterAny:   "connect_domain_event_callback_register_any",
	ProcConnectDomainEventCallbackDeregisterAny: "connect_domain_event_callback_deregister_any",
	ProcDomainInterfaceAddresses:                "domain_interface_addresses",
}

func procName(p int32) string {
	if n, ok := procNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

func (m *Metrics) observer(conn string) func(int32, time.Duration, error) {
	return func(proc int32, d time.Duration, err error) {
		m.rpcLatency.WithLabelValues(conn, procName(proc)).Observe(d.Seconds())
	}
}
