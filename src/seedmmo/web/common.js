// Shared by the pages: the live connection, the REST helper, safe DOM building.
//
// Untrusted text (realm names, entity names, event data) only ever reaches the page through
// textContent or attribute values set by el(); nothing here assigns innerHTML.

const TOKEN_KEY = "seedmmo.adminToken";
const GAME_KEYS = "seedmmo.gameKeys";

/** Build an element: el("td", {className: "x", title: "..."}, "text", childNode, ...). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The admin token, kept for this tab only (sessionStorage), never in the URL. */
export const adminToken = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** Game keys this tab was given when it registered games (shown once by the server). */
export const gameKeys = {
  all: () => JSON.parse(sessionStorage.getItem(GAME_KEYS) || "{}"),
  set(gameId, key) {
    const keys = gameKeys.all();
    keys[gameId] = key;
    sessionStorage.setItem(GAME_KEYS, JSON.stringify(keys));
  },
  remove(gameId) {
    const keys = gameKeys.all();
    delete keys[gameId];
    sessionStorage.setItem(GAME_KEYS, JSON.stringify(keys));
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.error ? body.error : { code: "http_" + status, message: "" };
    super(`${detail.code}: ${detail.message}`);
    this.status = status;
    this.code = detail.code;
    this.field = detail.field;
  }
}

/** JSON over REST on this page's own origin. `token` goes in the Authorization header. */
export async function api(path, { method = "GET", body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/**
 * The live connection: /ws on this page's origin, subscribed to `topics`, reconnecting with
 * backoff and resuming from the last offset seen (so no event is missed or shown twice across a
 * reconnect). `onMessage(msg)` gets every server message; `onState(state)` gets "connecting",
 * "live", "reconnecting in Ns" or "resynced". Returns {send, close, stats}.
 */
export function live({ topics, onMessage, onState = () => {} }) {
  let socket = null;
  let attempt = 0;
  let epoch = null;
  let offset = null;
  let closed = false;
  let timer = null;
  const stats = { received: 0, rateWindow: [], latencyMs: null, pings: new Map() };

  function open() {
    onState(attempt ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws");
    socket.onmessage = (frame) => {
      const msg = JSON.parse(frame.data);
      stats.received += 1;
      stats.rateWindow.push(performance.now());
      if (msg.event_type === "welcome") {
        const resume = offset !== null && epoch === msg.epoch;
        const request = { action: "subscribe", topics };
        if (resume) Object.assign(request, { since: offset, epoch });
        epoch = msg.epoch;
        if (!resume) offset = msg.offset;
        socket.send(JSON.stringify(request));
        ping(); // a first latency reading now, not in 2 s
        attempt = 0;
        onState("live");
      } else if (msg.event_type === "pong" && stats.pings.has(msg.ref)) {
        stats.latencyMs = performance.now() - stats.pings.get(msg.ref);
        stats.pings.delete(msg.ref);
      } else if (msg.event_type === "resync_required") {
        offset = msg.offset;
        epoch = msg.epoch;
        onState("resynced");
      }
      if (typeof msg.offset === "number" && msg.event_type === "cross_game_event") {
        offset = Math.max(offset ?? 0, msg.offset);
      }
      onMessage(msg);
    };
    socket.onclose = () => {
      if (closed) return;
      attempt += 1;
      const delay = Math.min(10, 0.5 * 2 ** (attempt - 1));
      onState(`reconnecting in ${delay.toFixed(1)} s`);
      timer = setTimeout(open, delay * 1000);
    };
  }

  let pingId = 0;
  function ping() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      pingId += 1;
      const ref = `ping-${pingId}`;
      stats.pings.set(ref, performance.now());
      socket.send(JSON.stringify({ action: "ping", ref }));
      if (stats.pings.size > 10) stats.pings.delete(stats.pings.keys().next().value);
    }
  }
  const pinger = setInterval(ping, 2000);

  open();
  return {
    stats,
    /** Messages per second over the last 5 s. */
    rate() {
      const now = performance.now();
      while (stats.rateWindow.length && now - stats.rateWindow[0] > 5000) stats.rateWindow.shift();
      return stats.rateWindow.length / 5;
    },
    /** Drop the connection as a network failure would (it reconnects and resumes). */
    drop() {
      if (socket) socket.close();
    },
    send(obj) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj));
    },
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(pinger);
      if (socket) socket.close();
    },
  };
}

/** Show the connection state in `node` (a badge whose class follows the state). */
export function showState(node, state) {
  node.textContent = state;
  node.className = "badge " + (state === "live" ? "ok" : state.startsWith("reconnecting") ? "warn" : "");
}

export function fmt(value, digits = 2) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

export const HORIZONS = ["genesis", "emergence", "peak", "decay", "crystallization"];
