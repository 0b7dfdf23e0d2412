// The console: signs in when the API asks for a token, then polls the JSON endpoints and
// redraws. Data is inserted as text only. Every call carries the session cookie (set by
// POST /auth/signin, HttpOnly) and the X-Requested-With header the API's CSRF rule asks of
// cookie-authenticated writes.
"use strict";

const REFRESH_MS = 5000;
const PAGE_SIZE = 50;
const HEADERS = { Accept: "application/json", "X-Requested-With": "zapdispatch" };

class Unauthorized extends Error {}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function $(id) {
  return document.getElementById(id);
}

async function api(method, path, body) {
  const init = { method, headers: { ...HEADERS }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) throw new Unauthorized(path);
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try {
      const parsed = await response.json();
      if (parsed.detail) detail = typeof parsed.detail === "string" ? parsed.detail : JSON.stringify(parsed.detail);
    } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

const getJson = (path) => api("GET", path);

// -- sign-in ------------------------------------------------------------------------------
function showSignin(message) {
  document.body.dataset.state = "signin";
  $("signin").hidden = false;
  $("nav").hidden = true;
  for (const view of document.querySelectorAll(".view")) view.hidden = true;
  const error = $("signin-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("overall-status").textContent = "signed out";
  $("overall-status").className = "badge";
  $("updated").textContent = "";
}

async function signin(event) {
  event.preventDefault();
  const token = $("signin-token").value;
  try {
    await api("POST", "/auth/signin", { token });
  } catch (exc) {
    $("signin-token").value = "";
    showSignin(exc instanceof Unauthorized ? "Wrong token: check API_TOKEN and try again."
      : `Sign-in failed: ${exc.message}`);
    return;
  }
  $("signin-token").value = "";
  await start();
}

async function signout() {
  await api("POST", "/auth/signout");
  showSignin("Signed out.");
}

// -- overview -----------------------------------------------------------------------------
function bar(kind, used, cap) {
  const pct = cap > 0 ? Math.min(100, (100 * used) / cap) : 100;
  const level = pct >= 100 ? "full" : pct >= 80 ? "high" : "";
  const fill = el("div", { class: `fill ${level}`.trim() });
  fill.style.width = `${pct.toFixed(1)}%`;
  return el("div", { class: `bar bar-${kind}`, title: `${pct.toFixed(1)}%` },
    fill, el("span", { class: "text" }, `${used}/${cap}`));
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function card(label, value) {
  return el("div", { class: "card" }, el("div", { class: "value" }, value),
    el("div", { class: "label" }, label));
}

function renderSummary(data) {
  const s = data.summary;
  $("summary").replaceChildren(
    card("instances", s.total_instances), card("online", s.online), card("offline", s.offline),
    card("banned", s.banned), card("sent today", `${s.sent_today}/${s.capacity_day}`),
    card("capacity used", `${s.capacity_used_pct.toFixed(1)}%`));
  const badge = $("overall-status");
  badge.textContent = data.status;
  badge.className = `badge ${data.status}`;
  $("updated").textContent = `updated ${when(data.timestamp)}`;
}

function instanceRow(i) {
  return el("tr", { class: "instance", "data-name": i.name, "data-status": i.status },
    el("td", { class: "emoji" }, i.status_emoji), el("td", { class: "name" }, i.name,
      i.warmup_day ? el("span", { class: "warmup muted" }, ` warm-up day ${i.warmup_day}`) : ""),
    el("td", {}, i.phone), el("td", { class: "status" }, i.status),
    el("td", {}, bar("hour", i.messages_hour, i.effective_hourly_cap ?? i.capacity_hour)),
    el("td", {}, bar("day", i.messages_day, i.effective_daily_cap ?? i.capacity_day)),
    el("td", { class: "load" }, `${i.load_pct.toFixed(1)}%`),
    el("td", { class: "available" }, i.paused ? "paused" : i.available ? "yes" : "no"),
    el("td", { class: "delivered" },
      i.delivered_pct_24h === null || i.delivered_pct_24h === undefined
        ? "–" : `${i.delivered_pct_24h.toFixed(1)}%`),
    el("td", {}, when(i.last_message_at)),
    el("td", { class: "controls" },
      i.paused ? controlButton("Resume", `resume sending on ${i.name}`, "POST", "/controls/resume", { instance: i.name })
        : controlButton("Pause", `pause sending on ${i.name}`, "POST", "/controls/pause", { instance: i.name }),
      i.status === "banned"
        ? controlButton("Unban", `unban ${i.name} (it stays disconnected until seen connected)`, "POST", `/instances/${encodeURIComponent(i.name)}/unban`)
        : controlButton("Ban", `mark ${i.name} banned and move its contacts off it`, "POST", `/instances/${encodeURIComponent(i.name)}/ban`)));
}

function renderAlerts(alerts) {
  $("alert-count").textContent = `(${alerts.length})`;
  const items = alerts.map((a) => el("li", { class: `alert ${a.severity}`, "data-kind": a.kind },
    el("strong", {}, a.title), " ", el("span", { class: "muted" }, `since ${when(a.opened_at)}`),
    el("div", {}, a.message)));
  if (items.length === 0) items.push(el("li", { class: "muted" }, "none"));
  $("alerts").replaceChildren(...items);
}

function pauseLabel(p) {
  const what = p.scope === "all" ? "all sending" : `${p.scope} ${p.target}`;
  return `${what} since ${when(p.since)}`;
}

async function refreshOverview() {
  const [overview, alerts] = await Promise.all(
    [getJson("/dashboard/instances"), getJson("/dashboard/alerts")]);
  renderSummary(overview);
  document.querySelector("#instances tbody").replaceChildren(...overview.instances.map(instanceRow));
  renderAlerts(alerts.alerts);
  await refreshControls();
}

// -- controls: every change asks for confirmation, then calls the authenticated API --------
// Resolves true on Confirm, false on Cancel or Esc. The answer is taken from the button
// itself (not from the dialog's asynchronous `close` event, which a second control opened
// right after could otherwise receive as its own).
function confirmAction(text) {
  const dialog = $("confirm");
  const ok = $("confirm-ok");
  const cancel = $("confirm-cancel");
  $("confirm-text").textContent = `Really ${text}?`;
  return new Promise((resolve) => {
    const answer = (event, value) => {
      event.preventDefault();
      ok.onclick = cancel.onclick = dialog.oncancel = null;
      dialog.close();
      resolve(value);
    };
    ok.onclick = (event) => answer(event, true);
    cancel.onclick = (event) => answer(event, false);
    dialog.oncancel = (event) => answer(event, false);
    dialog.showModal();
  });
}

function notice(text, isError) {
  const node = $("notice");
  node.textContent = text;
  node.className = isError ? "notice error" : "notice";
  node.hidden = false;
}

async function runControl(label, method, path, body) {
  if (!(await confirmAction(label))) return;
  try {
    await api(method, path, body);
    notice(`Done: ${label}.`, false);
  } catch (exc) {
    if (exc instanceof Unauthorized) {
      showSignin("Your session ended: sign in again.");
      return;
    }
    notice(`Failed to ${label}: ${exc.message}`, true);
  }
  await refresh();
}

function controlButton(text, label, method, path, body) {
  const button = el("button", { type: "button", class: "control", "data-control": text.toLowerCase() }, text);
  button.addEventListener("click", () => runControl(label, method, path, body));
  return button;
}

function campaignName(c) {
  return c.name ?? c.campaign;
}

function campaignRow(c) {
  const name = campaignName(c);
  const path = `/campaigns/${encodeURIComponent(name)}/cancel`;
  const count = c.messages ?? c.total ?? c.accepted ?? "";
  return el("tr", { class: "campaign", "data-campaign": name },
    el("td", {}, name), el("td", {}, count), el("td", {}, c.paused ? "yes" : "no"),
    el("td", { class: "controls" },
      c.paused ? controlButton("Resume", `resume campaign ${name}`, "POST", "/controls/resume", { campaign: name })
        : controlButton("Pause", `pause campaign ${name}`, "POST", "/controls/pause", { campaign: name }),
      controlButton("Cancel", `cancel campaign ${name} (its queued and waiting messages become cancelled)`, "POST", path)));
}

// Optional reads: routes that may be missing on an older server leave their section empty.
async function optionalJson(path) {
  try {
    return await getJson(path);
  } catch (exc) {
    if (exc instanceof Unauthorized) throw exc;
    return null;
  }
}

function describePauses(body) {
  if (body === null) return "pause state unknown";
  const pauses = body.pauses || [];
  if (pauses.length === 0) return "sending: on";
  return "paused: " + pauses.map(pauseLabel).join("; ");
}

async function refreshControls() {
  const [pauses, campaigns] = await Promise.all(
    [optionalJson("/controls/pauses"), optionalJson("/campaigns")]);
  $("pause-state").textContent = describePauses(pauses);
  const rows = campaigns === null ? [] : (campaigns.campaigns || []).map(campaignRow);
  document.querySelector("#campaigns tbody").replaceChildren(...rows);
  $("campaigns-note").hidden = rows.length > 0;
  $("campaigns-note").textContent = campaigns === null ? "campaigns unavailable" : "no campaigns";
}

function setupControls() {
  for (const button of document.querySelectorAll("#pool-controls .control")) {
    const pause = button.dataset.action === "pause-all";
    button.addEventListener("click", () => runControl(pause ? "pause all sending" : "resume all sending",
      "POST", pause ? "/controls/pause" : "/controls/resume", {}));
  }
}

// -- messages -----------------------------------------------------------------------------
const messagePaging = { before: null, stack: [] };

function messageQuery() {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($("message-filters"))) {
    if (String(value).trim()) params.set(key, String(value).trim());
  }
  params.set("limit", String(PAGE_SIZE));
  if (messagePaging.before) params.set("before", messagePaging.before);
  return params;
}

function messageRow(m) {
  const row = el("tr", { class: "message", "data-id": m.id, "data-state": m.state },
    el("td", {}, when(m.created_at)), el("td", { class: "state" }, m.state),
    el("td", {}, m.instance || "—"), el("td", {}, m.contact_id || "—"), el("td", {}, m.phone || "—"),
    el("td", {}, m.campaign || "—"), el("td", {}, m.receipt || "—"), el("td", {}, m.attempts),
    el("td", { class: "last-error" }, m.last_error || ""));
  row.addEventListener("click", () => showMessage(m.id));
  return row;
}

async function refreshMessages() {
  const body = await getJson(`/messages?${messageQuery()}`);
  document.querySelector("#message-list tbody").replaceChildren(...body.messages.map(messageRow));
  $("messages-older").disabled = !body.next_before;
  $("messages-older").dataset.next = body.next_before || "";
  $("messages-newer").disabled = messagePaging.stack.length === 0;
}

const DETAIL_FIELDS = ["state", "instance", "contact_id", "phone", "campaign", "provider_message_id",
  "receipt", "created_at", "sent_at", "delivered_at", "read_at", "not_before", "attempts",
  "requeues", "last_error"];

async function showMessage(id) {
  const [message, timeline] = await Promise.all(
    [getJson(`/messages/${encodeURIComponent(id)}`), getJson(`/messages/${encodeURIComponent(id)}/timeline`)]);
  $("detail-id").textContent = message.id;
  $("detail-fields").replaceChildren(...DETAIL_FIELDS.flatMap((key) => [
    el("dt", {}, key), el("dd", { "data-key": key }, message[key] === null ? "—" : message[key])]));
  $("timeline").replaceChildren(...timeline.events.map((e) => el("li",
    { class: "event", "data-kind": e.kind },
    el("span", { class: "muted" }, when(e.at)), " ", el("strong", {}, e.kind),
    e.instance ? ` on ${e.instance}` : "", e.reason ? `: ${e.reason}` : "",
    e.until ? ` (until ${when(e.until)})` : "")));
  $("message-detail").hidden = false;
  document.body.dataset.detail = message.id;
}

function setupMessages() {
  $("message-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    messagePaging.before = null;
    messagePaging.stack = [];
    guarded(refreshMessages);
  });
  $("messages-older").addEventListener("click", () => {
    messagePaging.stack.push(messagePaging.before);
    messagePaging.before = $("messages-older").dataset.next;
    guarded(refreshMessages);
  });
  $("messages-newer").addEventListener("click", () => {
    messagePaging.before = null;
    messagePaging.stack = [];
    guarded(refreshMessages);
  });
}

// -- charts (plain SVG) ---------------------------------------------------------------------
const SVG_NS = "http://www.w3.org/2000/svg";
const STATE_COLOURS = { queued: "#2563eb", waiting: "#d97706", sending: "#15803d" };

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function pct(value) {
  return value === null || value === undefined ? "—" : `${value.toFixed(1)}%`;
}

// 24 bars of sends per hour against the hourly cap (a dashed line).
function hourBars(row) {
  const width = 288, height = 80, gap = 2;
  const top = Math.max(row.capacity_hour, ...row.hours.map((h) => h.sent), 1);
  const step = width / row.hours.length;
  const y = (v) => height - (height * v) / top;
  const bars = row.hours.map((h, i) => svg("rect", {
    class: "hour-bar", "data-sent": h.sent, x: (i * step).toFixed(1),
    y: y(h.sent).toFixed(1), width: (step - gap).toFixed(1),
    height: (height - y(h.sent)).toFixed(1), fill: h.sent >= row.capacity_hour ? "#dc2626" : "#2563eb",
  }, svg("title", {}, `${new Date(h.hour).toLocaleTimeString([], { hour: "2-digit" })}: ${h.sent}/${row.capacity_hour}`)));
  const cap = svg("line", { class: "cap-line", x1: 0, x2: width, y1: y(row.capacity_hour),
    y2: y(row.capacity_hour), stroke: "#6b7280", "stroke-dasharray": "4 3" });
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `sends per hour on ${row.name}` }, ...bars, cap);
}

