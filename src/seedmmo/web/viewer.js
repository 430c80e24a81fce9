// The entity viewer: a filtered, paged entity list from GET /api/entities, a detail panel, and
// live updates from the `entities` topic.
import { adminToken, api, el, fmt, live, showState } from "/common.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;

let cursors = [""]; // the `after` of each page seen so far: going back is popping
let nextAfter = null;
let shown = new Map(); // id -> entity on this page
let selectedId = null;
let reloadTimer = null;
let latestRequest = 0; // only the newest request's answer is shown (older ones may land later)

function filters() {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($("filters")).entries()) {
    if (String(value).trim() !== "") params.set(key, String(value).trim());
  }
  return params;
}

async function loadPage() {
  const params = filters();
  params.set("limit", String(PAGE));
  params.set("after", cursors[cursors.length - 1]);
  const request = ++latestRequest;
  try {
    const page = await api(`/api/entities?${params}`);
    if (request !== latestRequest) return;
    $("filter-message").textContent = "";
    $("filter-message").className = "message";
    nextAfter = page.next_after;
    shown = new Map(page.entities.map((e) => [e.id, e]));
    $("total").textContent = String(page.total);
    const first = (cursors.length - 1) * PAGE + (page.entities.length ? 1 : 0);
    $("page-info").textContent = page.total ? `(${first}–${first + page.entities.length - (page.entities.length ? 1 : 0)})` : "";
    $("rows").replaceChildren(...page.entities.map(row));
    $("prev").disabled = cursors.length <= 1;
    $("next").disabled = nextAfter === null;
  } catch (err) {
    if (request !== latestRequest) return;
    $("filter-message").textContent = err.field ? `${err.field}: ${err.message}` : err.message;
    $("filter-message").className = "message error";
  }
}

function row(entity) {
  const s = entity.stat7;
  return el(
    "tr",
    {
      className: "clickable" + (entity.id === selectedId ? " selected" : ""),
      dataset: { id: entity.id },
      onclick: () => select(entity.id),
    },
    el("td", { className: "wrap" }, entity.name),
    el("td", {}, entity.kind),
    el("td", {}, entity.location ?? `→ ${entity.travel ? entity.travel.to : "?"}`),
    el("td", {}, s.horizon),
    el("td", { className: "hide-small" }, s.lineage),
    el("td", { className: "hide-small" }, fmt(s.resonance, 3)),
    el("td", { className: "hide-small" }, fmt(s.velocity, 3)),
    el("td", { className: "hide-small" }, fmt(s.density, 3)),
  );
}

async function select(id) {
  selectedId = id;
  for (const tr of $("rows").children) tr.classList.toggle("selected", tr.dataset.id === id);
  try {
    showDetail(await api(`/api/entities/${encodeURIComponent(id)}`));
  } catch (err) {
    $("detail-title").textContent = err.status === 404 ? "That entity is gone" : err.message;
    $("detail-fields").replaceChildren();
  }
}

function showDetail(entity) {
  const s = entity.stat7;
  const pair = (k, v) => [el("dt", {}, k), el("dd", {}, v)];
  $("detail-title").textContent = entity.name;
  $("detail-fields").replaceChildren(
    ...[
      pair("id", entity.id),
      pair("kind", entity.kind),
      pair("realm", entity.realm),
      pair("home", entity.home && entity.home !== entity.realm ? `${entity.home} (visiting)` : entity.home ?? entity.realm),
      pair("location", entity.location ?? "in transit"),
      pair("travel", entity.travel ? `${entity.travel.state}: ${entity.travel.from} → ${entity.travel.to}, arrives tick ${entity.travel.arrives_tick}` : "–"),
      pair("STAT7 realm", s.realm),
      pair("lineage", s.lineage),
      pair("adjacency", s.adjacency.join(", ") || "–"),
      pair("horizon", s.horizon),
      pair("resonance", fmt(s.resonance, 4)),
      pair("velocity", fmt(s.velocity, 4)),
      pair("density", fmt(s.density, 4)),
      pair("address", entity.stat7_address),
      pair("URI", entity.stat7_uri),
      pair("created", entity.created_at),
      pair("behaviour", entity.behaviour ? entity.behaviour.actions.map((a) => a.name).join(", ") : "–"),
    ].flat(),
  );
  $("detail-state").textContent = JSON.stringify(entity.state, null, 2);
  showPlayer(entity);
  $("detail-history").replaceChildren(
    ...[...entity.history].reverse().map((h) => {
      const { tick, what, ...rest } = h;
      const detail = Object.entries(rest).map(([k, v]) => `${k}=${v}`).join(" ");
      return el("li", {}, el("span", { className: "kind" }, `tick ${tick}`), `${what} ${detail}`);
    }),
  );
}

