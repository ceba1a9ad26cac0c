// Overview: the whole cloud's east-west traffic now and over the range,
// stacked by tenant, protocol or host; top pairs, talkers and listeners;
// active alerts by severity; ingest and vmflow health.
import { fmt, getJSON, h, link, num, qs, rangeQuery, table } from "../lib.js";
import { chartBox, render as draw, sparkline, timeAxis, tooltip, valueAxis } from "../charts.js";
import { fetchAlerts, filterForm, filterQuery, FILTERS, kpi, section } from "./common.js";

export const title = "Overview";
export const defaultSince = "1h";

export async function render(ctx) {
  const p = ctx.params;
  const group = p.get("group") || "tenant";
  const metric = p.get("metric") === "pps" ? "pps" : "bps";
  const common = Object.assign(rangeQuery(p, defaultSince), { source: p.get("source") || "" }, filterQuery(p));
  const [ov, top, alerts, exps, health] = await Promise.all([
    getJSON("/api/v1/overview?" + qs(Object.assign({ group, top: 8 }, common))),
    getJSON("/api/v1/graph?" + qs(Object.assign({ top: 10, level: "vm" }, common))),
    fetchAlerts({ state: "firing" }).catch(() => null),
    getJSON("/api/v1/exporters"),
    getJSON("/api/v1/health"),
  ]);
  if (!ctx.alive()) return;
  const fm = metric === "pps" ? fmt.pps : fmt.bps;

  // Totals series (sum of the groups) for the sparklines.
  const totalAt = (key) => ov.times.map((t, i) => [t, ov.groups.reduce((s, g) => s + g[key][i], 0)]);

  const sev = {};
  for (const a of alerts || []) sev[a.severity] = (sev[a.severity] || 0) + 1;
  const lost = exps.exporters.reduce((s, x) => s + x.lost_datagrams, 0);
  const decErr = exps.exporters.reduce((s, x) => s + x.decode_errors, 0);
  const datagrams = exps.exporters.reduce((s, x) => s + x.datagrams, 0);

  const bpsSpark = h("div", { class: "spark", id: "spark-bps", "aria-hidden": "true" });
  const ppsSpark = h("div", { class: "spark", id: "spark-pps", "aria-hidden": "true" });
  const kpis = h("div", { class: "kpis", id: "ov-kpis" },
    kpi("ov-now-bps", "Now (last window)", ov.now.bps, fmt.bps, bpsSpark),
    kpi("ov-now-pps", "Now, packets", ov.now.pps, fmt.pps, ppsSpark),
    kpi("ov-avg-bps", "Average over the range", ov.totals.bps, fmt.bps),
    kpi("ov-total-bytes", "Bytes in the range", ov.totals.bytes, fmt.bytes),
    kpi("ov-pairs", "Active pairs (last window)", ov.now.pairs, fmt.count),
    kpi("ov-vms", "Active VMs", ov.active_vms, fmt.count),
  );

  const alertBox = alerts === null
    ? h("p", { class: "muted", id: "ov-alerts-none" }, "Alerting is not available (GET /api/v1/alerts answered 404).")
    : h("div", { class: "kpis small", id: "ov-alerts" },
      ["P0", "P1", "P2", "P3", "P4"].map((s) => h("a", { class: "kpi sev-kpi sev-" + s.toLowerCase(), href: "#/alerts?" + qs({ state: "firing", severity: s }) },
        h("div", { class: "kpi-label" }, s), h("div", { class: "kpi-value", dataset: { value: String(sev[s] || 0) } }, String(sev[s] || 0)))));

  const ingest = h("div", { class: "kpis small", id: "ov-ingest" },
    kpi("ov-exporters", "Exporters", exps.exporters.length, fmt.count),
    kpi("ov-datagrams", "Datagrams", datagrams, fmt.count),
    kpi("ov-lost", "Lost datagrams", lost, fmt.count),
    kpi("ov-decode-errors", "Decode errors", decErr, fmt.count),
    kpi("ov-health", "vmflow", health.status, (s) => s + " · up " + health.uptime));

  const controls = filterForm(ctx, "ov-filters", [
    { name: "group", label: "Stack by", options: [["tenant", "tenant"], ["protocol", "protocol"], ["host", "host"]], def: "tenant" },
    { name: "metric", label: "Unit", options: [["bps", "bit/s"], ["pps", "packets/s"]], def: "bps" },
    ...FILTERS,
  ]);

  const chart = chartBox("overview", "Traffic over the range stacked by " + group + " (" + (metric === "pps" ? "packets/s" : "bit/s") + "); the same numbers are in the table below");
  const groupRows = ov.groups.map((g) => [h("td", { class: "group-key" }, g.key), num("td", g.bytes, fmt.bytes), num("td", g.bytes * 8 / Math.max(1, spanSeconds(ov)), fmt.bps)]);

  const pairRows = top.edges.map((e) => {
    const s = nodeLabel(e.src), d = nodeLabel(e.dst);
    return [h("td", {}, link("pair", { src: s, dst: d }, s + " → " + d, ctx.state)), num("td", e.bps, fmt.bps, { class: "num bps" }), num("td", e.pps, fmt.pps), num("td", e.bytes, fmt.bytes, { class: "num bytes" })];
  });
  const talkerRows = (list) => list.map((t) => [
    h("td", {}, t.vm ? link("vm", { name: t.name }, t.name, ctx.state) : h("span", { class: "ip" }, t.name)),
    h("td", {}, t.host || "–"), h("td", {}, t.tenant || "–"),
    num("td", t.bps, fmt.bps, { class: "num bps" }), num("td", t.peers, fmt.count)]);
  const tcols = [{ label: "Endpoint" }, { label: "Host" }, { label: "Tenant" }, { label: "Average", num: true }, { label: "Peers", num: true }];

  const stepNote = h("p", { class: "muted note" }, "Points every " + ov.step + " (rates are per point); " + ov.windows + " windows in the range.");
  const root = h("div", { class: "view overview" },
    h("h1", {}, "Overview"),
    controls,
    kpis,
    h("div", { class: "grid2" },
      section("Active alerts", "ov-alerts-panel", alertBox),
      section("Ingest and vmflow health", "ov-ingest-panel", ingest)),
    section("Traffic by " + group, "ov-traffic", chart, stepNote,
      table("ov-groups", "Traffic by " + group, [{ label: group }, { label: "Bytes", num: true }, { label: "Average", num: true }], groupRows)),
    section("Top pairs", "ov-top-pairs",
      table("ov-pairs-table", "Top pairs", [{ label: "Pair" }, { label: "Average", num: true }, { label: "Packets/s", num: true }, { label: "Bytes", num: true }], pairRows),
      h("p", { class: "muted" }, top.other.edges ? top.other.edges + " more pairs: " + fmt.bps(top.other.bps) + " together." : "")),
    h("div", { class: "grid2" },
      section("Top talkers", "ov-talkers", table("ov-talkers-table", "Top talkers", tcols, talkerRows(ov.top_talkers))),
      section("Top listeners", "ov-listeners", table("ov-listeners-table", "Top listeners", tcols, talkerRows(ov.top_listeners)))),
  );
  if (!ctx.mount(root)) return;

  const key = metric;
  draw("overview", chart, {
    legend: { top: 0, textStyle: { color: getComputedStyle(document.body).color } },
    grid: { left: 70, right: 20, top: 40, bottom: 30 },
    tooltip: tooltip(fm),
    xAxis: timeAxis(),
    yAxis: valueAxis(fm),
    series: ov.groups.map((g) => ({
      name: g.key, type: "line", stack: "total", areaStyle: { opacity: 0.6 }, showSymbol: false,
      data: ov.times.map((t, i) => [t, g[key][i]]),
    })),
  });
  sparkline("spark-bps", bpsSpark, totalAt("bps"));
  sparkline("spark-pps", ppsSpark, totalAt("pps"));
}

function spanSeconds(ov) {
  if (!ov.covered_from || !ov.covered_to) return 1;
  return (new Date(ov.covered_to) - new Date(ov.covered_from)) / 1000;
}

// nodeLabel strips the graph's node id prefix (vm:, ip:).
export function nodeLabel(id) { return id.replace(/^(vm|ip|group):/, ""); }
