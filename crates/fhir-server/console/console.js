// The FHIR console: a single page over the server's own FHIR API (no other API, no
// build step). Every value from the server goes into the page as text, never as HTML.
"use strict";

const BASE = "/fhir";
const state = { capability: null, token: sessionStorage.getItem("fhir-token") || "" };

// ---- DOM and HTTP helpers -------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
  main.focus();
}

async function api(method, path, body, extra) {
  const headers = Object.assign({ Accept: "application/fhir+json" }, extra || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (body !== undefined && !headers["Content-Type"]) headers["Content-Type"] = "application/fhir+json";
  const url = new URL(path.startsWith("http") ? path : BASE + path, location.href);
  // The token goes to this server only, whatever a link in the page names.
  if (url.origin !== location.origin) throw new Error("not this server: " + url.origin);
  const res = await fetch(url.href, { method, headers, body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: res.status, ok: res.ok, json, text, headers: res.headers };
}

/** A server URL (absolute, from a Bundle link) as a path under the FHIR base. */
function localPath(url) {
  const u = new URL(url, location.href);
  const i = u.pathname.indexOf(BASE);
  return (i >= 0 ? u.pathname.slice(i + BASE.length) : u.pathname) + u.search;
}

function issuesOf(outcome) {
  return ((outcome && outcome.issue) || []).map((i) => ({
    severity: i.severity || "error",
    text: (i.details && i.details.text) || i.diagnostics || i.code || "",
    where: (i.expression || i.location || []).join(", "),
  }));
}

function problem(r) {
  if (r.status === 401) return h("p", { class: "error", role: "alert" }, "This server needs an access token: paste one in the header (a SMART Backend Services token from /auth/token, or your OpenID Connect provider's).");
  const list = issuesOf(r.json);
  return h("div", { class: "error", role: "alert" }, h("p", {}, "The server answered " + r.status + "."),
    list.length ? h("ul", { class: "issues" }, list.map((i) => h("li", { class: i.severity }, i.severity + ": " + i.text + (i.where ? " (at " + i.where + ")" : "")))) : h("pre", {}, r.text.slice(0, 2000)));
}

async function capability() {
  if (!state.capability) {
    const r = await api("GET", "/metadata");
    if (!r.ok) throw r;
    state.capability = r.json;
    const sw = r.json.software || {};
    document.getElementById("server").textContent = (sw.name || "FHIR server") + " " + (sw.version || "") + " · FHIR " + r.json.fhirVersion;
  }
  return state.capability;
}

async function resourceDef(type) {
  const cs = await capability();
  return ((cs.rest || [])[0].resource || []).find((r) => r.type === type) || { searchParam: [] };
}

function summarize(r) {
  const name = (r.name && r.name[0]) || null;
  if (name && (name.family || name.given)) return [].concat(name.given || [], name.family || []).join(" ");
  if (typeof r.name === "string") return r.name;
  const code = r.code && (r.code.text || (r.code.coding && r.code.coding[0] && (r.code.coding[0].display || r.code.coding[0].code)));
  return [code, r.status, r.title, r.description].filter(Boolean).join(" · ").slice(0, 120);
}

function pretty(v) { return JSON.stringify(v, null, 2); }

// ---- Resource types ---------------------------------------------------------------

async function typesView() {
  const cs = await capability();
  const types = ((cs.rest || [])[0].resource || []).map((r) => r.type);
  const filter = h("input", { id: "type-filter", type: "search", placeholder: "Patient, Obs…" });
  const items = types.map((t) => h("li", { "data-type": t }, h("a", { href: "#/type/" + t }, t), " ", h("span", { class: "count", id: "count-" + t }, "")));
  filter.addEventListener("input", () => {
    const q = filter.value.toLowerCase();
    items.forEach((li) => { li.hidden = !li.dataset.type.toLowerCase().includes(q); });
  });
  show(h("h1", {}, "Resource types"), h("label", { for: "type-filter" }, "Filter"), filter, h("ul", { class: "types" }, items));
  counts(types);
}

/**
 * Counts per type: estimates first, four requests at a time (exact up to the server's
 * threshold; above it PostgreSQL estimates and SQLite leaves `total` out), then an exact
 * count (`_summary=count`) for the types that got none, two at a time.
 */
async function counts(types) {
  const exact = [];
  const run = async (queue, query, workers, onTotalMissing) => {
    const worker = async () => {
      while (queue.length) {
        const t = queue.shift();
        const r = await api("GET", "/" + t + "?" + query);
        const el = document.getElementById("count-" + t);
        if (!el) return;
        if (r.status === 401) {
          if (!document.getElementById("auth-note")) el.closest("main").prepend(Object.assign(problem(r), { id: "auth-note" }));
          queue.length = 0;
          exact.length = 0;
          return;
        }
        if (!r.ok || !r.json) continue;
        if (r.json.total !== undefined) el.textContent = "(" + r.json.total.toLocaleString("en") + ")";
        else if (onTotalMissing) { el.textContent = "(counting…)"; onTotalMissing(t); }
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
  };
  await run(types.slice(), "_count=0&_total=estimate", 4, (t) => exact.push(t));
  await run(exact, "_summary=count", 2, null);
}

// ---- Search -----------------------------------------------------------------------

async function searchView(type, query, pagePath) {
  const def = await resourceDef(type);
  const params = ["_id", "_lastUpdated"].concat((def.searchParam || []).map((p) => p.name)).filter((v, i, a) => a.indexOf(v) === i);
  const current = new URLSearchParams(query || "");
  const rows = h("div", { id: "criteria" });
  const addRow = (name, value) => {
    const n = rows.children.length;
    const sel = h("select", { id: "param-" + n, "aria-label": "Search parameter " + (n + 1) }, params.map((p) => h("option", { value: p, selected: p === name }, p)));
    const val = h("input", { id: "value-" + n, "aria-label": "Value " + (n + 1), value: value || "" });
    rows.append(h("div", {}, sel, " = ", val));
  };
  for (const [k, v] of current) if (!k.startsWith("_count") && !k.startsWith("_sort")) addRow(k, v);
  if (!rows.children.length) addRow(params.includes("name") ? "name" : params[0], "");
  const sort = h("select", { id: "sort" }, h("option", { value: "" }, "(server's order)"),
    ["_lastUpdated", "-_lastUpdated"].concat(params.filter((p) => p.includes("date")).flatMap((p) => [p, "-" + p])).map((p) => h("option", { value: p, selected: current.get("_sort") === p }, p)));
  const count = h("input", { id: "count", type: "number", min: "1", max: "1000", value: current.get("_count") || "20" });
  const form = h("form", { class: "search", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const row of rows.children) {
      const [sel, val] = row.querySelectorAll("select, input");
      if (val.value.trim()) q.append(sel.value, val.value.trim());
    }
    if (sort.value) q.set("_sort", sort.value);
    q.set("_count", count.value || "20");
    location.hash = "#/type/" + type + "?" + q.toString();
  } },
  h("fieldset", {}, h("legend", {}, "Criteria"), rows, h("button", { type: "button", onclick: () => addRow(params[0], "") }, "Add a criterion")),
  h("label", { for: "sort" }, "Sort"), sort, " ", h("label", { for: "count" }, "Per page"), count, " ",
  h("button", { type: "submit", id: "search" }, "Search"));
  const results = h("section", { id: "results", "aria-label": "Results" });
  show(h("h1", {}, type), h("p", {}, h("a", { href: "#/type/" + type + "/new" }, "New " + type)), form, results);
  if (query === null && !pagePath) return;
  const r = await api("GET", pagePath || "/" + type + "?" + (query || "_count=20"));
  if (!r.ok) return results.replaceChildren(problem(r));
  const bundle = r.json;
  const entries = (bundle.entry || []).filter((e) => !e.search || e.search.mode !== "outcome");
  const link = (rel) => ((bundle.link || []).find((l) => l.relation === rel) || {}).url;
  const pager = h("p", {}, ["first", "previous", "next", "last"].filter(link).map((rel) =>
    h("a", { href: "#/page/" + type + "/" + encodeURIComponent(localPath(link(rel))), rel }, rel + " page")).flatMap((a) => [a, " "]));
  results.replaceChildren(
    h("p", { id: "total" }, bundle.total !== undefined ? bundle.total + " matches" : entries.length + " on this page"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "id"), h("th", {}, "type"), h("th", {}, "last updated"), h("th", {}, "summary"))),
      h("tbody", {}, entries.map((e) => {
        const res = e.resource || {};
        return h("tr", {}, h("td", {}, h("a", { href: "#/type/" + res.resourceType + "/" + res.id }, res.id)), h("td", {}, res.resourceType),
          h("td", {}, (res.meta && res.meta.lastUpdated) || ""), h("td", {}, summarize(res)));
      }))),
    pager);
}

