// The status page: polls the JSON endpoints and redraws. Data is inserted as text only.
"use strict";

const REFRESH_MS = 5000;

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
  document.getElementById("summary").replaceChildren(
    card("instances", s.total_instances), card("online", s.online), card("offline", s.offline),
    card("banned", s.banned), card("sent today", `${s.sent_today}/${s.capacity_day}`),
    card("capacity used", `${s.capacity_used_pct.toFixed(1)}%`));
  const badge = document.getElementById("overall-status");
  badge.textContent = data.status;
  badge.className = `badge ${data.status}`;
  document.getElementById("updated").textContent = `updated ${when(data.timestamp)}`;
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
    el("td", {}, when(i.last_message_at)));
}

function renderAlerts(alerts) {
  document.getElementById("alert-count").textContent = `(${alerts.length})`;
  const items = alerts.map((a) => el("li", { class: `alert ${a.severity}`, "data-kind": a.kind },
    el("strong", {}, a.title), " ", el("span", { class: "muted" }, `since ${when(a.opened_at)}`),
    el("div", {}, a.message)));
  if (items.length === 0) items.push(el("li", { class: "muted" }, "none"));
  document.getElementById("alerts").replaceChildren(...items);
}

function pauseLabel(p) {
  const what = p.scope === "all" ? "all sending" : `${p.scope} ${p.target}`;
  return `${what} since ${when(p.since)}`;
}

function renderPauses(pauses) {
  const allPaused = pauses.some((p) => p.scope === "all");
  const text = document.getElementById("pause-text");
  text.textContent = pauses.length ? `paused: ${pauses.map(pauseLabel).join("; ")}` : "sending: on";
  text.className = pauses.length ? "paused" : "muted";
  document.getElementById("pause-all").hidden = allPaused;
  document.getElementById("resume-all").hidden = !allPaused;
}

async function control(action) {
  const response = await fetch(`/controls/${action}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  if (!response.ok) throw new Error(`${action}: HTTP ${response.status}`);
  await refresh();
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [overview, alerts, pauses] = await Promise.all([getJson("/dashboard/instances"),
      getJson("/dashboard/alerts"), getJson("/controls/pauses")]);
    renderSummary(overview);
    renderPauses(pauses.pauses);
    document.querySelector("#instances tbody").replaceChildren(...overview.instances.map(instanceRow));
    renderAlerts(alerts.alerts);
    error.hidden = true;
    document.body.dataset.state = "ready";
  } catch (exc) {
    error.textContent = `refresh failed: ${exc.message}`;
    error.hidden = false;
    document.body.dataset.state = "error";
  }
}

document.getElementById("pause-all").addEventListener("click", () => control("pause"));
document.getElementById("resume-all").addEventListener("click", () => control("resume"));
refresh();
setInterval(refresh, REFRESH_MS);
