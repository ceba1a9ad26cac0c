// Topology map: VMs as nodes grouped by hypervisor or tenant, directed
// edges weighted by bit/s, packets/s or flows. The API returns only the top
// N edges (the rest summed as "other") and can collapse groups, so the page
// never holds more than it can draw; above NODE_LIMIT nodes it shows a
// table instead of the graph.
import { fmt, getJSON, h, link, metricFormat, num, qs, rangeQuery, table } from "../lib.js";
import { chartBox, colors, isDark, render as draw } from "../charts.js";
import { fetchAlerts, filterForm, filterQuery, FILTERS, section } from "./common.js";
import { nodeLabel } from "./overview.js";

export const title = "Topology";
export const defaultSince = "5m";
export const NODE_LIMIT = 2500;

export async function render(ctx) {
  const p = ctx.params;
  const group = p.get("group") || "host";
  const level = p.get("level") || "vm";
  const metric = p.get("metric") || "bps";
  const top = p.get("top") || "300";
  const expand = (p.get("expand") || "").split(",").filter(Boolean);
  const mode = p.get("mode") || "graph";
  const t0 = performance.now();
  const q = Object.assign(rangeQuery(p, defaultSince), { source: p.get("source") || "", group, level, metric, top, expand: expand.join(",") }, filterQuery(p));
  const [g, alerts] = await Promise.all([
    getJSON("/api/v1/graph?" + qs(q)),
    fetchAlerts({ state: "firing" }).catch(() => null),
  ]);
  if (!ctx.alive()) return;
  const tFetched = performance.now();
  const fm = metricFormat(metric);
  const weight = (e) => (metric === "pps" ? e.pps : metric === "flows" ? e.flows : e.bps);

  const alertVMs = new Set(), alertPairs = new Set();
  for (const a of alerts || []) {
    if (a.labels.vm) alertVMs.add(a.labels.vm);
    if (a.labels.src && a.labels.dst) alertPairs.add(a.labels.src + ">" + a.labels.dst);
  }
  const nodeAlert = (n) => n.kind !== "group" && alertVMs.has(n.name);
  const edgeAlert = (e) => alertPairs.has(nodeLabel(e.src) + ">" + nodeLabel(e.dst));

  const controls = filterForm(ctx, "topo-filters", [
    { name: "group", label: "Group by", options: [["host", "hypervisor"], ["tenant", "tenant"]], def: "host" },
    { name: "level", label: "Show", options: [["vm", "every VM"], ["group", "groups collapsed"]], def: "vm" },
    { name: "metric", label: "Weight", options: [["bps", "bit/s"], ["pps", "packets/s"], ["flows", "flows"]], def: "bps" },
    { name: "top", label: "Top edges", options: [["50", "50"], ["100", "100"], ["300", "300"], ["1000", "1000"], ["5000", "5000"]], def: "300" },
    { name: "mode", label: "View", options: [["graph", "graph"], ["table", "table"]], def: "graph" },
    ...FILTERS,
  ]);

  const tooBig = g.nodes.length > NODE_LIMIT;
  const showGraph = mode === "graph" && !tooBig;
  const summary = h("p", { id: "topo-summary", class: "summary", dataset: { nodes: String(g.nodes.length), edges: String(g.edges.length), totalEdges: String(g.total_edges), otherEdges: String(g.other.edges) } },
    g.nodes.length + " nodes, " + g.edges.length + " of " + g.total_edges + " edges shown (heaviest by " + metric + ")",
    g.other.edges ? h("span", { id: "topo-other" }, "; other: " + g.other.edges + " edges, " + fmt.bps(g.other.bps) + ", " + fmt.pps(g.other.pps)) : "",
    tooBig ? h("strong", { id: "topo-toobig" }, " — more than " + NODE_LIMIT + " nodes: showing the table; collapse groups or lower Top edges for the map.") : "");

  // Group list: collapse/expand buttons (keyboard-accessible twin of clicking group nodes).
  const groupButtons = h("div", { class: "groups", id: "topo-groups", role: "group", "aria-label": "Groups" },
    h("span", { class: "muted" }, (group === "host" ? "Hypervisors" : "Tenants") + ": "),
    g.groups.map((name) => {
      const collapsed = level === "group" && !expand.includes(name);
      return h("button", { type: "button", class: "chip", "aria-pressed": collapsed ? "true" : "false", dataset: { group: name },
        title: collapsed ? "expand " + name : "collapse " + name, onclick: () => toggleGroup(ctx, name, level, expand, g.groups) },
      (collapsed ? "▸ " : "▾ ") + name);
    }));

  const box = chartBox("topology", "Topology map: " + g.nodes.length + " nodes and " + g.edges.length + " edges; the edges are listed in the table below", "tall");
  const shown = mode === "graph" && !tooBig ? g.edges.slice(0, 50) : g.edges; // rows built: only those shown
  const edgeRows = shown.map((e) => {
    const s = nodeLabel(e.src), d = nodeLabel(e.dst);
    const sl = e.src.startsWith("vm:") ? link("vm", { name: s }, s, ctx.state) : e.src.startsWith("group:") ? h("span", { class: "group-key" }, s + " (group)") : h("span", { class: "ip" }, s);
    const dl = e.dst.startsWith("vm:") ? link("vm", { name: d }, d, ctx.state) : e.dst.startsWith("group:") ? h("span", { class: "group-key" }, d + " (group)") : h("span", { class: "ip" }, d);
    const pairLink = e.src.startsWith("group:") || e.dst.startsWith("group:") ? "–" : link("pair", { src: s, dst: d }, "detail", ctx.state);
    return [h("td", {}, sl), h("td", {}, dl), num("td", weight(e), fm, { class: "num weight" }), num("td", e.bps, fmt.bps, { class: "num bps" }), num("td", e.pps, fmt.pps),
      num("td", e.flows, fmt.flows), h("td", {}, edgeAlert(e) ? h("span", { class: "sev sev-p1" }, "alert") : ""), h("td", {}, pairLink)];
  });
  const limitRows = edgeRows;
  const edgeTable = table("topo-edges", "Edges", [{ label: "Source" }, { label: "Destination" }, { label: metric, num: true }, { label: "bit/s", num: true },
    { label: "packets/s", num: true }, { label: "Flows", num: true }, { label: "Alert" }, { label: "Pair" }], limitRows, "No traffic in this range.");

  const root = h("div", { class: "view topology" },
    h("h1", {}, "Topology"),
    controls, summary, groupButtons,
    showGraph ? section("Map", "topo-map", box, h("p", { class: "muted note" }, "Node size: traffic; edge width: " + metric + ". Click a VM or an edge for its detail, a group to expand or collapse it; scroll to zoom, drag to pan. Rates are averages over the range.")) : null,
    section(showGraph ? "Heaviest edges" : "Edges", "topo-table", edgeTable, showGraph && g.edges.length > 50 ? h("p", { class: "muted" }, "The first 50 of " + g.edges.length + "; choose View: table for all.") : null),
  );
  if (!ctx.mount(root)) return;
  if (!showGraph) { mark(tFetched, t0, g, false, 0); return; }

  const tMounted = performance.now();
  const option = graphOption(g, metric, weight, nodeAlert, edgeAlert);
  const tOption = performance.now();
  const inst = draw("topology", box, option);
  window.vmflow = window.vmflow || {};
  window.vmflow.topologySteps = { mountMs: tMounted - tFetched, optionMs: tOption - tMounted, drawMs: performance.now() - tOption };
  inst.off("click");
  inst.on("click", (ev) => {
    if (ev.dataType === "node") {
      const n = ev.data.raw;
      if (n.kind === "vm") ctx.state.go("vm", { name: n.name });
      else if (n.kind === "group") toggleGroup(ctx, n.name, level, expand, g.groups);
    } else if (ev.dataType === "edge") {
      const e = ev.data.raw;
      if (e.src.startsWith("group:") || e.dst.startsWith("group:")) {
        const ex = new Set(expand);
        for (const id of [e.src, e.dst]) if (id.startsWith("group:")) ex.add(nodeLabel(id));
        ctx.state.set({ expand: [...ex].join(",") });
      } else ctx.state.go("pair", { src: nodeLabel(e.src), dst: nodeLabel(e.dst) });
    }
  });
  const tSet = performance.now();
  let painted = false;
  inst.on("finished", () => {
    if (!painted) { painted = true; mark(tFetched, t0, g, true, tSet); }
  });
  mark(tFetched, t0, g, true, tSet, false);
}