// ---- One resource: JSON, XML, history, diff ----------------------------------------

async function resourceView(type, id) {
  const r = await api("GET", "/" + type + "/" + id);
  if (!r.ok) return show(h("h1", {}, type + "/" + id), problem(r));
  const res = r.json;
  const panel = h("div", { id: "panel" });
  const tab = (name, fill) => h("button", { type: "button", role: "tab", "aria-selected": "false", onclick: async (e) => {
    e.currentTarget.parentNode.querySelectorAll("button").forEach((b) => b.setAttribute("aria-selected", "false"));
    e.currentTarget.setAttribute("aria-selected", "true");
    panel.replaceChildren(await fill());
  } }, name);
  const tabs = h("div", { class: "tabs", role: "tablist" },
    tab("JSON", async () => h("pre", { id: "json" }, pretty(res))),
    tab("XML", async () => { const x = await api("GET", "/" + type + "/" + id, undefined, { Accept: "application/fhir+xml" }); return h("pre", { id: "xml" }, x.text); }),
    tab("History", async () => historyPanel(type, id)));
  show(h("h1", {}, type + "/" + id),
    h("p", {}, "Version " + ((res.meta && res.meta.versionId) || "?") + ", last updated " + ((res.meta && res.meta.lastUpdated) || "?") + " · ",
      h("a", { href: "#/type/" + type + "/" + id + "/edit", id: "edit" }, "Edit"), " · ", h("a", { href: "#/type/" + type }, "Search " + type)),
    tabs, panel);
  tabs.firstChild.click();
}

