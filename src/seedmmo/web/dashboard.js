// The admin dashboard: realms, live charts, a feed of what happens, and admin actions.
// Everything comes from the public REST API and the /ws stream of this page's own server.
import uPlot from "/vendor/uPlot.esm.js";
import { adminToken, api, el, fmt, gameKeys, live, showState } from "/common.js";

const $ = (id) => document.getElementById(id);
const WINDOW_S = 120; // seconds of history in the rate charts
const TICK_POINTS = 300; // ticks in the tick-time chart

// ----------------------------------------------------------------------------- charts

function chart(target, series, { yLabel = "", windowS = null } = {}) {
  const opts = {
    width: Math.max(200, target.clientWidth),
    height: 180,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    // a fixed window for the per-second charts (with one or two points, an automatic range
    // would span years)
    scales: { x: windowS ? { time: true, range: (u, min, max) => [max - windowS, max] } : { time: true } },
    axes: [
      {
        stroke: "#9aa1b2", grid: { stroke: "#2a2f3d" }, ticks: { stroke: "#2a2f3d" },
        // one short clock time per label, spaced so they never run into each other (uPlot's
        // own labels for sub-second spans are ":50.000" over a date line)
        space: 70,
        incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600], // whole seconds
        values: (u, splits) => splits.map(clockTime),
      },
      { stroke: "#9aa1b2", grid: { stroke: "#2a2f3d" }, ticks: { stroke: "#2a2f3d" }, label: yLabel, size: 50 },
    ],
    series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 1.5, points: { show: false } }))],
  };
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, data, target);
  return { plot, data, target };
}

const tickChart = chart($("chart-tick"), [["tick", "#6cb6ff"], ["p50", "#3fb950"], ["p99", "#d29922"]], { yLabel: "ms" });
const rateChart = chart($("chart-rate"), [["ticks/s", "#6cb6ff"], ["events/s", "#f778ba"]], { windowS: WINDOW_S });
const clientChart = chart($("chart-clients"), [["clients", "#3fb950"]], { windowS: WINDOW_S });
const charts = [tickChart, rateChart, clientChart];

