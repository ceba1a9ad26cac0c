package probe

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/decoder"
)

// final-ACK results (vmflow_probe_final_acks_total)
const (
	ackTimed = iota
	ackMissed
	ackNoSlot
	ackOther
)

type metrics struct {
	frames        prometheus.Counter
	parseErrors   prometheus.Counter
	overflow      prometheus.Counter
	synRetries    prometheus.Counter
	icmpErrors    prometheus.Counter
	unmatched     [2]prometheus.Counter // SYN-ACK, echo reply
	handshakes    [7]prometheus.Counter // by outcome
	closes        [7]prometheus.Counter
	echoes        [7]prometheus.Counter
	acks          [4]prometheus.Counter // ack*
	filterUpdates prometheus.Counter
	filterErrors  prometheus.Counter
	kernelDrops   prometheus.Counter
	tapErrors     prometheus.Counter
	tapEvents     *prometheus.CounterVec
	expRecords    prometheus.Counter
	expDgrams     prometheus.Counter
	expErrors     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, p *Probe) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "vmflow_probe_" + name, Help: help})
	}
	m := &metrics{
		frames:      c("frames_total", "Frames the kernel filter passed to the probe (SYN/FIN/RST, ICMP echo and errors)."),
		parseErrors: c("parse_errors_total", "Passed frames the probe could not parse."),
		overflow:    c("pending_overflow_total", "Handshakes, echo requests or closes not tracked because the tap's pending table (probe.max_pending) was full."),
		synRetries:  c("syn_retransmissions_total", "SYN retransmissions of pending handshakes."),
		icmpErrors:  c("icmp_errors_total", "ICMP errors seen."),
		kernelDrops: c("kernel_drops_total", "Frames the kernel dropped because a tap socket's buffer was full (PACKET_STATISTICS): measurements lost."),
		tapErrors:   c("tap_errors_total", "Taps that could not be opened."),
		tapEvents:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_probe_tap_events_total", Help: "Taps opened and closed."}, []string{"event"}),
		expRecords:  c("export_records_total", "Measurement records exported (IPFIX data records)."),
		expDgrams:   c("export_datagrams_total", "IPFIX datagrams sent."),
		expErrors:   c("export_errors_total", "IPFIX datagrams that could not be sent (their records are lost)."),
	}
	un := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_probe_unmatched_total", Help: "Answers without a pending request (SYN-ACK or echo reply whose SYN/request was not seen or already expired)."}, []string{"kind"})
	m.unmatched[0], m.unmatched[1] = un.WithLabelValues("synack"), un.WithLabelValues("echo_reply")
	ev := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_probe_events_total", Help: "Measurements by event and outcome."}, []string{"event", "outcome"})
	for o, name := range map[uint8]string{decoder.ProbeOutcomeEstablished: "established", decoder.ProbeOutcomeRefused: "refused", decoder.ProbeOutcomeTimedOut: "timed_out", decoder.ProbeOutcomeUnreachable: "unreachable"} {
		m.handshakes[o] = ev.WithLabelValues("handshake", name)
	}
	m.closes[decoder.ProbeOutcomeFIN] = ev.WithLabelValues("close", "fin")
	m.closes[decoder.ProbeOutcomeRST] = ev.WithLabelValues("close", "rst")
	m.echoes[decoder.ProbeOutcomeEstablished] = ev.WithLabelValues("echo", "answered")
	m.echoes[decoder.ProbeOutcomeTimedOut] = ev.WithLabelValues("echo", "timed_out")
	for i := range m.handshakes {
		for _, arr := range []*[7]prometheus.Counter{&m.handshakes, &m.closes, &m.echoes} {
			if arr[i] == nil {
				arr[i] = prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"})
			}
		}
	}
	acks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmflow_probe_final_acks_total", Help: "Handshakes answered at a server's tap, by what became of their final ACK: timed (SYN-ACK → ACK measured), missed (not seen: it came before the filter slot was attached, or never), no_slot (all probe.ack_slots in use: not measured); other: segments a slot passed that ended nothing."}, []string{"result"})
	for i, name := range []string{ackTimed: "timed", ackMissed: "missed", ackNoSlot: "no_slot", ackOther: "other"} {
		m.acks[i] = acks.WithLabelValues(name)
	}
	m.filterUpdates = c("filter_updates_total", "Filter re-attachments (SO_ATTACH_FILTER) for the final-ACK slots.")
	m.filterErrors = c("filter_errors_total", "Filter re-attachments that failed.")
	cs := []prometheus.Collector{acks, m.filterUpdates, m.filterErrors, m.frames, m.parseErrors, m.overflow, m.synRetries, m.icmpErrors, m.kernelDrops,
		m.tapErrors, m.tapEvents, m.expRecords, m.expDgrams, m.expErrors, un, ev,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_probe_taps", Help: "Taps watched."},
			func() float64 { return float64(p.tapCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmflow_probe_pending", Help: "Pending handshakes, echo requests and recent closes, all taps."},
			func() float64 { return float64(p.pendingCount()) }),
	}
	for _, x := range cs {
		if err := reg.Register(x); err != nil {
			return nil, fmt.Errorf("probe metrics: %w", err)
		}
	}
	return m, nil
}
