// vmflow UI: polls the REST API every 5 s. Plain JavaScript, no dependencies.
"use strict";

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);

// formatSI formats n with SI prefixes and 3 significant digits: 1234567 → "1.23 M".
function formatSI(n) {
  if (!isFinite(n)) return "–";
  const units = ["", "k", "M", "G", "T", "P", "E"];
  let i = 0;
  let v = Math.abs(n);
  while (v >= 999.5 && i < units.length - 1) { v /= 1000; i++; }
  const digits = v >= 99.95 || i === 0 ? 0 : v >= 9.995 ? 1 : 2;
  return (n < 0 ? "-" : "") + v.toFixed(digits) + (units[i] ? " " + units[i] : "");
}
function formatBytes(n) { const s = formatSI(n); return /[a-zA-Z]$/.test(s) ? s + "B" : s + " B"; }
function formatBits(n) { const s = formatSI(n); return /[a-zA-Z]$/.test(s) ? s + "bit/s" : s + " bit/s"; }
function formatCount(n) { return formatSI(n); }

function cell(row, text, cls, title) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (title) td.title = title;
  row.appendChild(td);
  return td;
}

function endpointCell(row, ep) {
  if (ep.vm) {
    const title = [ep.uuid, ep.host && "host " + ep.host, ep.tenant && "tenant " + ep.tenant, ep.ip, ep.mac].filter(Boolean).join(" · ");
    return cell(row, ep.vm, "vm", title);
  }
  return cell(row, ep.ip || "?", "ip", "not a known VM");
}

function showError(id, err) {
  const el = $(id);
  if (err) { el.textContent = String(err); el.hidden = false; } else { el.hidden = true; }
}

async function getJSON(url) {
  const resp = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    throw new Error((body && body.error) || (resp.status + " " + resp.statusText));
  }
  return body;
}

async function refreshPairs() {
  const q = new URLSearchParams({ since: $("since").value, source: $("source").value, limit: "50" });
  const vm = $("vm").value.trim();
  if (vm) q.set("vm", vm);
  try {
    const data = await getJSON("/api/v1/pairs?" + q.toString());
    const tbody = $("pairs").tBodies[0];
    const rows = [];
    for (const p of data.pairs) {
      const tr = document.createElement("tr");
      endpointCell(tr, p.src);
      endpointCell(tr, p.dst);
      cell(tr, formatBytes(p.bytes), "num bytes", p.bytes.toFixed(0) + " bytes");
      cell(tr, formatBits(p.bps), "num bps");
      cell(tr, formatCount(p.packets), "num packets", p.packets.toFixed(0) + " packets");
      cell(tr, String(p.flows), "num flows", "distinct flows per window, summed (upper bound)");
      const [lo, hi] = p.bytes_ci95;
      cell(tr, lo === hi ? "exact" : formatBytes(lo) + " – " + formatBytes(hi), "num ci");
      cell(tr, p.source, "source");
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
    $("pairs-empty").hidden = rows.length > 0;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString() +
      (data.total_pairs > data.pairs.length ? " · top " + data.pairs.length + " of " + data.total_pairs : "");
    showError("pairs-error", null);
  } catch (err) {
    showError("pairs-error", "pairs: " + err.message);
  }
}

async function refreshExporters() {
  try {
    const data = await getJSON("/api/v1/exporters");
    const rows = [];
    for (const x of data.exporters) {
      const tr = document.createElement("tr");
      cell(tr, x.protocol);
      cell(tr, x.address, "ip");
      cell(tr, x.protocol === "sflow" ? (x.agent || "") + " / " + x.sub_agent : "domain " + x.observation_domain);
      cell(tr, formatCount(x.datagrams), "num");
      cell(tr, formatCount(x.samples), "num");
      cell(tr, String(x.decode_errors), "num");
      cell(tr, String(x.lost_datagrams), "num");
      cell(tr, x.last_seen ? new Date(x.last_seen).toLocaleTimeString() : "", "");
      rows.push(tr);
    }
    $("exporters").tBodies[0].replaceChildren(...rows);
    $("exporters-empty").hidden = rows.length > 0;
    showError("exporters-error", null);
  } catch (err) {
    showError("exporters-error", "exporters: " + err.message);
  }
}

async function refreshHealth() {
  const el = $("health");
  try {
    const h = await getJSON("/api/v1/health");
    el.className = "health " + (h.status === "ok" ? "ok" : "degraded");
    el.textContent = h.status + " · up " + h.uptime;
  } catch (err) {
    el.className = "health down";
    el.textContent = "unreachable: " + err.message;
  }
}

function refreshAll() {
  refreshPairs();
  refreshExporters();
  refreshHealth();
}

let vmTimer = null;
$("vm").addEventListener("input", () => {
  clearTimeout(vmTimer);
  vmTimer = setTimeout(refreshPairs, 300);
});
$("source").addEventListener("change", refreshPairs);
$("since").addEventListener("change", refreshPairs);

refreshAll();
setInterval(refreshAll, REFRESH_MS);
