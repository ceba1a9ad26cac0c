// Shared helpers of the console: formatting, DOM building, the API client
// and the URL state. Plain ES module, no dependencies.

// formatSI formats n with SI prefixes and 3 significant digits: 1234567 → "1.23 M".
export function formatSI(n) {
  if (n === null || n === undefined || !isFinite(n)) return "–";
  const units = ["", "k", "M", "G", "T", "P", "E"];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 999.5 && i < units.length - 1) { v /= 1000; i++; }
  const digits = v >= 99.95 || (i === 0 && Number.isInteger(v)) ? 0 : v >= 9.995 ? 1 : 2;
  return (n < 0 ? "-" : "") + v.toFixed(digits) + (units[i] ? " " + units[i] : "");
}
function unit(s, u) { return /[a-zA-Z]$/.test(s) ? s + u : s + " " + u; }
export const fmt = {
  bytes: (n) => unit(formatSI(n), "B"),
  bps: (n) => unit(formatSI(n), "bit/s"),
  pps: (n) => unit(formatSI(n), "packets/s"),
  packets: (n) => formatSI(n),
  count: (n) => formatSI(n),
  flows: (n) => formatSI(n),
  pct: (n) => (isFinite(n) ? n.toFixed(1) + " %" : "–"),
  time: (t) => (t ? new Date(t).toLocaleString() : "–"),
  clock: (t) => (t ? new Date(t).toLocaleTimeString() : "–"),
  date: (t) => (t ? new Date(t).toISOString().slice(0, 10) : "never"),
  ago: (t) => {
    if (!t) return "–";
    const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  },
};
// metricFormat picks the formatter of a rate metric.
export function metricFormat(m) { return m === "pps" ? fmt.pps : m === "flows" ? fmt.flows : fmt.bps; }

// h builds an element: h("td", {class: "num", dataset: {value: 3}}, "text", child...).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// num is a number cell: formatted text, the raw value in data-value (what
// the tests compare with the API), the exact value as a tooltip.
export function num(tag, value, format, attrs) {
  return h(tag, Object.assign({ class: "num", dataset: { value: String(value) }, title: String(value) }, attrs || {}), format(value));
}

// table builds a table: cols = [{label, num}], rows = arrays of cells (Node or text).
export function table(id, caption, cols, rows, emptyText) {
  const t = h("table", { id, class: "data" },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c.num ? "num" : "" }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => (c instanceof Node && (c.tagName === "TD" || c.tagName === "TH") ? c : h("td", {}, c)))))));
  if (rows.length === 0) return h("div", {}, t, h("p", { class: "muted empty", id: id + "-empty" }, emptyText || "Nothing in this range."));
  return t;
}

export class HTTPError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

// getJSON fetches an API path; errors carry the HTTP status.
export async function getJSON(url, opts) {
  const resp = await fetch(url, Object.assign({ cache: "no-store", headers: { Accept: "application/json" } }, opts || {}));
  let body = null;
  try { body = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) throw new HTTPError(resp.status, (body && body.error) || resp.status + " " + resp.statusText);
  return body;
}

// optionalJSON is getJSON that answers null when the route does not exist
// (404/501) or is switched off (503, alert.enabled=false): for alerts.
export async function optionalJSON(url) {
  try { return await getJSON(url); } catch (e) {
    if (e.status === 404 || e.status === 501 || e.status === 503) return null;
    throw e;
  }
}

// ---- URL state: #/view?param=value&... ----

export function parseHash(hash) {
  const s = (hash || "").replace(/^#/, "");
  const [path, qs] = s.split("?", 2);
  const view = (path || "").replace(/^\/+/, "") || "overview";
  return { view, params: new URLSearchParams(qs || "") };
}

export function buildHash(view, params) {
  const p = new URLSearchParams();
  for (const [k, v] of (params instanceof URLSearchParams ? params.entries() : Object.entries(params || {}))) {
    if (v !== undefined && v !== null && v !== "") p.set(k, v);
  }
  const qs = p.toString();
  return "#/" + view + (qs ? "?" + qs : "");
}

// link is an <a> to another view, carrying the global state (range, source).
export function link(view, params, text, state) {
  const p = Object.assign({}, state ? state.globals() : {}, params);
  return h("a", { href: buildHash(view, p) }, text);
}

// Time range presets (also the selectable values of "since").
export const PRESETS = [
  ["5m", "Last 5 minutes"], ["15m", "Last 15 minutes"], ["1h", "Last hour"],
  ["6h", "Last 6 hours"], ["24h", "Last 24 hours"], ["168h", "Last 7 days"],
];

// rangeQuery turns the state's range into API parameters.
export function rangeQuery(params, def) {
  const q = {};
  if (params.get("from")) {
    q.from = params.get("from");
    if (params.get("to")) q.to = params.get("to");
  } else {
    q.since = params.get("since") || def || "1h";
  }
  return q;
}

// rangeSeconds is the length of the state's range.
export function rangeSeconds(params, def) {
  const r = rangeQuery(params, def);
  if (r.from) {
    const to = r.to ? new Date(r.to).getTime() : Date.now();
    return Math.max(1, (to - new Date(r.from).getTime()) / 1000);
  }
  return parseDuration(r.since);
}

export function parseDuration(s) {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s)/g;
  let m;
  while ((m = re.exec(s || ""))) total += parseFloat(m[1]) * { h: 3600, m: 60, s: 1, ms: 0.001 }[m[2]];
  return total;
}

// qs builds an API query string from an object, skipping empty values.
export function qs(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  return p.toString();
}

// endpointName is how a pair endpoint is shown: VM name, else IP.
export function endpointName(ep) { return ep.vm || ep.ip || "?"; }

// severityClass maps P0..P4 to a CSS class.
export function severityClass(s) { return "sev sev-" + String(s || "").toLowerCase(); }
