package alert

import "github.com/vmflow/vmflow/aggregate"

// VM signals from the switch ports' interface counters (sFlow counter
// samples, aggregate.PortStats): per-second errors and discards over the
// time the window's counter samples cover, and utilisation against
// ifSpeed. A VM with several ports sums the rates; utilisation is its
// busiest port's.

// aggregatePorts adds the window's ports to their VMs (touch as in
// aggregateVMs). Ports not attributed to a VM are skipped.
func (e *Engine) aggregatePorts(w *aggregate.Window, touch func(uint32) *vmAgg) {
	for i := range w.Ports {
		p := &w.Ports[i]
		if p.VMID == 0 || p.Seconds <= 0 {
			continue
		}
		a := touch(uint32(p.VMID))
		if a.port < 0 {
			a.port = int32(i)
			if a.pair < 0 && a.rpair < 0 {
				a.ident = e.st.ident(aggregate.EndpointKey{VM: p.VMID}, portEndpoint(p))
			}
		}
		a.portErr[0] += p.Rate(p.InErrors)
		a.portErr[1] += p.Rate(p.OutErrors)
		a.portErr[2] += p.Rate(p.InDiscards)
		a.portErr[3] += p.Rate(p.OutDiscards)
		a.portUtil[0] = max(a.portUtil[0], p.Utilisation(p.InOctets))
		a.portUtil[1] = max(a.portUtil[1], p.Utilisation(p.OutOctets))
	}
}

// portEndpoint describes a port's VM for rule filters and alert labels.
func portEndpoint(p *aggregate.PortStats) *aggregate.Endpoint {
	return &aggregate.Endpoint{VM: p.VM, UUID: p.UUID, Host: p.Host, Tenant: p.Tenant}
}

func portSignal(sig string, a *vmAgg) float64 {
	switch sig {
	case "port_in_errors":
		return a.portErr[0]
	case "port_out_errors":
		return a.portErr[1]
	case "port_in_discards":
		return a.portErr[2]
	case "port_out_discards":
		return a.portErr[3]
	case "port_errors":
		return a.portErr[0] + a.portErr[1] + a.portErr[2] + a.portErr[3]
	case "port_in_util":
		return max(a.portUtil[0], 0)
	case "port_out_util":
		return max(a.portUtil[1], 0)
	}
	return 0
}

// healthSignal: a pair's connection health from the sampled TCP flags
// (aggregate.Stats.Health): conn_failure is the share of its SYNs without
// a SYN-ACK on the reverse pair, conn_failure_lo the lower end of its 95%
// interval (fires only when the failure is significant, not on a few
// samples), conn_refused the share answered by RST. 0 without SYNs.
func healthSignal(sig string, s *aggregate.Stats) float64 {
	switch sig {
	case "conn_failure", "conn_failure_lo", "conn_refused":
	default:
		return 0
	}
	h, ok := s.Health(0)
	if !ok {
		return 0
	}
	switch sig {
	case "conn_failure":
		return h.FailureRatio
	case "conn_failure_lo":
		return h.FailureCI95[0]
	}
	return h.RefusedRatio
}