function clockTime(seconds) {
  const d = new Date(seconds * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

function push(c, x, values, limit) {
  c.data[0].push(x);
  values.forEach((v, i) => c.data[i + 1].push(v));
  while (c.data[0].length > limit) c.data.forEach((column) => column.shift());
}

function redraw() {
  for (const c of charts) c.plot.setData(c.data);
}

new ResizeObserver(() => {
  for (const c of charts) c.plot.setSize({ width: Math.max(200, c.target.clientWidth), height: 180 });
}).observe(document.body);

// ----------------------------------------------------------------------------- state

let stats = null;
let tickTimes = []; // arrival times (ms) of control_tick_complete, for ticks/s
let eventTimes = []; // arrival times of cross_game_event, for events/s
let realms = new Map(); // game_id -> realm
let lastTick = null;

function realmRow(realm) {
  const canAct = Boolean(adminToken.get());
  const beat = realm.stats.last_heartbeat ? realm.stats.last_heartbeat.replace("T", " ").slice(0, 19) : "never";
  return el(
    "tr",
    { dataset: { gameId: realm.game_id } },
    el("td", {}, realm.game_id),
    el("td", { className: "wrap" }, realm.realm_id),
    el("td", {}, el("span", { className: "badge " + stateClass(realm.state) }, realm.state)),
    el("td", { className: "hide-small" }, realm.hosted ? "hosted" : beat),
    el("td", { className: "hide-small" }, realm.stats.events_sent),
    el("td", { className: "hide-small" }, realm.stats.events_received),
    el(
      "td",
      {},
      el("button", {
        className: "danger",
        type: "button",
        disabled: !canAct,
        title: canAct ? "unregister this realm (click twice)" : "enter the admin token first",
        onclick: (event) => unregister(realm.game_id, event.currentTarget),
      }, "unregister"),
    ),
  );
}

function stateClass(state) {
  return { online: "ok", unhealthy: "warn", offline: "bad" }[state] || "";
}

function renderRealms() {
  const sorted = [...realms.values()].sort((a, b) => a.game_id.localeCompare(b.game_id));
  $("realms").replaceChildren(...sorted.map(realmRow));
  $("c-realms").textContent = String(realms.size);
  const keys = gameKeys.all();
  const sources = sorted.filter((r) => keys[r.game_id]);
  $("publish-source").replaceChildren(
    ...(sources.length
      ? sources.map((r) => el("option", { value: r.game_id }, r.game_id))
      : [el("option", { value: "" }, "register a realm here first")]),
  );
  const current = $("publish-target").value;
  $("publish-target").replaceChildren(
    el("option", { value: "" }, "everyone (broadcast)"),
    ...sorted.map((r) => el("option", { value: r.game_id }, r.game_id)),
  );
  $("publish-target").value = current;
}

async function loadRealms() {
  const body = await api("/api/realms");
  realms = new Map(body.realms.map((r) => [r.game_id, r]));
  renderRealms();
}

async function loadStats() {
  stats = await api("/api/stats");
  $("c-tick-ms").textContent = `${fmt(stats.tick.p50_ms)} / ${fmt(stats.tick.p99_ms)}`;
  $("c-clients").textContent = String(stats.clients);
  $("c-entities").textContent = String(stats.entities);
  if (lastTick === null) $("c-tick").textContent = String(stats.stats.total_control_ticks);
}

// ----------------------------------------------------------------------------- the feed

const FEED_LIMIT = 100;

function feedLine(kind, ...parts) {
  const item = el("li", {}, el("span", { className: "kind" }, kind), ...parts);
  $("feed").prepend(item);
  while ($("feed").children.length > FEED_LIMIT) $("feed").lastChild.remove();
}

function describe(msg) {
  switch (msg.event_type) {
    case "cross_game_event":
      return feedLine(
        "event",
        `#${msg.offset} tick ${msg.control_tick_id}: ${msg.source_game_id} → `,
        msg.target_game_id ?? (msg.selector ? "selector" : "everyone"),
        ` ${msg.event_type_detail}`,
      );
    case "npc_action":
      return feedLine("npc", `${msg.name} (${msg.realm}) ${msg.action}`, msg.says ? `: “${msg.says}”` : "");
    case "entity_departed":
    case "entity_arrived":
    case "entity_returned":
      return feedLine("travel", `${msg.entity.name} ${msg.event_type.slice(7)} ${msg.travel.from} → ${msg.travel.to}`);
    case "game_registered":
      return feedLine("realm", `registered ${msg.realm.game_id} (${msg.realm.realm_id})`);
    case "game_unregistered":
      return feedLine("realm", `unregistered ${msg.game_id}`);
    case "realm_state_changed":
      return feedLine("realm", `${msg.game_id}: ${msg.previous} → ${msg.state}`);
    default:
      return undefined;
  }
}

// ----------------------------------------------------------------------------- live

const connection = live({
  topics: ["ticks", "realms", "events", "entities"],
  onState: (state) => showState($("ws-state"), state),
  onMessage(msg) {
    const now = performance.now();
    if (msg.event_type === "control_tick_complete") {
      lastTick = msg.control_tick_id;
      $("c-tick").textContent = String(lastTick);
      tickTimes.push(now);
      push(tickChart, Date.now() / 1000, [msg.elapsed_ms, stats?.tick.p50_ms ?? null, stats?.tick.p99_ms ?? null], TICK_POINTS);
      return;
    }
    if (msg.event_type === "cross_game_event") eventTimes.push(now);
    if (msg.event_type === "game_registered") {
      realms.set(msg.realm.game_id, msg.realm);
      renderRealms();
    } else if (msg.event_type === "game_unregistered") {
      realms.delete(msg.game_id);
      renderRealms();
    } else if (msg.event_type === "realm_state_changed" && realms.has(msg.game_id)) {
      realms.get(msg.game_id).state = msg.state;
      renderRealms();
    }
    describe(msg);
  },
});

setInterval(() => {
  const now = performance.now();
  tickTimes = tickTimes.filter((t) => now - t <= 1000);
  eventTimes = eventTimes.filter((t) => now - t <= 5000);
  const eventsPerS = eventTimes.length / 5;
  $("c-rate").textContent = String(tickTimes.length);
  $("c-events").textContent = fmt(eventsPerS, 1);
  if (lastTick !== null) $("c-tick").textContent = String(lastTick);
  const x = Date.now() / 1000;
  push(rateChart, x, [tickTimes.length, eventsPerS], WINDOW_S);
  if (stats) push(clientChart, x, [stats.clients], WINDOW_S);
  redraw();
}, 1000);

setInterval(() => loadStats().catch(() => {}), 2000);
setInterval(() => loadRealms().catch(() => {}), 5000); // counters move with every event

// ----------------------------------------------------------------------------- admin actions

function say(id, text, ok) {
  $(id).textContent = text;
  $(id).className = "message " + (ok ? "ok" : "error");
}

$("token").value = adminToken.get();
$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return say("token-message", "enter a token", false);
  try {
    const who = await api("/api/whoami", { token });
    if (who.role !== "admin") return say("token-message", `that is a ${who.role} key, not the admin token`, false);
  } catch (err) {
    return say("token-message", err.status === 401 ? "that is not a valid token" : err.message, false);
  }
  adminToken.set(token);
  say("token-message", "admin token set for this tab", true);
  renderRealms();
  loadAudit();
});
$("token-forget").addEventListener("click", () => {
  adminToken.clear();
  $("token").value = "";
  say("token-message", "forgotten", true);
  renderRealms();
  loadAudit();
});

