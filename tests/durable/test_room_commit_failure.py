"""A room actor whose D1 commit fails is reset: the next call meets an instance loaded from
D1, which holds exactly what was acknowledged; sends queued behind the failed one fail too
(they were built on it), and later sends build on the state as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from d1.database import D1Error
from tests.workers.rooms.conftest import SERVER, Harness, hs  # noqa: F401  (fixture)
from workers.errors import MatrixError


def fail_next_batch(hs: Harness) -> None:
    db = hs.env.DB
    real = db.batch

    async def failing(statements: Any) -> Any:
        db.batch = real  # only this one
        raise D1Error("batch rolled back: disk on fire")

    db.batch = failing


def actor(hs: Harness, room_id: str) -> Any:
    stub = hs.env.ROOMS.get(hs.env.ROOMS.id_from_name(room_id))
    return stub, live_instance(hs, room_id)


def live_instance(hs: Harness, room_id: str) -> Any:
    slot = hs.env.ROOMS._slots.get(hs.env.ROOMS.id_from_name(room_id).hex)
    return None if slot is None else slot.instance


@pytest.mark.parametrize("kind", ["message", "state", "redaction of a state event"])
def test_failed_commit_resets_the_actor_to_what_d1_holds(hs: Harness, kind: str) -> None:
    alice = hs.user("alice")
    room_id = hs.create_room(alice, topic="before")
    stub, room = actor(hs, room_id)
    topic_id = hs.summary(room_id)["state"]
    topic_id = next(e for t, k, e in topic_id if t == "m.room.topic")
    before = hs.summary(room_id)
    cached_before = set(room.events)
    sender = f"@alice:{SERVER}"
    fail_next_batch(hs)
    with pytest.raises(D1Error):
        if kind == "message":
            hs.call(stub.send_event, sender, "m.room.message", {"msgtype": "m.text", "body": "x"})
        elif kind == "state":
            hs.call(stub.send_event, sender, "m.room.topic", {"topic": "after"}, "")
        else:
            hs.call(stub.send_event, sender, "m.room.redaction", {}, None, None, topic_id)
    assert live_instance(hs, room_id) is not room  # the instance that failed is gone
    assert hs.summary(room_id) == before
    fresh = live_instance(hs, room_id)
    assert set(fresh.events) <= cached_before
    assert fresh.events[topic_id].content == {"topic": "before"}  # not redacted in memory
    assert hs.state_content(room_id, "m.room.topic") == {"topic": "before"}
    # The next change builds on the state as it was, and commits.
    sent = hs.call(stub.send_event, sender, "m.room.topic", {"topic": "later"}, "")
    after = hs.summary(room_id)
    assert after["extremities"] == [sent["event_id"]]
    assert hs.state_content(room_id, "m.room.topic") == {"topic": "later"}
    stored = hs.call(hs.env.DB.prepare("SELECT json FROM events WHERE event_id = ?").bind(sent["event_id"]).first, "json")
    assert json.loads(stored)["prev_events"] == before["extremities"]
    # The failed event was never stored.
    count = hs.call(hs.env.DB.prepare("SELECT count(*) AS n FROM events WHERE room_id = ?").bind(room_id).first, "n")
    assert count == before["depth"] + 1


def test_a_repeated_txn_gets_the_first_event_even_when_a_new_send_would_fail(hs: Harness) -> None:
    """The txn row's primary key fails the repeat's commit; the first event ID is returned and
    nothing of the repeat stays in memory or D1. After leaving the room, a retry of a txn sent
    while joined still gets its event ID (a new send is refused)."""
    alice = hs.user("alice")
    room_id = hs.create_room(alice)
    stub, room = actor(hs, room_id)
    sender = f"@alice:{SERVER}"
    txn = {"device_id": "DEV_alice", "txn_id": "t1"}
    first = hs.call(stub.send_event, sender, "m.room.message", {"body": "one"}, None, txn)
    before = hs.summary(room_id)
    again = hs.call(stub.send_event, sender, "m.room.message", {"body": "one"}, None, txn)
    assert again == {"event_id": first["event_id"]}
    assert hs.summary(room_id) == before
    hs.call(stub.update_membership, sender, sender, "leave")
    retry = hs.call(stub.send_event, sender, "m.room.message", {"body": "one"}, None, txn)
    assert retry == {"event_id": first["event_id"]}
    with pytest.raises(MatrixError):
        hs.call(stub.send_event, sender, "m.room.message", {"body": "two"}, None,
                {"device_id": "DEV_alice", "txn_id": "t2"})
