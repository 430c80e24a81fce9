"""The entity column index against a from-scratch filter over a plain model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.core.entity_query import EntityColumns, EntityQuery
from seedmmo.core.stat7 import HORIZONS
from seedmmo.errors import InvalidField

REALMS = ("r0", "r1", "r2")
units = st.sampled_from([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0])


@dataclass
class Row:
    seq: int
    kind: str
    location: str | None
    horizon: str
    lineage: int
    resonance: float
    velocity: float
    density: float


def matches(row: Row, query: EntityQuery) -> bool:
    if query.kind is not None and row.kind != query.kind:
        return False
    if query.realm is not None and row.location != query.realm:
        return False
    if query.horizon is not None and row.horizon != query.horizon:
        return False
    return all(low <= getattr(row, name) <= high for name, low, high in query.ranges)


def text_filter(query: EntityQuery) -> Any:
    """What the entity index passes for `q` (here ids stand in for names)."""
    if query.q is None:
        return None
    text = query.q
    return lambda entity_id: text in entity_id


queries = st.builds(
    EntityQuery,
    kind=st.none() | st.sampled_from(["npc", "player"]),
    realm=st.none() | st.sampled_from([*REALMS, "nowhere"]),
    horizon=st.none() | st.sampled_from(HORIZONS),
    ranges=st.lists(
        st.tuples(st.sampled_from(["resonance", "velocity", "lineage"]), units, units).map(
            lambda t: (t[0], min(t[1], t[2]), max(t[1], t[2]))
        ),
        max_size=2,
    ).map(tuple),
    limit=st.integers(1, 7),
    q=st.none() | st.sampled_from(["1", "2", "e1"]),
)

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(["npc", "player"]),
            st.none() | st.sampled_from(REALMS),
            st.sampled_from(HORIZONS),
            st.integers(0, 2),
            units,
            units,
        ),
        st.tuples(st.just("remove"), st.integers(0, 200)),
        st.tuples(st.just("move"), st.integers(0, 200), st.none() | st.sampled_from(REALMS)),
        st.tuples(st.just("change"), st.integers(0, 200), st.sampled_from(HORIZONS), units),
    ),
    max_size=80,
)


@settings(max_examples=150)
@given(operations, queries)
def test_paging_through_a_query_yields_exactly_the_matches_in_creation_order(
    ops: list[tuple[Any, ...]], query: EntityQuery
) -> None:
    columns = EntityColumns(capacity=4)  # small, so growth and compaction both happen
    model: dict[str, Row] = {}
    seq = 0
    for op in ops:
        if op[0] == "add":
            seq += 1
            _, kind, where, horizon, lineage, resonance, velocity = op
            entity_id = f"e{seq}"
            row = Row(seq, kind, where, horizon, lineage, resonance, velocity, 0.5)
            model[entity_id] = row
            columns.add(entity_id, seq, kind, where)
            columns.set_coordinates(entity_id, horizon, lineage, resonance, velocity, 0.5)
        elif model:
            entity_id = list(model)[op[1] % len(model)]
            row = model[entity_id]
            if op[0] == "remove":
                del model[entity_id]
                columns.remove(entity_id)
            elif op[0] == "move":
                row.location = op[2]
                columns.set_location(entity_id, op[2])
            else:
                row.horizon, row.resonance = op[2], op[3]
                columns.set_coordinates(
                    entity_id, row.horizon, row.lineage, row.resonance, row.velocity, 0.5
                )
    expected = [eid for eid, row in sorted(model.items(), key=lambda i: i[1].seq)]
    expected = [
        eid
        for eid in expected
        if matches(model[eid], query) and (query.q is None or query.q in eid)
    ]
    seen: list[str] = []
    cursor = 0
    for _ in range(len(expected) + 2):
        page = columns.query(
            EntityQuery(
                query.kind, query.realm, query.horizon, query.ranges, query.limit, cursor, query.q
            ),
            text_filter(query),
        )
        assert page.total == len(expected)
        assert len(page.ids) <= query.limit
        seen += page.ids
        if page.next_after is None:
            break
        cursor = page.next_after
    assert seen == expected


def test_parameters_are_validated_and_named() -> None:
    good = EntityQuery.from_params({"kind": "npc", "resonance_min": "0.5", "limit": "10"})
    assert good.kind == "npc" and good.ranges == (("resonance", 0.5, 1.0),) and good.limit == 10
    lineage = EntityQuery.from_params({"lineage_max": "3"})
    assert lineage.ranges == (("lineage", 0.0, 3.0),)
    for params, field in [
        ({"kind": "dragon"}, "kind"),
        ({"horizon": "noon"}, "horizon"),
        ({"resonance_min": "high"}, "resonance_min"),
        ({"resonance_min": "nan"}, "resonance_min"),
        ({"density_max": "2"}, "density_max"),
        ({"velocity_min": "0.5", "velocity_max": "0.1"}, "velocity_min"),
        ({"lineage_min": "1.5"}, "lineage_min"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"after": "-1"}, "after"),
        ({"colour": "red"}, "colour"),
        ({"realm": "../etc"}, "realm"),
        ({"q": "x" * 101}, "q"),
    ]:
        with pytest.raises(InvalidField) as caught:
            EntityQuery.from_params(params)
        assert caught.value.field == field, params
