package api

import "encoding/json"

// The OpenAPI 3.0 document, built as Go values. A test checks that its
// paths and methods equal the routes gin registered, that every documented
// query parameter is accepted, and that real responses match the schemas.

type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func str(desc string) obj { return obj{"type": "string", "description": desc} }

func num(desc string) obj { return obj{"type": "number", "description": desc} }

func integer(desc string) obj { return obj{"type": "integer", "description": desc} }

func boolean(desc string) obj { return obj{"type": "boolean", "description": desc} }

func dateTime(desc string) obj {
	return obj{"type": "string", "format": "date-time", "description": desc}
}

func arrayOf(items obj, desc string) obj {
	return obj{"type": "array", "items": items, "description": desc}
}

func interval(desc string) obj {
	return obj{"type": "array", "items": obj{"type": "number"}, "minItems": 2, "maxItems": 2, "description": desc}
}

// object builds a closed object schema; required lists the always-present keys.
func object(desc string, props obj, required ...string) obj {
	o := obj{"type": "object", "properties": props, "additionalProperties": false}
	if desc != "" {
		o["description"] = desc
	}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func qparam(name, desc string, schema obj, example any) obj {
	return obj{"name": name, "in": "query", "required": false, "description": desc, "schema": schema, "example": example}
}

func pparam(name, desc string, example string) obj {
	return obj{"name": name, "in": "path", "required": true, "description": desc, "schema": obj{"type": "string"}, "example": example}
}

func pref(name string) obj { return obj{"$ref": "#/components/parameters/" + name} }

func jsonResp(desc, schema string) obj {
	return obj{"description": desc, "content": obj{"application/json": obj{"schema": ref(schema)}}}
}

func errResp(desc string) obj { return jsonResp(desc, "Error") }

func buildOpenAPI(withUI bool) ([]byte, error) {
	enumStrings := func(vals []string, def string) obj {
		return obj{"type": "string", "enum": vals, "default": def}
	}
	params := obj{
		"since": qparam("since", "Range length back from `to` (Go duration: 30s, 5m, 1h30m; at most 9600h). Exclusive with `from`. Default 5m for /pairs, 1h for series.",
			obj{"type": "string"}, "15m"),
		"from": qparam("from", "Range start (exclusive): RFC 3339 or unix seconds. Exclusive with `since`; must be before `to`.",
			obj{"type": "string"}, "2025-01-01T00:00:00Z"),
		"to": qparam("to", "Range end (inclusive): RFC 3339 or unix seconds. Default: now.",
			obj{"type": "string"}, "1893456000"),
		"limit": qparam("limit", "Maximum pairs returned, 1..api.max_limit (default 50).",
			obj{"type": "integer", "minimum": 1, "default": DefaultLimit}, 10),
		"sort": qparam("sort", "Descending sort key.", enumStrings(sortNames, "bytes"), "packets"),
		"source": qparam("source", "Export protocol whose numbers are used. `auto`: per window and directed pair, IPFIX if present, else NetFlow v9, else sFlow, so that two protocols observing the same traffic are never added.",
			enumStrings(sourceNames, "auto"), "sflow"),
		"vm":     qparam("vm", "Only pairs whose source or destination VM has this name.", obj{"type": "string"}, "web-1"),
		"tenant": qparam("tenant", "Only pairs whose source or destination is in this tenant.", obj{"type": "string"}, "acme"),
		"host":   qparam("host", "Only pairs whose source or destination VM runs on this hypervisor.", obj{"type": "string"}, "hv1"),
		"step": qparam("step", "Point spacing (Go duration). Absent: one point per aggregation window, stamped at the window end. "+
			"Given: each point sums the windows whose end falls in a step bucket (a, a+step], buckets aligned to multiples of step since the Unix epoch, "+
			"stamped at the bucket end; rates are over the bucket's overlap with the covered range. "+
			"Must be at least the aggregation window and a multiple of it, and give at most 100000 points for the range.",
			obj{"type": "string"}, "1m"),
		"name": pparam("name", "VM name or UUID.", "web-1"),
		"src":  pparam("src", "Source endpoint: VM name or UUID, or an IP address.", "web-1"),
		"dst":  pparam("dst", "Destination endpoint: VM name or UUID, or an IP address.", "10.0.0.9"),
	}

	endpoint := object("One side of a pair. `vm` is empty for an endpoint that is no known VM; `ip` then identifies it.", obj{
		"vm":          str("VM name; empty for a non-VM endpoint"),
		"uuid":        str("VM UUID"),
		"host":        str("hypervisor of the VM"),
		"tenant":      str("tenant (id) of the VM"),
		"tenant_name": str("tenant display name, when the inventory has one (e.g. the Nova project name)"),
		"ip":          str("IP address (last seen for a VM)"),
		"mac":         str("MAC address (last seen)"),
	}, "vm", "uuid", "host", "tenant", "ip", "mac")
	protoCount := object("", obj{"bytes": num("estimated bytes"), "packets": num("estimated packets")}, "bytes", "packets")
	pair := object("One directed pair summed over the windows of the range.", obj{
		"src":          ref("Endpoint"),
		"dst":          ref("Endpoint"),
		"bytes":        num("Ethernet frame bytes (no FCS), estimated by scaling each sample by its sampling rate"),
		"packets":      num("estimated packets"),
		"samples":      integer("samples (or flow records) behind the estimates"),
		"flows":        integer("distinct 5-tuples, summed over windows: an UPPER BOUND of the distinct flows in the range (a flow spanning several windows counts once per window)"),
		"bps":          num("bits per second over the covered duration of the range (first window start to last window end among all windows in the range, not only those where the pair appeared)"),
		"pps":          num("packets per second over the covered duration"),
		"bytes_ci95":   interval("95% confidence interval [lo, hi] of bytes (variances of the windows add)"),
		"packets_ci95": interval("95% confidence interval [lo, hi] of packets"),
		"tcp": object("scaled TCP flag counts", obj{
			"syn": num("SYN without ACK"), "synack": num("SYN+ACK"), "rst": num("RST"), "fin": num("FIN"),
		}, "syn", "synack", "rst", "fin"),
		"protocols": object("protocol breakdown", obj{
			"tcp": ref("ProtoCount"), "udp": ref("ProtoCount"), "icmp": ref("ProtoCount"), "other": ref("ProtoCount"),
		}, "tcp", "udp", "icmp", "other"),
		"icmp_errors":     num("ICMP/ICMPv6 errors (unreachable, time exceeded, parameter problem), scaled"),
		"dropped_packets": num("packets OVS reported dropped (IPFIX)"),
		"dropped_bytes":   num("bytes OVS reported dropped (IPFIX)"),
		"top_ports": arrayOf(object("", obj{
			"proto": integer("IP protocol number"), "port": integer("destination port"), "bytes": num("estimated bytes"),
		}, "proto", "port", "bytes"), "top destination ports by bytes (approximate across windows: each window keeps its top 8)"),
		"source":      str("export protocol(s) the numbers come from, e.g. `ipfix`, or `ipfix+sflow` when `auto` chose differently in different windows"),
		"windows":     integer("windows of the range in which the pair appeared"),
		"conn_health": connHealthSchema(), // health.go
		"latency":     ref("Latency"),
	}, "src", "dst", "bytes", "packets", "samples", "flows", "bps", "pps", "bytes_ci95", "packets_ci95",
		"tcp", "protocols", "icmp_errors", "dropped_packets", "dropped_bytes", "top_ports", "source", "windows")
	pairs := object("", obj{
		"from":         dateTime("range start (exclusive)"),
		"to":           dateTime("range end (inclusive)"),
		"source":       str("the source parameter applied"),
		"sort":         str("the sort key applied"),
		"windows":      integer("windows ending in the range"),
		"covered_from": obj{"type": "string", "format": "date-time", "nullable": true, "description": "start of the first window in the range (null when none)"},
		"covered_to":   obj{"type": "string", "format": "date-time", "nullable": true, "description": "end of the last window in the range (null when none)"},
		"total_pairs":  integer("pairs matching before the limit"),
		"pairs":        arrayOf(ref("Pair"), "pairs, sorted descending by `sort`, at most `limit`"),
	}, "from", "to", "source", "sort", "windows", "covered_from", "covered_to", "total_pairs", "pairs")
	point := object("One window of the pair, or one step bucket with `step`.", obj{
		"time":         dateTime("window end, or step bucket end"),
		"bytes":        num("estimated bytes in the window (bucket)"),
		"packets":      num("estimated packets"),
		"bps":          num("bits per second over the window (with `step`: over the bucket, cut to the covered range)"),
		"pps":          num("packets per second over the window (bucket)"),
		"samples":      integer("samples"),
		"flows":        integer("distinct 5-tuples in the window (with `step`: summed over the bucket's windows, an upper bound)"),
		"bytes_ci95":   interval("95% interval of bytes"),
		"packets_ci95": interval("95% interval of packets"),
		"latency":      ref("Latency"),
	}, "time", "bytes", "packets", "bps", "pps", "samples", "flows", "bytes_ci95", "packets_ci95")
	series := object("Points of one directed pair. Windows (buckets) in which the pair did not appear have no point.", obj{
		"src":    ref("Endpoint"),
		"dst":    ref("Endpoint"),
		"from":   dateTime("range start (exclusive)"),
		"to":     dateTime("range end (inclusive)"),
		"step":   str("the point spacing applied (Go duration): the `step` parameter, else the aggregation window; empty when unknown"),
		"source": str("the source parameter applied"),
		"points": arrayOf(ref("SeriesPoint"), "oldest first"),
	}, "src", "dst", "from", "to", "step", "source", "points")
	vmPoint := object("One window (or step bucket) of a VM's traffic.", obj{
		"time":       dateTime("window end, or step bucket end"),
		"tx_bytes":   num("estimated bytes sent: pairs where the VM is the source (external peers included)"),
		"tx_packets": num("estimated packets sent"),
		"rx_bytes":   num("estimated bytes received: pairs where the VM is the destination"),
		"rx_packets": num("estimated packets received"),
		"tx_bps":     num("bits per second sent over the window (bucket)"),
		"rx_bps":     num("bits per second received over the window (bucket)"),
	}, "time", "tx_bytes", "tx_packets", "rx_bytes", "rx_packets", "tx_bps", "rx_bps")
	vmSeries := object("Traffic sent and received by one VM. Windows (buckets) in which it had no traffic have no point.", obj{
		"vm":     str("the VM's name"),
		"from":   dateTime("range start (exclusive)"),
		"to":     dateTime("range end (inclusive)"),
		"step":   str("the point spacing applied (Go duration): the `step` parameter, else the aggregation window; empty when unknown"),
		"source": str("the source parameter applied (per window and pair, as in /pairs)"),
		"points": arrayOf(ref("VMSeriesPoint"), "oldest first"),
	}, "vm", "from", "to", "step", "source", "points")

	addr := object("", obj{
		"ip":        str("address"),
		"source":    obj{"type": "string", "enum": []string{"static", "lease", "agent", "arp", "learned"}, "description": "where the address came from"},
		"last_seen": dateTime("when a learned address was last seen (zero time for others)"),
	}, "ip", "source")
	iface := object("", obj{
		"mac":          str("MAC address"),
		"tap":          str("host-side device"),
		"bridge":       str("bridge or network"),
		"ovs_port":     str("OVS port"),
		"interface_id": str("OVS interface id"),
		"vni":          integer("tenant network segment"),
		"addrs":        arrayOf(ref("Addr"), "IP addresses"),
	}, "mac", "addrs")
	vm := object("", obj{
		"name":        str("VM name"),
		"uuid":        str("UUID"),
		"host":        str("hypervisor"),
		"tenant":      str("tenant id"),
		"tenant_name": str("tenant name"),
		"state":       str("running, shut off, ..."),
		"source":      str("inventory source (static, libvirt:URI, ...)"),
		"stale":       boolean("its source is unreachable; kept and flagged"),
		"vcpus":       integer("virtual CPUs"),
		"memory_kib":  integer("memory"),
		"labels":      obj{"type": "object", "additionalProperties": obj{"type": "string"}},
		"interfaces":  arrayOf(ref("Interface"), "virtual NICs"),
		"prev_host":   str("host before the last live migration"),
		"moved_at":    dateTime("when the migration was seen"),
	}, "name", "source", "stale", "interfaces")
	conflict := object("Two VMs claiming one MAC, one IP in one VNI or one tap device, or two hosts claiming one exporter.", obj{
		"kind":   obj{"type": "string", "enum": []string{"mac", "ip", "tap", "exporter"}},
		"key":    str("the MAC, IP, tap or exporter"),
		"vms":    arrayOf(obj{"type": "string"}, "VMs (or hosts) claiming it"),
		"chose":  str("the one that wins"),
		"reason": str("which precedence rule made `chose` win (absent when not recorded)"),
	}, "kind", "key", "vms", "chose")
	vms := object("", obj{
		"vms":       arrayOf(ref("VM"), "all VMs of the inventory, by name"),
		"conflicts": arrayOf(ref("Conflict"), "MAC/IP conflicts"),
	}, "vms", "conflicts")
	source := object("", obj{
		"name":       str("unique source name"),
		"kind":       str("static, libvirt"),
		"uri":        str("libvirt URI"),
		"state":      obj{"type": "string", "enum": []string{"connected", "connecting", "down", "loaded", "error"}},
		"last_sync":  dateTime("last successful sync"),
		"vms":        integer("VMs known from it"),
		"events":     integer("events received"),
		"errors":     integer("errors"),
		"last_error": str("last error"),
	}, "name", "kind", "state", "last_sync", "vms", "events", "errors")
	sources := object("", obj{"sources": arrayOf(ref("SourceStatus"), "inventory sources")}, "sources")
	exporter := object("One exporter: (protocol, UDP source, sFlow agent+sub-agent or observation domain).", obj{
		"protocol":           obj{"type": "string", "enum": []string{"sflow", "ipfix", "netflow9"}},
		"address":            str("UDP source ip:port"),
		"agent":              str("sFlow agent address"),
		"sub_agent":          integer("sFlow sub-agent"),
		"observation_domain": integer("IPFIX observation domain / NetFlow v9 source id"),
		"datagrams":          integer("datagrams received"),
		"samples":            integer("samples / flow records decoded"),
		"decode_errors":      integer("datagrams that failed to decode"),
		"lost_datagrams":     integer("datagrams lost in transit, estimated from sequence numbers"),
		"lost_records":       integer("IPFIX records missing per the sequence numbers"),
		"reordered":          integer("datagrams arriving out of order"),
		"restarts":           integer("exporter restarts detected"),
		"last_sequence":      integer("last sequence number"),
		"first_seen":         dateTime("first datagram"),
		"last_seen":          dateTime("last datagram"),
	}, "protocol", "address", "sub_agent", "observation_domain", "datagrams", "samples", "decode_errors",
		"lost_datagrams", "lost_records", "reordered", "restarts", "last_sequence", "first_seen", "last_seen")
	exporters := object("", obj{"exporters": arrayOf(ref("ExporterStatus"), "exporters by protocol and address")}, "exporters")
	health := obj{
		"type":        "object",
		"description": "Liveness and component health. Other keys come from the components (collector, store, inventory, ...).",
		"properties": obj{
			"status":         obj{"type": "string", "enum": []string{"ok", "degraded"}},
			"started":        dateTime("process start"),
			"uptime":         str("uptime, e.g. 1h2m3s"),
			"uptime_seconds": num("uptime in seconds"),
			"memory_oldest":  obj{"type": "string", "format": "date-time", "nullable": true, "description": "start of the oldest window in the in-memory store"},
		},
		"required":             []string{"status", "started", "uptime", "uptime_seconds"},
		"additionalProperties": true,
	}
	errSchema := object("Error. `parameter` names the offending query parameter of a 400.", obj{
		"error":     str("what went wrong"),
		"parameter": str("the bad query parameter (400 only)"),
	}, "error")

	rangeErrs := obj{
		"400": errResp("bad query parameter (unknown parameters are refused too); `parameter` names it"),
		"500": errResp("the store failed"),
		"503": errResp("no store configured"),
	}
	with := func(base obj, extra obj) obj {
		out := obj{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	noParams := obj{"400": errResp("a query parameter was given; this route takes none")}

	paths := obj{
		"/api/v1/pairs": obj{"get": obj{
			"operationId": "listPairs",
			"summary":     "Top directed VM pairs over a time range",
			"description": "Sums each directed pair's windows ending in (from, to], read from the in-memory store and, for the part of the range before it, from InfluxDB history (when enabled). Bytes, packets and their variances add across windows. " +
				"`flows` is an upper bound of distinct flows. Endpoints that are no known VM have an empty `vm` and their IP.",
			"parameters": []any{pref("since"), pref("from"), pref("to"), pref("limit"), pref("sort"), pref("source"), pref("vm"), pref("tenant"), pref("host")},
			"responses":  with(rangeErrs, obj{"200": jsonResp("pairs", "PairsResponse")}),
		}},
		"/api/v1/pairs/{src}/{dst}/series": obj{"get": obj{
			"operationId": "pairSeries",
			"summary":     "Per-window points of one directed pair",
			"description": "Reads the in-memory store and, for the part of the range before it, InfluxDB history (when enabled); a step bucket may hold windows of both.",
			"parameters":  []any{pref("src"), pref("dst"), pref("since"), pref("from"), pref("to"), pref("step"), pref("source")},
			"responses": with(rangeErrs, obj{
				"200": jsonResp("points", "SeriesResponse"),
				"404": errResp("the pair has no traffic in the range"),
			}),
		}},
		"/api/v1/vms/{name}/series": obj{"get": obj{
			"operationId": "vmSeries",
			"summary":     "Per-window (or per-step) traffic sent and received by one VM",
			"description": "Sums, per window, the pairs where the VM is the source (tx) and the destination (rx), with the source selection of /pairs. " +
				"Reads the in-memory store and InfluxDB history like the pair series.",
			"parameters": []any{pref("name"), pref("since"), pref("from"), pref("to"), pref("step"), pref("source")},
			"responses": with(rangeErrs, obj{
				"200": jsonResp("points", "VMSeriesResponse"),
				"404": errResp("the VM is not in the inventory and had no traffic in the range"),
			}),
		}},
		"/api/v1/vms": obj{"get": obj{
			"operationId": "listVMs",
			"summary":     "Every VM of the inventory, with interfaces and addresses, and conflicts",
			"responses":   with(noParams, obj{"200": jsonResp("VMs", "VMsResponse")}),
		}},
		"/api/v1/inventory/sources": obj{"get": obj{
			"operationId": "listInventorySources",
			"summary":     "Health of each inventory source",
			"responses":   with(noParams, obj{"200": jsonResp("sources", "SourcesResponse")}),
		}},
		"/api/v1/exporters": obj{"get": obj{
			"operationId": "listExporters",
			"summary":     "Every exporter seen, with ingest counters and estimated loss",
			"responses":   with(noParams, obj{"200": jsonResp("exporters", "ExportersResponse")}),
		}},
		"/api/v1/health": obj{"get": obj{
			"operationId": "health",
			"summary":     "Liveness and component health",
			"responses":   with(noParams, obj{"200": jsonResp("health", "Health")}),
		}},
		"/api/v1/openapi.json": obj{"get": obj{
			"operationId": "openapi",
			"summary":     "This document",
			"responses": with(noParams, obj{"200": obj{"description": "OpenAPI 3.0 document",
				"content": obj{"application/json": obj{"schema": obj{"type": "object"}}}}}),
		}},
		"/peer/v1/windows": obj{"get": obj{
			"operationId": "peerWindows",
			"summary":     "This collector's own closed windows, for a query node (store/peer), in its compact binary form",
			"description": "Windows ending in (from, to] from the in-memory store, in store/peer's binary form (codec.go). 404 on a vmflow without a store of its own (a query node).",
			"parameters":  []any{pref("since"), pref("from"), pref("to")},
			"responses": with(rangeErrs, obj{
				"200": obj{"description": "the windows (store/peer codec)", "content": obj{"application/vnd.vmflow.windows": obj{"schema": obj{"type": "string", "format": "binary"}}}},
				"404": errResp("no local store (query node)"),
			}),
		}},
		"/metrics": obj{"get": obj{
			"operationId": "metrics",
			"summary":     "Prometheus metrics (vmflow_collector_*, vmflow_decoder_*, vmflow_aggregate_*, vmflow_store_*, vmflow_api_*, ...)",
			"responses": obj{"200": obj{"description": "Prometheus text exposition format",
				"content": obj{"text/plain": obj{"schema": obj{"type": "string"}}}}},
		}},
	}
	if withUI {
		paths["/"] = obj{"get": obj{
			"operationId": "ui",
			"summary":     "Web UI (embedded, no external resources)",
			"responses": obj{"200": obj{"description": "index.html",
				"content": obj{"text/html": obj{"schema": obj{"type": "string"}}}}},
		}}
		paths["/assets/{filepath}"] = obj{"get": obj{
			"operationId": "uiAsset",
			"summary":     "Web UI static files (JavaScript, CSS)",
			"parameters":  []any{pparam("filepath", "file path under assets/", "app.js")},
			"responses": obj{
				"200": obj{"description": "the file", "content": obj{"*/*": obj{"schema": obj{"type": "string"}}}},
				"404": obj{"description": "no such file"},
			},
		}}
	}
	reloadResult := adminPaths(paths)

	doc := obj{
		"openapi": "3.0.3",
		"info": obj{
			"title":   "vmflow API",
			"version": "1",
			"description": "Per-VM-pair traffic from OVS sFlow/IPFIX/NetFlow v9. Times are RFC 3339 (UTC). " +
				"Ranges select the aggregation windows whose end is in (from, to]. Unknown query parameters are refused with 400.",
		},
		"paths": paths,
		"components": obj{
			"parameters": params,
			"schemas": obj{
				"Error": errSchema, "Endpoint": endpoint, "ProtoCount": protoCount, "Pair": pair,
				"PairsResponse": pairs, "SeriesPoint": point, "SeriesResponse": series,
				"VMSeriesPoint": vmPoint, "VMSeriesResponse": vmSeries,
				"Addr": addr, "Interface": iface, "VM": vm, "Conflict": conflict, "VMsResponse": vms,
				"SourceStatus": source, "SourcesResponse": sources,
				"ExporterStatus": exporter, "ExportersResponse": exporters, "Health": health,
				"ReloadResult": reloadResult,
				"Latency":      latencySchema(), "LatencyHist": latencyHistSchema(), // latency.go
			},
		},
	}
	addAlertOpenAPI(paths, doc["components"].(obj)["schemas"].(obj), params)
	addResourceOpenAPI(paths, doc["components"].(obj)["schemas"].(obj))
	addConsoleDoc(doc) // console aggregate routes (openapi_console.go)
	addPortsDoc(doc)   // per-VM port counters (openapi_ports.go)
	addAccessDoc(doc)  // login routes, security scheme, 401/403/429 (access_doc.go); last: it covers every route
	return json.MarshalIndent(doc, "", "  ")
}