async function historyPanel(type, id) {
  const r = await api("GET", "/" + type + "/" + id + "/_history?_count=100");
  if (!r.ok) return problem(r);
  const versions = (r.json.entry || []).map((e) => ({ vid: e.resource ? e.resource.meta.versionId : (e.response && e.response.etag), when: e.resource && e.resource.meta.lastUpdated, method: e.request && e.request.method }));
  const pick = (name, i) => h("input", { type: "radio", name, value: versions[i].vid, checked: (name === "a" && i === 1) || (name === "b" && i === 0), "aria-label": name.toUpperCase() + ": version " + versions[i].vid });
  const table = h("table", { id: "history" }, h("thead", {}, h("tr", {}, h("th", {}, "A"), h("th", {}, "B"), h("th", {}, "version"), h("th", {}, "change"), h("th", {}, "when"))),
    h("tbody", {}, versions.map((v, i) => h("tr", {}, h("td", {}, pick("a", i)), h("td", {}, pick("b", i)), h("td", {}, v.vid), h("td", {}, v.method || ""), h("td", {}, v.when || "")))));
  const compare = h("button", { type: "button", id: "compare", onclick: () => {
    const a = table.querySelector("input[name=a]:checked"), b = table.querySelector("input[name=b]:checked");
    if (a && b) location.hash = "#/type/" + type + "/" + id + "/diff/" + a.value + "/" + b.value;
  } }, "Compare A with B");
  return h("div", {}, table, versions.length > 1 ? compare : h("p", {}, "One version only."));
}

