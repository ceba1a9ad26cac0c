// Pieces shared by several views.
import { fmt, h, num, optionalJSON, qs, severityClass, table } from "../lib.js";

// FILTERS are the filter fields of the graph and overview routes.
export const FILTERS = [
  { name: "tenant", label: "Tenant", placeholder: "any" },
  { name: "host", label: "Host", placeholder: "any" },
  { name: "vm", label: "VM", placeholder: "any" },
  { name: "protocol", label: "Protocol", options: ["", "tcp", "udp", "icmp", "other"] },
  { name: "port", label: "Port", placeholder: "any", type: "number" },
];

// filterForm is a form of filter fields (and extra selects) whose submit
// (Enter or the button) and select changes write the URL.
export function filterForm(ctx, id, fields) {
  const p = ctx.params;
  const inputs = {};
  const items = fields.map((f) => {
    const fid = id + "-" + f.name;
    let input;
    if (f.options) {
      input = h("select", { id: fid, name: f.name },
        f.options.map((o) => {
          const [v, label] = Array.isArray(o) ? o : [o, o || "any"];
          return h("option", { value: v }, label);
        }));
      input.value = p.get(f.name) || f.def || (Array.isArray(f.options[0]) ? f.options[0][0] : f.options[0]);
      input.addEventListener("change", () => submit());
    } else {
      input = h("input", { id: fid, name: f.name, type: f.type === "number" ? "number" : "search", min: f.type === "number" ? 0 : null,
        max: f.type === "number" ? 65535 : null, placeholder: f.placeholder || "", autocomplete: "off", spellcheck: "false" });
      input.value = p.get(f.name) || "";
    }
    inputs[f.name] = { input, def: f.def };
    return h("span", { class: "field" }, h("label", { for: fid }, f.label), input);
  });
  const form = h("form", { class: "filters", id, role: "search", "aria-label": "Filters" }, items,
    h("button", { type: "submit" }, "Apply"),
    h("button", { type: "button", class: "secondary", id: id + "-clear" }, "Clear"));
  function submit() {
    const ch = {};
    for (const [k, { input, def }] of Object.entries(inputs)) {
      const v = input.value.trim();
      ch[k] = v === (def || "") ? null : v;
    }
    ctx.state.set(ch);
  }
  form.addEventListener("submit", (ev) => { ev.preventDefault(); submit(); });
  form.querySelector("#" + id + "-clear").addEventListener("click", () => {
    const ch = {};
    for (const k of Object.keys(inputs)) ch[k] = null;
    ctx.state.set(ch);
  });
  return form;
}

// filterQuery picks the filter parameters present in the URL.
export function filterQuery(params) {
  const q = {};
  for (const f of FILTERS) if (params.get(f.name)) q[f.name] = params.get(f.name);
  return q;
}

// kpi is a headline number: label, formatted value, raw value in data-value.
export function kpi(id, label, value, format, extra) {
  return h("div", { class: "kpi", id },
    h("div", { class: "kpi-label" }, label),
    h("div", { class: "kpi-value", dataset: { value: String(value) }, title: String(value) }, format(value)),
    extra || null);
}

export function section(title, id, ...children) {
  const hid = id + "-title";
  return h("section", { class: "panel", id, "aria-labelledby": hid }, h("h2", { id: hid }, title), ...children);
}

// fetchAlerts reads the alert API; null when it does not exist (404).
export async function fetchAlerts(filters) {
  const data = await optionalJSON("/api/v1/alerts" + (filters && Object.keys(filters).length ? "?" + qs(filters) : ""));
  if (data === null) return null;
  return normaliseAlerts(data);
}

// normaliseAlerts accepts the documented shape ({alerts: [...]}, snake
// case) and tolerates a bare list or camel case.
export function normaliseAlerts(data) {
  const list = Array.isArray(data) ? data : data.alerts || [];
  return list.map((a) => {
    const labels = a.labels || {};
    const ann = a.annotations || {};
    return {
      fingerprint: a.fingerprint || a.id || "",
      rule: a.rule || labels.rule || labels.alertname || "",
      kind: a.kind || labels.kind || "",
      severity: a.severity || labels.severity || "",
      state: a.state || a.status || "",
      labels,
      summary: ann.summary || a.summary || "",
      value: a.value,
      peak: a.peak,
      since: a.starts_at || a.startsAt || a.since || a.active_at || "",
      ends: a.ends_at || a.endsAt || "",
      silenced: !!(a.silenced || (a.status && a.status.silencedBy && a.status.silencedBy.length)),
    };
  });
}

export function severityBadge(s) { return h("span", { class: severityClass(s) }, s || "?"); }

// subjectOf is what an alert is about: a pair, a VM or an exporter.
export function subjectOf(a) {
  const l = a.labels;
  if (l.src && l.dst) return { view: "pair", params: { src: l.src, dst: l.dst }, text: l.src + " → " + l.dst };
  if (l.vm) return { view: "vm", params: { name: l.vm }, text: l.vm };
  if (l.exporter) return { view: "exporters", params: {}, text: "exporter " + l.exporter };
  return { view: "", params: {}, text: l.host || l.tenant || "vmflow" };
}

// extraFields lists the numeric fields of obj the view does not know
// (names not in known), one level of nested objects flattened as
// "parent.child": later vmflow versions add measurements (latency,
// connections, resources) and the detail views show them as they come.
export function extraFields(obj, known) {
  const out = [];
  for (const [k, v] of Object.entries(obj || {})) {
    if (known.has(k)) continue;
    if (typeof v === "number") out.push([k, v]);
    else if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) if (typeof v2 === "number") out.push([k + "." + k2, v2]);
    }
  }
  return out;
}

// extraSection is extraFields as a table (null when there is none).
export function extraSection(id, obj, known) {
  const rows = extraFields(obj, known).map(([k, v]) => [h("th", { scope: "row" }, k.replace(/_/g, " ")), num("td", v, (x) => fmt.count(x), { class: "num extra", dataset: { field: k, value: String(v) } })]);
  return rows.length ? section("Other measurements", id, table(id + "-table", "Other measurements", [{ label: "Field" }, { label: "Value", num: true }], rows)) : null;
}
