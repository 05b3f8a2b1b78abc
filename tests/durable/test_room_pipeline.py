"""Pipelined commits in the room actor: sends to one room that arrive together share D1
batches, still form one chain (each event's prev_event is the one before it), and each is
answered only once its batch has committed. A failed batch fails the sends queued behind it
(built on it) and resets the actor; a repeated transaction ID gets the first event, even while
the first is still being committed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from d1.database import D1Error
from tests.workers.rooms.conftest import SERVER, Harness, hs  # noqa: F401  (fixture)

ALICE = f"@alice:{SERVER}"


def stub_of(hs: Harness, room_id: str) -> Any:
    return hs.env.ROOMS.get(hs.env.ROOMS.id_from_name(room_id))


def count_batches(hs: Harness) -> list[int]:
    """Record the number of statements of each D1 batch from now on."""
    db = hs.env.DB
    real = db.batch
    sizes: list[int] = []

    async def counting(statements: Any) -> Any:
        statements = list(statements)
        sizes.append(len(statements))
        return await real(statements)

    db.batch = counting
    return sizes


def stored(hs: Harness, event_id: str) -> dict[str, Any] | None:
    row = hs.call(hs.env.DB.prepare("SELECT json FROM events WHERE event_id = ?").bind(event_id).first)
    return None if row is None else json.loads(row["json"])


def test_concurrent_sends_share_batches_and_form_one_chain(hs: Harness) -> None:
    hs.user("alice")
    room_id = hs.create_room({"Authorization": "Bearer tok_alice"})
    stub = stub_of(hs, room_id)
    before = hs.summary(room_id)["extremities"]
    sizes = count_batches(hs)
    answered_while_stored: list[bool] = []

    async def send(i: int) -> str:
        result = await stub.send_event(ALICE, "m.room.message", {"msgtype": "m.text", "body": f"m{i}"})
        # Answered only after its commit: the row is readable at once.
        row = await hs.env.DB.prepare("SELECT 1 FROM events WHERE event_id = ?").bind(result["event_id"]).first()
        answered_while_stored.append(row is not None)
        return str(result["event_id"])

    async def burst() -> list[str]:
        return list(await asyncio.gather(*(send(i) for i in range(40))))

    event_ids = hs.call(burst)
    assert all(answered_while_stored) and len(answered_while_stored) == 40
    assert len(sizes) < 40  # events queued together shared a batch
    # One chain: every event points at exactly one predecessor, starting from the old tip.
    prevs = {}
    for event_id in event_ids:
        pdu = stored(hs, event_id)
        assert pdu is not None
        [prev] = pdu["prev_events"]
        prevs[prev] = event_id
    tip, seen = before[0], 0
    while tip in prevs:
        tip, seen = prevs[tip], seen + 1
    assert seen == 40
    assert hs.summary(room_id)["extremities"] == [tip]
    # The rows in D1 agree (the batches wrote only the net change of their events).
    rows = hs.call(hs.env.DB.prepare("SELECT event_id FROM forward_extremities WHERE room_id = ?").bind(room_id).all)
    assert [r["event_id"] for r in rows.results] == [tip]


def test_a_failed_batch_fails_the_sends_queued_behind_it(hs: Harness) -> None:
    hs.user("alice")
    room_id = hs.create_room({"Authorization": "Bearer tok_alice"})
    stub = stub_of(hs, room_id)
    before = hs.summary(room_id)
    db = hs.env.DB
    real = db.batch
    calls = 0

    async def first_fails(statements: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.05)  # let more sends queue up behind this batch
            raise D1Error("batch rolled back: disk on fire")
        return await real(statements)

    db.batch = first_fails

    async def burst() -> list[Any]:
        sends = [stub.send_event(ALICE, "m.room.message", {"body": f"m{i}"}) for i in range(10)]
        return list(await asyncio.gather(*sends, return_exceptions=True))

    outcomes = hs.call(burst)
    db.batch = real
    assert all(isinstance(o, D1Error) for o in outcomes), outcomes
    assert hs.summary(room_id) == before  # a fresh instance, loaded from D1
    sent = hs.call(stub.send_event, ALICE, "m.room.message", {"body": "after"})
    assert stored(hs, sent["event_id"])["prev_events"] == before["extremities"]


@pytest.mark.parametrize("repeats", [2, 5])
def test_a_repeated_txn_in_flight_gets_the_first_event(hs: Harness, repeats: int) -> None:
    hs.user("alice")
    room_id = hs.create_room({"Authorization": "Bearer tok_alice"})
    stub = stub_of(hs, room_id)
    txn = {"device_id": "DEV_alice", "txn_id": "t1"}
    depth = hs.summary(room_id)["depth"]

    async def burst() -> list[Any]:
        sends = [stub.send_event(ALICE, "m.room.message", {"body": "once"}, None, txn) for _ in range(repeats)]
        return list(await asyncio.gather(*sends))

    results = hs.call(burst)
    assert len({r["event_id"] for r in results}) == 1
    assert hs.summary(room_id)["depth"] == depth + 1


def test_a_repeated_txn_that_reaches_d1_answers_with_the_first_event(hs: Harness) -> None:
    """The txn row's primary key is the last safety net: a repeat that neither the worker's
    look-up nor the actor's memory caught fails its batch, and its caller still gets the
    first event's ID (the actor resets and serves the next send from D1)."""
    hs.user("alice")
    room_id = hs.create_room({"Authorization": "Bearer tok_alice"})
    stub = stub_of(hs, room_id)
    first = hs.call(stub.send_event, ALICE, "m.room.message", {"body": "first"})
    # The txn is in D1 but unknown to the actor (as after a restart).
    hs.call(hs.env.DB.batch, [hs.env.DB.prepare(
        "INSERT INTO event_txn_ids (user_id, device_id, txn_id, room_id, event_id, created_ts)"
        " VALUES (?,?,?,?,?,?)").bind(ALICE, "DEV_alice", "t9", room_id, first["event_id"], 0)])
    before = hs.summary(room_id)
    again = hs.call(stub.send_event, ALICE, "m.room.message", {"body": "retry"}, None,
                    {"device_id": "DEV_alice", "txn_id": "t9"})
    assert again == {"event_id": first["event_id"]}
    assert hs.summary(room_id) == before  # nothing of the retry was kept
    after = hs.call(stub.send_event, ALICE, "m.room.message", {"body": "next"})
    assert stored(hs, after["event_id"])["prev_events"] == before["extremities"]
