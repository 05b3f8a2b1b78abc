"""unread_notifications in /sync: counted from the user's push rules, reset by receipts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workers.sync.harness import Harness, User
from workers.push import unread


def send(user: User, room: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
    user.harness.txn += 1
    return user.put(f"/rooms/{room}/send/{event_type}/u{user.harness.txn}", content)["event_id"]


def counts(body: dict[str, Any], room: str) -> dict[str, int]:
    return body["rooms"]["join"][room]["unread_notifications"]


def group_room(hs: Harness) -> tuple[User, User, User, str]:
    alice, bob, carol = hs.user("alice"), hs.user("bob"), hs.user("carol")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    carol.join(room)
    return alice, bob, carol, room


def test_messages_mentions_and_own_events(hs: Harness) -> None:
    alice, bob, carol, room = group_room(hs)
    bob.send(room, "one")
    send(bob, room, {"msgtype": "m.text", "body": "hey alice", "m.mentions": {"user_ids": [alice.user_id]}})
    send(bob, room, {"msgtype": "m.notice", "body": "a bot says hi"})
    alice.send(room, "my own message")
    body = alice.sync()
    assert counts(body, room) == {"notification_count": 2, "highlight_count": 1}
    # Carol was not mentioned; her count includes alice's message too.
    assert counts(carol.sync(), room) == {"notification_count": 3, "highlight_count": 0}


def test_dm_and_room_mention_power(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = alice.create_room(preset="trusted_private_chat", invite=[bob.user_id], is_direct=True)
    bob.join(room)
    alice.send(room, "hi bob")
    send(alice, room, {"msgtype": "m.text", "body": "@room", "m.mentions": {"room": True}})
    # alice (the creator) may notify the room; bob (power 100 in trusted_private_chat too).
    assert counts(bob.sync(), room) == {"notification_count": 2, "highlight_count": 1}


def test_room_mention_needs_power(hs: Harness) -> None:
    alice, bob, carol, room = group_room(hs)
    send(bob, room, {"msgtype": "m.text", "body": "@room", "m.mentions": {"room": True}})
    assert counts(alice.sync(), room) == {"notification_count": 1, "highlight_count": 0}
    send(alice, room, {"msgtype": "m.text", "body": "@room", "m.mentions": {"room": True}})
    assert counts(bob.sync(), room) == {"notification_count": 1, "highlight_count": 1}


def test_receipt_resets_counts_and_sync_shows_it(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    first = bob.send(room, "one")
    last = bob.send(room, "two")
    body = alice.sync()
    assert counts(body, room)["notification_count"] == 2
    alice.post(f"/rooms/{room}/receipt/m.read/{first}", {})
    body = alice.sync(since=body["next_batch"])
    # Only the receipt changed: the room is in the response with the new count.
    assert counts(body, room) == {"notification_count": 1, "highlight_count": 0}
    alice.post(f"/rooms/{room}/receipt/m.read.private/{last}", {})
    body = alice.sync(since=body["next_batch"])
    assert counts(body, room) == {"notification_count": 0, "highlight_count": 0}
    # An older public receipt does not bring anything back: the more advanced one counts.
    alice.post(f"/rooms/{room}/receipt/m.read/{first}", {})
    body = alice.sync(since=body["next_batch"])
    assert counts(body, room)["notification_count"] == 0
    bob.send(room, "three")
    body = alice.sync(since=body["next_batch"])
    assert counts(body, room)["notification_count"] == 1


def test_read_markers_reset_counts(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    event = bob.send(room, "one")
    assert counts(alice.sync(), room)["notification_count"] == 1
    alice.post(f"/rooms/{room}/read_markers", {"m.fully_read": event, "m.read": event})
    assert counts(alice.sync(), room)["notification_count"] == 0


def test_threaded_receipt_on_main_resets(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    event = bob.send(room, "one")
    alice.post(f"/rooms/{room}/receipt/m.read/{event}", {"thread_id": "main"})
    assert counts(alice.sync(), room)["notification_count"] == 0


def test_push_rules_decide(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    alice.put("/pushrules/global/sender/" + bob.user_id, {"actions": []})
    bob.send(room, "muted")
    alice.put("/pushrules/global/content/cake", {"pattern": "cake", "actions": ["notify", {"set_tweak": "highlight"}]})
    bob.send(room, "cake time")  # the content rule outranks the sender rule
    assert counts(alice.sync(), room) == {"notification_count": 1, "highlight_count": 1}


def test_each_event_is_evaluated_once_per_user(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    bob.send(room, "one")
    assert counts(alice.sync(), room)["notification_count"] == 1
    # A rule added later does not re-evaluate the event already counted.
    alice.put("/pushrules/global/room/" + room, {"actions": []})
    assert counts(alice.sync(), room)["notification_count"] == 1
    bob.send(room, "two")
    assert counts(alice.sync(), room)["notification_count"] == 1

    async def rows() -> list[dict[str, Any]]:
        return (await hs.env.DB.prepare(
            "SELECT event_id FROM event_push_actions WHERE user_id = ?").bind(alice.user_id).all()).results

    assert len(hs.call(rows)) == 1


def test_rejoin_drops_counts_of_the_earlier_membership(hs: Harness) -> None:
    alice, bob, carol, room = group_room(hs)
    bob.send(room, "before leaving")
    assert counts(carol.sync(), room)["notification_count"] == 1
    carol.leave(room)
    bob.send(room, "while away")
    carol.join(room)
    assert counts(carol.sync(), room)["notification_count"] == 0
    bob.send(room, "after rejoining")
    assert counts(carol.sync(), room)["notification_count"] == 1


def test_long_poll_woken_by_receipt_shows_new_count(hs: Harness) -> None:
    import threading

    alice, bob, _, room = group_room(hs)
    event = bob.send(room, "one")
    since = alice.sync()["next_batch"]
    result: dict[str, Any] = {}

    def poll() -> None:
        result["body"] = alice.sync(since=since, timeout=10_000)

    thread = threading.Thread(target=poll)
    thread.start()
    import time
    time.sleep(0.3)
    alice.post(f"/rooms/{room}/receipt/m.read/{event}", {})
    thread.join(15)
    assert counts(result["body"], room) == {"notification_count": 0, "highlight_count": 0}


def test_first_evaluation_reads_a_bounded_backlog(hs: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unread, "INITIAL_BACKLOG", 3)
    alice, bob, _, room = group_room(hs)
    for i in range(6):
        bob.send(room, f"m{i}")
    assert counts(alice.sync(), room)["notification_count"] == 3
    bob.send(room, "later")  # from then on every event counts
    assert counts(alice.sync(), room)["notification_count"] == 4
