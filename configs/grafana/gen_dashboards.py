"""Generates configs/grafana/dashboards/*.json (run: python3 gen_dashboards.py).

The JSON files are what Grafana loads and what store/influx's tests check
and execute; edit this script and re-run it rather than editing the JSON.
"""
import json, os
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards")
DS = {"type": "influxdb", "uid": "${datasource}"}
HEAD = 'from(bucket: "${bucket}")\n  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n'
PERIOD = 'period = float(v: int(v: v.windowPeriod)) / 1000000000.0\n'
PAIRF = '  |> filter(fn: (r) => (r.src_tenant =~ /^${tenant:regex}$/ or r.dst_tenant =~ /^${tenant:regex}$/) and (r.src_host =~ /^${host:regex}$/ or r.dst_host =~ /^${host:regex}$/) and (r.src_vm =~ /^${vm:regex}$/ or r.dst_vm =~ /^${vm:regex}$/))\n'
VMF = '  |> filter(fn: (r) => r.tenant =~ /^${tenant:regex}$/ and r.host =~ /^${host:regex}$/ and r.vm =~ /^${vm:regex}$/)\n'
PAIRSEL = '  |> filter(fn: (r) => r._measurement == "vm_pair" and r.src_vm == "${src}" and r.dst_vm == "${dst}")\n'

def var_ds():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "influxdb",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}

def var_bucket():
    return {"name": "bucket", "label": "Bucket", "type": "textbox", "query": "vmflow/autogen",
            "current": {"text": "vmflow/autogen", "value": "vmflow/autogen"}, "hide": 0,
            "options": [{"selected": True, "text": "vmflow/autogen", "value": "vmflow/autogen"}]}

def tagvals(meas, tag, pred=""):
    q = HEAD + '  |> filter(fn: (r) => r._measurement == "%s"%s)\n' % (meas, pred)
    q += '  |> keep(columns: ["%s"])\n  |> group()\n  |> distinct(column: "%s")\n  |> sort()' % (tag, tag)
    return q

def var_q(name, label, query, multi=True):
    v = {"name": name, "label": label, "type": "query", "datasource": DS, "query": query,
         "definition": query, "refresh": 2, "sort": 1, "hide": 0, "current": {}, "options": [], "regex": ""}
    if multi:
        v.update({"multi": True, "includeAll": True, "allValue": ".*"})
    else:
        v.update({"multi": False, "includeAll": False})
    return v

def std_vars():
    return [var_ds(), var_bucket(),
            var_q("tenant", "Tenant", tagvals("vm", "tenant")),
            var_q("host", "Host", tagvals("vm", "host", " and r.tenant =~ /^${tenant:regex}$/")),
            var_q("vm", "VM", tagvals("vm", "vm", " and r.tenant =~ /^${tenant:regex}$/ and r.host =~ /^${host:regex}$/"))]

class Dash:
    def __init__(self, uid, title, desc, variables):
        self.d = {"uid": uid, "title": title, "description": desc, "tags": ["vmflow"], "timezone": "browser",
                  "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
                  "time": {"from": "now-1h", "to": "now"}, "templating": {"list": variables},
                  "annotations": {"list": []}, "panels": []}
        self.id = 0; self.x = 0; self.y = 0; self.rowh = 0
    def panel(self, title, typ, queries, w=12, h=8, unit=None, desc="", extra=None):
        self.id += 1
        if self.x + w > 24:
            self.x = 0; self.y += self.rowh; self.rowh = 0
        p = {"id": self.id, "title": title, "type": typ, "description": desc, "datasource": DS,
             "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h}, "interval": "10s",
             "targets": [{"refId": chr(65 + i), "datasource": DS, "query": q} for i, q in enumerate(queries)],
             "fieldConfig": {"defaults": {}, "overrides": []}, "options": {}}
        if unit: p["fieldConfig"]["defaults"]["unit"] = unit
        if extra: p.update(extra)
        self.x += w; self.rowh = max(self.rowh, h)
        self.d["panels"].append(p)
    def save(self, fn):
        with open(os.path.join(OUT, fn), "w") as f:
            json.dump(self.d, f, indent=2); f.write("\n")

