package collector

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are a listener's counters: plain atomics updated once per
// recvmmsg batch (readers) or chunk (workers), exported to Prometheus by
// functions read at scrape time. Reader and worker counters sit on separate
// cache lines.
type counters struct {
	received, bytes, truncated, notAllowed, queueFull, readErrors, arrival, coalesced atomic.Uint64
	_                                                                                 [64]byte
	handled, samples, decodeErrors, panics                                            atomic.Uint64
	_                                                                                 [64]byte
	socketDrops                                                                       atomic.Uint64
	rcvbuf                                                                            atomic.Int64
}

func (c *Collector) register(reg prometheus.Registerer) error {
	var cs []prometheus.Collector
	u := func(a *atomic.Uint64) func() float64 { return func() float64 { return float64(a.Load()) } }
	for _, l := range c.listeners {
		l := l
		proto := prometheus.Labels{"protocol": l.proto.String()}
		counter := func(name, help string, f func() float64) {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: name, Help: help, ConstLabels: proto}, f))
		}
		gauge := func(name, help string, f func() float64) {
			cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: name, Help: help, ConstLabels: proto}, f))
		}
		drop := func(reason string, f func() float64) {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "vmflow_collector_dropped_total",
				Help:        "Datagrams dropped or failed, by reason: queue_full (workers behind, newest dropped), decode_error (handler error), not_allowed (exporter not in allowed_exporters), truncated (larger than max_datagram), handler_panic.",
				ConstLabels: prometheus.Labels{"protocol": l.proto.String(), "reason": reason}}, f))
		}
		counter("vmflow_collector_datagrams_total", "Datagrams read from the listener's sockets.", u(&l.ctr.received))
		counter("vmflow_collector_bytes_total", "UDP payload bytes read from the listener's sockets.", u(&l.ctr.bytes))
		counter("vmflow_collector_handled_datagrams_total", "Datagrams passed to the decoder.", u(&l.ctr.handled))
		counter("vmflow_collector_samples_total", "Samples (sFlow) or flow records (IPFIX, NetFlow) decoded.", u(&l.ctr.samples))
		counter("vmflow_collector_socket_drops_total", "Receive buffers the kernel dropped on the listener's sockets because they were full (SO_MEMINFO): one per datagram, but with UDP GRO one dropped buffer can hold up to 64 datagrams; vmflow_collector_lost_datagrams sees them all.", u(&l.ctr.socketDrops))
		counter("vmflow_collector_read_errors_total", "Socket read errors.", u(&l.ctr.readErrors))
		counter("vmflow_collector_gro_datagrams_total", "Datagrams the kernel passed coalesced (UDP GRO) and the reader split.", u(&l.ctr.coalesced))
		drop("queue_full", u(&l.ctr.queueFull))
		drop("decode_error", u(&l.ctr.decodeErrors))
		drop("not_allowed", u(&l.ctr.notAllowed))
		drop("truncated", u(&l.ctr.truncated))
		drop("handler_panic", u(&l.ctr.panics))
		gauge("vmflow_collector_queue_datagrams", "Datagrams queued or being decoded.", func() float64 { return float64(l.pool.inUse()) })
		gauge("vmflow_collector_queue_capacity_datagrams", "Queue capacity (queue_size).", func() float64 { return float64(l.cfg.QueueSize) })
		gauge("vmflow_collector_socket_receive_buffer_bytes", "Receive buffer per socket as granted by the kernel (SO_RCVBUF read back).", func() float64 { return float64(l.ctr.rcvbuf.Load()) })
		gauge("vmflow_collector_exporters", "Exporters with state (seen within exporter_timeout).", func() float64 { return c.table.count(l.proto) })
		gauge("vmflow_collector_lost_datagrams", "Datagrams lost in transit, estimated from export sequence numbers (IPFIX: lost records / records per message), since start. Late datagrams are subtracted again, so it can fall slightly.", func() float64 { return c.table.lost(l.proto) })
	}
	cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vmflow_collector_exporters_untracked_total",
		Help: "Datagrams handled but not tracked per exporter because max_exporters was reached.",
	}, u(&c.table.untracked)))
	for _, x := range cs {
		if err := reg.Register(x); err != nil {
			return err
		}
	}
	return nil
}
