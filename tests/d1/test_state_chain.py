"""State groups: a delta chain is read in one query and applied from its root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from d1 import D1Database, apply_migrations
from d1.state import group_chain, state_for_group


@pytest.fixture
async def db(tmp_path: Path):
    database = D1Database(tmp_path / "state.sqlite")
    await apply_migrations(database)
    yield database
    database.close()


async def _group(db: D1Database, group_id: str, prev: str | None, delta: list[list[str]]) -> None:
    await db.prepare(
        "INSERT INTO state_groups (id, room_id, prev_group, chain_len, delta) VALUES (?,?,?,?,?)"
    ).bind(group_id, "!r:hs", prev, 0, json.dumps(delta)).run()


async def test_chain_is_read_nearest_first_and_applied_from_the_root(db: D1Database) -> None:
    await _group(db, "g0", None, [["m.room.create", "", "$c"], ["m.room.topic", "", "$t1"]])
    await _group(db, "g1", "g0", [["m.room.topic", "", "$t2"]])
    await _group(db, "g2", "g1", [["m.room.member", "@a:hs", "$m"]])
    calls = 0
    real = db._run_one

    async def counting(stmt, want_rows):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await real(stmt, want_rows)

    db._run_one = counting  # type: ignore[method-assign]
    assert [r["id"] for r in await group_chain(db, "g2")] == ["g2", "g1", "g0"]
    assert calls == 1
    assert await state_for_group(db, "g2") == {
        ("m.room.create", ""): "$c", ("m.room.topic", ""): "$t2", ("m.room.member", "@a:hs"): "$m",
    }


async def test_a_missing_group_or_link_is_a_lookup_error(db: D1Database) -> None:
    await _group(db, "orphan", "gone", [["m.room.topic", "", "$t"]])
    with pytest.raises(LookupError, match="gone"):
        await state_for_group(db, "orphan")
    with pytest.raises(LookupError, match="nowhere"):
        await group_chain(db, "nowhere")
