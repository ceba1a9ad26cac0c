// VM detail: its peers in and out (table + small graph), its series, its
// interfaces and inventory record (source, host, tenant, labels, addresses
// and where they came from, staleness), its alerts.
import { fmt, getJSON, h, HTTPError, link, num, qs, rangeQuery, rangeSeconds, table } from "../lib.js";
import { chartBox, render as draw, timeAxis, tooltip, valueAxis } from "../charts.js";
import { extraSection, fetchAlerts, section, severityBadge, subjectOf } from "./common.js";
import { graphOption } from "./topology.js";
import { nodeLabel } from "./overview.js";
import { seriesStep } from "./pair.js";

// The inventory fields this view shows itself; any other numeric field (a
// later vmflow's resource metrics) is listed as it comes.
const VM_FIELDS = new Set(["name", "uuid", "host", "tenant", "tenant_name", "state", "source", "stale", "vcpus", "memory_kib", "labels",
  "interfaces", "prev_host", "moved_at", "ports"]);

const pct = (v) => (v === null || v === undefined ? "–" : fmt.pct(100 * v));

// resourceSection is the VM's resources now (libvirt stats or hsflowd;
// the resources object of GET /api/v1/vms/{name}; null without figures).
function resourceSection(r, box) {
  if (!r) return null;
  const v = (tag, x, f, field) => {
    const cls = tag === "div" ? "kpi-value res" : "num res";
    return x === undefined || x === null ? h(tag, { class: cls }, "–") : num(tag, x, f, { class: cls, dataset: { field, value: String(x) } });
  };
  const m = r.memory || {}, c = r.cpu || {};
  const kpis = h("div", { class: "kpis" },
    h("div", { class: "kpi", id: "vm-res-cpu" }, h("div", { class: "kpi-label" }, "CPU (of " + (c.vcpus || "?") + " vCPUs)"), v("div", c.percent, fmt.pct, "cpu.percent"),
      h("div", { class: "muted small" }, c.percent_of_core !== undefined ? fmt.pct(c.percent_of_core) + " of one core" : "")),
    h("div", { class: "kpi", id: "vm-res-mem" }, h("div", { class: "kpi-label" }, "Memory used"), v("div", m.used_percent, fmt.pct, "memory.used_percent"),
      h("div", { class: "muted small" }, (m.used_bytes !== undefined ? fmt.bytes(m.used_bytes) : "–") + " of " + (m.balloon_bytes !== undefined ? fmt.bytes(m.balloon_bytes) : m.max_bytes !== undefined ? fmt.bytes(m.max_bytes) : "–"))),
    h("div", { class: "kpi", id: "vm-res-rss" }, h("div", { class: "kpi-label" }, "Resident (host)"), v("div", m.rss_bytes, fmt.bytes, "memory.rss_bytes")),
    h("div", { class: "kpi", id: "vm-res-source" }, h("div", { class: "kpi-label" }, "From"), h("div", { class: "kpi-value" }, r.source),
      h("div", { id: "vm-res-age", class: r.stale ? "bad small" : "muted small" }, (r.stale ? "stale, " : "") + Math.round(r.age_seconds) + " s old")));
  const perS = (f) => (x) => f(x) + "/s";
  const disks = table("vm-disks", "Disks", [{ label: "Disk" }, { label: "Read IOPS", num: true }, { label: "Write IOPS", num: true }, { label: "Read", num: true }, { label: "Write", num: true }, { label: "Errors", num: true }, { label: "Capacity", num: true }],
    (r.disks || []).map((d) => [h("th", { scope: "row" }, d.name), v("td", d.read_iops, fmt.count, "disk." + d.name + ".read_iops"), v("td", d.write_iops, fmt.count, "disk." + d.name + ".write_iops"),
      v("td", d.read_bytes_per_s, perS(fmt.bytes), "disk." + d.name + ".read_bytes_per_s"), v("td", d.write_bytes_per_s, perS(fmt.bytes), "disk." + d.name + ".write_bytes_per_s"),
      v("td", d.errors, fmt.count, "disk." + d.name + ".errors"), v("td", d.capacity_bytes, fmt.bytes, "disk." + d.name + ".capacity_bytes")]), "No disk figures.");
  const nics = table("vm-nics", "Virtual NICs", [{ label: "vNIC" }, { label: "MAC" }, { label: "Received", num: true }, { label: "Sent", num: true }, { label: "Rx pkt/s", num: true }, { label: "Tx pkt/s", num: true }, { label: "Errors", num: true }, { label: "Drops", num: true }],
    (r.nics || []).map((n) => [h("th", { scope: "row" }, n.name), n.mac || "–", v("td", n.rx_bits_per_s, fmt.bps, "nic." + n.name + ".rx_bits_per_s"), v("td", n.tx_bits_per_s, fmt.bps, "nic." + n.name + ".tx_bits_per_s"),
      v("td", n.rx_packets_per_s, fmt.pps, "nic." + n.name + ".rx_packets_per_s"), v("td", n.tx_packets_per_s, fmt.pps, "nic." + n.name + ".tx_packets_per_s"),
      v("td", (n.rx_errors || 0) + (n.tx_errors || 0), fmt.count, "nic." + n.name + ".errors"), v("td", (n.rx_drops || 0) + (n.tx_drops || 0), fmt.count, "nic." + n.name + ".drops")]), "No vNIC figures.");
  return section("Resources", "vm-resources", kpis, box, disks, nics,
    h("p", { class: "muted note" }, "Rates over the last " + Math.round(r.interval_seconds || 0) + " s poll interval" + (r.origin ? " (" + r.origin + ")" : "") + "; vNIC directions are the guest's."));
}