// mark records render timings for the scale test
// (window.vmflow.topologyTiming): fetchMs (the API answer), totalMs (until
// the chart is drawn), sinceNavMs (from the page's navigation start),
// setOptionMs (building and handing the chart its data); painted once
// ECharts reports its first frame finished.
function mark(tFetched, t0, g, graph, tSet, painted = true) {
  window.vmflow = window.vmflow || {};
  const now = performance.now();
  window.vmflow.topologyTiming = { fetchMs: tFetched - t0, totalMs: now - t0, sinceNavMs: now, setOptionMs: tSet ? tSet - tFetched : 0,
    nodes: g.nodes.length, edges: g.edges.length, graph, painted };
}

function toggleGroup(ctx, name, level, expand, all) {
  if (level !== "group") {
    // From the full view: collapse this group only.
    ctx.state.set({ level: "group", expand: all.filter((x) => x !== name).join(",") });
    return;
  }
  const ex = new Set(expand);
  if (ex.has(name)) ex.delete(name); else ex.add(name);
  ctx.state.set({ expand: [...ex].join(",") || null });
}

// graphOption lays the nodes out without a force simulation (it would not
// settle at thousands of nodes): groups are packed in rows, each group's
// nodes on a sunflower spiral around its centre.
export function graphOption(g, metric, weight, nodeAlert, edgeAlert) {
  const byGroup = new Map();
  for (const n of g.nodes) {
    if (!byGroup.has(n.group)) byGroup.set(n.group, []);
    byGroup.get(n.group).push(n);
  }
  const spacing = 28;
  const groups = [...byGroup.entries()].map(([name, nodes]) => ({ name, nodes, r: spacing * (Math.sqrt(nodes.length) + 1) }))
    .sort((a, b) => b.r - a.r || a.name.localeCompare(b.name));
  const area = groups.reduce((s, x) => s + 4 * x.r * x.r, 0);
  const rowWidth = Math.max(Math.sqrt(area) * 1.6, groups.length ? 2 * groups[0].r : 0);
  let x = 0, y = 0, rowH = 0;
  const golden = Math.PI * (3 - Math.sqrt(5));
  const pos = new Map();
  for (const gr of groups) {
    if (x > 0 && x + 2 * gr.r > rowWidth) { x = 0; y += rowH + spacing; rowH = 0; }
    const cx = x + gr.r, cy = y + gr.r;
    gr.nodes.sort((a, b) => (b.bps_out + b.bps_in) - (a.bps_out + a.bps_in) || a.id.localeCompare(b.id));
    gr.nodes.forEach((n, i) => {
      const rr = gr.nodes.length === 1 ? 0 : spacing * Math.sqrt(i + 0.5);
      pos.set(n.id, [cx + rr * Math.cos(i * golden), cy + rr * Math.sin(i * golden)]);
    });
    gr.cx = cx; gr.cy = cy;
    x += 2 * gr.r + spacing;
    rowH = Math.max(rowH, 2 * gr.r);
  }
  const cats = groups.map((gr) => gr.name).sort();
  const catIndex = new Map(cats.map((c, i) => [c, i]));
  const traffic = (n) => n.bps_out + n.bps_in + n.internal_bps;
  const maxT = Math.max(1, ...g.nodes.map(traffic));
  const maxW = Math.max(1e-9, ...g.edges.map(weight));
  const pal = colors();
  const alertColor = isDark() ? "#ff6b6b" : "#c00000";
  // At cloud size (hundreds of groups, thousands of edges) the costly
  // extras go: the legend (the group chips above list the groups), edge
  // curves and arrowheads, per-node label settings. Measured by
  // BenchmarkTopologyScale (web/topology_scale_test.go).
  const showLabels = g.nodes.length <= 150;
  const big = g.edges.length > 1000 || g.nodes.length > 1000;
  const showLegend = cats.length <= 30;
  const nodes = g.nodes.map((n) => {
    const o = {
      id: n.id, name: n.name, raw: n,
      x: pos.get(n.id)[0], y: pos.get(n.id)[1],
      category: catIndex.get(n.group),
      symbol: n.kind === "group" ? "roundRect" : n.kind === "ip" ? "diamond" : "circle",
      symbolSize: (n.kind === "group" ? 18 : 6) + 22 * Math.sqrt(traffic(n) / maxT),
      value: traffic(n),
    };
    if (nodeAlert(n)) o.itemStyle = { borderColor: alertColor, borderWidth: 3 };
    if (!showLabels && n.kind === "group") o.label = { show: true };
    return o;
  });
  const curveness = big ? 0 : 0.15;
  const links = g.edges.map((e) => ({
    source: e.src, target: e.dst, value: weight(e), raw: e,
    lineStyle: Object.assign({ width: 0.5 + 5.5 * Math.sqrt(weight(e) / maxW), opacity: 0.55, curveness },
      edgeAlert(e) ? { color: alertColor, opacity: 0.95 } : {}),
  }));
  const fm = metricFormat(metric);
  return {
    legend: showLegend ? [{ data: cats, top: 0, type: "scroll", textStyle: { color: isDark() ? "#d9dee8" : "#1d2330" } }] : [],
    tooltip: {
      formatter: (p) => {
        if (p.dataType === "edge") {
          const e = p.data.raw;
          return nodeLabel(e.src) + " → " + nodeLabel(e.dst) + "<br>" + fmt.bps(e.bps) + " · " + fmt.pps(e.pps) + " · " + fmt.flows(e.flows) + " flows";
        }
        const n = p.data.raw;
        if (!n) return "";
        return (n.kind === "group" ? "group " + n.name + " (" + n.members + " endpoints)" : n.name + (n.host ? " on " + n.host : "")) +
          "<br>out " + fmt.bps(n.bps_out) + " · in " + fmt.bps(n.bps_in) + (n.internal_bps ? "<br>inside " + fmt.bps(n.internal_bps) : "");
      },
    },
    series: [{
      type: "graph", layout: "none", roam: true, draggable: false,
      categories: cats.map((c, i) => ({ name: c, itemStyle: { color: pal[i % pal.length] } })),
      data: nodes, links,
      edgeSymbol: big ? ["none", "none"] : ["none", "arrow"], edgeSymbolSize: 6,
      label: { show: showLabels, position: "right", fontSize: 11, color: isDark() ? "#d9dee8" : "#1d2330" },
      emphasis: { focus: "adjacency", label: { show: true } },
      lineStyle: { color: "source" },
      progressiveThreshold: 20000, // one frame: faster to the first complete picture at 5,000 edges
    }],
  };
}
