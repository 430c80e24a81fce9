// The 3D STAT7 map: realms, their NPCs and players, events as arcs, travellers moving.
import * as THREE from "/vendor/three.module.js";
import { OrbitControls } from "/vendor/OrbitControls.js";
import { api, el, fmt, live, showState } from "/common.js";
import { HORIZON_COLOURS, placeEntity, placeRealms } from "/projection.js";

const $ = (id) => document.getElementById(id);
const ENTITY_CAP = 3000; // entities drawn (the HUD shows the true count)
const ARC_LIFE_MS = 1600;
const MAX_ARCS = 200;

// ----------------------------------------------------------------------------- the scene

const stageNode = $("stage");
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(2, window.devicePixelRatio));
renderer.setClearColor(0x0f1117);
stageNode.prepend(renderer.domElement);

const scene = new THREE.Scene();
scene.fog = new THREE.Fog(0x0f1117, 150, 420);
const camera = new THREE.PerspectiveCamera(55, 1, 0.1, 2000);
camera.position.set(0, 55, 85);
const controls = new OrbitControls(camera, renderer.domElement);
controls.enableDamping = true;
controls.target.set(0, 0, 0);
let userMovedCamera = false;
scene.add(new THREE.AmbientLight(0xffffff, 0.55));
const sun = new THREE.DirectionalLight(0xffffff, 1.6);
sun.position.set(40, 80, 30);
scene.add(sun);
const grid = new THREE.GridHelper(240, 24, 0x2a2f3d, 0x1c202b);
grid.position.y = -20;
scene.add(grid);

const realmGeometry = new THREE.SphereGeometry(1, 32, 16);
const npcGeometry = new THREE.SphereGeometry(0.75, 16, 8);
const playerGeometry = new THREE.BoxGeometry(1.2, 1.2, 1.2);
const avatarGeometry = new THREE.OctahedronGeometry(1.1); // a signed-up player's one avatar
const haloGeometry = new THREE.RingGeometry(1.25, 1.45, 48);

function resize() {
  const { clientWidth: w, clientHeight: h } = stageNode;
  renderer.setSize(w, h, false);
  camera.aspect = w / Math.max(1, h);
  camera.updateProjectionMatrix();
  if (!userMovedCamera) frameEverything();
}
new ResizeObserver(resize).observe(stageNode);

// ----------------------------------------------------------------------------- state

const realms = new Map(); // game_id -> {data, mesh, halo, label, pos, recent: []}
const entities = new Map(); // id -> {data, mesh, recent: []}
const travellers = new Map(); // entity id -> {from, to, start, duration}
const arcs = []; // {line, born}
let period = 100; // ms per tick, from /api/stats
let lastTick = null;
let totalEntities = 0;
let selected = null; // {type, id}

function realmColour(realm) {
  return { online: 0x3fb950, unhealthy: 0xd29922, offline: 0xf85149, registered: 0x8b949e }[realm.state] ?? 0x8b949e;
}

function addRealm(data) {
  const existing = realms.get(data.game_id);
  if (existing) {
    existing.data = data;
    existing.mesh.material.color.setHex(realmColour(data));
    existing.label.textContent = data.realm_id;
    return;
  }
  const mesh = new THREE.Mesh(realmGeometry, new THREE.MeshStandardMaterial({ color: realmColour(data), roughness: 0.5 }));
  mesh.userData = { type: "realm", id: data.game_id };
  const halo = new THREE.Mesh(haloGeometry, new THREE.MeshBasicMaterial({ color: 0x6cb6ff, side: THREE.DoubleSide, transparent: true, opacity: 0.35 }));
  halo.rotation.x = Math.PI / 2;
  mesh.add(halo);
  scene.add(mesh);
  const label = el("div", { className: "label" }, data.realm_id); // textContent: names are untrusted
  $("labels").append(label);
  realms.set(data.game_id, { data, mesh, halo, label, pos: null, recent: [] });
}

