// Shared by the interim pages: live realm and NPC lists from the public API, nothing more.
// Untrusted text is inserted with textContent only.
"use strict";
(function () {
  const state = document.getElementById("ws-state");
  const realms = document.getElementById("realms");
  const npcs = document.getElementById("npcs");
  const feed = document.getElementById("feed");

  function row(cells) {
    const tr = document.createElement("tr");
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = String(text);
      tr.appendChild(td);
    }
    return tr;
  }

  async function refresh() {
    const [r, n] = await Promise.all([
      fetch("/api/realms").then((res) => res.json()),
      fetch("/api/npcs").then((res) => res.json()),
    ]);
    realms.replaceChildren(...r.realms.map((x) =>
      row([x.game_id, x.realm_id, x.state, x.stats.events_sent, x.stats.events_received])));
    npcs.replaceChildren(...n.npcs.map((x) => row([x.id, x.name, x.realm, x.stat7.horizon])));
  }

  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    const ws = new WebSocket(url);
    ws.onopen = () => {
      state.textContent = "connected";
      ws.send(JSON.stringify({ action: "subscribe", topics: ["realms", "events", "entities"] }));
    };
    ws.onclose = () => {
      state.textContent = "disconnected, retrying";
      setTimeout(connect, 1000);
    };
    ws.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.event_type === "cross_game_event") {
        const li = document.createElement("li");
        li.textContent = `#${data.offset} tick ${data.control_tick_id}: ` +
          `${data.source_game_id} -> ${data.target_game_id ?? "all"} ${data.event_type_detail}`;
        feed.prepend(li);
        while (feed.children.length > 50) feed.lastChild.remove();
      }
      if (data.event_type !== "ok" && data.event_type !== "welcome") refresh();
    };
  }

  refresh();
  connect();
})();