def rate(field_filter, group, extra_filter=PAIRF, meas="vm_pair", scale="8.0"):
    return (PERIOD + HEAD + '  |> filter(fn: (r) => r._measurement == "%s" and %s)\n' % (meas, field_filter) + extra_filter +
            '  |> group(columns: [%s])\n' % group +
            '  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n'
            '  |> map(fn: (r) => ({r with _value: float(v: r._value) * %s / period}))' % scale)

def counter_rate(fields, per_series_group, exporter_filter):
    ff = " or ".join('r._field == "%s"' % f for f in fields)
    return (HEAD + '  |> filter(fn: (r) => r._measurement == "exporter" and (%s))\n' % ff + exporter_filter +
            '  |> derivative(unit: 1s, nonNegative: true)\n'
            '  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)\n'
            '  |> group(columns: [%s])\n'
            '  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)' % per_series_group)

# ---------- overview ----------
d = Dash("vmflow-overview", "vmflow / Cluster overview", "Traffic between VMs, top pairs and VMs, ingest health.", std_vars())
d.panel("Traffic by source", "timeseries", [rate('r._field == "bytes"', '"source"')], unit="bps",
        desc="Bits per second of all matching VM pairs, per export protocol (sFlow and IPFIX views are never added).")
d.panel("Packets by source", "timeseries", [rate('r._field == "packets"', '"source"', scale="1.0")], unit="pps")
d.panel("Active pairs", "stat", [HEAD + '  |> filter(fn: (r) => r._measurement == "vm_pair" and r._field == "bytes")\n' + PAIRF +
        '  |> group(columns: ["src_vm", "dst_vm", "source"])\n  |> count()\n  |> group()\n  |> count()'], w=6, h=4)
d.panel("Active VMs", "stat", [HEAD + '  |> filter(fn: (r) => r._measurement == "vm" and r._field == "tx_bytes")\n' + VMF +
        '  |> group(columns: ["vm"])\n  |> count()\n  |> group()\n  |> count()'], w=6, h=4)
d.panel("Bytes in range", "stat", [HEAD + '  |> filter(fn: (r) => r._measurement == "vm_pair" and r._field == "bytes")\n' + PAIRF +
        '  |> group(columns: ["source"])\n  |> sum()'], w=6, h=4, unit="decbytes")
d.panel("Spool pending points", "stat", [HEAD + '  |> filter(fn: (r) => r._measurement == "vmflow" and (r._field == "spool_pending_points" or r._field == "spool_dropped_points"))\n'
        '  |> last()'], w=6, h=4, desc="vmflow's InfluxDB writer: points waiting in its on-disk spool, and points dropped because the spool was full.")
d.panel("Top pairs", "table", [HEAD + '  |> filter(fn: (r) => r._measurement == "vm_pair" and r._field == "bytes")\n' + PAIRF +
        '  |> group(columns: ["src_vm", "dst_vm", "source"])\n  |> sum()\n  |> group()\n'
        '  |> sort(columns: ["_value"], desc: true)\n  |> limit(n: 20)\n'
        '  |> keep(columns: ["src_vm", "dst_vm", "source", "_value"])\n  |> rename(columns: {_value: "bytes"})'],
        h=10, unit="decbytes", desc="Directed VM pairs by bytes over the time range. (external) stands for all non-VM endpoints of a VM.")