// Realm names over the scene: the nearest first, and a name that would overlap one already
// shown is hidden (on a phone, or with many realms, they would otherwise pile up unreadably).
function placeLabels() {
  const { clientWidth: w, clientHeight: h } = stageNode;
  const candidates = [];
  for (const realm of realms.values()) {
    projected.copy(realm.mesh.position);
    projected.y += realm.pos ? realm.pos.size : 0;
    projected.project(camera);
    const onScreen = projected.z < 1 && Math.abs(projected.x) <= 1.1 && Math.abs(projected.y) <= 1.1;
    if (!onScreen) {
      realm.label.style.display = "none";
      continue;
    }
    candidates.push({ realm, x: ((projected.x + 1) / 2) * w, y: ((1 - projected.y) / 2) * h, depth: projected.z });
  }
  candidates.sort((a, b) => a.depth - b.depth);
  const shown = [];
  for (const { realm, x, y } of candidates) {
    const size = labelSize(realm);
    // the label is centred above its point (CSS: translate(-50%, -150%))
    const box = { left: x - size.w / 2, right: x + size.w / 2, top: y - 1.5 * size.h, bottom: y - 0.5 * size.h };
    const clash = shown.some((o) => box.left < o.right && o.left < box.right && box.top < o.bottom && o.top < box.bottom);
    realm.label.style.display = clash ? "none" : "";
    if (clash) continue;
    shown.push(box);
    realm.label.style.left = `${x}px`;
    realm.label.style.top = `${y}px`;
  }
}

/** A label's size, measured once per text (reading layout every frame would be slow). */
function labelSize(realm) {
  const text = realm.label.textContent;
  if (realm.labelSize?.text !== text) {
    realm.label.style.display = "";
    realm.labelSize = { text, w: realm.label.offsetWidth || 8 * text.length, h: realm.label.offsetHeight || 16 };
  }
  return realm.labelSize;
}

function removeRealm(gameId) {
  const realm = realms.get(gameId);
  if (!realm) return;
  scene.remove(realm.mesh);
  realm.mesh.material.dispose();
  realm.label.remove();
  realms.delete(gameId);
}

function addEntity(data) {
  const existing = entities.get(data.id);
  if (existing) {
    existing.data = data;
    existing.mesh.material.color.setHex(HORIZON_COLOURS[data.stat7.horizon] ?? 0xffffff);
    return existing;
  }
  if (entities.size >= ENTITY_CAP) return null;
  const geometry = data.player_id ? avatarGeometry : data.kind === "player" ? playerGeometry : npcGeometry;
  const mesh = new THREE.Mesh(geometry, new THREE.MeshStandardMaterial({ color: HORIZON_COLOURS[data.stat7.horizon] ?? 0xffffff }));
  mesh.userData = { type: "entity", id: data.id };
  scene.add(mesh);
  const entry = { data, mesh, recent: [] };
  entities.set(data.id, entry);
  return entry;
}

function removeEntity(id) {
  const entry = entities.get(id);
  if (!entry) return;
  scene.remove(entry.mesh);
  entry.mesh.material.dispose();
  entities.delete(id);
  travellers.delete(id);
}

/** Recompute every position from the data (cheap at map scale; called when anything moves). */
function layout() {
  const places = placeRealms([...realms.values()].map((r) => r.data));
  for (const [gameId, realm] of realms) {
    const p = places[gameId];
    realm.pos = p;
    realm.mesh.position.set(p.x, p.y, p.z);
    realm.mesh.scale.setScalar(p.size);
  }
  const byRealm = new Map();
  for (const entry of entities.values()) {
    const where = entry.data.location;
    if (!where || !realms.has(where)) continue; // in transit: its traveller animation places it
    if (!byRealm.has(where)) byRealm.set(where, []);
    byRealm.get(where).push(entry);
  }
  for (const [gameId, members] of byRealm) {
    members.sort((a, b) => a.data.seq - b.data.seq);
    members.forEach((entry, i) => {
      const p = placeEntity(entry.data, realms.get(gameId).pos, i, members.length);
      entry.mesh.position.set(p.x, p.y, p.z);
      entry.mesh.visible = true;
    });
  }
  $("hud-realms").textContent = String(realms.size);
  $("hud-entities").textContent = String(Math.max(totalEntities, entities.size));
  if (!userMovedCamera) frameEverything();
}

// Until the user moves the camera, keep every realm in view (the map grows as realms join).
controls.addEventListener("start", () => (userMovedCamera = true));

function frameEverything() {
  const box = new THREE.Box3();
  for (const realm of realms.values()) box.expandByObject(realm.mesh);
  if (box.isEmpty()) return;
  const sphere = box.getBoundingSphere(new THREE.Sphere());
  // fit the narrower of the two fields of view (a phone held upright is narrow)
  const vertical = (camera.fov * Math.PI) / 180;
  const horizontal = 2 * Math.atan(Math.tan(vertical / 2) * camera.aspect);
  const distance = (sphere.radius + 8) / Math.sin(Math.min(vertical, horizontal) / 2) * 0.9;
  const direction = new THREE.Vector3(0, 0.8, 1).normalize();
  controls.target.copy(sphere.center);
  camera.position.copy(sphere.center).addScaledVector(direction, Math.max(25, distance));
  camera.updateProjectionMatrix();
}