const AUDIT_SHOWN = 50;

/** The newest audit entries, for the admin: pages are read from the oldest (at most 20 of
 * 1,000), the last ones shown. */
async function loadAudit() {
  const token = adminToken.get();
  $("audit-panel").hidden = !token;
  if (!token) return;
  let after = 0;
  let newest = [];
  try {
    for (let page = 0; page < 20; page++) {
      const { entries, next_after } = await api(`/api/admin/audit?after=${after}&limit=1000`, { token });
      newest = [...newest, ...entries].slice(-AUDIT_SHOWN);
      if (entries.length < 1000) break;
      after = next_after;
    }
  } catch (err) {
    $("audit").replaceChildren(el("li", {}, err.message));
    return;
  }
  $("audit").replaceChildren(
    ...newest.reverse().map((e) => {
      const { seq, at, action, actor, ...rest } = e;
      const detail = Object.entries(rest).map(([k, v]) => `${k}=${v}`).join(" ");
      return el("li", {}, el("span", { className: "kind" }, `#${seq} ${at.slice(11, 19)}`), `${action} by ${actor} ${detail}`);
    }),
  );
}
$("audit-refresh").addEventListener("click", loadAudit);
loadAudit();

$("register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = {};
  for (const [key, value] of form.entries()) if (String(value).trim()) body[key] = String(value).trim();
  try {
    const reply = await api("/api/games", { method: "POST", body, token: adminToken.get() });
    gameKeys.set(reply.game_id, reply.game_key);
    say("register-message", `registered ${reply.game_id}; its key is kept for this tab (shown once): ${reply.game_key}`, true);
    event.target.reset();
    await loadRealms();
  } catch (err) {
    say("register-message", err.message, false);
  }
});

async function unregister(gameId, button) {
  // two clicks, not a confirm() dialog: the first arms the button for a few seconds
  if (!button.dataset.armed) {
    button.dataset.armed = "yes";
    button.textContent = "sure?";
    setTimeout(() => {
      delete button.dataset.armed;
      button.textContent = "unregister";
    }, 4000);
    return;
  }
  try {
    await api(`/api/games/${encodeURIComponent(gameId)}`, { method: "DELETE", token: adminToken.get() });
    gameKeys.remove(gameId);
    await loadRealms();
  } catch (err) {
    feedLine("error", err.message);
  }
}

$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const source = form.get("source");
  const key = gameKeys.all()[source];
  if (!key) return say("publish-message", "register a realm on this page first: publishing needs its game key", false);
  let data;
  try {
    data = JSON.parse(form.get("data") || "{}");
  } catch {
    return say("publish-message", "data is not valid JSON", false);
  }
  const body = { event_type: form.get("event_type") || "test_event", data };
  if (form.get("target")) body.target_game_id = form.get("target");
  try {
    const reply = await api("/api/events", { method: "POST", body, token: key });
    say("publish-message", `accepted: offset ${reply.offset}, tick ${reply.accepted_tick}`, true);
  } catch (err) {
    say("publish-message", err.message, false);
  }
});

loadRealms().catch((err) => feedLine("error", err.message));
loadStats().catch((err) => feedLine("error", err.message));
window.seedmmoDashboard = { connection }; // for tests and the curious
