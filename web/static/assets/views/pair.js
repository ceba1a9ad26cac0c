// Pair detail: one directed pair's series (bit/s, packets/s or flows) with
// the 95% confidence band, protocol mix, TCP flags, ICMP errors, top ports,
// and what sFlow and IPFIX each saw of it.
import { fmt, getJSON, h, HTTPError, link, num, qs, rangeQuery, rangeSeconds, table } from "../lib.js";
import { chartBox, render as draw, timeAxis, tooltip, valueAxis } from "../charts.js";
import { extraSection, fetchAlerts, filterForm, section, severityBadge } from "./common.js";

export const title = "Pair detail";
export const defaultSince = "1h";

const PROTO = { 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6" };

// The pair fields this view shows itself; any other numeric field (a later
// vmflow's latency or connection measurements) is listed as it comes.
const PAIR_FIELDS = new Set(["src", "dst", "bytes", "packets", "samples", "flows", "bps", "pps", "bytes_ci95", "packets_ci95", "tcp",
  "protocols", "icmp_errors", "dropped_packets", "dropped_bytes", "top_ports", "source", "windows", "from", "to", "latency", "conn_health"]);

// us formats microseconds.
export function us(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return v >= 1e6 ? (v / 1e6).toFixed(2) + " s" : v >= 1e3 ? (v / 1e3).toFixed(v >= 1e4 ? 1 : 2) + " ms" : Math.round(v) + " µs";
}

// ratio formats a ratio 0..1 as a percentage.
function ratioPct(v) { return isFinite(v) ? (100 * v).toFixed(v < 0.1 ? 2 : 1) + " %" : "∞"; }

// latencySection is the probe's measurements of the pair (null without).
function latencySection(lat, series) {
  if (!lat) return null;
  const q = (id, label, hist) => [h("th", { scope: "row" }, label),
    ...["p50", "p95", "p99", "max"].map((k) => hist ? num("td", hist[k], us, { class: "num lat", dataset: { hist: id, q: k, value: String(hist[k]) } }) : h("td", { class: "num" }, "–")),
    hist && hist.count !== undefined ? num("td", hist.count, fmt.count) : h("td", { class: "num" }, "–")];
  const rows = [];
  if (lat.handshake_us) rows.push(q("handshake_us", "Handshake (SYN → SYN-ACK, client tap)", lat.handshake_us));
  if (lat.network_us) rows.push(q("network_us", "Network (handshake − guest)", Object.assign({ max: null }, lat.network_us)));
  if (lat.guest_us) rows.push(q("guest_us", "Guest (server's stack, server tap)", lat.guest_us));
  if (lat.ack_us) rows.push(q("ack_us", "Back to the client (SYN-ACK → ACK, server tap)", lat.ack_us));
  if (lat.echo_us) rows.push(q("echo_us", "Echo RTT (ICMP, requester tap)", lat.echo_us));
  if (lat.echo_guest_us) rows.push(q("echo_guest_us", "Echo at the responder (its guest)", lat.echo_guest_us));
  const counts = [["attempts", "Connection attempts"], ["established", "Established"], ["refused", "Refused (RST)"], ["timed_out", "Timed out"], ["unreachable", "Unreachable (ICMP error)"],
    ["syn_retries", "SYN retries"], ["fin_closed", "Closed by FIN"], ["rst_closed", "Closed by RST"], ["echoes", "Echo requests"], ["echo_lost", "Echoes lost"], ["icmp_errors", "ICMP errors"]]
    .filter(([k]) => lat[k] !== undefined)
    .map(([k, label]) => [h("th", { scope: "row" }, label), num("td", lat[k], fmt.count, { class: "num conn", dataset: { field: k, value: String(lat[k]) } })]);
  counts.push([h("th", { scope: "row" }, "Failure ratio"), h("td", { class: "num", id: "pair-lat-failure", dataset: { value: String(lat.failure_ratio) } }, ratioPct(lat.failure_ratio))]);
  const hasSeries = series.points.filter((pt) => pt.latency && pt.latency.handshake_us).length >= 2; // a lone point: the table
  const box = hasSeries ? chartBox("pair-latency", "Handshake latency over time: median, 95th and 99th percentile in microseconds (also in the table)") : null;
  return {
    box,
    node: section("Latency (probe)", "pair-latency",
      h("div", { class: "grid2" },
        table("pair-lat-table", "Latency distributions", [{ label: "" }, { label: "p50", num: true }, { label: "p95", num: true }, { label: "p99", num: true }, { label: "Max", num: true }, { label: "Count", num: true }], rows, "No handshake or echo measured."),
        table("pair-conn-table", "Connections seen by the probe", [{ label: "" }, { label: "Count", num: true }], counts)),
      h("p", { class: "muted note", id: "pair-lat-measured" }, "Counts from the " + lat.measured_at + "'s tap; quantiles within 1% (log histogram)."),
      box),
  };
}

// healthSection is the connection health from the sampled TCP flags (null without).
function healthSection(ch) {
  if (!ch) return null;
  const ci = (v) => "95%: " + ratioPct(v[0]) + " – " + ratioPct(v[1]);
  return section("Connection health (sampled TCP flags)", "pair-health",
    h("div", { class: "kpis" },
      h("div", { class: "kpi", id: "pair-failure" }, h("div", { class: "kpi-label" }, "Failure ratio"),
        h("div", { class: "kpi-value", dataset: { value: String(ch.failure_ratio) }, title: String(ch.failure_ratio) }, ratioPct(ch.failure_ratio)),
        h("div", { class: "muted small", id: "pair-failure-ci", dataset: { lo: String(ch.failure_ci95[0]), hi: String(ch.failure_ci95[1]) } }, ci(ch.failure_ci95))),
      h("div", { class: "kpi", id: "pair-refused" }, h("div", { class: "kpi-label" }, "Refused ratio"),
        h("div", { class: "kpi-value", dataset: { value: String(ch.refused_ratio) }, title: String(ch.refused_ratio) }, ratioPct(ch.refused_ratio)),
        h("div", { class: "muted small", id: "pair-refused-ci", dataset: { lo: String(ch.refused_ci95[0]), hi: String(ch.refused_ci95[1]) } }, ci(ch.refused_ci95))),
      h("div", { class: "kpi", id: "pair-syn" }, h("div", { class: "kpi-label" }, "SYNs sent"), num("div", ch.syn, fmt.packets, { class: "kpi-value" }),
        h("div", { class: "muted small" }, fmt.count(ch.synack_in) + " SYN-ACK, " + fmt.count(ch.rst_in) + " RST back"))),
    h("p", { class: "muted note" }, "This pair's SYNs against the SYN-ACKs and RSTs of the reverse pair; intervals are Wilson 95% on the sampled counts (" +
      fmt.count(ch.sampled_syn) + " sampled SYNs)."));
}

// seriesStep is the smallest multiple of the window giving at most 120 points.
export function seriesStep(rangeSec, windowSec) {
  if (!windowSec) return "";
  const n = Math.max(1, Math.ceil(rangeSec / 120 / windowSec));
  return Math.round(n * windowSec * 1000) + "ms";
}

export async function render(ctx) {
  const p = ctx.params;
  const src = p.get("src") || "", dst = p.get("dst") || "";
  const metric = p.get("metric") || "bps";
  if (!src || !dst) {
    ctx.mount(h("div", { class: "view" }, h("h1", {}, "Pair detail"), h("p", {}, "Choose a pair on the ", link("topology", {}, "topology map", ctx.state), " or the ", link("overview", {}, "overview", ctx.state), ".")));
    return;
  }
  const rq = Object.assign(rangeQuery(p, defaultSince), { source: p.get("source") || "" });
  const base = "/api/v1/pairs/" + encodeURIComponent(src) + "/" + encodeURIComponent(dst);
  let d;
  try {
    d = await getJSON(base + "?" + qs(rq));
  } catch (e) {
    if (e instanceof HTTPError && e.status === 404) {
      ctx.mount(h("div", { class: "view pair" }, h("h1", {}, src + " → " + dst), h("p", { id: "pair-none", class: "muted" }, "No traffic from " + src + " to " + dst + " in this range.")));
      return;
    }
    throw e;
  }
  const step = seriesStep(rangeSeconds(p, defaultSince), d.window_seconds);
  const [series, alerts] = await Promise.all([
    getJSON(base + "/series?" + qs(Object.assign({ step }, rq))),
    fetchAlerts({}).catch(() => null),
  ]);
  if (!ctx.alive()) return;
  const pr = d.pair;
  const mine = (alerts || []).filter((a) => a.labels.src === src && a.labels.dst === dst);

  const controls = filterForm(ctx, "pair-filters", [
    { name: "metric", label: "Series", options: [["bps", "bit/s"], ["pps", "packets/s"], ["flows", "flows"]], def: "bps" },
  ]);
  const ep = (e) => (e.vm ? link("vm", { name: e.vm }, e.vm, ctx.state) : h("span", { class: "ip" }, e.ip));
  const endpoints = table("pair-endpoints", "Endpoints", [{ label: "" }, { label: "Endpoint" }, { label: "Host" }, { label: "Tenant" }, { label: "IP" }, { label: "MAC" }], [
    [h("th", { scope: "row" }, "Source"), h("td", {}, ep(pr.src)), pr.src.host || "–", pr.src.tenant_name || pr.src.tenant || "–", pr.src.ip || "–", pr.src.mac || "–"],
    [h("th", { scope: "row" }, "Destination"), h("td", {}, ep(pr.dst)), pr.dst.host || "–", pr.dst.tenant_name || pr.dst.tenant || "–", pr.dst.ip || "–", pr.dst.mac || "–"],
  ]);
  const kpis = h("div", { class: "kpis" },
    h("div", { class: "kpi", id: "pair-bps" }, h("div", { class: "kpi-label" }, "Average"), num("div", pr.bps, fmt.bps, { class: "kpi-value" })),
    h("div", { class: "kpi", id: "pair-pps" }, h("div", { class: "kpi-label" }, "Packets"), num("div", pr.pps, fmt.pps, { class: "kpi-value" })),
    h("div", { class: "kpi", id: "pair-bytes" }, h("div", { class: "kpi-label" }, "Bytes"), num("div", pr.bytes, fmt.bytes, { class: "kpi-value" }),
      h("div", { class: "muted small", id: "pair-ci" }, pr.bytes_ci95[0] === pr.bytes_ci95[1] ? "exact (unsampled)" : "95%: " + fmt.bytes(pr.bytes_ci95[0]) + " – " + fmt.bytes(pr.bytes_ci95[1]))),
    h("div", { class: "kpi", id: "pair-flows" }, h("div", { class: "kpi-label" }, "Flows (≤)"), num("div", pr.flows, fmt.flows, { class: "kpi-value" })),
    h("div", { class: "kpi", id: "pair-source" }, h("div", { class: "kpi-label" }, "From"), h("div", { class: "kpi-value" }, pr.source)),
  );
  const total = pr.bytes || 1;
  const protoRows = ["tcp", "udp", "icmp", "other"].map((k) => [h("th", { scope: "row" }, k.toUpperCase()), num("td", pr.protocols[k].bytes, fmt.bytes, { class: "num proto-bytes", dataset: { proto: k, value: String(pr.protocols[k].bytes) } }),
    num("td", pr.protocols[k].packets, fmt.packets), num("td", 100 * pr.protocols[k].bytes / total, fmt.pct)]);
  const flagRows = [["SYN", pr.tcp.syn], ["SYN-ACK", pr.tcp.synack], ["RST", pr.tcp.rst], ["FIN", pr.tcp.fin], ["ICMP errors", pr.icmp_errors],
    ["Dropped packets (OVS)", pr.dropped_packets]].map(([k, v]) => [h("th", { scope: "row" }, k), num("td", v, fmt.packets)]);
  const portRows = pr.top_ports.map((x) => [PROTO[x.proto] || String(x.proto), num("td", x.port, String), num("td", x.bytes, fmt.bytes)]);
  const srcRows = d.by_source.map((x) => [h("th", { scope: "row" }, x.source), num("td", x.bytes, fmt.bytes, { class: "num src-bytes", dataset: { source: x.source, value: String(x.bytes) } }),
    num("td", x.bps, fmt.bps), num("td", x.packets, fmt.packets), num("td", x.samples, fmt.count), h("td", { class: "num" }, x.bytes_ci95[0] === x.bytes_ci95[1] ? "exact" : fmt.bytes(x.bytes_ci95[0]) + " – " + fmt.bytes(x.bytes_ci95[1])), num("td", x.windows, String)]);

  const unit = metric === "pps" ? "packets/s" : metric === "flows" ? "flows" : "bit/s";
  const box = chartBox("pair", "Series of " + src + " to " + dst + " in " + unit + " with the 95% confidence band");
  const pointRows = series.points.slice(-20).reverse().map((pt) => [fmt.time(pt.time), num("td", pt.bps, fmt.bps), num("td", pt.pps, fmt.pps), num("td", pt.flows, fmt.flows)]);
  const lat = latencySection(pr.latency, series);
  const root = h("div", { class: "view pair" },
    h("h1", { id: "pair-title" }, src + " → " + dst),
    controls, kpis,
    mine.length ? section("Alerts", "pair-alerts", h("ul", {}, mine.map((a) => h("li", {}, severityBadge(a.severity), " ", a.rule, " · ", a.state, " · ", a.summary)))) : null,
    section("Series", "pair-series", box, h("p", { class: "muted note", id: "pair-step" }, "One point per " + series.step + "; the shaded band is the 95% confidence interval of the sampled estimate (none for unsampled IPFIX)."),
      h("details", {}, h("summary", {}, "Latest points"), table("pair-points", "Latest points", [{ label: "Time" }, { label: "bit/s", num: true }, { label: "packets/s", num: true }, { label: "Flows", num: true }], pointRows))),
    h("div", { class: "grid2" },
      section("Endpoints", "pair-ep", endpoints),
      section("sFlow vs IPFIX", "pair-by-source", table("pair-sources", "Per export protocol", [{ label: "Protocol" }, { label: "Bytes", num: true }, { label: "Average", num: true },
        { label: "Packets", num: true }, { label: "Samples", num: true }, { label: "Bytes 95%", num: true }, { label: "Windows", num: true }], srcRows))),
    h("div", { class: "grid3" },
      section("Protocol mix", "pair-protocols", table("pair-proto", "Protocol mix", [{ label: "Protocol" }, { label: "Bytes", num: true }, { label: "Packets", num: true }, { label: "Share", num: true }], protoRows)),
      section("TCP flags and errors", "pair-flags", table("pair-tcp", "TCP flags and errors", [{ label: "" }, { label: "Packets", num: true }], flagRows)),
      section("Top destination ports", "pair-ports", table("pair-ports-table", "Top ports", [{ label: "Protocol" }, { label: "Port", num: true }, { label: "Bytes", num: true }], portRows, "No port information."))),
    lat ? lat.node : null,
    healthSection(pr.conn_health),
    extraSection("pair-extra", pr, PAIR_FIELDS),
    lat || pr.conn_health ? null : h("p", { class: "muted", id: "pair-extra-none" }, "Latency and connection health: not measured for this pair (no probe, no sampled SYN)."),
  );
  if (!ctx.mount(root)) return;

  const pts = series.points;
  const val = (pt) => (metric === "pps" ? pt.pps : metric === "flows" ? pt.flows : pt.bps);
  const band = (pt) => {
    if (metric === "flows") return null;
    if (metric === "pps") {
      const f = pt.packets > 0 ? pt.pps / pt.packets : 0;
      return [pt.packets_ci95[0] * f, pt.packets_ci95[1] * f];
    }
    const f = pt.bytes > 0 ? pt.bps / pt.bytes : 0;
    return [pt.bytes_ci95[0] * f, pt.bytes_ci95[1] * f];
  };
  const fm = metric === "pps" ? fmt.pps : metric === "flows" ? fmt.flows : fmt.bps;
  const s = [{ name: unit, type: "line", showSymbol: pts.length < 60, data: pts.map((pt) => [pt.time, val(pt)]), z: 3 }];
  if (metric !== "flows") {
    s.push({ name: "_ci_lo", type: "line", stack: "ci", symbol: "none", lineStyle: { opacity: 0 }, data: pts.map((pt) => [pt.time, band(pt)[0]]), tooltip: { show: false } });
    s.push({ name: "_ci_width", type: "line", stack: "ci", symbol: "none", lineStyle: { opacity: 0 }, areaStyle: { opacity: 0.25 }, data: pts.map((pt) => [pt.time, band(pt)[1] - band(pt)[0]]), tooltip: { show: false } });
  }
  draw("pair", box, { grid: { left: 80, right: 20, top: 20, bottom: 30 }, tooltip: tooltip(fm), xAxis: timeAxis(), yAxis: valueAxis(fm), series: s });
  if (lat && lat.box) {
    const lp = pts.filter((pt) => pt.latency && pt.latency.handshake_us);
    const qs3 = ["p50", "p95", "p99"];
    draw("pair-latency", lat.box, {
      legend: { top: 0 }, grid: { left: 80, right: 20, top: 30, bottom: 30 }, tooltip: tooltip(us), xAxis: timeAxis(), yAxis: valueAxis(us),
      series: qs3.map((k) => ({ name: "handshake " + k, type: "line", showSymbol: lp.length < 60, data: lp.map((pt) => [pt.time, pt.latency.handshake_us[k]]) })),
    });
  }
}