let layoutPending = false;
function relayout() {
  if (!layoutPending) {
    layoutPending = true;
    requestAnimationFrame(() => {
      layoutPending = false;
      layout();
    });
  }
}

// ----------------------------------------------------------------------------- arcs and travel

function arcCurve(from, to) {
  const a = new THREE.Vector3(from.x, from.y, from.z);
  const b = new THREE.Vector3(to.x, to.y, to.z);
  const mid = a.clone().add(b).multiplyScalar(0.5);
  mid.y += 6 + a.distanceTo(b) * 0.35;
  return new THREE.QuadraticBezierCurve3(a, mid, b);
}

function drawArc(fromId, toId, colour = 0xf778ba) {
  const from = realms.get(fromId)?.pos;
  const to = realms.get(toId)?.pos;
  if (!from || !to || fromId === toId) return;
  const points = arcCurve(from, to).getPoints(40);
  const line = new THREE.Line(
    new THREE.BufferGeometry().setFromPoints(points),
    new THREE.LineBasicMaterial({ color: colour, transparent: true, opacity: 1 }),
  );
  scene.add(line);
  arcs.push({ line, born: performance.now() });
  while (arcs.length > MAX_ARCS) retireArc(arcs.shift());
}

function retireArc(arc) {
  scene.remove(arc.line);
  arc.line.geometry.dispose();
  arc.line.material.dispose();
}

function pulse(gameId) {
  const realm = realms.get(gameId);
  if (realm) realm.halo.material.opacity = 1;
}

function onEvent(msg) {
  const targets = msg.target_game_id
    ? [msg.target_game_id]
    : msg.selector
      ? []
      : [...realms.keys()].filter((g) => g !== msg.source_game_id).slice(0, 24);
  for (const target of targets) drawArc(msg.source_game_id, target);
  pulse(msg.source_game_id);
  const line = `#${msg.offset} ${msg.event_type_detail} ${msg.source_game_id} → ${msg.target_game_id ?? (msg.selector ? "selector" : "everyone")}`;
  for (const gameId of new Set([msg.source_game_id, ...targets])) remember(realms.get(gameId), line);
}

function startTravel(msg) {
  const entry = addEntity(msg.entity);
  if (!entry) return;
  const travel = msg.travel;
  const ticks = Math.max(1, travel.arrives_tick - msg.control_tick);
  travellers.set(msg.entity.id, {
    from: travel.from,
    to: travel.to,
    start: performance.now(),
    duration: Math.max(900, ticks * period),
  });
  drawArc(travel.from, travel.to, 0x6cb6ff);
}

function remember(holder, text) {
  if (!holder) return;
  holder.recent.unshift(text);
  holder.recent.length = Math.min(holder.recent.length, 12);
  if (selected && (holder === realms.get(selected.id) || holder === entities.get(selected.id))) showDetails();
}

// ----------------------------------------------------------------------------- live updates

const connection = live({
  topics: ["realms", "events", "entities", "ticks"],
  onState: (state) => showState($("ws-state"), state),
  onMessage(msg) {
    switch (msg.event_type) {
      case "welcome":
        return void load(); // (re)load everything: we may have missed entity news meanwhile
      case "control_tick_complete":
        lastTick = msg.control_tick_id;
        return;
      case "game_registered":
        addRealm(msg.realm);
        return relayout();
      case "game_unregistered":
        removeRealm(msg.game_id);
        return relayout();
      case "realm_state_changed": {
        const realm = realms.get(msg.game_id);
        if (realm) addRealm({ ...realm.data, state: msg.state });
        return;
      }
      case "cross_game_event":
        return onEvent(msg);
      case "entity_spawned":
        totalEntities += 1;
        addEntity(msg.entity);
        return relayout();
      case "entity_updated":
        addEntity(msg.entity);
        return relayout();
      case "entity_removed":
        totalEntities = Math.max(0, totalEntities - 1);
        removeEntity(msg.entity.id);
        return relayout();
      case "entity_departed":
        startTravel(msg);
        remember(entities.get(msg.entity.id), `departed ${msg.travel.from} → ${msg.travel.to}`);
        return;
      case "entity_arrived":
      case "entity_returned":
        travellers.delete(msg.entity.id);
        addEntity(msg.entity);
        remember(entities.get(msg.entity.id), `${msg.event_type.slice(7)} in ${msg.entity.location}`);
        return relayout();
      case "npc_action": {
        const entry = entities.get(msg.entity_id);
        if (!entry) return;
        const s = entry.data.stat7;
        const moved = s.horizon !== msg.horizon || s.lineage !== msg.lineage;
        Object.assign(s, { horizon: msg.horizon, lineage: msg.lineage, resonance: msg.resonance, velocity: msg.velocity, density: msg.density });
        entry.data.stat7_address = msg.stat7_address;
        entry.data.state = { ...entry.data.state, mood: msg.mood, last_action: msg.action };
        if (moved) entry.mesh.material.color.setHex(HORIZON_COLOURS[msg.horizon] ?? 0xffffff);
        remember(entry, `${msg.action}${msg.says ? ": " + msg.says : ""}`);
        return relayout();
      }
      default:
        return undefined;
    }
  },
});