d.panel("Top VMs", "table", [HEAD + '  |> filter(fn: (r) => r._measurement == "vm" and (r._field == "tx_bytes" or r._field == "rx_bytes"))\n' + VMF +
        '  |> group(columns: ["vm", "_field"])\n  |> sum()\n'
        '  |> pivot(rowKey: ["vm"], columnKey: ["_field"], valueColumn: "_value")\n  |> group()\n'
        '  |> map(fn: (r) => ({r with total: r.tx_bytes + r.rx_bytes}))\n'
        '  |> sort(columns: ["total"], desc: true)\n  |> limit(n: 20)\n  |> keep(columns: ["vm", "tx_bytes", "rx_bytes", "total"])'],
        h=10, unit="decbytes", desc="VMs by bytes sent plus received (summed over sources).")
d.panel("Ingest: datagrams/s, lost/s, decode errors/s", "timeseries",
        [counter_rate(["datagrams", "lost_datagrams", "decode_errors"], '"_field"', "")], w=24, unit="short",
        desc="From the collector's per-exporter counters (all exporters).")
d.panel("Ports with errors or discards", "table", [HEAD + '  |> filter(fn: (r) => r._measurement == "vm_port" and (r._field == "in_errors" or r._field == "out_errors" or r._field == "in_discards" or r._field == "out_discards"))\n' + VMF +
        '  |> group(columns: ["host", "vm", "port", "_field"])\n  |> sum()\n'
        '  |> pivot(rowKey: ["host", "vm", "port"], columnKey: ["_field"], valueColumn: "_value")\n  |> group()\n'
        '  |> map(fn: (r) => ({r with total: r.in_errors + r.out_errors + r.in_discards + r.out_discards}))\n'
        '  |> sort(columns: ["total"], desc: true)\n  |> limit(n: 20)\n'
        '  |> keep(columns: ["host", "vm", "port", "in_errors", "out_errors", "in_discards", "out_discards", "total"])'], w=24, h=8,
        desc="Switch ports (sFlow interface counters) by errors + discards in the range; in = from the VM, out = to the VM.")
d.save("vmflow-overview.json")

# ---------- pair detail ----------
pv = [var_ds(), var_bucket(),
      var_q("src", "Source VM", tagvals("vm_pair", "src_vm"), multi=False),
      var_q("dst", "Destination VM", tagvals("vm_pair", "dst_vm", ' and r.src_vm == "${src}"'), multi=False)]
d = Dash("vmflow-pair", "vmflow / VM pair", "One directed VM pair: traffic, errors, drops, protocol mix.", pv)
def pair_rate(fields, scale, group='"source", "_field"'):
    ff = " or ".join('r._field == "%s"' % f for f in fields)
    return (PERIOD + HEAD + PAIRSEL + '  |> filter(fn: (r) => %s)\n' % ff +
            '  |> group(columns: [%s])\n' % group +
            '  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n'
            '  |> map(fn: (r) => ({r with _value: float(v: r._value) * %s / period}))' % scale)
d.panel("Throughput", "timeseries", [pair_rate(["bytes"], "8.0")], unit="bps")
d.panel("Packets", "timeseries", [pair_rate(["packets"], "1.0")], unit="pps")
d.panel("Errors: ICMP errors and TCP resets", "timeseries", [pair_rate(["icmp_errors", "rst"], "1.0")], unit="pps",
        desc="ICMP unreachable/time exceeded/parameter problem and TCP RST packets per second (scaled estimates).")
d.panel("Drops", "timeseries", [pair_rate(["dropped_packets"], "1.0")], unit="pps", desc="Packets dropped by OVS (IPFIX).")
d.panel("Protocol mix (bytes)", "piechart", [HEAD + PAIRSEL +
        '  |> filter(fn: (r) => r._field == "tcp_bytes" or r._field == "udp_bytes" or r._field == "icmp_bytes" or r._field == "other_bytes")\n'
        '  |> group(columns: ["_field"])\n  |> sum()'], w=8, unit="decbytes")
