package influx

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/query"

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
	// The port's identity as fields (no series): history reads rebuild
	// aggregate.PortKey from them.
	f.addr("agent", p.Key.Agent)
	if p.Key.SubAgent != 0 {
		f.int("sub_agent", int64(p.Key.SubAgent))
	}
	f.int("if_index", int64(p.Key.IfIndex))
	f.int("interval", e.ival)
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

// fillPorts adds the vm_port points of (from, to] to the windows by end
// time (a window holding only ports is created).
func (r *Reader) fillPorts(ctx context.Context, from, to time.Time, wins map[int64]*aggregate.Window) error {
	flux := fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => r._measurement == %q)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		fluxString(r.cfg.Bucket), rangeFor(from, to), MeasurementPort)
	return r.query(ctx, flux, func(rec *query.FluxRecord) error {
		v := rec.Values()
		end := rec.Time()
		w := wins[end.UnixNano()]
		if w == nil {
			w = &aggregate.Window{End: end, Start: end}
			wins[end.UnixNano()] = w
		}
		if iv := inum(v["interval"]); iv > 0 {
			if s := end.Add(-time.Duration(iv) * time.Second); s.Before(w.Start) {
				w.Start = s
			}
		}
		w.Ports = append(w.Ports, portFromRecord(v))
		return nil
	})
}

// portFromRecord rebuilds a port's window from a pivoted vm_port row.
func portFromRecord(v map[string]any) aggregate.PortStats {
	u := func(k string) uint64 { return uint64(max(inum(v[k]), 0)) }
	p := aggregate.PortStats{
		Name: str(v["port"]), Host: str(v["host"]), VM: str(v["vm"]), Tenant: str(v["tenant"]),
		Seconds: fnum(v["seconds"]), Samples: uint32(u("samples")), Resets: uint32(u("resets")),
		IfSpeed:  u("if_speed"),
		InOctets: u("in_octets"), OutOctets: u("out_octets"), InPackets: u("in_packets"), OutPackets: u("out_packets"),
		InErrors: u("in_errors"), OutErrors: u("out_errors"), InDiscards: u("in_discards"), OutDiscards: u("out_discards"),
	}
	p.Key.Agent, _ = netip.ParseAddr(str(v["agent"]))
	p.Key.SubAgent, p.Key.IfIndex = uint32(u("sub_agent")), uint32(u("if_index"))
	if p.VM == NoValue {
		p.VM = ""
	}
	if p.Tenant == NoValue {
		p.Tenant = ""
	}
	if strings.HasPrefix(p.Name, "ifindex") && p.Name == "ifindex"+strconv.FormatUint(uint64(p.Key.IfIndex), 10) {
		p.Name = "" // no name was sent
	}
	if p.Key.Agent.IsValid() && p.Host == p.Key.Agent.String() {
		p.Host = "" // not mapped to a hypervisor
	}
	return p
}
