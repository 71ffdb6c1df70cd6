// SPDX-License-Identifier: GPL-2.0-only
// Rampart's dashboard: plain JavaScript over the API, with the session cookie.
// Every text from the API (findings carry what attackers wrote) goes into the page
// as textContent, never as HTML.
"use strict";

const S = { csrf: "", scope: "read", name: "", findings: [], es: null, live: false, page: "" };
const SEV = ["warning", "high", "critical"];

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (k === "text") e.textContent = v;
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false)
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function toast(msg) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 4000);
}

async function api(path, opts) {
  const o = Object.assign({ method: "GET", credentials: "same-origin", headers: {} }, opts || {});
  if (o.body !== undefined && typeof o.body !== "string") {
    o.body = JSON.stringify(o.body);
    o.headers["content-type"] = "application/json";
  }
  if (o.method !== "GET") o.headers["x-csrf-token"] = S.csrf;
  const r = await fetch("/api/v1" + path, o);
  const text = await r.text();
  let body;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  // 401 for a session that is gone sends the browser to the login form; 401 for a
  // route beyond the session's scope is an error on the page.
  if (r.status === 401 && !(body && String(body.error || "").includes("lacks the"))) {
    location.href = "/login";
    throw new Error("not logged in");
  }
  if (!r.ok) {
    const msg = body && body.error ? body.error : r.status + " " + r.statusText;
    const e = new Error(msg);
    e.status = r.status;
    e.body = body;
    throw e;
  }
  return body;
}

const admin = () => S.scope === "admin";

// A write: run it, say what happened, redraw the page.
async function act(what, path, body) {
  try {
    await api(path, { method: "POST", body: body || {} });
    toast(what);
  } catch (e) {
    toast(what + " failed: " + e.message);
  }
  route();
}

function sevName(f) {
  return f.severity_label || SEV[f.severity] || "info";
}

function table(cols, rows, rowFn) {
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, cols.map((c) => el("th", { text: c })))),
    el("tbody", {}, rows.length ? rows.map(rowFn)
      : el("tr", {}, el("td", { colspan: cols.length, class: "mute", text: "Nothing here." })))));
}

function card(value, label) {
  return el("div", { class: "card" }, el("b", { text: value }), el("span", { text: label }));
}

// A bar chart of numbers, as SVG built node by node.
function bars(values, labels, title) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 300 100");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const max = Math.max(1, ...values);
  const w = 300 / Math.max(1, values.length);
  values.forEach((v, i) => {
    const r = document.createElementNS(ns, "rect");
    const h = (v / max) * 92;
    r.setAttribute("x", String(i * w + 1));
    r.setAttribute("y", String(98 - h));
    r.setAttribute("width", String(Math.max(1, w - 2)));
    r.setAttribute("height", String(h));
    r.setAttribute("fill", "#1f5fbf");
    const t = document.createElementNS(ns, "title");
    t.textContent = labels[i] + ": " + v;
    r.append(t);
    svg.append(r);
  });
  return svg;
}