d.panel("TCP flags", "timeseries", [pair_rate(["syn", "synack", "rst", "fin"], "1.0")], w=8, unit="pps")
# The interval is derived from the variance (lean points carry no CI
# fields; bytes_var is absent when 0, e.g. IPFIX sees every packet).
d.panel("Bytes with 95% interval", "timeseries", ['import "math"\n' + HEAD + PAIRSEL +
        '  |> filter(fn: (r) => r._field == "bytes" or r._field == "bytes_var")\n'
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        '  |> map(fn: (r) => ({r with d: 1.959963984540054 * math.sqrt(x: if exists r.bytes_var then r.bytes_var else 0.0)}))\n'
        '  |> map(fn: (r) => ({r with bytes_ci_lo: if r.bytes > r.d then r.bytes - r.d else 0.0, bytes_ci_hi: r.bytes + r.d}))\n'
        '  |> keep(columns: ["_time", "source", "bytes", "bytes_ci_lo", "bytes_ci_hi"])\n'
        '  |> group(columns: ["source"])'], w=8, unit="decbytes",
        desc="Per-window byte estimate and its 95% confidence interval (sFlow sampling), bytes ± 1.96·√bytes_var.")
d.panel("Samples and flows per window", "timeseries", [HEAD + PAIRSEL +
        '  |> filter(fn: (r) => r._field == "samples" or r._field == "flows")\n  |> group(columns: ["source", "_field"])'], w=24, unit="short")
def answered_share(field, name, failure):
    val = '1.0 - r.ans / r.syn' if failure else 'r.ans / r.syn'
    clampv = '0.0' if failure else '1.0'
    return (HEAD + PAIRSEL +
        '  |> filter(fn: (r) => r._field == "syn" or r._field == "%s")\n' % field +
        '  |> group(columns: ["source"])\n'
        '  |> window(every: v.windowPeriod)\n'
        '  |> reduce(identity: {syn: 0.0, ans: 0.0}, fn: (r, accumulator) => ({\n'
        '      syn: accumulator.syn + (if r._field == "syn" then float(v: r._value) else 0.0),\n'
        '      ans: accumulator.ans + (if r._field == "%s" then float(v: r._value) else 0.0)}))\n' % field +
        '  |> filter(fn: (r) => r.syn > 0.0)\n'
        '  |> map(fn: (r) => ({_time: r._stop, source: r.source, %s: if r.ans >= r.syn then %s else %s}))\n' % (name, clampv, val) +
        '  |> group(columns: ["source"])')
d.panel("Connection failure ratio (sampled SYNs vs SYN-ACKs back)", "timeseries",
        [answered_share("synack_in", "failure", True), answered_share("rst_in", "refused", False)], w=24, unit="percentunit",
        desc="Share of the pair's SYNs not answered by a SYN-ACK on the reverse pair (failure) and answered by a RST (refused), per period; "
             "absent without SYNs. The API's conn_health gives the 95% interval.")
# The probe's measurements (README "Latency probe"): fields of the
# source=probe point.
PROBESEL = PAIRSEL + '  |> filter(fn: (r) => r.source == "probe")\n'
d.panel("Handshake latency (probe)", "timeseries", [HEAD + PROBESEL +
        '  |> filter(fn: (r) => r._field == "latency_p50_us" or r._field == "latency_p95_us" or r._field == "guest_p50_us" or r._field == "network_p50_us" or r._field == "echo_p50_us")\n'
        '  |> group(columns: ["_field"])\n'
        '  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)'], unit="µs",
        desc="SYN → SYN-ACK at the client's tap (latency), at the server's tap (guest), their difference (network), ICMP echo RTT; per window, from vmflow probe.")
d.panel("Connections (probe)", "timeseries", [HEAD + PROBESEL +
        '  |> filter(fn: (r) => r._field == "connect_attempts" or r._field == "connect_refused" or r._field == "connect_timed_out" or r._field == "rst_closed" or r._field == "syn_retries")\n'
        '  |> group(columns: ["_field"])\n'
        '  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)'], unit="short",
        desc="TCP connection attempts and their failures (refused by RST, timed out), SYN retransmissions and RST closes, per interval, from vmflow probe.")
