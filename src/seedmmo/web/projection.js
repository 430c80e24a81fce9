// STAT7 (7-D) -> 3-D positions for the map. Deterministic: the same realms and entities always
// land in the same places, with no randomness (the rule is spelled out in the page's legend).
import { HORIZONS } from "/common.js";

const stage = (horizon) => Math.max(0, HORIZONS.indexOf(horizon));

/** Realm positions: {game_id: {x, y, z, size}} for a list of realms (wire form). */
export function placeRealms(realms) {
  const clusters = [...new Set(realms.map(clusterOf))].sort();
  const byCluster = new Map(clusters.map((c) => [c, []]));
  for (const realm of realms) byCluster.get(clusterOf(realm)).push(realm);
  const out = {};
  const spread = clusters.length > 1 ? 40 + 6 * clusters.length : 0;
  clusters.forEach((cluster, c) => {
    const angle = (2 * Math.PI * c) / clusters.length;
    const cx = spread * Math.cos(angle);
    const cz = spread * Math.sin(angle);
    const members = byCluster.get(cluster).sort((a, b) => (a.game_id < b.game_id ? -1 : 1));
    const ring = members.length > 1 ? 10 + 2 * members.length : 0;
    members.forEach((realm, i) => {
      const turn = (2 * Math.PI * i) / members.length;
      const s = realm.stat7;
      out[realm.game_id] = {
        x: cx + ring * Math.cos(turn) + 6 * s.resonance,
        y: 8 * (stage(s.horizon) - 2) + 4 * s.density,
        z: cz + ring * Math.sin(turn) + 6 * s.velocity,
        size: 1.6 + 1.6 * s.density,
        cluster,
      };
    });
  });
  return out;
}

/** An entity's place around its realm: the `index`-th of `count` there, by creation order. */
export function placeEntity(entity, realmPos, index, count) {
  const s = entity.stat7;
  const turn = (2 * Math.PI * index) / Math.max(1, count);
  const radius = realmPos.size + 2 + 1.5 * (s.resonance + 1);
  return {
    x: realmPos.x + radius * Math.cos(turn),
    y: realmPos.y + 0.9 * (stage(s.horizon) - 2),
    z: realmPos.z + radius * Math.sin(turn),
  };
}

export const HORIZON_COLOURS = {
  genesis: 0x7ee787,
  emergence: 0x6cb6ff,
  peak: 0xf2cc60,
  decay: 0xf0883e,
  crystallization: 0xd2a8ff,
};

export function clusterOf(realm) {
  return realm.realm_coordinate ? realm.realm_coordinate.adjacency : "cluster_main";
}