const pages = {
  async overview(main) {
    const [st, health, trend] = await Promise.all([
      api("/status"), api("/health"), api("/stats/trend?days=30"),
    ]);
    const sv = st.severities || {};
    main.append(el("h1", { text: "Overview of " + st.hostname }),
      el("div", { class: "cards" },
        card(st.status, "status"), card(st.uptime, "uptime"),
        card(sv.critical || 0, "critical findings"), card(sv.high || 0, "high findings"),
        card(sv.warning || 0, "warnings"), card(st.blocklist_size, "blocked addresses"),
        card(st.incidents_open, "open incidents"), card(st.rules_loaded, "rules loaded")),
      el("h2", { text: "Findings per day, 30 days" }),
      bars(trend.map((d) => (d.critical || 0) + (d.high || 0) + (d.warning || 0) + (d.info || 0)),
        trend.map((d) => d.date), "findings per day"),
      el("h2", { text: "Sensors" }),
      table(["sensor", "backend", "why"], health.sensors || [], (s) => el("tr", {},
        el("td", { text: s.sensor }), el("td", { text: s.backend }),
        el("td", { class: "wrap", text: s.reason || (s.unseen || []).join("; ") }))),
      el("h2", { text: "Components" }),
      table(["name", "kind", "state", "target"], health.components || [], (c) => el("tr", {},
        el("td", { text: c.name }), el("td", { text: c.kind }),
        el("td", { text: c.state + (c.reason ? " (" + c.reason + ")" : "") }),
        el("td", { class: "wrap", text: c.target }))),
      el("h2", { text: "Event loss" }),
      table(["where", "lost"], Object.entries(health.losses || {}), ([k, v]) => el("tr", {},
        el("td", { text: k }), el("td", { text: v }))),
      el("p", { class: "mute", text: "Last scan: " + (st.last_scan_time || "none") }));
  },

  async findings(main) {
    S.findings = await api("/findings");
    const f = { sev: "", text: "" };
    const list = el("div");
    const live = el("span", { class: "live" + (S.live ? " on" : ""), id: "live", title: "live updates" });
    const draw = () => {
      const q = f.text.toLowerCase();
      const rows = S.findings.filter((x) => (!f.sev || sevName(x) === f.sev) &&
        (!q || [x.check, x.message, x.file_path, x.source_ip, x.cp_user]
          .some((v) => v && String(v).toLowerCase().includes(q))));
      list.replaceChildren(table(["", "time", "check", "message", "where", ""], rows, (x) => el("tr",
        { "data-id": x.id },
        el("td", { class: "sev sev-" + sevName(x), text: sevName(x) }),
        el("td", { text: (x.time || "").replace("T", " ").slice(0, 19) }),
        el("td", { text: x.check }),
        el("td", { class: "wrap", text: x.message }),
        el("td", { class: "wrap", text: x.file_path || x.source_ip || x.cp_user || "" }),
        el("td", {}, admin() ? [
          x.has_fix ? el("button", { class: "ghost", on: { click: () => act("Fixed", "/fix", { id: x.id }) } }, "Fix") : null,
          el("button", { class: "ghost", on: { click: () => act("Dismissed", "/dismiss", { id: x.id }) } }, "Dismiss"),
        ] : null))));
    };
    S.redrawFindings = draw;
    main.append(el("h1", {}, live, "Findings"),
      el("div", { class: "filters" },
        el("label", {}, "Severity", el("select", { id: "f-sev", on: { change: (e) => { f.sev = e.target.value; draw(); } } },
          el("option", { value: "" }, "all"), ["critical", "high", "warning", "info"].map((s) => el("option", { value: s }, s)))),
        el("label", {}, "Search", el("input", { id: "f-text", type: "search", placeholder: "check, path, IP, account",
          on: { input: (e) => { f.text = e.target.value; draw(); } } }))),
      list);
    draw();
  },

  async firewall(main) {
    // Allowed entries and the verdict counters are admin reads.
    const [blocks, allows, fw] = await Promise.all([
      api("/blocked-ips"), admin() ? api("/firewall/allowed") : [], admin() ? api("/firewall/status") : {},
    ]);
    let q = "";
    const list = el("div");
    const draw = () => list.replaceChildren(table(["address", "reason", "source", "since", "expires", ""],
      blocks.filter((b) => !q || (b.ip + " " + b.reason).toLowerCase().includes(q)), (b) => el("tr", { "data-ip": b.ip },
        el("td", { text: b.ip }), el("td", { class: "wrap", text: b.reason }), el("td", { text: b.source }),
        el("td", { text: (b.blocked_at || "").slice(0, 19) }), el("td", { text: b.expires_in }),
        el("td", {}, admin() ? el("button", { class: "ghost",
          on: { click: () => act("Unblocked " + b.ip, "/unblock-ip", { ip: b.ip }) } }, "Unblock") : null))));
    const form = admin() ? el("form", { class: "inline", id: "block-form", on: { submit: (e) => {
      e.preventDefault();
      const d = new FormData(e.target);
      act("Blocked " + d.get("ip"), "/block-ip", { ip: d.get("ip"), reason: d.get("reason"), duration: d.get("duration") || undefined });
    } } },
      el("label", {}, "Address or CIDR", el("input", { name: "ip", required: true, placeholder: "203.0.113.7" })),
      el("label", {}, "Reason", el("input", { name: "reason" })),
      el("label", {}, "For", el("input", { name: "duration", placeholder: "24h (empty: always)" })),
      el("button", { type: "submit" }, "Block")) : null;
    const dropped = (fw.top_dropped || []);
    main.append(el("h1", { text: "Firewall" }),
      el("div", { class: "cards" }, card(blocks.length, "blocked"), card(allows.length, "allowed"),
        admin() ? card(fw.enabled ? "on" : "off", "XDP enforcement") : null),
      form,
      el("label", {}, "Search", el("input", { type: "search", id: "fw-search",
        on: { input: (e) => { q = e.target.value.toLowerCase(); draw(); } } })),
      list,
      el("h2", { text: "Top dropped sources" }),
      dropped.length ? bars(dropped.map((d) => d.packets || d.count || 0), dropped.map((d) => d.ip), "top dropped sources") : el("p", { class: "mute", text: "No drops sampled." }),
      el("h2", { text: "Allowed" }),
      table(["address", "reason", "source"], allows, (a) => el("tr", {},
        el("td", { text: a.ip }), el("td", { text: a.reason }), el("td", { text: a.source }))));
    draw();
  },

  async threats(main) {
    const [top, incidents] = await Promise.all([api("/threat/top-attackers?limit=25"), api("/incidents?limit=50")]);
    main.append(el("h1", { text: "Threats" }),
      table(["address", "events", "country", "network", "blocked"], top, (a) => el("tr", {},
        el("td", { text: a.ip }), el("td", { text: a.events || a.count || 0 }), el("td", { text: a.country || "" }),
        el("td", { text: a.as_org || "" }), el("td", { text: a.blocked ? "yes" : "" }))),
      el("h2", { text: "Incidents" }),
      table(["id", "kind", "key", "status", "updated", ""], incidents, (i) => el("tr", {},
        el("td", { text: i.id }), el("td", { text: i.kind }), el("td", { class: "wrap", text: i.key || i.correlation_key || "" }),
        el("td", { text: i.status }), el("td", { text: (i.updated_at || "").slice(0, 19) }),
        el("td", {}, admin() && i.status !== "resolved" ? el("button", { class: "ghost",
          on: { click: () => act("Resolved", "/incidents/" + i.id + "/status", { status: "resolved" }) } }, "Resolve") : null))));
  },

  async quarantine(main) {
    if (!admin()) {
      main.append(el("h1", { text: "Quarantine" }), el("p", { class: "mute", text: "Quarantined files are shown to admin sessions only." }));
      return;
    }
    const items = await api("/quarantine");
    const preview = el("pre", { class: "scroll", id: "preview" });
    main.append(el("h1", { text: "Quarantine" }),
      table(["file", "reason", "when", "state", ""], items, (q) => el("tr", { "data-id": q.id },
        el("td", { class: "wrap", text: q.original_path }), el("td", { class: "wrap", text: q.reason }),
        el("td", { text: (q.quarantined_at || "").slice(0, 19) }), el("td", { text: q.live_state || "" }),
        el("td", {},
          el("button", { class: "ghost", on: { click: async () => {
            try { const p = await api("/quarantine-preview?id=" + encodeURIComponent(q.id)); preview.textContent = p.content || p.preview || JSON.stringify(p, null, 2); }
            catch (e) { toast(e.message); } } } }, "Preview"),
          admin() ? [
            el("button", { class: "ghost restore", on: { click: () => act("Restored", "/quarantine-restore", { id: q.id }) } }, "Restore"),
            el("button", { class: "danger", on: { click: () => confirm("Delete for good?") && act("Deleted", "/quarantine/bulk-delete", { ids: [q.id] }) } }, "Delete"),
          ] : null))),
      preview);
  },

  async rules(main) {
    const st = await api("/rules/status");
    const out = el("div", { class: "err", id: "rule-errors" });
    main.append(el("h1", { text: "Rules" }),
      el("div", { class: "cards" }, card(st.yaml_rules, "YAML rules"), card(st.yara_rules, "YARA-X rules"),
        card(st.version || "", "version")),
      admin() ? el("p", {}, el("button", { on: { click: async () => {
        try {
          const r = await api("/rules/reload", { method: "POST", body: {} });
          out.textContent = r.ok ? "Reloaded." : (r.errors || []).map((e) => e.file + ":" + e.line + ": " + e.message).join("\n");
        } catch (e) { out.textContent = e.message; }
      } } }, "Reload rules from disk")) : null,
      out,
      st.last_error ? el("p", { class: "err", text: "Last reload failed: " + JSON.stringify(st.last_error) }) : null);
  },

  async settings(main) {
    const idx = await api("/settings");
    const editor = el("div");
    const open = async (name) => {
      const v = await api("/settings/" + encodeURIComponent(name));
      const ta = el("textarea", { id: "settings-text", spellcheck: "false" });
      ta.value = JSON.stringify(v, null, 2);
      const err = el("p", { class: "err", id: "settings-error" });
      editor.replaceChildren(el("h2", { text: name }), ta, err, admin() ? el("button", { on: { click: async () => {
        let body;
        try { body = JSON.parse(ta.value); } catch (e) { err.textContent = "Not JSON: " + e.message; return; }
        try {
          const r = await api("/settings/" + encodeURIComponent(name), { method: "POST", body });
          err.textContent = "";
          toast(r.restart_required ? "Saved; takes effect at the next restart" : "Saved and applied");
        } catch (e) { err.textContent = (e.body && e.body.key ? e.body.key + ": " : "") + e.message; }
      } } }, "Save") : null);
    };
    main.append(el("h1", { text: "Settings" }),
      idx.restart_pending ? el("p", { class: "err", text: "Saved settings wait for a restart." }) : null,
      el("div", { class: "filters" }, (idx.sections || []).map((s) =>
        el("button", { class: "ghost", on: { click: () => open(s.name || s) } }, s.name || s))),
      editor);
  },
};