d.save("vmflow-pair.json")

# ---------- VM detail ----------
vv = std_vars()
vv[4] = var_q("vm", "VM", tagvals("vm", "vm", " and r.tenant =~ /^${tenant:regex}$/ and r.host =~ /^${host:regex}$/"), multi=False)
d = Dash("vmflow-vm", "vmflow / VM", "One VM: what it sends and receives, and to whom.", vv)
VMSEL = '  |> filter(fn: (r) => r._measurement == "vm" and r.vm == "${vm}")\n'
d.panel("Sent and received", "timeseries", [PERIOD + HEAD + VMSEL +
        '  |> filter(fn: (r) => r._field == "tx_bytes" or r._field == "rx_bytes")\n'
        '  |> group(columns: ["source", "_field"])\n'
        '  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n'
        '  |> map(fn: (r) => ({r with _value: r._value * 8.0 / period}))'], w=24, unit="bps")
for title, me, peer in (("Peers it sends to", "src_vm", "dst_vm"), ("Peers it receives from", "dst_vm", "src_vm")):
    d.panel(title, "table", [HEAD + '  |> filter(fn: (r) => r._measurement == "vm_pair" and r.%s == "${vm}")\n' % me +
            '  |> filter(fn: (r) => r._field == "bytes" or r._field == "packets" or r._field == "rst" or r._field == "icmp_errors")\n'
            '  |> group(columns: ["%s", "source", "_field"])\n  |> sum()\n' % peer +
            '  |> pivot(rowKey: ["%s", "source"], columnKey: ["_field"], valueColumn: "_value")\n  |> group()\n' % peer +
            '  |> sort(columns: ["bytes"], desc: true)\n  |> limit(n: 50)'], h=10)
d.panel("Top peers over time (sent)", "timeseries", [PERIOD + HEAD +
        '  |> filter(fn: (r) => r._measurement == "vm_pair" and r.src_vm == "${vm}" and r._field == "bytes")\n'
        '  |> group(columns: ["dst_vm"])\n'
        '  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n'
        '  |> map(fn: (r) => ({r with _value: r._value * 8.0 / period}))'], unit="bps")
d.panel("Top peers over time (received)", "timeseries", [PERIOD + HEAD +
        '  |> filter(fn: (r) => r._measurement == "vm_pair" and r.dst_vm == "${vm}" and r._field == "bytes")\n'
        '  |> group(columns: ["src_vm"])\n'
        '  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n'
        '  |> map(fn: (r) => ({r with _value: r._value * 8.0 / period}))'], unit="bps")
PORTSEL = '  |> filter(fn: (r) => r._measurement == "vm_port" and r.vm == "${vm}")\n'
PORTDESC = "From sFlow counter samples of the VM's switch port(s) (OVS interface counters). In = from the VM into the switch, out = to the VM."
def port_rate(fields, scale):
    ff = " or ".join('r._field == "%s"' % f for f in fields)
    return (PERIOD + HEAD + PORTSEL + '  |> filter(fn: (r) => %s)\n' % ff +
            '  |> group(columns: ["port", "_field"])\n'
            '  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n'
            '  |> map(fn: (r) => ({r with _value: float(v: r._value) * %s / period}))' % scale)
d.panel("Port errors and discards/s", "timeseries", [port_rate(["in_errors", "out_errors", "in_discards", "out_discards"], "1.0")], unit="short",
        desc=PORTDESC + " Counter wraps and agent restarts are handled without spikes.")
