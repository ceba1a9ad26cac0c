// Charts: Apache ECharts (vendored, see vendor/echarts-6.1.0), canvas
// renderer. Every chart is registered in window.vmflow.charts by name so
// that tests (and curious users) can read the data a chart shows.
import * as echarts from "./vendor/echarts-6.1.0/echarts.esm.min.js";
import { fmt, h } from "./lib.js";

const live = new Map(); // name → echarts instance

export function isDark() { return document.documentElement.dataset.theme === "dark"; }

function palette() {
  return isDark()
    ? ["#7cb5ff", "#ffb86b", "#7ee2a8", "#ff8a9a", "#c9a7ff", "#6fd6e0", "#f5d76e", "#b0b8c8", "#ff9de2", "#9be37e"]
    : ["#1f5fbf", "#c2410c", "#15803d", "#b91c1c", "#6d28d9", "#0e7490", "#a16207", "#475569", "#be185d", "#4d7c0f"];
}

export function colors() { return palette(); }

function textColor() { return isDark() ? "#d9dee8" : "#1d2330"; }
function lineColor() { return isDark() ? "#3a4254" : "#dfe3ea"; }

// chartBox makes the container of a chart: an element with role="img" and
// an accessible name (the data is also in a table next to it).
export function chartBox(name, label, cls) {
  return h("div", { class: "chart " + (cls || ""), id: "chart-" + name, role: "img", "aria-label": label });
}

// render draws option into the box (creating or reusing the instance).
export function render(name, box, option) {
  let inst = live.get(name);
  if (inst && inst.getDom() !== box) {
    inst.dispose();
    inst = null;
  }
  if (!inst) {
    inst = echarts.init(box, null, { renderer: "canvas" });
    live.set(name, inst);
    if (window.ResizeObserver) {
      const ro = new ResizeObserver(() => {
        if (inst.isDisposed()) ro.disconnect();
        else if (box.clientWidth > 0) inst.resize();
      });
      ro.observe(box);
    }
  }
  const base = {
    color: palette(),
    backgroundColor: "transparent",
    textStyle: { color: textColor(), fontFamily: "system-ui, sans-serif" },
    animation: false,
  };
  if (option.legend && !option.legend.textStyle) option.legend = Object.assign({ textStyle: { color: textColor() } }, option.legend);
  inst.setOption(Object.assign(base, option), { notMerge: true });
  return inst;
}

// disposeAll drops the charts of the previous view.
export function disposeAll() {
  for (const inst of live.values()) inst.dispose();
  live.clear();
}

export function axisStyle() {
  return {
    axisLine: { lineStyle: { color: lineColor() } },
    splitLine: { lineStyle: { color: lineColor() } },
    axisLabel: { color: textColor() },
  };
}

// timeAxis / valueAxis with unit formatting.
export function timeAxis() { return Object.assign({ type: "time" }, axisStyle()); }
export function valueAxis(format, name) {
  const a = Object.assign({ type: "value", name: name || "", nameTextStyle: { color: textColor() } }, axisStyle());
  a.axisLabel = Object.assign({}, a.axisLabel, { formatter: (v) => format(v) });
  return a;
}

// tooltip without inline styles (CSP-friendly: plain text lines).
export function tooltip(format) {
  return {
    trigger: "axis",
    formatter: (ps) => {
      const list = Array.isArray(ps) ? ps : [ps];
      if (!list.length) return "";
      const t = list[0].axisValue !== undefined ? new Date(list[0].axisValue).toLocaleString() : "";
      return [t].concat(list.filter((p) => !p.seriesName.startsWith("_")).map((p) => p.seriesName + ": " + format(Array.isArray(p.value) ? p.value[1] : p.value))).join("<br>");
    },
  };
}

// sparkline is a tiny line chart with no axes.
export function sparkline(name, box, points) {
  return render(name, box, {
    grid: { left: 1, right: 1, top: 2, bottom: 2 },
    xAxis: { type: "time", show: false },
    yAxis: { type: "value", show: false, min: 0 },
    series: [{ type: "line", data: points, showSymbol: false, lineStyle: { width: 1.5 }, areaStyle: { opacity: 0.2 } }],
  });
}

// exposed for tests
window.vmflow = window.vmflow || {};
window.vmflow.charts = live;
window.vmflow.chartData = (name) => {
  const inst = live.get(name);
  return inst ? inst.getOption() : null;
};
window.vmflow.fmt = fmt;

export { echarts };