// portRows are the VM's switch ports over the range (GET /api/v1/vms/{name}).
function portTable(ports) {
  const cell = (p, k, f) => num("td", p[k], f, { class: "num port", dataset: { port: p.name || String(p.if_index), field: k, value: String(p[k]) } });
  const util = (p, k) => h("td", { class: "num port", dataset: { port: p.name || String(p.if_index), field: k, value: String(p[k]) } }, pct(p[k]));
  const rows = ports.map((p) => [h("th", { scope: "row" }, p.name || "ifIndex " + p.if_index), p.host || p.agent,
    cell(p, "in_bps", fmt.bps), cell(p, "out_bps", fmt.bps), cell(p, "in_pps", fmt.pps), cell(p, "out_pps", fmt.pps),
    cell(p, "in_errors", fmt.count), cell(p, "out_errors", fmt.count), cell(p, "in_discards", fmt.count), cell(p, "out_discards", fmt.count),
    util(p, "in_utilisation"), util(p, "out_utilisation"), p.if_speed ? fmt.bps(p.if_speed) : "unknown"]);
  return table("vm-ports-table", "Switch port counters", [{ label: "Port" }, { label: "Host" }, { label: "VM sent", num: true }, { label: "VM received", num: true },
    { label: "Sent pkt/s", num: true }, { label: "Received pkt/s", num: true }, { label: "Errors in", num: true }, { label: "Errors out", num: true },
    { label: "Discards in", num: true }, { label: "Discards out", num: true }, { label: "Util. in", num: true }, { label: "Util. out", num: true }, { label: "ifSpeed", num: true }], rows,
  "No sFlow counter samples of its ports in this range.");
}

export const title = "VM detail";
export const defaultSince = "1h";