async function load() {
  const [realmBody, stats] = await Promise.all([api("/api/realms"), api("/api/stats")]);
  period = stats.tick.period_ms || period;
  const seenRealms = new Set(realmBody.realms.map((r) => r.game_id));
  for (const gameId of [...realms.keys()]) if (!seenRealms.has(gameId)) removeRealm(gameId);
  realmBody.realms.forEach(addRealm);
  const seenEntities = new Set();
  let after = "";
  do {
    const page = await api(`/api/entities?limit=1000&after=${after}`);
    totalEntities = page.total;
    for (const data of page.entities) {
      seenEntities.add(data.id);
      addEntity(data);
    }
    after = page.next_after ?? "";
  } while (after !== "" && entities.size < ENTITY_CAP);
  for (const id of [...entities.keys()]) if (!seenEntities.has(id)) removeEntity(id);
  layout();
}

// ----------------------------------------------------------------------------- picking

const raycaster = new THREE.Raycaster();
const pointer = new THREE.Vector2();
let downAt = null;
renderer.domElement.addEventListener("pointerdown", (e) => (downAt = [e.clientX, e.clientY]));
renderer.domElement.addEventListener("pointerup", (e) => {
  if (!downAt || Math.hypot(e.clientX - downAt[0], e.clientY - downAt[1]) > 5) return; // a drag
  const rect = renderer.domElement.getBoundingClientRect();
  pointer.set(((e.clientX - rect.left) / rect.width) * 2 - 1, -((e.clientY - rect.top) / rect.height) * 2 + 1);
  raycaster.setFromCamera(pointer, camera);
  const pickable = [...[...realms.values()].map((r) => r.mesh), ...[...entities.values()].map((x) => x.mesh)];
  const hit = raycaster.intersectObjects(pickable, false)[0];
  if (hit) select(hit.object.userData.type, hit.object.userData.id);
});

function select(type, id) {
  selected = { type, id };
  showDetails();
  if (type === "entity") {
    api(`/api/entities/${encodeURIComponent(id)}`)
      .then((full) => {
        const entry = entities.get(id);
        if (entry) {
          entry.data = full;
          for (const h of full.history.slice(-8)) if (!entry.recent.length) entry.recent.push(`tick ${h.tick}: ${h.what}`);
          showDetails();
        }
      })
      .catch(() => {});
  }
}

function field(name, value) {
  return [el("dt", {}, name), el("dd", {}, value)];
}

