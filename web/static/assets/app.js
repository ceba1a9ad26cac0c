// vmflow console: hash routing (#/view?params), the header controls (time
// range, source, auto-refresh, theme) and the views. Each view's whole
// state is in the URL; reloading or sharing the URL restores it.
import { buildHash, getJSON, h, parseHash, PRESETS } from "./lib.js";
import { disposeAll } from "./charts.js";
import * as overview from "./views/overview.js";
import * as topology from "./views/topology.js";
import * as pair from "./views/pair.js";
import * as vm from "./views/vm.js";
import * as alerts from "./views/alerts.js";
import * as capacity from "./views/capacity.js";
import * as exporters from "./views/exporters.js";

const VIEWS = { overview, topology, pair, vm, alerts, capacity, exporters };
const GLOBALS = ["since", "from", "to", "source", "refresh", "theme"];
const $ = (id) => document.getElementById(id);

let current = { view: "", params: new URLSearchParams() };
let generation = 0;
let timer = null;

// The state handed to views.
const state = {
  params: () => current.params,
  view: () => current.view,
  // globals are the parameters every view shares (carried by links).
  globals() {
    const g = {};
    for (const k of GLOBALS) if (current.params.get(k)) g[k] = current.params.get(k);
    return g;
  },
  // go navigates to a view; params are its own parameters, globals are kept.
  go(view, params) { location.hash = buildHash(view, Object.assign(this.globals(), params)); },
  // set changes some parameters of the current view (null removes).
  set(changes) {
    const p = new URLSearchParams(current.params);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") p.delete(k); else p.set(k, v);
    }
    location.hash = buildHash(current.view, p);
  },
};

function applyTheme() {
  const t = current.params.get("theme") || localStorage.getItem("vmflow-theme") ||
    (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = t === "dark" ? "dark" : "light";
  const b = $("theme");
  b.setAttribute("aria-pressed", t === "dark" ? "true" : "false");
  b.textContent = t === "dark" ? "Light theme" : "Dark theme";
}

function syncControls() {
  const p = current.params;
  const range = $("range");
  if (p.get("from")) {
    range.value = "custom";
    $("custom").hidden = false;
    $("from").value = toLocalInput(p.get("from"));
    $("to").value = p.get("to") ? toLocalInput(p.get("to")) : "";
  } else {
    const since = p.get("since") || VIEWS[current.view].defaultSince || "1h";
    range.value = PRESETS.some(([v]) => v === since) ? since : "";
    if (!range.value) {
      range.append(h("option", { value: since }, "Last " + since));
      range.value = since;
    }
    $("custom").hidden = true;
  }
  $("source").value = p.get("source") || "auto";
  $("refresh").value = p.get("refresh") || "off";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === current.view || (a.dataset.also || "").split(" ").includes(current.view)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function toLocalInput(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
}

function schedule() {
  clearInterval(timer);
  const r = current.params.get("refresh");
  const ms = { "10s": 10000, "30s": 30000, "1m": 60000 }[r];
  if (ms) timer = setInterval(() => render(true), ms);
}

async function render(refresh) {
  const gen = ++generation;
  const mod = VIEWS[current.view];
  const main = $("view");
  if (!refresh) {
    disposeAll();
    main.replaceChildren(h("p", { class: "muted loading" }, "Loading…"));
    document.title = "vmflow · " + mod.title;
  }
  main.dataset.view = current.view;
  main.dataset.state = "loading";
  const ctx = {
    params: current.params,
    state,
    refresh,
    alive: () => gen === generation,
    reload: () => render(true),
    // mount swaps the view's content in (charts are drawn after, on a sized box).
    mount(node) {
      if (gen !== generation) return false;
      if (!refresh) disposeAll();
      main.replaceChildren(node);
      return true;
    },
  };
  try {
    await mod.render(ctx);
    if (gen === generation) {
      main.dataset.state = "ready";
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    }
  } catch (err) {
    if (gen !== generation) return;
    console.error(err);
    main.replaceChildren(h("div", { class: "error", role: "alert" }, mod.title + ": " + err.message));
    main.dataset.state = "error";
  }
}

function route() {
  const { view, params } = parseHash(location.hash);
  if (!VIEWS[view]) {
    location.replace(buildHash("overview", {}));
    return;
  }
  const viewChanged = view !== current.view;
  current = { view, params };
  applyTheme();
  syncControls();
  schedule();
  render(false).then(() => {
    if (viewChanged && document.activeElement === document.body) $("view").focus({ preventScroll: true });
  });
}

async function refreshHealth() {
  const el = $("health");
  try {
    const hl = await getJSON("/api/v1/health");
    el.className = "health " + (hl.status === "ok" ? "ok" : "degraded");
    el.textContent = "vmflow " + hl.status + " · up " + hl.uptime;
  } catch (err) {
    el.className = "health down";
    el.textContent = "API unreachable";
  }
}

function init() {
  const range = $("range");
  for (const [v, label] of PRESETS) range.append(h("option", { value: v }, label));
  range.append(h("option", { value: "custom" }, "Custom range…"));
  range.addEventListener("change", () => {
    if (range.value === "custom") {
      $("custom").hidden = false;
      $("from").focus();
      return;
    }
    state.set({ since: range.value, from: null, to: null });
  });
  $("custom").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const from = new Date($("from").value);
    const to = $("to").value ? new Date($("to").value) : null;
    if (isNaN(from)) return;
    state.set({ since: null, from: from.toISOString(), to: to && !isNaN(to) ? to.toISOString() : null });
  });
  $("source").addEventListener("change", () => state.set({ source: $("source").value === "auto" ? null : $("source").value }));
  $("refresh").addEventListener("change", () => state.set({ refresh: $("refresh").value === "off" ? null : $("refresh").value }));
  $("theme").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem("vmflow-theme", next);
    if (current.params.get("theme")) state.set({ theme: next });
    else { applyTheme(); render(false); }
  });
  window.addEventListener("hashchange", route);
  refreshHealth();
  setInterval(refreshHealth, 15000);
  route();
}

init();
