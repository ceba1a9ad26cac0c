package alert

import "github.com/vmflow/vmflow/aggregate"

// Latency signals of pair rules (threshold and baseline kinds), from the
// vmflow probe's measurements (aggregate.Latency). A rule with one of them
// is evaluated on the probe's pairs (directed client → server, whatever
// the rule's source) and never sees a pair without probe measurements.
var latencySignals = []string{
	"latency_p50_us", "latency_p95_us", "latency_p99_us", // SYN → SYN-ACK at the client's tap
	"network_p95_us", "guest_p95_us", // handshake split (both ends' probes)
	"echo_p95_us",
	"ack_p95_us", // SYN-ACK → ACK at the server's tap
	"connect_attempts", "connect_refused", "connect_timed_out", "connect_unreachable", "connect_failures", "connect_failure_ratio",
	"syn_retries", "rst_closed",
}

func init() { pairSignals = append(pairSignals, latencySignals...) }

func latencySignal(sig string, l *aggregate.Latency) float64 {
	if l == nil {
		return 0
	}
	switch sig {
	case "latency_p50_us":
		return l.Handshake.Quantile(0.5)
	case "latency_p95_us":
		return l.Handshake.Quantile(0.95)
	case "latency_p99_us":
		return l.Handshake.Quantile(0.99)
	case "network_p95_us":
		v, _ := l.Network(0.95)
		return v
	case "guest_p95_us":
		return l.Guest.Quantile(0.95)
	case "echo_p95_us":
		return l.Echo.Quantile(0.95)
	case "ack_p95_us":
		return l.Ack.Quantile(0.95)
	}
	c := l.Counts()
	switch sig {
	case "connect_attempts":
		return float64(c.Attempts)
	case "connect_refused":
		return float64(c.Refused)
	case "connect_timed_out":
		return float64(c.TimedOut)
	case "connect_unreachable":
		return float64(c.Unreachable)
	case "connect_failures":
		return float64(c.Refused + c.TimedOut + c.Unreachable)
	case "connect_failure_ratio":
		return l.FailureRatio()
	case "syn_retries":
		return float64(c.SYNRetries)
	case "rst_closed":
		return float64(c.RSTClosed)
	}
	return 0
}
