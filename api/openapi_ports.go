package api

// OpenAPI entries of the per-VM port counters (ports.go), added to the
// document by buildOpenAPI.

func addPortsDoc(doc obj) {
	paths := doc["paths"].(obj)
	schemas := doc["components"].(obj)["schemas"].(obj)
	nullNum := func(desc string) obj { return obj{"type": "number", "nullable": true, "description": desc} }
	rates := obj{
		"seconds":         num("time covered by the counter deltas (sum of the intervals between the port's counter samples)"),
		"samples":         integer("counter samples that gave a delta"),
		"resets":          integer("samples that restarted the baseline (agent restart, port reset): they count nothing, so no spike"),
		"in_octets":       integer("octets the switch received from the port (the VM sent), delta"),
		"out_octets":      integer("octets the switch sent to the port (the VM received), delta"),
		"in_packets":      integer("packets received from the VM (unicast+multicast+broadcast), delta"),
		"out_packets":     integer("packets sent to the VM, delta"),
		"in_errors":       integer("ifInErrors delta"),
		"out_errors":      integer("ifOutErrors delta"),
		"in_discards":     integer("ifInDiscards delta (dropped on receive from the VM)"),
		"out_discards":    integer("ifOutDiscards delta (dropped on the way to the VM, e.g. a full tap queue)"),
		"in_bps":          num("in_octets·8 / seconds"),
		"out_bps":         num("out_octets·8 / seconds"),
		"in_pps":          num("in_packets / seconds"),
		"out_pps":         num("out_packets / seconds"),
		"in_errors_ps":    num("in_errors / seconds"),
		"out_errors_ps":   num("out_errors / seconds"),
		"in_discards_ps":  num("in_discards / seconds"),
		"out_discards_ps": num("out_discards / seconds"),
		"if_speed":        integer("ifSpeed, bit/s (0: unknown)"),
		"in_utilisation":  nullNum("in_bps / if_speed (null when the speed is unknown)"),
		"out_utilisation": nullNum("out_bps / if_speed (null when the speed is unknown)"),
	}
	rateKeys := []string{"seconds", "samples", "resets", "in_octets", "out_octets", "in_packets", "out_packets",
		"in_errors", "out_errors", "in_discards", "out_discards", "in_bps", "out_bps", "in_pps", "out_pps",
		"in_errors_ps", "out_errors_ps", "in_discards_ps", "out_discards_ps", "if_speed", "in_utilisation", "out_utilisation"}
	schemas["PortRates"] = object("A VM's switch ports' counters in a series point: deltas summed, rates the sums of the ports' rates. "+
		"Directions are the switch's: in = from the VM, out = to the VM.", rates, rateKeys...)
	port := obj{
		"agent":     str("sFlow agent address"),
		"sub_agent": integer("sFlow sub-agent"),
		"if_index":  integer("ifIndex on the agent's host"),
		"name":      str("OVS port name (the tap)"),
		"host":      str("hypervisor (from the agent's exporter identity)"),
		"vm":        str("the VM whose tap it is"),
		"time":      dateTime("end of the latest window with a counter sample of the port"),
	}
	for k, v := range rates {
		port[k] = v
	}
	schemas["Port"] = object("One switch port's interface counters (sFlow counter samples) over a window or range. "+
		"Directions are the switch's: in = from the VM, out = to the VM.", port,
		append([]string{"agent", "sub_agent", "if_index", "name", "host", "vm"}, rateKeys...)...)
	vm := schemas["VM"].(obj)["properties"].(obj)
	vm["ports"] = arrayOf(ref("Port"), "GET /api/v1/vms: the VM's switch ports, each port's latest window with a counter sample within the last 5 minutes")
	schemas["VMSeriesPoint"].(obj)["properties"].(obj)["port"] = ref("PortRates")
	schemas["VMDetail"] = object("One VM with its switch ports' counters summed over the range.", obj{
		"vm":        obj{"allOf": []any{ref("VM")}, "nullable": true, "description": "the inventory record (null when the VM is known from port counters only)"},
		"from":      dateTime("range start (exclusive)"),
		"to":        dateTime("range end (inclusive)"),
		"ports":     arrayOf(ref("Port"), "the VM's ports: deltas summed over the range, rates over the time the samples cover"),
		"resources": obj{"allOf": []any{ref("VMResourcesResponse")}, "description": "the VM's resources now (as GET /api/v1/vms/{name}/resources); absent without figures"},
	}, "vm", "from", "to", "ports")
	paths["/api/v1/vms/{name}"] = obj{"get": obj{
		"operationId": "vmDetail",
		"summary":     "One VM: inventory record and its switch ports' errors, discards, octets and utilisation over a range",
		"description": "Port counters come from sFlow counter samples (generic interface counters), attributed to the VM by the OVS port name (tap) on the agent's hypervisor. " +
			"Counter wraps (32-bit) and agent restarts or port resets are handled without spikes (README). Read from the in-memory store.",
		"parameters": []any{pref("name"), pref("since"), pref("from"), pref("to")},
		"responses": obj{
			"200": jsonResp("the VM", "VMDetail"),
			"400": errResp("bad query parameter (unknown parameters are refused too); `parameter` names it"),
			"404": errResp("the VM is not in the inventory and had no port counters in the range"),
			"500": errResp("the store failed"),
			"503": errResp("no store configured"),
		},
	}}
}
