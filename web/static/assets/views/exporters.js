// Exporters and inventory: every exporter with its ingest counters and
// estimated loss, loss over time (sampled while the page is open: the API
// serves the counters, not their history), the inventory sources, the VMs
// and the inventory conflicts.
import { fmt, getJSON, h, link, num, optionalJSON, table } from "../lib.js";
import { chartBox, render as draw, timeAxis, tooltip, valueAxis } from "../charts.js";
import { section } from "./common.js";

export const title = "Exporters & inventory";
export const defaultSince = "1h";

const history = new Map(); // exporter key → [[time, lost datagrams, datagrams]]
const MAX_SAMPLES = 360;

function key(x) { return x.protocol + " " + x.address + (x.protocol === "sflow" ? " sub " + x.sub_agent : " dom " + x.observation_domain); }

export async function render(ctx) {
  const [ex, src, inv, hosts] = await Promise.all([getJSON("/api/v1/exporters"), getJSON("/api/v1/inventory/sources"), getJSON("/api/v1/vms"),
    optionalJSON("/api/v1/hosts").catch(() => null)]);
  if (!ctx.alive()) return;
  const now = Date.now();
  for (const x of ex.exporters) {
    const k = key(x);
    if (!history.has(k)) history.set(k, []);
    const s = history.get(k);
    s.push([now, x.lost_datagrams, x.datagrams]);
    if (s.length > MAX_SAMPLES) s.shift();
  }
  const p = ctx.params;
  const q = (p.get("q") || "").toLowerCase();
  const exRows = ex.exporters.map((x) => {
    const lossPct = x.datagrams + x.lost_datagrams > 0 ? 100 * x.lost_datagrams / (x.datagrams + x.lost_datagrams) : 0;
    return [x.protocol, h("td", { class: "ip" }, x.address), x.protocol === "sflow" ? (x.agent || "") + " / " + x.sub_agent : "domain " + x.observation_domain,
      num("td", x.datagrams, fmt.count, { class: "num datagrams" }), num("td", x.samples, fmt.count), num("td", x.decode_errors, String),
      num("td", x.lost_datagrams, String, { class: "num lost" }), num("td", lossPct, fmt.pct), num("td", x.reordered, String), num("td", x.restarts, String), h("td", { title: x.last_seen }, fmt.ago(x.last_seen))];
  });
  const srcRows = src.sources.map((s) => [s.name, s.kind, h("td", { class: "state-" + s.state }, s.state), s.uri || "–", fmt.ago(s.last_sync), num("td", s.vms, String, { class: "num vms" }),
    num("td", s.events, String), num("td", s.errors, String), s.last_error || "–"]);
  const vms = inv.vms.filter((v) => !q || v.name.toLowerCase().includes(q) || (v.host || "").toLowerCase().includes(q) || (v.tenant || "").toLowerCase().includes(q));
  const vmRows = vms.slice(0, 500).map((v) => [h("td", {}, link("vm", { name: v.name }, v.name, ctx.state)), v.host || "–", v.tenant_name || v.tenant || "–", v.state || "–", v.source,
    h("td", { class: v.stale ? "bad" : "" }, v.stale ? "stale" : "ok"),
    v.interfaces.flatMap((i) => i.addrs.map((a) => a.ip + " (" + a.source + ")")).join(", ") || "–"]);
  // Hypervisors: the sums of their VMs' resources (GET /api/v1/hosts; absent before vmflow had it).
  const hv = (x, k, f) => num("td", x[k], f, { class: "num host", dataset: { host: x.host, field: k, value: String(x[k]) } });
  const hostRows = ((hosts && hosts.hosts) || []).map((x) => [h("th", { scope: "row" }, x.host), hv(x, "vms", String), hv(x, "vcpus", String), hv(x, "cpu_cores_used", (v) => v.toFixed(2)),
    hv(x, "memory_balloon_bytes", fmt.bytes), hv(x, "memory_used_bytes", fmt.bytes), hv(x, "memory_rss_bytes", fmt.bytes),
    hv(x, "disk_iops", fmt.count), hv(x, "net_rx_bits_per_s", fmt.bps), hv(x, "net_tx_bits_per_s", fmt.bps),
    x.hypervisor ? (x.hypervisor.cpus || "?") + " CPUs" + (x.hypervisor.cpu_percent !== undefined ? ", " + fmt.pct(x.hypervisor.cpu_percent) : "") +
      (x.hypervisor.memory_total_bytes ? ", " + fmt.bytes(x.hypervisor.memory_total_bytes) : "") + " (" + x.hypervisor.source + ")" : "–"]);
  const conflictRows = inv.conflicts.map((c) => [c.kind, c.key, c.vms.join(", "), c.chose, c.reason || "–"]);
  const search = h("form", { class: "filters", role: "search", "aria-label": "Find VMs" },
    h("span", { class: "field" }, h("label", { for: "inv-q" }, "Find VM"), h("input", { id: "inv-q", type: "search", value: p.get("q") || "", placeholder: "name, host or tenant" })),
    h("button", { type: "submit" }, "Find"));
  search.addEventListener("submit", (ev) => { ev.preventDefault(); ctx.state.set({ q: search.querySelector("input").value.trim() }); });
  const box = chartBox("exporter-loss", "Lost datagrams per exporter since this page was opened");
  const root = h("div", { class: "view exporters" },
    h("h1", {}, "Exporters & inventory"),
    section("Exporters", "exp-list", table("exporters-table", "Exporters", [{ label: "Protocol" }, { label: "Address" }, { label: "Agent / domain" }, { label: "Datagrams", num: true },
      { label: "Samples", num: true }, { label: "Decode errors", num: true }, { label: "Lost", num: true }, { label: "Loss", num: true }, { label: "Reordered", num: true },
      { label: "Restarts", num: true }, { label: "Last seen" }], exRows, "No exporter has sent anything yet.")),
    section("Loss over time", "exp-loss", box, h("p", { class: "muted note" }, "Lost datagrams (estimated from sequence numbers) per exporter, sampled at each refresh while this page is open; turn on auto-refresh to follow it.")),
    section("Inventory sources", "inv-sources", table("sources-table", "Inventory sources", [{ label: "Name" }, { label: "Kind" }, { label: "State" }, { label: "URI" }, { label: "Last sync" },
      { label: "VMs", num: true }, { label: "Events", num: true }, { label: "Errors", num: true }, { label: "Last error" }], srcRows, "No inventory source.")),
    hostRows.length ? section("Hypervisors", "inv-hosts", table("hosts-table", "Hypervisors", [{ label: "Host" }, { label: "VMs", num: true }, { label: "vCPUs", num: true },
      { label: "Cores used", num: true }, { label: "Memory (balloon)", num: true }, { label: "Used", num: true }, { label: "RSS", num: true }, { label: "Disk IOPS", num: true },
      { label: "Net in", num: true }, { label: "Net out", num: true }, { label: "Host agent" }], hostRows),
      h("p", { class: "muted note" }, "Sums over each host's VMs with fresh resource figures (libvirt or hsflowd); the host agent's own view when hsflowd reports it.")) : null,
    section("VMs (" + inv.vms.length + ")", "inv-vms", search, table("vms-table", "VMs", [{ label: "Name" }, { label: "Host" }, { label: "Tenant" }, { label: "State" }, { label: "Source" }, { label: "Freshness" }, { label: "Addresses (source)" }], vmRows, "No VM."),
      vms.length > 500 ? h("p", { class: "muted" }, "The first 500 of " + vms.length + "; narrow the search.") : null),
    section("Conflicts", "inv-conflicts", table("conflicts-table", "Conflicts", [{ label: "Kind" }, { label: "Key" }, { label: "Claimed by" }, { label: "Chosen" }, { label: "Reason" }], conflictRows, "No conflicts.")),
  );
  if (!ctx.mount(root)) return;
  draw("exporter-loss", box, {
    legend: { top: 0, type: "scroll" }, grid: { left: 60, right: 20, top: 30, bottom: 30 }, tooltip: tooltip(String), xAxis: timeAxis(), yAxis: valueAxis(fmt.count),
    series: [...history.entries()].map(([k, s]) => ({ name: k, type: "line", showSymbol: s.length < 3, data: s.map(([t, lost]) => [t, lost]) })),
  });
}