d.panel("Port throughput (switch counters)", "timeseries", [port_rate(["in_octets", "out_octets"], "8.0")], unit="bps", desc=PORTDESC)
d.panel("Port utilisation", "timeseries", [HEAD + PORTSEL + '  |> filter(fn: (r) => r._field == "in_util" or r._field == "out_util")\n'
        '  |> group(columns: ["port", "_field"])\n'
        '  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)'], w=24, unit="percentunit",
        desc=PORTDESC + " Against the port's ifSpeed (absent when the speed is unknown).")
# VM resources (libvirt stats polls or hsflowd): vm_resources, vm_disk, vm_nic.
def res_panel(title, meas, fields, group, unit, fn="mean", w=12, desc=""):
    ff = " or ".join('r._field == "%s"' % f for f in fields)
    d.panel(title, "timeseries", [HEAD + '  |> filter(fn: (r) => r._measurement == "%s" and r.vm == "${vm}")\n' % meas +
            '  |> filter(fn: (r) => %s)\n' % ff + '  |> group(columns: [%s])\n' % group +
            '  |> aggregateWindow(every: v.windowPeriod, fn: %s, createEmpty: false)' % fn], w=w, unit=unit, desc=desc)
res_panel("CPU (% of its vCPUs)", "vm_resources", ["cpu_percent"], '"source", "_field"', "percent",
          desc="From libvirt's stats poll (or hsflowd): CPU time over the poll interval, 100% = every vCPU busy.")
res_panel("Memory used (% of available)", "vm_resources", ["mem_used_percent"], '"source", "_field"', "percent")
res_panel("Memory", "vm_resources", ["mem_used_bytes", "mem_available_bytes", "mem_balloon_bytes", "mem_rss_bytes"], '"_field"', "bytes")
res_panel("Swap and major faults", "vm_resources", ["swap_in_bytes_per_s", "swap_out_bytes_per_s", "major_faults_per_s"], '"_field"', "short")
res_panel("Disk IOPS", "vm_disk", ["read_iops", "write_iops"], '"disk", "_field"', "iops")
res_panel("Disk throughput", "vm_disk", ["read_bytes_per_s", "write_bytes_per_s"], '"disk", "_field"', "Bps")
res_panel("Disk errors", "vm_disk", ["errors"], '"disk", "_field"', "short", fn="sum")
res_panel("vNIC throughput (libvirt's view)", "vm_nic", ["rx_bits_per_s", "tx_bits_per_s"], '"nic", "_field"', "bps")
res_panel("vNIC errors and drops", "vm_nic", ["rx_errors", "tx_errors", "rx_drops", "tx_drops"], '"nic", "_field"', "short", fn="sum", w=24)
d.save("vmflow-vm.json")

# ---------- exporters ----------
ev = [var_ds(), var_bucket(), var_q("exporter", "Exporter", tagvals("exporter", "exporter"))]
d = Dash("vmflow-exporters", "vmflow / Exporters", "Ingest health per exporter (OVS bridge): datagrams, samples, loss, decode errors.", ev)
EXF = '  |> filter(fn: (r) => r.exporter =~ /^${exporter:regex}$/)\n'
for title, f in (("Datagrams/s", "datagrams"), ("Samples/s", "samples"), ("Datagrams lost/s", "lost_datagrams"), ("Decode errors/s", "decode_errors")):
    d.panel(title, "timeseries", [HEAD + '  |> filter(fn: (r) => r._measurement == "exporter" and r._field == "%s")\n' % f + EXF +
            '  |> derivative(unit: 1s, nonNegative: true)\n'
            '  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)'], unit="short")
d.panel("Exporters", "table", [HEAD + '  |> filter(fn: (r) => r._measurement == "exporter")\n' + EXF +
        '  |> last()\n  |> pivot(rowKey: ["exporter", "protocol", "agent", "domain"], columnKey: ["_field"], valueColumn: "_value")\n'
        '  |> group()\n  |> drop(columns: ["_start", "_stop", "_measurement", "_time"])'], w=24, h=8,
        desc="Latest cumulative counters per exporter.")
d.save("vmflow-exporters.json")
