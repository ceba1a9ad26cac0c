package influx

import (
	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

func isProbePair(p *aggregate.Pair) bool { return p.Key.Source == decoder.SourceProbe }

// The probe's latency (aggregate.Latency) is written as fields of the
// probe's own vm_pair point (tag source=probe, no traffic fields, so
// traffic queries and panels never see it): no extra measurement, and a
// probed pair costs one series more (its source=probe point), while pairs
// without a probe write nothing more. Quantiles (µs) are the
// window's; the counts are sums that rollups may add up (quantiles cannot
// be merged in InfluxDB: exact merges are the memory store's).
func appendLatencyFields(f *fieldWriter, l *aggregate.Latency) {
	if l == nil {
		return
	}
	hist := func(prefix string, h *aggregate.Hist) {
		if h.N == 0 {
			return
		}
		f.int(prefix+"_count", int64(h.N))
		f.float(prefix+"_p50_us", h.Quantile(0.5))
		f.float(prefix+"_p95_us", h.Quantile(0.95))
		f.float(prefix+"_p99_us", h.Quantile(0.99))
		f.float(prefix+"_max_us", float64(h.Max))
		f.float(prefix+"_sum_us", h.Sum)
	}
	hist("latency", &l.Handshake)
	hist("guest", &l.Guest)
	hist("echo", &l.Echo)
	hist("ack", &l.Ack)
	if v, ok := l.Network(0.5); ok {
		f.float("network_p50_us", v)
		v, _ = l.Network(0.95)
		f.float("network_p95_us", v)
	}
	c := l.Counts()
	f.int("connect_attempts", int64(c.Attempts))
	f.int("connect_established", int64(c.Established))
	f.int("connect_refused", int64(c.Refused))
	f.int("connect_timed_out", int64(c.TimedOut))
	if c.Unreachable > 0 {
		f.int("connect_unreachable", int64(c.Unreachable))
	}
	f.int("syn_retries", int64(c.SYNRetries))
	f.int("fin_closed", int64(c.FINClosed))
	f.int("rst_closed", int64(c.RSTClosed))
	if c.Echoes > 0 {
		f.int("echoes", int64(c.Echoes))
		f.int("echo_lost", int64(c.EchoLost))
	}
}

// latencyFromRecord rebuilds a probe point's connection counts (history
// keeps no distributions: the quantile fields are the window's own and
// cannot be merged, so history answers have counts only).
func latencyFromRecord(src decoder.Source, v map[string]any) *aggregate.Latency {
	if src != decoder.SourceProbe {
		return nil
	}
	l := &aggregate.Latency{}
	c := &l.Client
	c.Attempts = uint64(inum(v["connect_attempts"]))
	c.Established = uint64(inum(v["connect_established"]))
	c.Refused = uint64(inum(v["connect_refused"]))
	c.TimedOut = uint64(inum(v["connect_timed_out"]))
	c.Unreachable = uint64(inum(v["connect_unreachable"]))
	c.SYNRetries = uint64(inum(v["syn_retries"]))
	c.FINClosed = uint64(inum(v["fin_closed"]))
	c.RSTClosed = uint64(inum(v["rst_closed"]))
	c.Echoes = uint64(inum(v["echoes"]))
	c.EchoLost = uint64(inum(v["echo_lost"]))
	return l
}

// appendProbeFields finishes a probe pair's point: latency fields, the
// interval, first/last, the timestamp.
func (e *encoder) appendProbeFields(f *fieldWriter, st *aggregate.Stats) []byte {
	appendLatencyFields(f, st.Lat)
	f.int("interval", e.ival)
	if st.First != 0 {
		f.int("first", st.First)
	}
	if st.Last != 0 {
		f.int("last", st.Last)
	}
	return e.appendTimestamp(f.b)
}