/** Line diff (longest common subsequence), for resources of up to a few thousand lines. */
function diffLines(a, b) {
  const n = a.length, m = b.length;
  if (n * m > 4e6) return a.map((l) => ["-", l]).concat(b.map((l) => ["+", l]));
  const L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (i < n && (j === m || L[i + 1][j] >= L[i][j + 1])) { out.push(["-", a[i]]); i++; }
    else { out.push(["+", b[j]]); j++; }
  }
  return out;
}

async function diffView(type, id, va, vb) {
  const [a, b] = await Promise.all([va, vb].map((v) => api("GET", "/" + type + "/" + id + "/_history/" + v)));
  if (!a.ok || !b.ok) return show(problem(a.ok ? b : a));
  const lines = diffLines(pretty(a.json).split("\n"), pretty(b.json).split("\n"));
  show(h("h1", {}, type + "/" + id + ": version " + va + " → " + vb),
    h("p", {}, h("a", { href: "#/type/" + type + "/" + id }, "Back to the resource")),
    h("pre", { class: "diff", id: "diff" }, lines.map(([op, text]) => h("div", { class: op === "+" ? "add" : op === "-" ? "del" : null }, op + " " + text))));
}

// ---- Create and edit, with validation next to the text ------------------------------

function issueList(outcome, textarea) {
  const list = issuesOf(outcome);
  if (!list.length) return h("p", { class: "ok", role: "status" }, "No issues.");
  return h("ul", { class: "issues", id: "issues", role: "alert" }, list.map((i) => h("li", { class: i.severity },
    h("button", { type: "button", class: "link", onclick: () => select(textarea, i.where) }, i.where || "(resource)"), " " + i.severity + ": " + i.text)));
}

/** Selects the first line naming the element an issue points at. */
function select(textarea, where) {
  const name = (where || "").split(",")[0].trim().split(".").pop().replace(/\[.*\]$/, "");
  const at = name ? textarea.value.indexOf('"' + name + '"') : -1;
  textarea.focus();
  if (at >= 0) textarea.setSelectionRange(at, textarea.value.indexOf("\n", at) > 0 ? textarea.value.indexOf("\n", at) : at + name.length + 2);
}

async function editView(type, id) {
  let text = pretty({ resourceType: type });
  if (id) {
    const r = await api("GET", "/" + type + "/" + id);
    if (!r.ok) return show(problem(r));
    text = pretty(r.json);
  }
  const area = h("textarea", { id: "editor", "aria-label": "Resource JSON", spellcheck: "false" });
  area.value = text;
  const side = h("section", { id: "validation", "aria-label": "Validation" }, h("p", {}, "Validate to see the issues here."));
  const parse = () => { try { return JSON.parse(area.value); } catch (e) { side.replaceChildren(h("p", { class: "error", role: "alert" }, "Not JSON: " + e.message)); return null; } };
  const validate = async () => {
    const res = parse();
    if (!res) return;
    const r = await api("POST", "/" + type + (id ? "/" + id : "") + "/$validate", res);
    side.replaceChildren(r.json ? issueList(r.json, area) : problem(r));
  };
  const save = async () => {
    const res = parse();
    if (!res) return;
    const r = id ? await api("PUT", "/" + type + "/" + id, res) : await api("POST", "/" + type, res);
    if (r.ok) { location.hash = "#/type/" + type + "/" + (r.json ? r.json.id : id); return; }
    side.replaceChildren(h("p", { class: "error" }, "Not saved (" + r.status + "):"), r.json ? issueList(r.json, area) : problem(r));
  };
  show(h("h1", {}, id ? "Edit " + type + "/" + id : "New " + type),
    h("div", { class: "row" }, h("div", {}, area, h("p", {}, h("button", { type: "button", id: "validate", onclick: validate }, "Validate"), " ",
      h("button", { type: "button", id: "save", onclick: save }, "Save"))), side));
}

