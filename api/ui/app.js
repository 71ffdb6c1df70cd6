// SPDX-License-Identifier: GPL-2.0-only
// Rampart's dashboard: plain JavaScript over the API, with the session cookie.
// Every text from the API (findings carry what attackers wrote) goes into the page
// as textContent, never as HTML.
"use strict";

const S = { csrf: "", scope: "read", name: "", findings: [], es: null, live: false, page: "", timers: [] };
const SEV = ["warning", "high", "critical"];

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (k === "text") e.textContent = v;
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? "" : String(v));
  }
  put(e, kids);
  return e;
}

// Append `kids` (nodes, text, nested arrays; null, undefined and false skipped).
function put(e, kids) {
  for (const c of kids.flat(Infinity)) if (c !== null && c !== undefined && c !== false)
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
}

// Replace the children of `e` by `kids`, as `put` takes them.
function redo(e, ...kids) {
  e.replaceChildren();
  put(e, kids);
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
async function act(what, path, body, method) {
  try {
    await api(path, { method: method || "POST", body: method === "DELETE" ? undefined : body || {} });
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
    el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c)))),
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
  const w = Math.min(24, 300 / Math.max(1, values.length));
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

// A timer of the page on screen: the next page stops it.
function every(ms, f) {
  S.timers.push(setInterval(f, ms));
}

function when(t) {
  return (t || "").replace("T", " ").slice(0, 19);
}

// "m:ss" of a number of seconds.
function clock(s) {
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// Selection for bulk actions: a checkbox per row and one for all rows shown. `sel`
// is a Set of keys; `changed` runs after every change.
function picker(sel, changed) {
  const boxes = [];
  const all = el("input", { type: "checkbox", class: "pick-all", "aria-label": "select all shown",
    on: { change: (e) => {
      for (const b of boxes) { b.checked = e.target.checked; e.target.checked ? sel.add(b.value) : sel.delete(b.value); }
      changed();
    } } });
  return {
    all,
    reset() { boxes.length = 0; all.checked = false; },
    box(key) {
      const b = el("input", { type: "checkbox", class: "pick", value: key, "aria-label": "select " + key,
        checked: sel.has(key), on: { change: (e) => { e.target.checked ? sel.add(key) : sel.delete(key); changed(); } } });
      boxes.push(b);
      return b;
    },
  };
}

// The undo banner. The agent keeps the inverse of a bulk block, unblock or
// whitelist for 30 seconds (`undo_token`); the banner counts down the same time and
// survives page changes.
function showUndo(token, what, expiresAt) {
  if (!token) return;
  const bar = document.getElementById("undo");
  const end = expiresAt ? Date.parse(expiresAt) : Date.now() + 30000;
  const left = el("b", { id: "undo-left" });
  const stop = () => { clearInterval(showUndo.timer); bar.hidden = true; };
  const tick = () => {
    const s = Math.max(0, Math.ceil((end - Date.now()) / 1000));
    left.textContent = s + " s";
    if (s <= 0) stop();
  };
  redo(bar, el("span", { text: what + "." }), " Undo possible for ", left, " ",
    el("button", { id: "undo-run", class: "ghost", on: { click: async () => {
      stop();
      try {
        const r = await api("/undo/run", { method: "POST", body: { id: token } });
        toast("Undone: " + r.inverse.replace(/_/g, " ") + " (" + r.count + ")");
      } catch (e) {
        toast("Undo failed: " + e.message);
      }
      route();
    } } }, "Undo"),
    el("button", { class: "ghost", "aria-label": "close", on: { click: stop } }, "×"));
  clearInterval(showUndo.timer);
  bar.hidden = false;
  tick();
  showUndo.timer = setInterval(tick, 1000);
}

// A bulk address action through the API, then its undo banner.
async function bulkIps(path, body, what) {
  try {
    const r = await api(path, { method: "POST", body });
    const n = r.count !== undefined ? r.count : r.succeeded;
    const failed = (r.failed || []).length + (r.not_found || []).length;
    toast(what + ": " + n + (failed ? ", " + failed + " failed" : ""));
    showUndo(r.undo_token, what + " " + n + (n === 1 ? " address" : " addresses"));
  } catch (e) {
    toast(what + " failed: " + e.message);
  }
  route();
}

// Dismiss findings, with the 30 s undo.
async function dismiss(ids) {
  try {
    const r = await api("/dismiss", { method: "POST", body: { ids } });
    const n = (r.dismissed || []).length;
    toast("Dismissed " + n);
    showUndo(r.undo_token, "Dismissed " + n + (n === 1 ? " finding" : " findings"));
  } catch (e) {
    toast("Dismiss failed: " + e.message);
  }
  route();
}

// Horizontal bars with their labels and values, as SVG built node by node.
function hbars(pairs, title) {
  const ns = "http://www.w3.org/2000/svg";
  const row = 18;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "hchart");
  svg.setAttribute("viewBox", "0 0 400 " + Math.max(row, pairs.length * row));
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const max = Math.max(1, ...pairs.map((p) => p[1]));
  pairs.forEach(([label, v], i) => {
    const y = i * row;
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", "0");
    t.setAttribute("y", String(y + 13));
    t.setAttribute("font-size", "11");
    t.textContent = label;
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", "150");
    r.setAttribute("y", String(y + 3));
    r.setAttribute("width", String(Math.max(1, (v / max) * 190)));
    r.setAttribute("height", "12");
    r.setAttribute("fill", "#1f5fbf");
    const n = document.createElementNS(ns, "text");
    n.setAttribute("x", String(155 + (v / max) * 190));
    n.setAttribute("y", String(y + 13));
    n.setAttribute("font-size", "11");
    n.textContent = String(v);
    svg.append(t, r, n);
  });
  return svg;
}

