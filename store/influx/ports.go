package influx

import (
	"strconv"

	"github.com/vmflow/vmflow/aggregate"
)

// MeasurementPort holds the switch ports' interface counters per window
// (aggregate.PortStats, from sFlow counter samples): one series per port
// (tags host, port, tenant, vm), so its cardinality is the number of VM
// NICs (plus unattributed ports: vm "-"), whatever the traffic. Fields are
// the window's counter deltas (integers), the covered time and the rates
// over it; see the README, "Errors and drops per VM port".
const MeasurementPort = "vm_port"

// appendPort appends the vm_port point of p, stamped like the window's
// other points (prepare must have run).
func (e *encoder) appendPort(b []byte, p *aggregate.PortStats) []byte {
	b = append(b, MeasurementPort...)
	host := p.Host
	if host == "" {
		host = p.Key.Agent.String()
		if p.Key.SubAgent != 0 {
			host += "/" + strconv.FormatUint(uint64(p.Key.SubAgent), 10)
		}
	}
	port := p.Name
	if port == "" {
		port = "ifindex" + strconv.FormatUint(uint64(p.Key.IfIndex), 10)
	}
	b = appendTag(b, "host", host)
	b = appendTag(b, "port", port)
	b = appendTag(b, "tenant", orNone(p.Tenant))
	b = appendTag(b, "vm", orNone(p.VM))
	f := fieldWriter{b: b, first: true}
	f.float("seconds", p.Seconds)
	f.int("samples", int64(p.Samples))
	if p.Resets > 0 {
		f.int("resets", int64(p.Resets))
	}
	f.int("in_octets", int64(p.InOctets))
	f.int("out_octets", int64(p.OutOctets))
	f.int("in_packets", int64(p.InPackets))
	f.int("out_packets", int64(p.OutPackets))
	f.int("in_errors", int64(p.InErrors))
	f.int("out_errors", int64(p.OutErrors))
	f.int("in_discards", int64(p.InDiscards))
	f.int("out_discards", int64(p.OutDiscards))
	if p.Seconds > 0 {
		f.float("in_bps", p.Rate(p.InOctets)*8)
		f.float("out_bps", p.Rate(p.OutOctets)*8)
		f.float("in_pps", p.Rate(p.InPackets))
		f.float("out_pps", p.Rate(p.OutPackets))
		f.float("in_errors_ps", p.Rate(p.InErrors))
		f.float("out_errors_ps", p.Rate(p.OutErrors))
		f.float("in_discards_ps", p.Rate(p.InDiscards))
		f.float("out_discards_ps", p.Rate(p.OutDiscards))
	}
	if p.IfSpeed > 0 {
		f.int("if_speed", int64(p.IfSpeed))
		if u := p.Utilisation(p.InOctets); u >= 0 {
			f.float("in_util", u)
		}
		if u := p.Utilisation(p.OutOctets); u >= 0 {
			f.float("out_util", u)
		}
	}
	return e.appendTimestamp(f.b)
}