// ---- Validate, transaction, jobs, audit ------------------------------------------

async function validateView() {
  const area = h("textarea", { id: "resource", "aria-label": "Resource JSON" });
  const profile = h("input", { id: "profile", size: "60", placeholder: "http://hl7.org/fhir/StructureDefinition/…" });
  const out = h("section", { id: "validation", "aria-label": "Validation" });
  const run = async () => {
    let res;
    try { res = JSON.parse(area.value); } catch (e) { return out.replaceChildren(h("p", { class: "error" }, "Not JSON: " + e.message)); }
    const params = { resourceType: "Parameters", parameter: [{ name: "resource", resource: res }] };
    if (profile.value.trim()) params.parameter.push({ name: "profile", valueUri: profile.value.trim() });
    const r = await api("POST", "/" + (res.resourceType || "Resource") + "/$validate", params);
    out.replaceChildren(r.json ? issueList(r.json, area) : problem(r));
  };
  show(h("h1", {}, "Validate a resource"), h("label", { for: "profile" }, "Profile (optional)"), profile,
    h("div", { class: "row" }, h("div", {}, area, h("button", { type: "button", id: "run-validate", onclick: run }, "Validate")), out));
}

async function transactionView() {
  const area = h("textarea", { id: "bundle", "aria-label": "Bundle JSON" });
  area.value = pretty({ resourceType: "Bundle", type: "transaction", entry: [{ fullUrl: "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", resource: { resourceType: "Patient", name: [{ family: "Example" }] }, request: { method: "POST", url: "Patient" } }] });
  const out = h("section", { id: "outcome", "aria-label": "Outcome" });
  const run = async () => {
    const r = await api("POST", "", area.value);
    if (!r.ok) return out.replaceChildren(problem(r));
    const row = (e) => {
      const response = e.response || {};
      const target = response.location ? localPath(response.location).split("/_history")[0].replace(/^\//, "") : "";
      return h("tr", {}, h("td", {}, response.status || ""),
        h("td", {}, target ? h("a", { href: "#/type/" + target }, response.location) : ""));
    };
    out.replaceChildren(h("p", { class: "ok" }, r.status + " " + r.json.type),
      h("table", { id: "entries" }, h("tbody", {}, (r.json.entry || []).map(row))));
  };
  show(h("h1", {}, "Run a batch or transaction"), h("div", { class: "row" }, h("div", {}, area, h("button", { type: "button", id: "run-bundle", onclick: run }, "Send")), out));
}

function jobs() { return JSON.parse(sessionStorage.getItem("fhir-jobs") || "[]"); }
function saveJobs(list) { sessionStorage.setItem("fhir-jobs", JSON.stringify(list)); }

async function jobsView() {
  const types = h("input", { id: "export-types", placeholder: "Patient,Observation (empty: all)" });
  const list = h("table", { id: "jobs" });
  const kickOff = async (label, method, path, body) => {
    const r = await api(method, path, body, { Prefer: "respond-async" });
    if (r.status !== 202) return list.before(problem(r));
    const next = jobs();
    next.unshift({ label, status: localPath(r.headers.get("Content-Location")), started: new Date().toISOString() });
    saveJobs(next);
    poll();
  };
  const importArea = h("textarea", { id: "import-body", "aria-label": "Import Parameters JSON", style: "min-height:8em" });
  importArea.value = pretty({ resourceType: "Parameters", parameter: [{ name: "inputFormat", valueCode: "application/fhir+ndjson" }, { name: "input", part: [{ name: "type", valueCode: "Patient" }, { name: "url", valueUri: "file:///…/Patient.ndjson" }] }] });
  show(h("h1", {}, "Bulk jobs"),
    h("p", {}, h("label", { for: "export-types" }, "Types"), types, " ",
      h("button", { type: "button", id: "start-export", onclick: () => kickOff("export " + (types.value || "all"), "GET", "/$export" + (types.value ? "?_type=" + encodeURIComponent(types.value) : "")) }, "Start an export")),
    h("details", {}, h("summary", {}, "Start an import"), importArea, h("button", { type: "button", id: "start-import", onclick: () => kickOff("import", "POST", "/$import", importArea.value) }, "Start the import")),
    h("h2", {}, "Jobs started here"), list,
    h("h2", {}, "All jobs on this server"), h("div", { id: "all-jobs" }, "Loading…"));
  allJobs();
  const poll = async () => {
    const rows = [];
    for (const job of jobs()) {
      const r = await api("GET", job.status);
      let state;
      if (r.status === 202) state = "running " + (r.headers.get("X-Progress") || "");
      else if (r.status === 200 && r.json) state = "finished: " + (r.json.output || []).map((o) => o.type + " " + (o.count === undefined ? "" : o.count)).join(", ");
      else state = "status " + r.status + (r.json ? ": " + issuesOf(r.json).map((i) => i.text).join("; ") : "");
      rows.push(h("tr", {}, h("td", {}, job.label), h("td", {}, job.started), h("td", { class: "job-state" }, state)));
    }
    list.replaceChildren(h("thead", {}, h("tr", {}, h("th", {}, "job"), h("th", {}, "started"), h("th", {}, "state"))), h("tbody", {}, rows));
    allJobs();
    if (location.hash === "#/jobs" && rows.some((r) => r.lastChild.textContent.startsWith("running"))) setTimeout(poll, 1500);
  };
  poll();
}

/** Every bulk job of the server, for operators (`/console/jobs.json`). */
async function allJobs() {
  const r = await api("GET", location.origin + "/console/jobs.json");
  const el = document.getElementById("all-jobs");
  if (!el) return;
  if (!r.ok) return el.replaceChildren(r.status === 403 ? h("p", {}, "Listing every job needs an operator's token (one that may read all AuditEvents).") : problem(r));
  el.replaceChildren(r.json.length ? h("table", { id: "server-jobs" },
    h("thead", {}, h("tr", {}, ["kind", "status", "progress", "created", "request"].map((t) => h("th", {}, t)))),
    h("tbody", {}, r.json.map((j) => h("tr", {}, h("td", {}, j.kind), h("td", {}, j.status), h("td", {}, j.progress), h("td", {}, j.created), h("td", {}, j.request)))))
    : h("p", {}, "No jobs."));
}

async function auditView() {
  const r = await api("GET", "/AuditEvent?_sort=-date&_count=50");
  if (!r.ok) return show(h("h1", {}, "Audit trail"), problem(r));
  const rows = (r.json.entry || []).map((e) => {
    const a = e.resource;
    const who = ((a.agent || []).find((g) => g.requestor) || {}).who || {};
    return h("tr", {}, h("td", {}, a.recorded), h("td", {}, ((a.subtype || [])[0] || {}).code || ""), h("td", {}, a.action || ""),
      h("td", {}, (who.identifier && who.identifier.value) || who.display || ""),
      h("td", {}, (a.entity || []).map((x) => (x.what && x.what.reference) || (x.query ? "query" : "")).join(", ")), h("td", {}, a.outcome || ""));
  });
  show(h("h1", {}, "Audit trail"), rows.length ? h("table", { id: "audit" }, h("thead", {}, h("tr", {}, ["when", "interaction", "action", "who", "what", "outcome"].map((t) => h("th", {}, t)))), h("tbody", {}, rows))
    : h("p", {}, "No AuditEvents (the audit trail is on with authentication, or with --audit on)."));
}

// ---- Routing ------------------------------------------------------------------------

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  try {
    const p = path.split("/").filter(Boolean).map(decodeURIComponent);
    if (p.length === 0) return await typesView();
    if (p[0] === "validate") return await validateView();
    if (p[0] === "transaction") return await transactionView();
    if (p[0] === "jobs") return await jobsView();
    if (p[0] === "audit") return await auditView();
    if (p[0] === "page") return await searchView(p[1], null, p.slice(2).join("/"));
    if (p[0] === "type" && p.length === 2) return await searchView(p[1], query === undefined ? null : query);
    if (p[0] === "type" && p[2] === "new") return await editView(p[1], null);
    if (p[0] === "type" && p[3] === "edit") return await editView(p[1], p[2]);
    if (p[0] === "type" && p[3] === "diff") return await diffView(p[1], p[2], p[4], p[5]);
    if (p[0] === "type" && p.length === 3) return await resourceView(p[1], p[2]);
    show(h("p", {}, "Nothing here."));
  } catch (e) {
    show(e && e.status ? problem(e) : h("p", { class: "error", role: "alert" }, String(e)));
  }
}