function showDetails() {
  if (!selected) return;
  const panel = $("details");
  let title = "";
  let fields = [];
  let recent = [];
  if (selected.type === "realm" && realms.has(selected.id)) {
    const { data, recent: r } = realms.get(selected.id);
    const s = data.stat7;
    title = data.realm_id;
    recent = r;
    fields = [
      field("game_id", data.game_id),
      field("state", data.state),
      field("cluster", data.realm_coordinate.adjacency),
      field("theme", data.realm_coordinate.resonance),
      field("STAT7", `${s.realm} · lineage ${s.lineage} · ${s.horizon}`),
      field("resonance", fmt(s.resonance, 3)),
      field("velocity", fmt(s.velocity, 3)),
      field("density", fmt(s.density, 3)),
      field("address", data.stat7_address),
      field("events", `${data.stats.events_sent} sent, ${data.stats.events_received} received`),
    ];
  } else if (selected.type === "entity" && entities.has(selected.id)) {
    const { data, recent: r } = entities.get(selected.id);
    const s = data.stat7;
    title = data.name;
    recent = r;
    fields = [
      field("id", data.id),
      field("kind", data.player_id ? "player (avatar)" : data.kind),
      ...(data.player_id ? [field("player", data.player_id)] : []),
      field("realm", data.location ?? `travelling from ${data.realm}`),
      field("mood", data.state.mood ?? "–"),
      field("STAT7", `${s.realm} · lineage ${s.lineage} · ${s.horizon}`),
      field("resonance", fmt(s.resonance, 3)),
      field("velocity", fmt(s.velocity, 3)),
      field("density", fmt(s.density, 3)),
      field("address", data.stat7_address),
    ];
  } else {
    panel.hidden = true;
    return;
  }
  $("details-title").textContent = title;
  $("details-fields").replaceChildren(...fields.flat());
  $("details-recent").replaceChildren(...(recent.length ? recent : ["nothing yet"]).map((t) => el("li", {}, t)));
  panel.hidden = false;
}

$("details-close").addEventListener("click", () => {
  selected = null;
  $("details").hidden = true;
});

// ----------------------------------------------------------------------------- the frame loop

let frames = 0;
let fpsSince = performance.now();
const projected = new THREE.Vector3();

function frame(now) {
  requestAnimationFrame(frame);
  controls.update();
  for (let i = arcs.length - 1; i >= 0; i -= 1) {
    const age = now - arcs[i].born;
    if (age > ARC_LIFE_MS) retireArc(arcs.splice(i, 1)[0]);
    else arcs[i].line.material.opacity = 1 - age / ARC_LIFE_MS;
  }
  for (const realm of realms.values()) {
    const m = realm.halo.material;
    if (m.opacity > 0.35) m.opacity = Math.max(0.35, m.opacity - 0.02);
  }
  for (const [id, trip] of travellers) {
    const entry = entities.get(id);
    const from = realms.get(trip.from)?.pos;
    const to = realms.get(trip.to)?.pos;
    if (!entry || !from || !to) continue;
    const t = Math.min(1, (now - trip.start) / trip.duration);
    entry.mesh.position.copy(arcCurve(from, to).getPoint(t));
  }
  renderer.render(scene, camera);
  placeLabels();
  frames += 1;
  if (now - fpsSince >= 1000) {
    $("hud-fps").textContent = String(Math.round((frames * 1000) / (now - fpsSince)));
    $("hud-rate").textContent = fmt(connection.rate(), 1);
    const latency = connection.stats.latencyMs;
    $("hud-latency").textContent = latency === null ? "–" : `${latency.toFixed(1)} ms`;
    $("hud-tick").textContent = lastTick === null ? "–" : String(lastTick);
    frames = 0;
    fpsSince = now;
  }
}
resize();
requestAnimationFrame(frame);

// For tests and the curious: what is drawn, and a fingerprint of the pixels on the canvas.
window.seedmmoMap = {
  realmCount: () => realms.size,
  entityCount: () => entities.size,
  avatars: () => [...entities.values()].filter((e) => e.data.player_id).map((e) => e.data.player_id),
  arcCount: () => arcs.length,
  /** Where a realm or entity is drawn, in page pixels (to click it as a person would). */
  screenPosition(type, id) {
    const mesh = type === "realm" ? realms.get(id)?.mesh : entities.get(id)?.mesh;
    if (!mesh) return null;
    const p = mesh.position.clone().project(camera);
    const rect = renderer.domElement.getBoundingClientRect();
    return { x: rect.left + ((p.x + 1) / 2) * rect.width, y: rect.top + ((1 - p.y) / 2) * rect.height };
  },
  travelling: () => [...travellers.keys()],
  select,
  pixels() {
    const source = renderer.domElement;
    const copy = document.createElement("canvas");
    copy.width = source.width;
    copy.height = source.height;
    const ctx = copy.getContext("2d");
    ctx.drawImage(source, 0, 0);
    const { data } = ctx.getImageData(0, 0, copy.width, copy.height);
    let lit = 0;
    let hash = 0;
    for (let i = 0; i < data.length; i += 4) {
      const v = data[i] + data[i + 1] + data[i + 2];
      if (Math.abs(data[i] - 15) + Math.abs(data[i + 1] - 17) + Math.abs(data[i + 2] - 23) > 30) lit += 1;
      hash = (hash * 31 + v) | 0;
    }
    return { lit, hash, width: copy.width, height: copy.height };
  },
};
