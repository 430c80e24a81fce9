// STAT7 (7-D) -> 3-D positions for the map. Deterministic: the same realms and entities always
// land in the same places, with no randomness (the rule is spelled out in the page's legend).
import { HORIZONS } from "/common.js";

const stage = (horizon) => Math.max(0, HORIZONS.indexOf(horizon));

/** A number in [0, 1) from a name (FNV-1a): the same name, the same number, on every page. */
export function unitHash(text, salt = "") {
  let h = 0x811c9dc5;
  for (const ch of salt + text) {
    h ^= ch.codePointAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32;
}

/** Realm positions: {game_id: {x, y, z, size}} for a list of realms (wire form). Each place
 * depends only on the realm itself (its ids and coordinate), never on which other realms
 * exist: registering one does not move the others. */
export function placeRealms(realms) {
  const out = {};
  for (const realm of realms) {
    const cluster = clusterOf(realm);
    const angle = 2 * Math.PI * unitHash(cluster, "cluster:");
    const cx = CLUSTER_SPREAD * Math.cos(angle);
    const cz = CLUSTER_SPREAD * Math.sin(angle);
    const turn = 2 * Math.PI * unitHash(realm.game_id, "turn:");
    const ring = 8 + 16 * unitHash(realm.game_id, "ring:"); // an annulus, not one crowded ring
    const s = realm.stat7;
    out[realm.game_id] = {
      x: cx + ring * Math.cos(turn) + 6 * s.resonance,
      y: 8 * (stage(s.horizon) - 2) + 4 * s.density,
      z: cz + ring * Math.sin(turn) + 6 * s.velocity,
      size: 1.6 + 1.6 * s.density,
      cluster,
    };
  }
  return out;
}

const CLUSTER_SPREAD = 70; // distance of a cluster's centre from the origin

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