// ---- Signing in: a pasted token, or the OpenID Connect provider (code + PKCE) -------

function setToken(token) {
  state.token = token;
  sessionStorage.setItem("fhir-token", token);
  state.capability = null;
  document.getElementById("token").value = token;
  document.getElementById("who").textContent = token ? "signed in" : "";
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function discovery(issuer) {
  const r = await fetch(issuer.replace(/\/$/, "") + "/.well-known/openid-configuration");
  if (!r.ok) throw new Error("the provider's discovery answered " + r.status);
  return r.json();
}

/** Sends the browser to the provider's sign-in page (authorization code with PKCE). */
async function signIn(oidc) {
  const d = await discovery(oidc.issuer);
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const nonce = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem("fhir-oidc", JSON.stringify({ verifier, state: nonce, token_endpoint: d.token_endpoint, hash: location.hash }));
  const q = new URLSearchParams({ response_type: "code", client_id: oidc.client_id, redirect_uri: location.origin + "/",
    scope: oidc.scope, state: nonce, code_challenge: challenge, code_challenge_method: "S256" });
  location.assign(d.authorization_endpoint + "?" + q);
}

/** Back from the provider: trades the code for an access token. */
async function finishSignIn(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return;
  const saved = JSON.parse(sessionStorage.getItem("fhir-oidc") || "{}");
  sessionStorage.removeItem("fhir-oidc");
  history.replaceState(null, "", "/" + (saved.hash || ""));
  if (params.has("error") || params.get("state") !== saved.state) {
    throw new Error("sign-in failed: " + (params.get("error_description") || params.get("error") || "the state does not match"));
  }
  const body = new URLSearchParams({ grant_type: "authorization_code", code: params.get("code"),
    redirect_uri: location.origin + "/", client_id: oidc.client_id, code_verifier: saved.verifier });
  const r = await fetch(saved.token_endpoint, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body });
  const t = await r.json().catch(() => ({}));
  if (!r.ok || !t.access_token) throw new Error("the provider refused the sign-in: " + (t.error_description || t.error || r.status));
  setToken(t.access_token);
}

async function start() {
  document.getElementById("token").value = state.token;
  if (state.token) document.getElementById("who").textContent = "signed in";
  document.getElementById("signin").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(document.getElementById("token").value.trim());
    route();
  });
  const config = await fetch("/console/config.json").then((r) => r.json()).catch(() => ({}));
  if (config.oidc) {
    const button = h("button", { type: "button", id: "signin-oidc", onclick: () => signIn(config.oidc).catch((e) => show(h("p", { class: "error", role: "alert" }, String(e)))) }, "Sign in with " + new URL(config.oidc.issuer).host);
    document.getElementById("signin").append(button);
    try {
      await finishSignIn(config.oidc);
    } catch (e) {
      window.addEventListener("hashchange", route);
      return show(h("p", { class: "error", role: "alert" }, String(e)));
    }
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
