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


PER_THREAD = {"room": {"timeline": {"unread_thread_notifications": True}}}


def in_thread(user: User, room: str, root: str, body: str, **extra: Any) -> str:
    return send(user, room, {
        "msgtype": "m.text", "body": body, **extra,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    })


def thread_counts(body: dict[str, Any], room: str) -> dict[str, Any] | None:
    return body["rooms"]["join"][room].get("unread_thread_notifications")


def test_per_thread_counts_and_threaded_receipts(hs: Harness) -> None:
    """Spec "Receiving notifications" (counts partitioned per thread, the main timeline
    being one), "Threaded read receipts" and /sync's unread_thread_notifications."""
    alice, bob, _, room = group_room(hs)
    root = bob.send(room, "root")
    in_thread(bob, room, root, "first reply")
    last_reply = in_thread(
        bob, room, root, "alice, look", **{"m.mentions": {"user_ids": [alice.user_id]}}
    )
    main = bob.send(room, "main again")
    # Without the filter flag: one count for the whole room, no per-thread object.
    body = alice.sync()
    assert counts(body, room) == {"notification_count": 4, "highlight_count": 1}
    assert thread_counts(body, room) is None
    body = alice.sync(filter=PER_THREAD)
    assert counts(body, room) == {"notification_count": 2, "highlight_count": 0}
    assert thread_counts(body, room) == {root: {"notification_count": 2, "highlight_count": 1}}

    # A main-timeline receipt after the replies (in stream order) leaves the thread unread.
    alice.post(f"/rooms/{room}/receipt/m.read/{main}", {"thread_id": "main"})
    body = alice.sync(since=body["next_batch"], filter=PER_THREAD)
    assert counts(body, room) == {"notification_count": 0, "highlight_count": 0}
    assert thread_counts(body, room) == {root: {"notification_count": 2, "highlight_count": 1}}
    assert counts(alice.sync(), room) == {"notification_count": 2, "highlight_count": 1}

    # The thread's own receipt reads the thread; a thread without unread ones is left out.
    alice.post(f"/rooms/{room}/receipt/m.read/{last_reply}", {"thread_id": root})
    body = alice.sync(since=body["next_batch"], filter=PER_THREAD)
    assert counts(body, room) == {"notification_count": 0, "highlight_count": 0}
    assert thread_counts(body, room) is None
    assert counts(alice.sync(), room) == {"notification_count": 0, "highlight_count": 0}


def test_unthreaded_receipt_reads_every_thread(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    root = bob.send(room, "root")
    reply = in_thread(bob, room, root, "reply")
    later = in_thread(bob, room, root, "later reply")
    alice.post(f"/rooms/{room}/receipt/m.read/{reply}", {})
    body = alice.sync(filter=PER_THREAD)
    assert counts(body, room) == {"notification_count": 0, "highlight_count": 0}
    assert thread_counts(body, room) == {root: {"notification_count": 1, "highlight_count": 0}}
    alice.post(f"/rooms/{room}/receipt/m.read/{later}", {})
    body = alice.sync(since=body["next_batch"], filter=PER_THREAD)
    assert thread_counts(body, room) is None


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