/** An avatar's player: who, their reputation (public), and what they carry (admin only). */
async function showPlayer(entity) {
  const box = $("detail-player");
  box.hidden = !entity.player_id;
  if (!entity.player_id) return;
  const pair = (k, v) => [el("dt", {}, k), el("dd", {}, v)];
  try {
    const profile = await api(`/api/players/${encodeURIComponent(entity.player_id)}`);
    if (selectedId !== entity.id) return;
    $("player-fields").replaceChildren(
      ...[pair("player", profile.username), pair("player id", profile.player_id), pair("since", profile.created_at)].flat(),
    );
    const factions = Object.entries(profile.reputation);
    $("player-reputation").replaceChildren(
      ...(factions.length
        ? factions.map(([faction, r]) => el("li", {}, el("span", { className: "kind" }, r.tier), `${faction}: ${r.value}`))
        : [el("li", {}, "no standing with any faction yet")]),
    );
  } catch (err) {
    $("player-fields").replaceChildren(...pair("player", err.message));
  }
  const token = adminToken.get();
  if (!token) {
    $("player-inventory-note").textContent = "Enter the admin token on the dashboard to see the inventory.";
    $("player-inventory").replaceChildren();
    return;
  }
  try {
    const { inventory } = await api(`/api/players/${encodeURIComponent(entity.player_id)}/inventory`, { token });
    if (selectedId !== entity.id) return;
    const stacks = Object.entries(inventory.stacks).map(([item, qty]) => el("li", {}, el("span", { className: "kind" }, `×${qty}`), item));
    const uniques = inventory.uniques.map((u) => el("li", {}, el("span", { className: "kind" }, "unique"), `${u.item} ${u.item_id} ${JSON.stringify(u.attrs)}`));
    $("player-inventory-note").textContent = stacks.length + uniques.length ? "" : "carries nothing";
    $("player-inventory").replaceChildren(...stacks, ...uniques);
  } catch (err) {
    $("player-inventory-note").textContent = err.message;
  }
}

/** Reload the page soon (many messages in a burst cost one request). */
function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(loadPage, 300);
}

async function loadRealms() {
  const { realms } = await api("/api/realms");
  const current = $("realm-filter").value;
  $("realm-filter").replaceChildren(
    el("option", { value: "" }, "any"),
    ...realms.map((r) => el("option", { value: r.game_id }, `${r.game_id} (${r.realm_id})`)),
  );
  $("realm-filter").value = current;
}

live({
  topics: ["entities", "realms"],
  onState: (state) => showState($("ws-state"), state),
  onMessage(msg) {
    const id = msg.entity ? msg.entity.id : msg.entity_id;
    if (msg.event_type === "welcome") {
      loadPage();
      return;
    }
    if (msg.event_type === "game_registered" || msg.event_type === "game_unregistered") {
      loadRealms();
      return;
    }
    if (msg.event_type === "npc_action" && shown.has(id)) {
      const entity = shown.get(id);
      Object.assign(entity.stat7, { horizon: msg.horizon, lineage: msg.lineage, resonance: msg.resonance, velocity: msg.velocity, density: msg.density });
      const old = $("rows").querySelector(`tr[data-id="${CSS.escape(id)}"]`);
      if (old) old.replaceWith(row(entity));
    } else if (msg.event_type.startsWith("entity_")) {
      reloadSoon(); // spawned, removed, moved: the page's membership may change
    }
    if (id && id === selectedId && msg.event_type !== "ok") select(id);
  },
});

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  cursors = [""];
  loadPage();
});
$("filters").addEventListener("reset", () => {
  setTimeout(() => {
    cursors = [""];
    loadPage();
  });
});
$("next").addEventListener("click", () => {
  if (nextAfter === null) return;
  cursors.push(String(nextAfter));
  loadPage();
});
$("prev").addEventListener("click", () => {
  if (cursors.length > 1) cursors.pop();
  loadPage();
});

loadRealms();