function instanceChart(row) {
  return el("figure", { class: "chart instance-chart", "data-name": row.name },
    hourBars(row),
    el("figcaption", {}, el("strong", {}, row.name),
      ` ${row.sent_24h} sent · delivered ${pct(row.delivered_pct_24h)} · read ${pct(row.read_pct_24h)}`));
}

// One polyline per state over the samples.
function queueChart(samples) {
  const width = 600, height = 140;
  if (samples.length === 0) return el("p", { class: "muted" }, "no samples yet (the health check takes one a minute)");
  const states = Object.keys(STATE_COLOURS);
  const top = Math.max(1, ...samples.flatMap((s) => states.map((k) => s[k] || 0)));
  const times = samples.map((s) => new Date(s.at).getTime());
  const span = Math.max(1, times[times.length - 1] - times[0]);
  const x = (t) => (samples.length === 1 ? width / 2 : ((t - times[0]) / span) * width);
  const y = (v) => height - 4 - ((height - 8) * v) / top;
  const lines = states.map((k) => svg("polyline", {
    class: `depth depth-${k}`, fill: "none", stroke: STATE_COLOURS[k], "stroke-width": 2,
    points: samples.map((s, i) => `${x(times[i]).toFixed(1)},${y(s[k] || 0).toFixed(1)}`).join(" "),
  }));
  const last = samples[samples.length - 1];
  const legend = el("p", { class: "legend" }, ...states.map((k) => el("span",
    { class: "key", style: `border-color: ${STATE_COLOURS[k]}` }, `${k} ${last[k] || 0}`)));
  return el("div", {}, svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": "queue depth" }, ...lines), legend);
}

// Horizontal bars: one per (label, value).
function hbars(pairs, cls) {
  const width = 400, row = 22;
  const top = Math.max(1, ...pairs.map(([, v]) => v));
  const items = pairs.flatMap(([label, value], i) => [
    svg("rect", { class: cls, "data-label": label, "data-value": value, x: 150, y: i * row + 3,
      width: ((width - 200) * value) / top, height: row - 6, fill: "#2563eb" }),
    svg("text", { x: 0, y: i * row + 15, "font-size": 12 }, label),
    svg("text", { x: 155 + ((width - 200) * value) / top, y: i * row + 15, "font-size": 12 }, value),
  ]);
  return svg("svg", { viewBox: `0 0 ${width} ${pairs.length * row}`, width,
    height: pairs.length * row, role: "img" }, ...items);
}

async function refreshCharts() {
  const [instances, queue, campaigns] = await Promise.all([getJson("/charts/instances"),
    getJson("/charts/queue?hours=6"), getJson("/charts/campaigns")]);
  $("instance-charts").replaceChildren(...instances.instances.map(instanceChart));
  $("queue-chart").replaceChildren(queueChart(queue.samples));
  const reasons = Object.entries(queue.waiting_by_reason);
  $("reason-chart").replaceChildren(reasons.length ? hbars(reasons, "reason-bar")
    : el("p", { class: "muted" }, "nothing is held back"));
  $("campaign-charts").replaceChildren(...(campaigns.campaigns.length ? campaigns.campaigns.map((c) =>
    el("figure", { class: "chart funnel", "data-campaign": c.campaign },
      hbars([["accepted", c.accepted], ["sent", c.sent], ["delivered", c.delivered], ["read", c.read]], "funnel-bar"),
      el("figcaption", {}, el("strong", {}, c.campaign),
        c.failed || c.cancelled ? ` · ${c.failed} failed, ${c.cancelled} cancelled` : "")))
    : [el("p", { class: "muted" }, "no campaigns in the last 30 days")]));
}

// -- views and refresh ------------------------------------------------------------------
const VIEWS = { overview: refreshOverview, messages: refreshMessages, charts: refreshCharts };

function currentView() {
  const name = location.hash.replace("#", "");
  return name in VIEWS ? name : "overview";
}

async function guarded(action) {
  const error = $("error");
  try {
    await action();
    error.hidden = true;
    document.body.dataset.state = "ready";
  } catch (exc) {
    if (exc instanceof Unauthorized) {
      showSignin("Your session ended: sign in again.");
      return;
    }
    error.textContent = `refresh failed: ${exc.message}`;
    error.hidden = false;
    document.body.dataset.state = "error";
  }
}

// Charts aggregate a day of sends: redrawn every 30 s, not on every 5 s tick.
const VIEW_REFRESH_MS = { charts: 30000 };
const lastDrawn = {};

async function refresh(event) {
  if (document.body.dataset.state === "signin") return;
  const view = currentView();
  const shown = document.body.dataset.view === view;
  document.body.dataset.view = view;
  for (const node of document.querySelectorAll(".view")) node.hidden = node.id !== view;
  const every = VIEW_REFRESH_MS[view] || REFRESH_MS;
  if (event === "tick" && shown && Date.now() - (lastDrawn[view] || 0) < every) return;
  lastDrawn[view] = Date.now();
  await guarded(async () => {
    await VIEWS[view]();
    if (view !== "overview") renderSummary(await getJson("/dashboard/instances"));  // the badge
  });
}

async function start() {
  const session = await getJson("/auth/session");
  if (!session.signed_in) {
    showSignin("");
    return;
  }
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = !session.auth_required;
  document.body.dataset.state = "loading";
  await refresh();
}

$("signin-form").addEventListener("submit", signin);
$("signout").addEventListener("click", signout);
window.addEventListener("hashchange", refresh);
setupMessages();
setupControls();
start().catch((exc) => {
  $("error").textContent = `start failed: ${exc.message}`;
  $("error").hidden = false;
});
setInterval(() => refresh("tick"), REFRESH_MS);