// The firewall policy on trial: a change applied with a rollback timer, the time
// left, and keep/revert; or a form to try one (the changed keys as JSON).
function policyPanel(fw, st) {
  const box = el("section", { id: "fw-policy", class: "panel" }, el("h2", { text: "Policy" }));
  const rb = fw.rollback;
  if (rb && rb.pending) {
    const left = el("b", { id: "rollback-left" });
    const end = Date.now() + rb.seconds_remaining * 1000;
    const tick = () => {
      const s = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      left.textContent = clock(s);
      if (s <= 0) {
        S.timers.forEach(clearInterval);
        S.timers = [];
        setTimeout(route, 1500);
      }
    };
    every(1000, tick);
    tick();
    box.append(el("p", { class: "warnbox", id: "rollback-pending" }, "A policy change by ", rb.applied_by || "?",
      " is on trial. It reverts by itself in ", left, " unless kept."),
    el("pre", { class: "scroll", text: JSON.stringify(rb.proposed, null, 2) }),
    el("p", { class: "row" },
      el("button", { id: "rollback-confirm", on: { click: () => act("Policy kept", "/settings/firewall/confirm") } }, "Keep it"),
      el("button", { id: "rollback-revert", class: "danger", on: { click: () => act("Policy reverted", "/settings/firewall/revert") } }, "Revert now")));
    return box;
  }
  const ta = el("textarea", { id: "policy-changes", class: "short", spellcheck: "false" });
  ta.value = JSON.stringify(fw.policy || {}, null, 2);
  const minutes = el("input", { id: "policy-minutes", type: "number", min: 1, max: 1440, value: 5 });
  const err = el("p", { class: "err", id: "policy-error" });
  box.append(el("details", { class: "try" }, el("summary", { id: "policy-open" }, "Try a change on trial"),
    el("p", { class: "mute", text: "Edit the keys to change. The change is applied now and reverted by itself unless you keep it in time." }),
    ta, el("div", { class: "filters" }, el("label", {}, "Revert after (minutes)", minutes),
      el("button", { id: "policy-try", on: { click: async () => {
        let changes;
        try { changes = JSON.parse(ta.value); } catch (e) { err.textContent = "Not JSON: " + e.message; return; }
        try {
          await api("/settings/firewall/tentative-apply", { method: "POST", headers: { "if-match": st.config_hash || "*" },
            body: { changes, timeout_min: Number(minutes.value) } });
          toast("Policy applied on trial");
          route();
        } catch (e) { err.textContent = (e.body && e.body.key ? e.body.key + ": " : "") + e.message; }
      } } }, "Apply on trial")),
    err));
  return box;
}