export async function render(ctx) {
  const p = ctx.params;
  const name = p.get("name") || "";
  if (!name) {
    ctx.mount(h("div", { class: "view" }, h("h1", {}, "VM detail"), h("p", {}, "Choose a VM on the ", link("topology", {}, "topology map", ctx.state), ".")));
    return;
  }
  const rq = Object.assign(rangeQuery(p, defaultSince), { source: p.get("source") || "" });
  const [inv, g, alerts] = await Promise.all([
    getJSON("/api/v1/vms"),
    getJSON("/api/v1/graph?" + qs(Object.assign({ vm: name, level: "vm", top: 200 }, rq))),
    fetchAlerts({ vm: name }).catch(() => null),
  ]);
  const vm = inv.vms.find((v) => v.name === name || (v.uuid && v.uuid.toLowerCase() === name.toLowerCase()));
  const vmName = vm ? vm.name : name;
  let series = null, detail = null;
  try {
    detail = await getJSON("/api/v1/vms/" + encodeURIComponent(vmName) + "?" + qs(rangeQuery(p, defaultSince)));
  } catch (e) {
    if (!(e instanceof HTTPError && (e.status === 404 || e.status === 403))) throw e;
  }
  try {
    series = await getJSON("/api/v1/vms/" + encodeURIComponent(vmName) + "/series?" + qs(Object.assign({ step: seriesStep(rangeSeconds(p, defaultSince), g.window_seconds) }, rq)));
  } catch (e) {
    if (!(e instanceof HTTPError && e.status === 404)) throw e;
  }
  if (!ctx.alive()) return;
  if (!vm && !series) {
    ctx.mount(h("div", { class: "view vm" }, h("h1", {}, name), h("p", { id: "vm-unknown", class: "muted" }, name + " is not in the inventory and had no traffic in this range.")));
    return;
  }
  const me = "vm:" + vmName;
  const out = g.edges.filter((e) => e.src === me), inn = g.edges.filter((e) => e.dst === me);
  const peerRow = (e, peerID) => {
    const peer = nodeLabel(peerID);
    const s = e.src === me ? vmName : peer, d = e.src === me ? peer : vmName;
    return [h("td", {}, peerID.startsWith("vm:") ? link("vm", { name: peer }, peer, ctx.state) : h("span", { class: "ip" }, peer)),
      num("td", e.bps, fmt.bps, { class: "num bps" }), num("td", e.pps, fmt.pps), num("td", e.bytes, fmt.bytes), h("td", {}, link("pair", { src: s, dst: d }, "detail", ctx.state))];
  };
  const pcols = [{ label: "Peer" }, { label: "Average", num: true }, { label: "Packets/s", num: true }, { label: "Bytes", num: true }, { label: "Pair" }];
  const txSum = out.reduce((s, e) => s + e.bps, 0), rxSum = inn.reduce((s, e) => s + e.bps, 0);

  const record = vm ? table("vm-record", "Inventory record", [{ label: "Field" }, { label: "Value" }], [
    [h("th", { scope: "row" }, "Name"), vm.name], [h("th", { scope: "row" }, "UUID"), vm.uuid || "–"],
    [h("th", { scope: "row" }, "Host"), vm.host || "–"], [h("th", { scope: "row" }, "Tenant"), (vm.tenant_name ? vm.tenant_name + " (" + vm.tenant + ")" : vm.tenant) || "–"],
    [h("th", { scope: "row" }, "State"), vm.state || "–"], [h("th", { scope: "row" }, "Source"), h("td", { id: "vm-source" }, vm.source)],
    [h("th", { scope: "row" }, "Stale"), h("td", { id: "vm-stale", class: vm.stale ? "bad" : "" }, vm.stale ? "yes: its source is unreachable" : "no")],
    [h("th", { scope: "row" }, "vCPUs / memory"), (vm.vcpus || "–") + " / " + (vm.memory_kib ? fmt.bytes(vm.memory_kib * 1024) : "–")],
    [h("th", { scope: "row" }, "Labels"), Object.entries(vm.labels || {}).map(([k, v]) => k + "=" + v).join(", ") || "–"],
    [h("th", { scope: "row" }, "Migrated"), vm.prev_host ? "from " + vm.prev_host + " at " + fmt.time(vm.moved_at) : "–"],
  ]) : h("p", { class: "muted", id: "vm-not-inventory" }, "Not in the inventory (seen in traffic only).");
  const ifRows = vm ? vm.interfaces.map((i) => [i.mac, i.tap || "–", i.bridge || "–", i.ovs_port || "–", i.vni ? String(i.vni) : "–",
    h("td", { class: "addrs" }, i.addrs.length ? i.addrs.map((a) => a.ip + " (" + a.source + (a.last_seen && !a.last_seen.startsWith("0001") ? ", " + fmt.ago(a.last_seen) : "") + ")").join(", ") : "–")]) : [];

  const box = chartBox("vm", "Traffic sent and received by " + vmName + " in bit/s");
  const peersBox = chartBox("vm-peers", "Peers of " + vmName + " (also in the tables)", "small-graph");
  // (a chart needs two points: the table shows a lone one)
  const hasPortSeries = series && series.points.filter((x) => x.port).length >= 2;
  const portBox = hasPortSeries ? chartBox("vm-port", "Switch port counters of " + vmName + " over time: bit/s sent and received, errors and discards per second") : null;
  const resPts = (series && series.resources) || [];
  const resBox = detail && detail.resources && resPts.length >= 2 ? chartBox("vm-res", "CPU and memory of " + vmName + " over time, percent (latest also in the figures)") : null;
  const mine = alerts || [];
  const root = h("div", { class: "view vm" },
    h("h1", { id: "vm-title" }, vmName),
    h("div", { class: "kpis" },
      h("div", { class: "kpi", id: "vm-tx" }, h("div", { class: "kpi-label" }, "Sent (average)"), num("div", txSum, fmt.bps, { class: "kpi-value" })),
      h("div", { class: "kpi", id: "vm-rx" }, h("div", { class: "kpi-label" }, "Received (average)"), num("div", rxSum, fmt.bps, { class: "kpi-value" })),
      h("div", { class: "kpi", id: "vm-peers-count" }, h("div", { class: "kpi-label" }, "Peers"), num("div", new Set(out.map((e) => e.dst).concat(inn.map((e) => e.src))).size, fmt.count, { class: "kpi-value" }))),
    section("Alerts", "vm-alerts", alerts === null ? h("p", { class: "muted" }, "Alerting is not available.")
      : mine.length ? h("ul", { id: "vm-alert-list" }, mine.map((a) => h("li", {}, severityBadge(a.severity), " ", a.rule, " · ", a.state, " · ", subjectOf(a).text, " · ", a.summary)))
        : h("p", { class: "muted" }, "No alerts.")),
    section("Series", "vm-series", box, h("p", { class: "muted note" }, series ? "One point per " + series.step + "; external peers included." : "No traffic in this range.")),
    h("div", { class: "grid2" },
      section("Sends to", "vm-out", table("vm-out-table", "Sends to", pcols, out.map((e) => peerRow(e, e.dst)), "Sent nothing in this range.")),
      section("Receives from", "vm-in", table("vm-in-table", "Receives from", pcols, inn.map((e) => peerRow(e, e.src)), "Received nothing in this range."))),
    section("Peers", "vm-peers-map", peersBox),
    h("div", { class: "grid2" },
      section("Inventory record", "vm-inventory", record),
      vm ? extraSection("vm-extra", vm, VM_FIELDS) : null,
      section("Interfaces", "vm-interfaces", table("vm-ifaces", "Interfaces", [{ label: "MAC" }, { label: "Tap" }, { label: "Bridge" }, { label: "OVS port" }, { label: "VNI" }, { label: "Addresses (source)" }], ifRows, "No interfaces known."))),
    resourceSection(detail && detail.resources, resBox),
    section("Port counters (sFlow)", "vm-ports", detail ? portTable(detail.ports) : h("p", { class: "muted" }, "Port counters: not available."),
      portBox, h("p", { class: "muted note" }, "Switch port directions turned to the VM's: in = what the VM sent, out = what it received; rates over the time the counter samples cover; utilisation against ifSpeed.")),
  );
  if (!ctx.mount(root)) return;
  if (series) {
    const pts = series.points;
    draw("vm", box, {
      legend: { top: 0 }, grid: { left: 80, right: 20, top: 30, bottom: 30 }, tooltip: tooltip(fmt.bps), xAxis: timeAxis(), yAxis: valueAxis(fmt.bps),
      series: [
        { name: "sent", type: "line", showSymbol: false, data: pts.map((x) => [x.time, x.tx_bps]) },
        { name: "received", type: "line", showSymbol: false, data: pts.map((x) => [x.time, x.rx_bps]) },
      ],
    });
  }
  if (resBox) {
    const pctAxis = valueAxis((x) => x + " %");
    draw("vm-res", resBox, {
      legend: { top: 0 }, grid: { left: 60, right: 20, top: 30, bottom: 30 }, tooltip: tooltip(fmt.pct), xAxis: timeAxis(), yAxis: pctAxis,
      series: [["cpu_percent", "CPU %"], ["mem_used_percent", "memory used %"]].map(([k, name]) => ({ name, type: "line", showSymbol: false, connectNulls: false,
        data: resPts.map((x) => [x.time, x[k] === undefined ? null : x[k]]) })),
    });
  }
  if (hasPortSeries) {
    const pp = series.points.filter((x) => x.port);
    draw("vm-port", portBox, {
      legend: { top: 0 }, grid: { left: 80, right: 60, top: 30, bottom: 30 }, tooltip: tooltip(fmt.count), xAxis: timeAxis(),
      yAxis: [valueAxis(fmt.bps), Object.assign(valueAxis((v) => fmt.count(v) + "/s"), { splitLine: { show: false } })],
      series: [
        { name: "port in (VM sent)", type: "line", showSymbol: pp.length < 30, data: pp.map((x) => [x.time, x.port.in_bps]) },
        { name: "port out (VM received)", type: "line", showSymbol: pp.length < 30, data: pp.map((x) => [x.time, x.port.out_bps]) },
        { name: "errors/s", type: "line", yAxisIndex: 1, showSymbol: false, data: pp.map((x) => [x.time, x.port.in_errors_ps + x.port.out_errors_ps]) },
        { name: "discards/s", type: "line", yAxisIndex: 1, showSymbol: false, data: pp.map((x) => [x.time, x.port.in_discards_ps + x.port.out_discards_ps]) },
      ],
    });
  }
  if (g.edges.length) {
    const opt = graphOption(g, "bps", (e) => e.bps, () => false, () => false);
    const inst = draw("vm-peers", peersBox, opt);
    inst.on("click", (ev) => {
      if (ev.dataType === "node" && ev.data.raw.kind === "vm" && ev.data.raw.name !== vmName) ctx.state.go("vm", { name: ev.data.raw.name });
      if (ev.dataType === "edge") ctx.state.go("pair", { src: nodeLabel(ev.data.raw.src), dst: nodeLabel(ev.data.raw.dst) });
    });
  }
}
