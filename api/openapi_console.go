package api

// OpenAPI entries of the console's aggregate routes (overview, graph,
// capacity, pair summary), added to the document by buildOpenAPI.

func addConsoleDoc(doc obj) {
	paths := doc["paths"].(obj)
	comps := doc["components"].(obj)
	params := comps["parameters"].(obj)
	schemas := comps["schemas"].(obj)

	enum := func(vals []string, def string) obj { return obj{"type": "string", "enum": vals, "default": def} }
	nullTime := func(desc string) obj {
		return obj{"type": "string", "format": "date-time", "nullable": true, "description": desc}
	}
	params["protocol"] = qparam("protocol", "Only this IP protocol's bytes and packets of each pair count (pairs without any are left out).",
		obj{"type": "string", "enum": protocolNames}, "tcp")
	params["port"] = qparam("port", "Only pairs with this destination port among a window's top ports (approximate: each window keeps a pair's top 8); the port's bytes count, packets prorated.",
		obj{"type": "integer", "minimum": 0, "maximum": 65535}, 5432)
	params["consoleStep"] = qparam("step", "Point spacing (Go duration), a multiple of the aggregation window. Absent: the smallest multiple of the window giving at most 120 points.",
		obj{"type": "string"}, "1m")
	params["overviewGroup"] = qparam("group", "What the totals are stacked by: the source's tenant (else the destination's; `external` for neither), IP protocol, or hypervisor.",
		enum(overviewGroups, "tenant"), "protocol")
	params["overviewTop"] = qparam("top", "Groups, talkers and listeners returned (1..100); the rest of the groups is summed into `other`.",
		obj{"type": "integer", "minimum": 1, "maximum": 100, "default": 10}, 5)
	params["graphGroup"] = qparam("group", "What endpoints are grouped by: hypervisor or tenant.", enum(graphGroups, "host"), "tenant")
	params["graphLevel"] = qparam("level", "`vm`: one node per endpoint; `group`: one node per group except those in `expand`.", enum(graphLevels, "vm"), "group")
	params["graphMetric"] = qparam("metric", "Edge weight the top N is chosen by: bytes (bit/s), packets, or flows.", enum(graphMetrics, "bps"), "pps")
	params["graphTop"] = qparam("top", "Edges returned (1..5000), the heaviest by `metric`; the rest is summed into `other`.",
		obj{"type": "integer", "minimum": 1, "maximum": MaxGraphEdges, "default": 300}, 100)
	params["expand"] = qparam("expand", "Comma-separated groups shown as their endpoints at level=group.", obj{"type": "string"}, "hv1")
	params["capacityKind"] = qparam("kind", "Subjects: VMs (the busier direction of each bucket) or directed pairs.", enum(capacityKinds, "vm"), "pair")
	params["capacitySort"] = qparam("sort", "Order of `items`: soonest runout, peak, 95th percentile, or steepest growth.", enum(capacitySorts, "runout"), "peak")
	params["capacityTop"] = qparam("top", "Items returned (1..500).", obj{"type": "integer", "minimum": 1, "maximum": 500, "default": 20}, 10)
	params["capacityBPS"] = qparam("capacity_bps", "Capacity (bit/s) for the runout date. Default: api.capacity_bps.", obj{"type": "number"}, 1e9)

	filters := []any{pref("source"), pref("vm"), pref("tenant"), pref("host"), pref("protocol"), pref("port")}
	rangeP := []any{pref("since"), pref("from"), pref("to"), pref("consoleStep")}
	cat := func(lists ...[]any) []any {
		var out []any
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	errs := func(extra obj) obj {
		out := obj{
			"400": errResp("bad query parameter (unknown parameters are refused too); `parameter` names it"),
			"500": errResp("the store failed"),
			"503": errResp("no store configured"),
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	numArr := func(desc string) obj { return arrayOf(obj{"type": "number"}, desc) }

	schemas["OverviewGroup"] = object("One stacked group over the points.", obj{
		"key":     str("tenant, protocol (tcp, udp, icmp, other) or host; `other` sums the groups beyond the top N"),
		"bytes":   num("estimated bytes over the range"),
		"packets": num("estimated packets over the range"),
		"bps":     numArr("bit/s per point (aligned with `times`)"),
		"pps":     numArr("packets/s per point"),
	}, "key", "bytes", "packets", "bps", "pps")
	schemas["Talker"] = object("An endpoint's traffic in one direction.", obj{
		"name": str("VM name, or IP for a non-VM endpoint"), "vm": boolean("a VM of the inventory"),
		"host": str("hypervisor"), "tenant": str("tenant"),
		"bytes": num("estimated bytes sent (talkers) or received (listeners)"), "packets": num("estimated packets"),
		"bps": num("bit/s over the covered range"), "peers": integer("distinct peers (at most 10000 counted)"),
	}, "name", "vm", "host", "tenant", "bytes", "packets", "bps", "peers")
	schemas["OverviewResponse"] = object("", obj{
		"from": dateTime("range start (exclusive)"), "to": dateTime("range end (inclusive)"),
		"step": str("point spacing applied"), "source": str("source applied"), "group": str("grouping applied"),
		"windows":      integer("windows in the range"),
		"covered_from": nullTime("first window start"), "covered_to": nullTime("last window end"),
		"totals": object("the whole range", obj{
			"bytes": num("estimated bytes"), "packets": num("estimated packets"),
			"bps": num("bit/s over the covered range"), "pps": num("packets/s"), "flows": integer("flows summed over windows (upper bound)"),
		}, "bytes", "packets", "bps", "pps", "flows"),
		"now": object("the latest window of the range", obj{
			"time": nullTime("its end"), "bps": num("bit/s"), "pps": num("packets/s"), "pairs": integer("active directed pairs"),
		}, "time", "bps", "pps", "pairs"),
		"times":         arrayOf(obj{"type": "string", "format": "date-time"}, "point times (bucket ends), oldest first; only buckets holding windows"),
		"groups":        arrayOf(ref("OverviewGroup"), "top groups by bytes, then `other`"),
		"top_talkers":   arrayOf(ref("Talker"), "endpoints sending most"),
		"top_listeners": arrayOf(ref("Talker"), "endpoints receiving most"),
		"active_vms":    integer("VMs with traffic in the range"),
	}, "from", "to", "step", "source", "group", "windows", "covered_from", "covered_to", "totals", "now", "times", "groups", "top_talkers", "top_listeners", "active_vms")

	schemas["GraphNode"] = object("A node: an endpoint, or a collapsed group.", obj{
		"id":   str("`vm:NAME`, `ip:ADDR` or `group:NAME`: what edges refer to"),
		"name": str("VM name, IP or group name"), "kind": obj{"type": "string", "enum": []string{"vm", "ip", "group"}},
		"group": str("its group (host or tenant; `external` for non-VM endpoints, `unknown` for VMs without one)"),
		"host":  str("hypervisor (endpoints)"), "tenant": str("tenant (endpoints)"),
		"members": integer("endpoints a group node stands for (1 otherwise)"),
		"bps_out": num("bit/s sent, all its edges (also those in `other`)"), "bps_in": num("bit/s received"),
		"pps_out": num("packets/s sent"), "pps_in": num("packets/s received"),
		"internal_bps": num("bit/s inside a collapsed group (or to itself)"),
	}, "id", "name", "kind", "group", "host", "tenant", "members", "bps_out", "bps_in", "pps_out", "pps_in", "internal_bps")
	schemas["GraphEdge"] = object("A directed edge summed over the range.", obj{
		"src": str("node id"), "dst": str("node id"),
		"bytes": num("estimated bytes"), "packets": num("estimated packets"),
		"bps": num("bit/s over the covered range"), "pps": num("packets/s"), "flows": integer("flows summed over windows (upper bound)"),
	}, "src", "dst", "bytes", "packets", "bps", "pps", "flows")
	schemas["GraphResponse"] = object("", obj{
		"from": dateTime("range start"), "to": dateTime("range end"), "source": str("source applied"),
		"group": str("grouping"), "level": str("level"), "metric": str("edge metric"), "top": integer("edge limit applied"),
		"expanded": arrayOf(obj{"type": "string"}, "groups expanded"),
		"windows":  integer("windows in the range"), "covered_from": nullTime("first window start"), "covered_to": nullTime("last window end"),
		"window_seconds": num("the aggregation window; 0 when unknown"),
		"total_nodes":    integer("nodes at this level before the top N"), "total_edges": integer("edges before the top N"),
		"groups": arrayOf(obj{"type": "string"}, "every group seen"),
		"nodes":  arrayOf(ref("GraphNode"), "nodes of the returned edges, and every group node"),
		"edges":  arrayOf(ref("GraphEdge"), "top edges, heaviest first"),
		"other": object("the edges beyond the top N, summed", obj{
			"edges": integer("how many"), "bytes": num("bytes"), "packets": num("packets"),
			"bps": num("bit/s"), "pps": num("packets/s"), "flows": integer("flows"),
		}, "edges", "bytes", "packets", "bps", "pps", "flows"),
	}, "from", "to", "source", "group", "level", "metric", "top", "expanded", "windows", "window_seconds", "covered_from", "covered_to",
		"total_nodes", "total_edges", "groups", "nodes", "edges", "other")

	schemas["CapacityItem"] = object("One subject's capacity statistics over the range.", obj{
		"subject": str("VM name, or `SRC → DST`"), "vm": str("kind=vm"), "src": str("kind=pair"), "dst": str("kind=pair"),
		"host": str("hypervisor (of the source for a pair)"), "tenant": str("tenant"),
		"peak_bps": num("highest bucket"), "p95_bps": num("95th percentile of the buckets (nearest rank; silent buckets count as 0)"),
		"mean_bps": num("mean of the buckets"), "trend_bps": num("least-squares trend at the range end"),
		"slope_bps_per_day": num("trend slope"), "growth_pct_per_day": num("slope relative to the mean, percent per day"),
		"forecast_bps": num("trend at forecast_at"),
		"runout":       nullTime("when the trend reaches capacity_bps (null: never, or beyond 10 years)"),
		"exceeded":     boolean("the trend is already at or above capacity_bps"),
		"bps":          numArr("bit/s per bucket (aligned with `times`)"),
	}, "subject", "host", "tenant", "peak_bps", "p95_bps", "mean_bps", "trend_bps", "slope_bps_per_day", "growth_pct_per_day",
		"forecast_bps", "runout", "exceeded", "bps")
	schemas["CapacityResponse"] = object("", obj{
		"from": dateTime("range start"), "to": dateTime("range end"), "kind": str("kind"), "step": str("bucket size"),
		"source": str("source"), "sort": str("sort"), "capacity_bps": num("capacity applied"),
		"forecast_at": dateTime("range end + range length"), "windows": integer("windows in the range"),
		"covered_from": nullTime("first window start"), "covered_to": nullTime("last window end"),
		"times":          arrayOf(obj{"type": "string", "format": "date-time"}, "bucket ends"),
		"total_subjects": integer("subjects before the top N"),
		"items":          arrayOf(ref("CapacityItem"), "top subjects by `sort`"),
		"risers":         arrayOf(ref("CapacityItem"), "up to 5 steepest rising trends"),
		"fallers":        arrayOf(ref("CapacityItem"), "up to 5 steepest falling trends"),
	}, "from", "to", "kind", "step", "source", "sort", "capacity_bps", "forecast_at", "windows", "covered_from", "covered_to",
		"times", "total_subjects", "items", "risers", "fallers")

	schemas["PairSource"] = object("What one export protocol saw of the pair.", obj{
		"source": str("sflow, ipfix, netflow9"), "bytes": num("estimated bytes"), "packets": num("estimated packets"),
		"samples": integer("samples or records"), "flows": integer("flows (upper bound)"), "bps": num("bit/s over the covered range"),
		"bytes_ci95": interval("95% interval of bytes"), "windows": integer("windows it appeared in"),
	}, "source", "bytes", "packets", "samples", "flows", "bps", "bytes_ci95", "windows")
	schemas["PairDetailResponse"] = object("", obj{
		"from": dateTime("range start"), "to": dateTime("range end"), "source": str("source applied"),
		"windows": integer("windows in the range"), "covered_from": nullTime("first window start"), "covered_to": nullTime("last window end"),
		"window_seconds": num("the aggregation window (a series `step` must be a multiple of it); 0 when unknown"),
		"pair":           ref("Pair"),
		"by_source":      arrayOf(ref("PairSource"), "each export protocol on its own"),
	}, "from", "to", "source", "windows", "window_seconds", "covered_from", "covered_to", "pair", "by_source")

	paths["/api/v1/overview"] = obj{"get": obj{
		"operationId": "overview",
		"summary":     "The whole cloud's traffic over a range: stacked totals, latest rates, top talkers and listeners",
		"description": "One pass over the range's windows (memory and InfluxDB history as /pairs). Default range 1h.",
		"parameters":  cat(rangeP, []any{pref("overviewGroup"), pref("overviewTop")}, filters),
		"responses":   errs(obj{"200": jsonResp("overview", "OverviewResponse")}),
	}}
	paths["/api/v1/graph"] = obj{"get": obj{
		"operationId": "graph",
		"summary":     "Who talks to whom: nodes and weighted directed edges, top N with an `other` bucket, grouped by host or tenant",
		"description": "Default range 5m. The answer's size is bounded by `top` (and the groups), whatever the number of pairs.",
		"parameters":  cat([]any{pref("since"), pref("from"), pref("to"), pref("graphGroup"), pref("graphLevel"), pref("graphMetric"), pref("graphTop"), pref("expand")}, filters),
		"responses":   errs(obj{"200": jsonResp("graph", "GraphResponse")}),
	}}
	paths["/api/v1/capacity"] = obj{"get": obj{
		"operationId": "capacity",
		"summary":     "Capacity planning per VM or pair: peak, p95, trend, forecast, runout, risers and fallers",
		"description": "Default range 168h (7 days); the console also asks for 720h. Answers from whatever history the store holds.",
		"parameters":  cat(rangeP, []any{pref("capacityKind"), pref("capacitySort"), pref("capacityTop"), pref("capacityBPS")}, filters),
		"responses":   errs(obj{"200": jsonResp("capacity", "CapacityResponse")}),
	}}
	paths["/api/v1/pairs/{src}/{dst}"] = obj{"get": obj{
		"operationId": "pairDetail",
		"summary":     "One directed pair over a range, and each export protocol's view of it",
		"parameters":  []any{pref("src"), pref("dst"), pref("since"), pref("from"), pref("to"), pref("source")},
		"responses":   errs(obj{"200": jsonResp("pair", "PairDetailResponse"), "404": errResp("the pair has no traffic in the range")}),
	}}
}
