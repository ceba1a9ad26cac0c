// Alerts: active and recent alerts (GET /api/v1/alerts) with severity,
// subject, value and since; filters; links to the subject; silence from the
// list (POST /api/v1/silences); the rules and silences. When the alert API
// is absent (404) the view says so.
import { fmt, getJSON, h, link, num, optionalJSON, table } from "../lib.js";
import { fetchAlerts, filterForm, section, severityBadge, subjectOf } from "./common.js";

export const title = "Alerts";
export const defaultSince = "1h";

export async function render(ctx) {
  const p = ctx.params;
  const f = {};
  for (const k of ["state", "severity", "tenant", "vm"]) if (p.get(k)) f[k] = p.get(k);
  const [alerts, rules, silences] = await Promise.all([
    fetchAlerts(f),
    optionalJSON("/api/v1/alerts/rules").catch(() => null),
    optionalJSON("/api/v1/silences").catch(() => null),
  ]);
  if (!ctx.alive()) return;
  const controls = filterForm(ctx, "alert-filters", [
    { name: "state", label: "State", options: [["", "any"], ["firing", "firing"], ["pending", "pending"], ["resolved", "resolved"]] },
    { name: "severity", label: "Severity", options: [["", "any"], "P0", "P1", "P2", "P3", "P4"] },
    { name: "tenant", label: "Tenant", placeholder: "any" },
    { name: "vm", label: "VM", placeholder: "any" },
  ]);
  if (alerts === null) {
    ctx.mount(h("div", { class: "view alerts" }, h("h1", {}, "Alerts"),
      h("p", { id: "alerts-unavailable", class: "empty-state" }, "Alerting is not available in this vmflow: GET /api/v1/alerts answered 404.")));
    return;
  }
  const status = h("p", { id: "alerts-status", role: "status", class: "muted" });
  const rows = alerts.map((a) => {
    const subj = subjectOf(a);
    const btn = h("button", { type: "button", class: "secondary silence-btn", "aria-label": "Silence " + a.rule + " for " + subj.text, dataset: { fingerprint: a.fingerprint, severity: a.severity } }, "Silence…");
    btn.addEventListener("click", () => btn.replaceWith(silenceForm(ctx, a, status)));
    return [h("td", {}, severityBadge(a.severity)), h("td", { class: "state-" + a.state }, a.state + (a.silenced ? " (silenced)" : "")), a.rule,
      h("td", {}, subj.view ? link(subj.view, subj.params, subj.text, ctx.state) : subj.text),
      num("td", a.value, (v) => (typeof v === "number" ? fmt.count(v) : "–")), num("td", a.peak, (v) => (typeof v === "number" ? fmt.count(v) : "–")),
      h("td", { title: a.since }, fmt.ago(a.since)), h("td", { class: "summary" }, a.summary), h("td", {}, btn)];
  });
  const ruleList = rules ? (Array.isArray(rules) ? rules : rules.rules || []) : null;
  const silList = silences ? (Array.isArray(silences) ? silences : silences.silences || []) : null;
  const root = h("div", { class: "view alerts" },
    h("h1", {}, "Alerts"), controls, status,
    section("Active and recent", "alerts-list", table("alerts-table", "Alerts", [{ label: "Severity" }, { label: "State" }, { label: "Rule" }, { label: "Subject" },
      { label: "Value", num: true }, { label: "Peak", num: true }, { label: "Since" }, { label: "Summary" }, { label: "" }], rows, "No alerts match.")),
    ruleList ? section("Rules", "alerts-rules", table("rules-table", "Rules", [{ label: "Rule" }, { label: "Kind" }, { label: "Severity" }, { label: "State" }, { label: "Last evaluation" }, { label: "Error" }],
      ruleList.map((r) => [r.name || r.rule || "", r.kind || "", r.severity || "", r.state || "", fmt.time(r.last_evaluation || r.lastEvaluation), r.error || r.last_error || ""]))) : null,
    silList ? section("Silences", "alerts-silences", table("silences-table", "Silences", [{ label: "Matchers" }, { label: "Until" }, { label: "Comment" }, { label: "" }],
      silList.map((s) => {
        const del = h("button", { type: "button", class: "secondary" }, "Expire");
        del.addEventListener("click", async () => {
          try {
            await getJSON("/api/v1/silences/" + encodeURIComponent(s.id), { method: "DELETE" });
            ctx.reload();
          } catch (e) { status.textContent = "expire failed: " + e.message; }
        });
        return [(s.matchers || []).map((m) => m.name + (m.is_regex || m.isRegex ? "=~" : "=") + m.value).join(", "), fmt.time(s.ends_at || s.endsAt), s.comment || "", h("td", {}, del)];
      }), "No silences.")) : null,
  );
  ctx.mount(root);
}

function silenceForm(ctx, a, status) {
  const id = "sil-" + Math.random().toString(36).slice(2, 8);
  const dur = h("select", { id: id + "-dur" }, [["1h", "1 hour"], ["4h", "4 hours"], ["24h", "1 day"], ["168h", "1 week"]].map(([v, l]) => h("option", { value: v }, l)));
  const comment = h("input", { id: id + "-comment", type: "text", required: true, placeholder: "why" });
  const form = h("form", { class: "silence" },
    h("label", { for: dur.id }, "For"), dur, h("label", { for: comment.id }, "Comment"), comment, h("button", { type: "submit" }, "Silence"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const hours = { "1h": 1, "4h": 4, "24h": 24, "168h": 168 }[dur.value];
    // The alert API's silence (Alertmanager's shape: camel case).
    const matchers = [{ name: "rule", value: a.rule, isRegex: false, isEqual: true }];
    for (const k of ["vm", "src", "dst", "exporter"]) if (a.labels[k]) matchers.push({ name: k, value: a.labels[k], isRegex: false, isEqual: true });
    const now = new Date();
    try {
      await getJSON("/api/v1/silences", {
        method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ matchers, startsAt: now.toISOString(), endsAt: new Date(now.getTime() + hours * 3600e3).toISOString(), createdBy: "console", comment: comment.value }),
      });
      status.textContent = "Silenced " + a.rule + ".";
      ctx.reload();
    } catch (e) {
      status.textContent = "silence failed: " + e.message;
    }
  });
  setTimeout(() => comment.focus(), 0);
  return form;
}