async function route() {
  const page = (location.hash || "#overview").slice(1);
  const fn = pages[page] || pages.overview;
  S.page = page;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.page === page);
  const main = document.getElementById("main");
  const fresh = el("div", { id: "page-" + page });
  try {
    await fn(fresh);
  } catch (e) {
    fresh.append(el("p", { class: "err", text: e.message }));
  }
  main.replaceChildren(fresh);
  document.body.dataset.ready = page;
}

// Findings as they happen; EventSource resumes with Last-Event-ID by itself.
function liveFindings() {
  const es = new EventSource("/api/v1/events");
  S.es = es;
  const mark = (on) => { S.live = on; const d = document.getElementById("live"); if (d) d.classList.toggle("on", on); };
  es.onopen = () => mark(true);
  es.onerror = () => mark(false);
  es.onmessage = (m) => {
    let f;
    try { f = JSON.parse(m.data); } catch (_) { return; }
    if (S.findings.some((x) => x.id === f.id)) return;
    S.findings.unshift(f);
    if (S.page === "findings" && S.redrawFindings) S.redrawFindings();
  };
}

async function boot() {
  const r = await fetch("/api/v1/status", { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/login"; return; }
  S.csrf = r.headers.get("x-csrf-token") || "";
  S.scope = r.headers.get("x-rampart-scope") || "read";
  S.name = r.headers.get("x-rampart-operator") || "";
  document.getElementById("who").textContent = S.name + " (" + S.scope + ")";
  document.body.dataset.scope = S.scope;
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": S.csrf } });
    location.href = "/login";
  });
  window.addEventListener("hashchange", route);
  liveFindings();
  await route();
}

document.addEventListener("DOMContentLoaded", boot);
