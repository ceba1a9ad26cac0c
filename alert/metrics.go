package alert

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	alerts         *prometheus.GaugeVec
	transitions    *prometheus.CounterVec
	evalSeconds    prometheus.Histogram
	windows        prometheus.Counter
	windowsDropped prometheus.Counter
	series         prometheus.Gauge
	peers          prometheus.Gauge
	ruleErrors     prometheus.Counter
	ruleOK         prometheus.Gauge
	rules          prometheus.Gauge
	seriesDropped  prometheus.Counter
	peersDropped   prometheus.Counter
	alertsDropped  prometheus.Counter
	snapshotErrors prometheus.Counter
	snapshotBytes  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, _ *Engine) (*metrics, error) {
	m := &metrics{
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vmflow_alerts", Help: "Alerts by severity (P0..P4) and state (pending, firing).",
		}, []string{"severity", "state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_alert_transitions_total", Help: "Alerts that started firing or resolved, by severity.",
		}, []string{"severity", "state"}),
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vmflow_alert_evaluation_seconds", Help: "Time to evaluate every rule on one window.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		windows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_alert_windows_total", Help: "Windows evaluated.",
		}),
		windowsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_alert_windows_dropped_total", Help: "Windows not evaluated because the evaluation hand-off (alert.queue) was full.",
		}),
		series: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_alert_baseline_series", Help: "Series tracked by dynamic baselines (all rules).",
		}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_alert_peer_memory_entries", Help: "(VM, peer) entries of the new-peer memory.",
		}),
		ruleErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_alert_rules_file_errors_total", Help: "Rules file reloads that failed (the last good rules are kept).",
		}),
		ruleOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_alert_rules_file_ok", Help: "1 when the rules in force are the rules file's current content, 0 after a failed reload.",
		}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_alert_rules", Help: "Rules loaded.",
		}),
		seriesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_alert_baseline_series_dropped_total", Help: "New baseline series not tracked because alert.max_series was reached.",
		}),
		peersDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_alert_peer_memory_dropped_total", Help: "New peers not remembered because alert.max_peers was reached.",
		}),
		alertsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_alert_alerts_dropped_total", Help: "Alerts not raised because alert.max_alerts alerts were pending or firing.",
		}),
		snapshotErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_alert_snapshot_errors_total", Help: "Snapshot writes or reads that failed.",
		}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vmflow_alert_snapshot_bytes", Help: "Size of the last snapshot written.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.alerts, m.transitions, m.evalSeconds, m.windows, m.windowsDropped,
			m.series, m.peers, m.ruleErrors, m.ruleOK, m.rules, m.seriesDropped, m.peersDropped,
			m.alertsDropped, m.snapshotErrors, m.snapshotBytes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// updateGauges refreshes the state gauges. Caller holds mu.
func (e *Engine) updateGauges() {
	var counts [5][2]int
	for _, a := range e.alerts {
		s := 0
		if a.state == StateFiring {
			s = 1
		}
		counts[a.rule.sevRank][s]++
	}
	for sev := 0; sev < 5; sev++ {
		e.m.alerts.WithLabelValues("P"+strconv.Itoa(sev), StatePending).Set(float64(counts[sev][0]))
		e.m.alerts.WithLabelValues("P"+strconv.Itoa(sev), StateFiring).Set(float64(counts[sev][1]))
	}
	e.m.series.Set(float64(e.st.series.len()))
	e.m.peers.Set(float64(len(e.st.peers)))
}
