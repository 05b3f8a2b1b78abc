"""The forward extremity rows of plans committed together: only the net change is written
(durable/room/persist.py ``extremity_statements``)."""

from __future__ import annotations

import pytest

from d1.database import D1Database
from durable.room.persist import PersistPlan, extremity_statements, replace_extremities

ROOM = "!r:example.org"


def plan_with(*changes: tuple[list[str], list[str]]) -> PersistPlan:
    plan = PersistPlan(ROOM)
    for removed, added in changes:
        replace_extremities(plan, removed, added)
    return plan


def written(plans: list[PersistPlan]) -> list[tuple[str, str]]:
    db = D1Database(":memory:")
    try:
        out = []
        for stmt in extremity_statements(db, ROOM, plans):
            verb = "delete" if stmt.sql.startswith("DELETE") else "insert"
            assert stmt.params[0] == ROOM
            out.append((verb, stmt.params[1]))
        return out
    finally:
        db.close()


@pytest.mark.parametrize(
    ("plans", "expected"),
    [
        # One event on the old tip.
        ([plan_with((["$tip"], ["$a"]))], [("delete", "$tip"), ("insert", "$a")]),
        # A chain of three in one batch: the two in the middle are never written.
        (
            [plan_with((["$tip"], ["$a"])), plan_with((["$a"], ["$b"])), plan_with((["$b"], ["$c"]))],
            [("delete", "$tip"), ("insert", "$c")],
        ),
        # A merge of two old extremities, then a message on it.
        (
            [plan_with((["$x", "$y"], ["$m"])), plan_with((["$m"], ["$n"]))],
            [("delete", "$x"), ("delete", "$y"), ("insert", "$n")],
        ),
        # Two events on the same tip (a fork inside the batch): both stay extremities.
        (
            [plan_with((["$tip"], ["$a"])), plan_with(([], ["$b"]))],
            [("delete", "$tip"), ("insert", "$a"), ("insert", "$b")],
        ),
        # Removed and then added again: deleted first, so the row ends up present.
        (
            [plan_with((["$old"], [])), plan_with(([], ["$old"]))],
            [("delete", "$old"), ("insert", "$old")],
        ),
        # Nothing changed.
        ([PersistPlan(ROOM)], []),
    ],
)
def test_net_extremity_rows(plans: list[PersistPlan], expected: list[tuple[str, str]]) -> None:
    assert written(plans) == expected
