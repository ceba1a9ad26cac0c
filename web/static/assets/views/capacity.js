// Capacity planning per VM or pair over 7 or 30 days: peak, 95th
// percentile, trend line with a forecast and the runout date against a
// capacity; biggest risers and fallers. The range is the view's own
// (7d/30d), not the header's.
import { fmt, getJSON, h, num, qs, table } from "../lib.js";
import { chartBox, render as draw, timeAxis, tooltip, valueAxis } from "../charts.js";
import { filterForm, section } from "./common.js";

export const title = "Capacity";
export const defaultSince = "168h";

const RANGES = { "7d": "168h", "30d": "720h" };

export async function render(ctx) {
  const p = ctx.params;
  const kind = p.get("kind") || "vm";
  const days = p.get("days") === "30d" ? "30d" : "7d";
  const sort = p.get("sort") || "runout";
  const cap = p.get("capacity") || "";
  const q = { since: RANGES[days], kind, sort, top: 25, capacity_bps: cap, source: p.get("source") || "" };
  for (const k of ["tenant", "host", "vm"]) if (p.get(k)) q[k] = p.get(k);
  const d = await getJSON("/api/v1/capacity?" + qs(q));
  if (!ctx.alive()) return;
  const controls = filterForm(ctx, "cap-filters", [
    { name: "kind", label: "Per", options: [["vm", "VM"], ["pair", "pair"]], def: "vm" },
    { name: "days", label: "Over", options: [["7d", "7 days"], ["30d", "30 days"]], def: "7d" },
    { name: "sort", label: "Sort by", options: [["runout", "runout"], ["peak", "peak"], ["p95", "95th percentile"], ["growth", "growth"]], def: "runout" },
    { name: "capacity", label: "Capacity (bit/s)", placeholder: String(d.capacity_bps), type: "number" },
    { name: "tenant", label: "Tenant", placeholder: "any" },
    { name: "host", label: "Host", placeholder: "any" },
    { name: "vm", label: "VM", placeholder: "any" },
  ]);
  const sel = p.get("sel") || (d.items[0] && d.items[0].subject) || "";
  const rowOf = (it) => {
    const btn = h("button", { type: "button", class: "linkish", "aria-pressed": it.subject === sel ? "true" : "false" }, it.subject);
    btn.addEventListener("click", () => ctx.state.set({ sel: it.subject }));
    return [h("td", {}, btn), num("td", it.peak_bps, fmt.bps, { class: "num peak" }), num("td", it.p95_bps, fmt.bps, { class: "num p95" }), num("td", it.trend_bps, fmt.bps),
      num("td", it.forecast_bps, fmt.bps), h("td", { class: it.exceeded ? "bad runout" : "runout", dataset: { value: it.runout || "" } }, it.exceeded ? "exceeded" : fmt.date(it.runout)),
      num("td", it.growth_pct_per_day, fmt.pct)];
  };
  const cols = [{ label: kind === "vm" ? "VM" : "Pair" }, { label: "Peak", num: true }, { label: "95th pct", num: true }, { label: "Trend now", num: true },
    { label: "Forecast", num: true }, { label: "Runout" }, { label: "Growth/day", num: true }];
  const small = (list) => list.map((it) => [it.subject, num("td", it.slope_bps_per_day, (v) => fmt.bps(v) + " per day"), num("td", it.growth_pct_per_day, fmt.pct)]);
  const box = chartBox("capacity", "Series, trend and forecast of " + sel + " against the capacity");
  const root = h("div", { class: "view capacity" },
    h("h1", {}, "Capacity planning"), controls,
    h("p", { class: "muted note", id: "cap-summary" }, d.total_subjects + " " + (kind === "vm" ? "VMs" : "pairs") + " over " + days + " (buckets of " + d.step + "; " + d.windows +
      " windows of history held), capacity " + fmt.bps(d.capacity_bps) + ". Forecast at " + fmt.time(d.forecast_at) + ". For a VM each bucket counts its busier direction."),
    sel ? section("Trend of " + sel, "cap-chart", box) : null,
    section("Subjects", "cap-items", table("cap-table", "Capacity", cols, d.items.map(rowOf), "No history in this range.")),
    h("div", { class: "grid2" },
      section("Biggest risers", "cap-risers", table("cap-risers-table", "Risers", [{ label: "Subject" }, { label: "Slope", num: true }, { label: "Growth/day", num: true }], small(d.risers), "None rising.")),
      section("Biggest fallers", "cap-fallers", table("cap-fallers-table", "Fallers", [{ label: "Subject" }, { label: "Slope", num: true }, { label: "Growth/day", num: true }], small(d.fallers), "None falling."))),
  );
  if (!ctx.mount(root)) return;
  const it = d.items.find((x) => x.subject === sel) || d.risers.concat(d.fallers).find((x) => x.subject === sel);
  if (!it) return;
  const to = new Date(d.to).getTime(), fa = new Date(d.forecast_at).getTime();
  const slope = it.slope_bps_per_day / 86400e3; // per ms
  const trendAt = (t) => Math.max(0, it.trend_bps + slope * (t - to));
  const t0 = d.times.length ? new Date(d.times[0]).getTime() : to;
  draw("capacity", box, {
    legend: { top: 0 }, grid: { left: 80, right: 30, top: 30, bottom: 30 }, tooltip: tooltip(fmt.bps), xAxis: timeAxis(), yAxis: valueAxis(fmt.bps),
    series: [
      { name: "bit/s", type: "line", showSymbol: false, data: d.times.map((t, i) => [t, it.bps[i]]) },
      { name: "trend", type: "line", showSymbol: false, lineStyle: { type: "solid" }, data: [[t0, trendAt(t0)], [to, trendAt(to)]] },
      { name: "forecast", type: "line", showSymbol: false, lineStyle: { type: "dashed" }, data: [[to, trendAt(to)], [fa, trendAt(fa)]],
        markLine: { symbol: "none", label: { formatter: "capacity " + fmt.bps(d.capacity_bps) }, data: [{ yAxis: d.capacity_bps }] } },
    ],
  });
}