// Bulk import of blocks: addresses or CIDRs, one a line (CSV: the first column; #
// starts a comment), sent in batches with the progress shown; the failures are
// listed by address.
function importPanel(reload) {
  const BATCH = 200;
  const ta = el("textarea", { id: "import-list", class: "short", spellcheck: "false",
    placeholder: "203.0.113.7\n198.51.100.0/24   # a comment" });
  const file = el("input", { type: "file", id: "import-file", accept: ".txt,.csv,text/plain",
    on: { change: async (e) => { const f = e.target.files[0]; if (f) ta.value = await f.text(); } } });
  const reason = el("input", { id: "import-reason", value: "imported" });
  const dur = el("input", { id: "import-duration", placeholder: "24h (empty: always)" });
  const prog = el("progress", { id: "import-progress", max: 1, value: 0, hidden: true });
  const out = el("p", { id: "import-result", class: "mute" });
  const fails = el("ul", { id: "import-failures", class: "err" });
  const go = el("button", { id: "import-go", on: { click: async () => {
    const ips = [...new Set(ta.value.split(/\r?\n/).map((l) => l.split("#")[0].trim().split(/[\s,;]+/)[0]).filter(Boolean))];
    if (!ips.length) { out.textContent = "Nothing to import."; return; }
    go.disabled = true;
    prog.max = ips.length;
    prog.value = 0;
    prog.hidden = false;
    fails.replaceChildren();
    let done = 0, ok = 0, failed = 0;
    const say = () => { out.textContent = done + " of " + ips.length + " sent: " + ok + " blocked, " + failed + " failed"; };
    const fail = (ip, why) => { failed++; if (fails.childElementCount < 50) fails.append(el("li", { text: ip + ": " + why })); };
    for (let i = 0; i < ips.length; i += BATCH) {
      const part = ips.slice(i, i + BATCH);
      try {
        const r = await api("/threat/bulk-action", { method: "POST",
          body: { action: "block", ips: part, reason: reason.value, duration: dur.value || undefined } });
        ok += r.count;
        for (const x of r.failed || []) fail(x.ip, x.error);
      } catch (e) {
        for (const ip of part) fail(ip, e.message);
      }
      done += part.length;
      prog.value = done;
      say();
    }
    out.textContent += ". Done.";
    go.disabled = false;
    try { await reload(); } catch (e) { toast(e.message); }
  } } }, "Import");
  return el("section", { id: "fw-import", class: "panel" }, el("details", { class: "try" },
    el("summary", { id: "import-open" }, "Import many blocks"),
    el("p", { class: "mute", text: "One address or CIDR a line, or a file of them (CSV: the first column). Sent " + BATCH + " at a time." }),
    ta, el("div", { class: "filters" }, el("label", {}, "File", file), el("label", {}, "Reason", reason),
      el("label", {}, "For", dur), go),
    prog, out, fails));
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
    const f = { sev: "", check: "", status: "active", account: "", path: "", ip: "", text: "" };
    const sel = new Set();
    const list = el("div");
    const detail = el("section", { id: "finding-detail", class: "panel", hidden: true });
    const live = el("span", { class: "live" + (S.live ? " on" : ""), id: "live", title: "live updates" });
    const checks = el("select", { id: "f-check", on: { change: (e) => { f.check = e.target.value; draw(); } } });
    const pick = picker(sel, () => syncBulk());
    const dismissSel = el("button", { id: "f-dismiss-selected", class: "ghost",
      on: { click: () => dismiss([...sel].map(Number)) } }, "Dismiss selected");
    const fixSel = el("button", { id: "f-fix-selected", class: "ghost", on: { click: async () => {
      try {
        const r = await api("/fix-bulk", { method: "POST", body: { ids: [...sel].map(Number) } });
        toast("Fixed " + (r.fixed || []).length + ((r.failed || []).length ? ", " + r.failed.length + " failed" : ""));
      } catch (e) { toast("Fix failed: " + e.message); }
      route();
    } } }, "Fix selected");
    const syncBulk = () => {
      for (const b of [dismissSel, fixSel]) b.disabled = sel.size === 0;
      dismissSel.textContent = "Dismiss selected (" + sel.size + ")";
      fixSel.textContent = "Fix selected (" + sel.size + ")";
    };
    // Active findings come from /findings (and live from the stream); the others
    // from /history.
    const load = async () => {
      S.findings = f.status === "active" ? await api("/findings")
        : (await api("/history?limit=1000&status=" + encodeURIComponent(f.status))).findings;
      const names = [...new Set(S.findings.map((x) => x.check))].sort();
      redo(checks, el("option", { value: "" }, "all"), names.map((c) => el("option", { value: c, selected: c === f.check }, c)));
    };
    const has = (v, q) => !q || (v && String(v).toLowerCase().includes(q));
    const draw = () => {
      const q = f.text.toLowerCase();
      const rows = S.findings.filter((x) => (!f.sev || sevName(x) === f.sev) &&
        (!f.check || x.check === f.check) && (f.status === "active" || f.status === "all" || x.status === f.status) &&
        has(x.cp_user, f.account) && has(x.file_path, f.path) && has(x.source_ip, f.ip) &&
        (!q || [x.check, x.message, x.file_path, x.source_ip, x.cp_user, x.details].some((v) => has(v, q))));
      for (const k of [...sel]) if (!rows.some((x) => String(x.id) === k)) sel.delete(k);
      pick.reset();
      list.replaceChildren(table([admin() ? pick.all : "", "", "time", "check", "message", "where", ""], rows, (x) => el("tr",
        { "data-id": x.id, "data-status": x.status },
        el("td", {}, admin() ? pick.box(String(x.id)) : null),
        el("td", { class: "sev sev-" + sevName(x), text: sevName(x) }),
        el("td", { text: when(x.time) }),
        el("td", { text: x.check }),
        el("td", { class: "wrap" }, el("a", { href: "#findings", class: "open", on: { click: (e) => { e.preventDefault(); showDetail(x); } } }, x.message)),
        el("td", { class: "wrap", text: x.file_path || x.source_ip || x.cp_user || "" }),
        el("td", {}, admin() && x.status === "active" ? [
          x.has_fix ? el("button", { class: "ghost", on: { click: () => act("Fixed", "/fix", { id: x.id }) } }, "Fix") : null,
          el("button", { class: "ghost", on: { click: () => dismiss([x.id]) } }, "Dismiss"),
        ] : x.status !== "active" ? el("span", { class: "mute", text: x.status }) : null))));
      syncBulk();
    };
    // One finding: every field, the details (an exec finding's lineage, argv and cwd
    // are there), what was done about it and by whom, its quarantined files.
    const showDetail = async (x) => {
      let d = { finding: x, actions: null, quarantine: [] };
      if (admin()) {
        try { d = await api("/finding-detail?id=" + encodeURIComponent(x.id)); } catch (e) { toast(e.message); }
      }
      const g = d.finding;
      const p = g.process || {};
      const fields = [["check", g.check], ["severity", sevName(g)], ["status", g.status], ["first seen", when(g.first_seen)],
        ["last seen", when(g.last_seen)], ["count", g.count], ["file", g.file_path], ["address", g.source_ip],
        ["account", g.cp_user], ["domain", g.domain], ["mailbox", g.mailbox], ["rule", g.rule],
        ["process", p.name !== undefined || p.pid !== undefined ? (p.name || "?") + " (pid " + (p.pid ?? "?") + ", uid " + (p.uid ?? "?") + ")" : ""],
        ["lineage", (g.lineage || []).length ? [p.name !== undefined ? p.name + " (" + (p.pid ?? "?") + ")" : "?"]
          .concat(g.lineage.map((a) => a.name + " (" + a.pid + ")")).join(" ← ") : ""],
        ["content sha256", g.content_sha256]].filter(([, v]) => v !== undefined && v !== null && v !== "");
      redo(detail,
        el("div", { class: "row" }, el("h2", { text: g.message }),
          el("button", { class: "ghost", "aria-label": "close", on: { click: () => { detail.hidden = true; } } }, "×")),
        el("dl", { class: "kv" }, fields.map(([k, v]) => [el("dt", { text: k }), el("dd", { class: "wrap", text: v })])),
        el("h3", { text: "Details" }),
        el("ul", { class: "details" }, (g.details || "").split("; ").filter(Boolean).map((t) => el("li", { class: "wrap", text: t }))),
        d.actions === null ? null : [el("h3", { text: "Actions" }),
          table(["when", "who", "action", "details"], d.actions, (a) => el("tr", {},
            el("td", { text: when(a.timestamp) }), el("td", { text: a.actor }), el("td", { text: a.action }),
            el("td", { class: "wrap", text: a.details })))],
        (d.quarantine || []).length ? [el("h3", { text: "Quarantined" }),
          table(["file", "when", "state"], d.quarantine, (q) => el("tr", {},
            el("td", { class: "wrap", text: q.original_path }), el("td", { text: when(q.quarantined_at) }),
            el("td", { text: q.live_state || "" })))] : null,
        admin() && g.status === "active" ? el("p", { class: "row" },
          g.has_fix ? el("button", { on: { click: () => act("Fixed", "/fix", { id: g.id }) } }, "Fix") : null,
          el("button", { class: "ghost", on: { click: () => dismiss([g.id]) } }, "Dismiss"),
          el("button", { class: "ghost", id: "f-suppress", on: { click: () => {
            const what = g.file_path ? { check: g.check, path_glob: g.file_path } : g.source_ip ? { check: g.check, ip: g.source_ip }
              : g.cp_user ? { check: g.check, account: g.cp_user } : { check: g.check };
            if (confirm("Suppress future " + g.check + " findings" + (what.path_glob ? " for " + what.path_glob : what.ip ? " from " + what.ip : what.account ? " of " + what.account : "") + "?"))
              act("Suppressed", "/suppressions", Object.assign({ reason: "from the dashboard" }, what));
          } } }, "Suppress like this")) : null);
      detail.hidden = false;
      detail.scrollIntoView({ block: "nearest" });
    };
    S.redrawFindings = draw;
    const text = (id, label, key, ph) => el("label", {}, label, el("input", { id, type: "search", placeholder: ph,
      on: { input: (e) => { f[key] = e.target.value.toLowerCase(); draw(); } } }));
    main.append(el("h1", {}, live, "Findings"),
      el("div", { class: "filters" },
        el("label", {}, "Severity", el("select", { id: "f-sev", on: { change: (e) => { f.sev = e.target.value; draw(); } } },
          el("option", { value: "" }, "all"), ["critical", "high", "warning", "info"].map((s) => el("option", { value: s }, s)))),
        el("label", {}, "Check", checks),
        el("label", {}, "Status", el("select", { id: "f-status", on: { change: async (e) => {
          f.status = e.target.value; sel.clear();
          try { await load(); } catch (err) { toast(err.message); }
          draw();
        } } }, ["active", "dismissed", "fixed", "all"].map((s) => el("option", { value: s }, s)))),
        text("f-account", "Account", "account", "user"),
        text("f-path", "Path", "path", "/home/…"),
        text("f-ip", "Address", "ip", "203.0.113.7"),
        text("f-text", "Search", "text", "anything")),
      admin() ? el("div", { class: "filters bulk" }, dismissSel, fixSel,
        el("span", { class: "mute", text: "A dismiss can be undone for 30 s; a fix is a quarantine (restore it from Quarantine)." })) : null,
      detail, list);
    await load();
    draw();
  },

  async firewall(main) {
    // Allowed entries, the verdict counters and the policy are admin reads.
    const [blocks, allows, fw, st] = await Promise.all([
      api("/blocked-ips"), admin() ? api("/firewall/allowed") : [], admin() ? api("/firewall/status") : {},
      admin() ? api("/status") : {},
    ]);
    let q = "";
    const sel = new Set();
    const list = el("div");
    const unblockSel = el("button", { id: "fw-unblock-selected", class: "ghost",
      on: { click: () => bulkIps("/unblock-bulk", { ips: [...sel] }, "Unblocked") } }, "Unblock selected");
    const pick = picker(sel, () => {
      unblockSel.disabled = sel.size === 0;
      unblockSel.textContent = "Unblock selected (" + sel.size + ")";
    });
    const draw = () => {
      pick.reset();
      list.replaceChildren(table([admin() ? pick.all : "", "address", "reason", "source", "since", "expires", ""],
        blocks.filter((b) => !q || (b.ip + " " + b.reason + " " + b.source).toLowerCase().includes(q)), (b) => el("tr", { "data-ip": b.ip },
          el("td", {}, admin() ? pick.box(b.ip) : null),
          el("td", { text: b.ip }), el("td", { class: "wrap", text: b.reason }), el("td", { text: b.source }),
          el("td", { text: when(b.blocked_at) }), el("td", { text: b.expires_in }),
          el("td", {}, admin() ? el("button", { class: "ghost",
            on: { click: () => act("Unblocked " + b.ip, "/unblock-ip", { ip: b.ip }) } }, "Unblock") : null))));
      unblockSel.disabled = sel.size === 0;
    };
    const form = admin() ? el("form", { class: "inline", id: "block-form", on: { submit: (e) => {
      e.preventDefault();
      const d = new FormData(e.target);
      act("Blocked " + d.get("ip"), "/block-ip", { ip: d.get("ip"), reason: d.get("reason"), duration: d.get("duration") || undefined });
    } } },
      el("label", {}, "Address or CIDR", el("input", { name: "ip", required: true, placeholder: "203.0.113.7" })),
      el("label", {}, "Reason", el("input", { name: "reason" })),
      el("label", {}, "For", el("input", { name: "duration", placeholder: "24h (empty: always)" })),
      el("button", { type: "submit" }, "Block"),
      el("button", { type: "button", class: "ghost", id: "allow-submit", on: { click: (e) => {
        const d = new FormData(e.target.form);
        if (!d.get("ip")) { toast("An address or CIDR first"); return; }
        act("Allowed " + d.get("ip"), "/firewall/allow-ip", { ip: d.get("ip"), reason: d.get("reason"), duration: d.get("duration") || undefined });
      } } }, "Allow")) : null;
    const reasons = Object.entries(fw.counters || {}).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
    const dropped = fw.top_dropped || [];
    const count = card(blocks.length, "blocked");
    main.append(el("h1", { text: "Firewall" }),
      el("div", { class: "cards" }, count, card(allows.length, "allowed"),
        admin() ? card(fw.enabled ? "on" : "off", "XDP enforcement") : null),
      admin() ? policyPanel(fw, st) : null,
      form,
      admin() ? importPanel(async () => {
        const fresh = await api("/blocked-ips");
        blocks.splice(0, blocks.length, ...fresh);
        count.querySelector("b").textContent = blocks.length;
        draw();
      }) : null,
      el("div", { class: "filters" },
        el("label", {}, "Search", el("input", { type: "search", id: "fw-search",
          on: { input: (e) => { q = e.target.value.toLowerCase(); draw(); } } })),
        admin() ? unblockSel : null),
      list,
      admin() ? [el("h2", { text: "Verdicts by reason" }),
        reasons.length ? hbars(reasons, "XDP verdicts by reason") : el("p", { class: "mute", text: "No verdicts counted yet." })] : null,
      el("h2", { text: "Top dropped sources" }),
      dropped.length ? hbars(dropped.map((d) => [d.ip, d.samples || 0]), "top dropped sources") : el("p", { class: "mute", text: "No drops sampled." }),
      el("h2", { text: "Allowed" }),
      table(["address", "reason", "source", "expires", ""], allows, (a) => el("tr", { "data-allow": a.ip },
        el("td", { text: a.ip }), el("td", { class: "wrap", text: a.reason }), el("td", { text: a.source }),
        el("td", { text: a.expires_in || (a.expires_at ? when(a.expires_at) : "permanent") }),
        el("td", {}, admin() && a.source !== "config" ? el("button", { class: "ghost",
          on: { click: () => act("Allow removed for " + a.ip, "/firewall/remove-allow", { ip: a.ip }) } }, "Remove") : null))));
    draw();
  },

  async threats(main) {
    const [top, incidents] = await Promise.all([api("/threat/top-attackers?limit=25"), api("/incidents?limit=50")]);
    const sel = new Set();
    const timeline = el("section", { id: "ip-timeline", class: "panel", hidden: true });
    const blockSel = el("button", { id: "threat-block-selected", class: "ghost",
      on: { click: () => bulkIps("/threat/bulk-action", { action: "block", ips: [...sel], reason: "blocked from the dashboard" }, "Blocked") } }, "Block selected");
    const allowSel = el("button", { id: "threat-whitelist-selected", class: "ghost",
      on: { click: () => bulkIps("/threat/bulk-action", { action: "whitelist", ips: [...sel], reason: "allowed from the dashboard" }, "Whitelisted") } }, "Whitelist selected");
    const pick = picker(sel, () => {
      for (const b of [blockSel, allowSel]) b.disabled = sel.size === 0;
      blockSel.textContent = "Block selected (" + sel.size + ")";
      allowSel.textContent = "Whitelist selected (" + sel.size + ")";
    });
    // One address over time: its events per hour, each event, and the entries that
    // block or allow it.
    const showIp = async (ip) => {
      let v;
      try { v = await api("/threat/ip?ip=" + encodeURIComponent(ip)); } catch (e) { toast(e.message); return; }
      const ev = (v.recent_events || []).slice().sort((a, b) => (a.timestamp < b.timestamp ? -1 : 1));
      const hours = new Map();
      for (const e of ev) { const h = (e.timestamp || "").slice(0, 13); hours.set(h, (hours.get(h) || 0) + 1); }
      const sm = v.summary || {};
      const entry = (x, what) => x ? what + " since " + when(x.blocked_at || x.added_at || x.timestamp) + ": " + (x.reason || "") : "";
      redo(timeline,
        el("div", { class: "row" }, el("h2", { text: "Timeline of " + v.ip }),
          el("button", { class: "ghost", "aria-label": "close", on: { click: () => { timeline.hidden = true; } } }, "×")),
        el("div", { class: "cards" }, card(sm.events || 0, "events"), card(when(sm.first_seen) || "—", "first seen"),
          card(when(sm.last_seen) || "—", "last seen"), card(v.blocked ? "blocked" : v.allowed ? "allowed" : "no", "listed")),
        v.blocked_by || v.allowed_by ? el("p", { class: "wrap", text: entry(v.blocked_by, "Blocked") || entry(v.allowed_by, "Allowed") }) : null,
        hours.size ? bars([...hours.values()], [...hours.keys()].map((h) => h.replace("T", " ") + ":00"), "events per hour") : null,
        table(["when", "source", "kind", "detail"], ev.slice().reverse(), (e) => el("tr", {},
          el("td", { text: when(e.timestamp) }), el("td", { text: e.source }), el("td", { text: e.kind }),
          el("td", { class: "wrap", text: e.detail }))),
        admin() ? el("p", { class: "row" },
          v.blocked ? null : el("button", { on: { click: () => act("Blocked " + v.ip, "/block-ip", { ip: v.ip, reason: "from the timeline" }) } }, "Block"),
          v.allowed ? null : el("button", { class: "ghost", on: { click: () => bulkIps("/threat/bulk-action", { action: "whitelist", ips: [v.ip] }, "Whitelisted") } }, "Whitelist")) : null);
      timeline.hidden = false;
      timeline.scrollIntoView({ block: "nearest" });
    };
    main.append(el("h1", { text: "Threats" }),
      admin() ? el("div", { class: "filters bulk" }, blockSel, allowSel) : null,
      table([admin() ? pick.all : "", "address", "events", "country", "network", "blocked"], top, (a) => el("tr", { "data-ip": a.ip },
        el("td", {}, admin() ? pick.box(a.ip) : null),
        el("td", {}, admin() ? el("a", { href: "#threats", class: "open", on: { click: (e) => { e.preventDefault(); showIp(a.ip); } } }, a.ip) : a.ip),
        el("td", { text: a.event_count || a.events || 0 }), el("td", { text: a.country || "" }),
        el("td", { text: a.as_org || "" }), el("td", { text: a.currently_blocked || a.blocked ? "yes" : "" }))),
      timeline,
      el("h2", { text: "Incidents" }),
      table(["id", "kind", "key", "status", "updated", ""], incidents, (i) => el("tr", { "data-incident": i.id },
        el("td", { text: i.id }), el("td", { text: i.kind }), el("td", { class: "wrap", text: i.key || i.correlation_key || "" }),
        el("td", { text: i.status }), el("td", { text: when(i.updated_at) }),
        el("td", {}, admin() ? el("select", { class: "incident-status", "aria-label": "status of incident " + i.id,
          on: { change: (e) => act("Incident " + i.id + ": " + e.target.value, "/incidents/" + i.id + "/status", { status: e.target.value }) } },
        ["open", "contained", "resolved", "dismissed"].map((st) => el("option", { value: st, selected: st === i.status }, st))) : null))));
    for (const b of [blockSel, allowSel]) b.disabled = true;
  },

  async quarantine(main) {
    if (!admin()) {
      main.append(el("h1", { text: "Quarantine" }), el("p", { class: "mute", text: "Quarantined files are shown to admin sessions only." }));
      return;
    }
    // Each list on its own: a feature this host lacks says so in its section.
    const get = (path) => api(path).catch((e) => ({ error: e.message }));
    const [items, mail, av, held, dbo] = await Promise.all([get("/quarantine"), get("/email/quarantine"),
      get("/email/av/status"), get("/email/held"), get("/db-object-backups")]);
    const preview = el("pre", { class: "scroll", id: "preview" });
    const show = async (path, pick) => {
      try { const p = await api(path); preview.textContent = pick(p); preview.scrollIntoView({ block: "nearest" }); }
      catch (e) { toast(e.message); }
    };
    const list = (v, none, draw) => v && v.error ? el("p", { class: "err", text: v.error })
      : v && v.length ? draw(v) : el("p", { class: "mute", text: none });
    main.append(el("h1", { text: "Quarantine" }),
      el("h2", { text: "Files" }),
      list(items, "No quarantined files.", (v) => table(["file", "reason", "when", "state", ""], v, (q) => el("tr", { "data-id": q.id },
        el("td", { class: "wrap", text: q.original_path }), el("td", { class: "wrap", text: q.reason }),
        el("td", { text: (q.quarantined_at || "").slice(0, 19) }), el("td", { text: q.live_state || "" }),
        el("td", {},
          el("button", { class: "ghost", on: { click: () => show("/quarantine-preview?id=" + encodeURIComponent(q.id),
            (p) => p.content || p.preview || JSON.stringify(p, null, 2)) } }, "Preview"),
          el("button", { class: "ghost restore", on: { click: () => act("Restored", "/quarantine-restore", { id: q.id }) } }, "Restore"),
          el("button", { class: "danger", on: { click: () => confirm("Delete for good?") && act("Deleted", "/quarantine/bulk-delete", { ids: [q.id] }) } }, "Delete"))))),
      el("h2", { text: "Mail" }),
      av && !av.error ? el("p", { class: "mute", id: "mail-av-state", text: "Mail AV " + av.watcher_mode
        + (av.reason ? " (" + av.reason + ")" : "") + "; clamd " + (av.clamd_available ? "answering" : "not answering")
        + "; " + av.scanned + " scanned, " + av.held + " held, " + av.not_held + " not held" }) : null,
      list(mail, "No quarantined mail.", (v) => table(["message", "from", "to", "subject", "detections", "when", ""], v, (m) => el("tr", { "data-mail": m.message_id },
        el("td", { text: m.message_id }), el("td", { class: "wrap", text: m.from }), el("td", { class: "wrap", text: (m.to || []).join(", ") }),
        el("td", { class: "wrap", text: m.subject }),
        el("td", { class: "wrap", text: (m.findings || []).map((f) => f.signature + " (" + f.engine + ", " + f.filename + ")").join("; ") }),
        el("td", { text: when(m.quarantined_at) }),
        el("td", {},
          el("button", { class: "ghost release", on: { click: () => act("Released " + m.message_id + " to the queue",
            "/email/quarantine/" + encodeURIComponent(m.message_id) + "/release") } }, "Release"),
          el("button", { class: "danger", on: { click: () => confirm("Delete this message for good?") && act("Deleted " + m.message_id,
            "/email/quarantine/" + encodeURIComponent(m.message_id) + "/delete") } }, "Delete"))))),
      el("h2", { text: "Held forwards" }),
      list(held, "No forwarded copies held.", (v) => table(["forwarder", "recipient", "sender", "why", "held", ""], v, (h) => el("tr", { "data-held": h.id },
        el("td", { class: "wrap", text: h.forwarder }), el("td", { class: "wrap", text: h.recipient }),
        el("td", { class: "wrap", text: h.sender || "<> (bounce)" }), el("td", { text: (h.reasons || []).join(", ") }),
        el("td", { text: when(h.held_at) }),
        el("td", {},
          el("button", { class: "ghost release", on: { click: () => act("Sent to " + h.recipient, "/email/held/" + encodeURIComponent(h.id) + "/release") } }, "Release"),
          el("button", { class: "danger", on: { click: () => confirm("Discard this copy?") && act("Discarded", "/email/held/" + encodeURIComponent(h.id), null, "DELETE") } }, "Delete"))))),
      el("h2", { text: "Database objects dropped" }),
      list(dbo, "No database objects dropped.", (v) => table(["object", "account", "dropped", "by", "restored", ""], v, (d) => el("tr", { "data-backup": d.key },
        el("td", { class: "wrap", text: d.kind + " " + d.schema + "." + d.name }), el("td", { text: d.account }),
        el("td", { text: when(d.dropped_at) }), el("td", { text: d.dropped_by }), el("td", { text: d.restored ? when(d.restored_at) : "" }),
        el("td", {},
          el("button", { class: "ghost", on: { click: () => show("/db-object-backup-preview?key=" + encodeURIComponent(d.key), (p) => p.preview) } }, "Preview"),
          d.restored ? null : el("button", { class: "ghost restore", on: { click: () => act("Restored " + d.name, "/db-object-backup-restore", { key: d.key }) } }, "Restore"))))),
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
      redo(editor, el("h2", { text: name }), ta, err, admin() ? el("button", { on: { click: async () => {
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
  S.timers.forEach(clearInterval);
  S.timers = [];
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
  if (S.scope === "admin") {
    api("/undo/pending").then((p) => p && p.id && showUndo(p.id, p.summary || p.action.replace(/_/g, " "), p.expires_at)).catch(() => {});
  }
  await route();
}

document.addEventListener("DOMContentLoaded", boot);
