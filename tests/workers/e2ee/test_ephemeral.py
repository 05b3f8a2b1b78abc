"""Typing (with expiry), receipts (public, private, threaded), read markers and presence,
through their endpoints and /sync."""

from __future__ import annotations

import time
from typing import Any

from tests.workers.e2ee.harness import Device, Harness


def _ephemeral(sync: dict, room_id: str) -> dict[str, Any]:
    events = sync["rooms"]["join"].get(room_id, {}).get("ephemeral", {}).get("events", [])
    return {e["type"]: e["content"] for e in events}


def _room(hs: Harness) -> tuple[Device, Device, str]:
    alice, bob = hs.device("alice"), hs.device("bob")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    return alice, bob, room


def test_typing_start_stop(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    since = bob.sync()["next_batch"]
    alice.ok("PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 30000})
    got = bob.sync(since)
    assert _ephemeral(got, room)["m.typing"] == {"user_ids": [alice.user_id]}
    # Refreshing changes nothing a client sees.
    alice.ok("PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 30000})
    assert "m.typing" not in _ephemeral(bob.sync(got["next_batch"]), room)
    alice.ok("PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": False})
    assert _ephemeral(bob.sync(got["next_batch"]), room)["m.typing"] == {"user_ids": []}


def test_typing_expires_and_wakes_a_waiting_sync(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    alice.ok("PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 300})
    since = bob.sync()["next_batch"]
    started = time.monotonic()
    got = bob.sync(since, timeout=10_000)
    assert time.monotonic() - started < 5
    assert _ephemeral(got, room)["m.typing"] == {"user_ids": []}


def test_typing_refusals(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    carol = hs.device("carol")
    assert alice.request("PUT", f"/rooms/{room}/typing/{bob.user_id}", {"typing": True}).status_code == 403
    assert carol.request("PUT", f"/rooms/{room}/typing/{carol.user_id}", {"typing": True}).status_code == 403
    assert alice.request("PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": "yes"}).status_code == 400
    assert alice.request("PUT", f"/rooms/!nope:hs.test/typing/{alice.user_id}", {"typing": True}).status_code == 404


def test_public_and_private_receipts(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    event = alice.send(room, "hello")
    a0, b0 = alice.sync()["next_batch"], bob.sync()["next_batch"]
    bob.ok("POST", f"/rooms/{room}/receipt/m.read/{event}", {})
    content = _ephemeral(alice.sync(a0), room)["m.receipt"]
    assert list(content[event]["m.read"]) == [bob.user_id]
    assert isinstance(content[event]["m.read"][bob.user_id]["ts"], int)
    # A private receipt reaches only its owner.
    a1 = alice.sync()["next_batch"]
    bob.ok("POST", f"/rooms/{room}/receipt/m.read.private/{event}", {})
    assert "m.receipt" not in _ephemeral(alice.sync(a1), room)
    own = _ephemeral(bob.sync(b0), room)["m.receipt"]
    assert bob.user_id in own[event]["m.read.private"]
    # An initial sync carries the receipts too.
    assert bob.user_id in _ephemeral(alice.sync(), room)["m.receipt"][event]["m.read"]


def test_threaded_receipts(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    root = alice.send(room, "root")
    reply = alice.ok("PUT", f"/rooms/{room}/send/m.room.message/thr1", {
        "msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}})["event_id"]
    since = alice.sync()["next_batch"]
    bob.ok("POST", f"/rooms/{room}/receipt/m.read/{reply}", {"thread_id": root})
    bob.ok("POST", f"/rooms/{room}/receipt/m.read/{root}", {"thread_id": "main"})
    bob.ok("POST", f"/rooms/{room}/receipt/m.read/{root}", {})
    content = _ephemeral(alice.sync(since), room)["m.receipt"]
    assert content[reply]["m.read"][bob.user_id]["thread_id"] == root
    assert content[root]["m.read"][bob.user_id] in ({"ts": content[root]["m.read"][bob.user_id]["ts"]},
                                                     {"ts": content[root]["m.read"][bob.user_id]["ts"], "thread_id": "main"})
    for body, event in (({"thread_id": "main"}, reply), ({"thread_id": reply}, root), ({"thread_id": ""}, root),
                        ({"thread_id": 5}, root)):
        response = bob.request("POST", f"/rooms/{room}/receipt/m.read/{event}", body)
        assert response.status_code == 400, body
    assert bob.request("POST", f"/rooms/{room}/receipt/m.fully_read/{root}", {"thread_id": "main"}).status_code == 400


def test_threaded_receipt_on_an_event_related_to_a_thread_reply(hs: Harness) -> None:
    """An edit of a thread reply is in the thread (the relation is followed to the reply,
    whose m.thread relation names the root): a receipt on it takes the thread's ID, not main."""
    alice, bob, room = _room(hs)
    root = alice.send(room, "root")
    reply = alice.ok("PUT", f"/rooms/{room}/send/m.room.message/thr2", {
        "msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}})["event_id"]
    edit = alice.ok("PUT", f"/rooms/{room}/send/m.room.message/thr3", {
        "msgtype": "m.text", "body": "* edited", "m.new_content": {"msgtype": "m.text", "body": "edited"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": reply}})["event_id"]
    bob.ok("POST", f"/rooms/{room}/receipt/m.read/{edit}", {"thread_id": root})
    assert bob.request("POST", f"/rooms/{room}/receipt/m.read/{edit}", {"thread_id": "main"}).status_code == 400


def test_receipt_refusals(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    event = alice.send(room, "x")
    carol = hs.device("carol")
    assert carol.request("POST", f"/rooms/{room}/receipt/m.read/{event}", {}).status_code == 403
    assert bob.request("POST", f"/rooms/{room}/receipt/m.bogus/{event}", {}).status_code == 400
    assert bob.request("POST", f"/rooms/{room}/receipt/m.read/$nope", {}).status_code == 404
    other = alice.create_room()
    foreign = alice.send(other, "elsewhere")
    assert bob.request("POST", f"/rooms/{room}/receipt/m.read/{foreign}", {}).status_code == 404


def test_read_markers(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    event = alice.send(room, "x")
    a0, b0 = alice.sync()["next_batch"], bob.sync()["next_batch"]
    bob.ok("POST", f"/rooms/{room}/read_markers", {"m.fully_read": event, "m.read": event})
    assert bob.ok("GET", f"/user/{bob.user_id}/rooms/{room}/account_data/m.fully_read") == {"event_id": event}
    mine = bob.sync(b0)["rooms"]["join"][room]
    assert {"type": "m.fully_read", "content": {"event_id": event}} in mine["account_data"]["events"]
    assert bob.user_id in _ephemeral(alice.sync(a0), room)["m.receipt"][event]["m.read"]
    # The receipt endpoint takes m.fully_read too.
    bob.ok("POST", f"/rooms/{room}/receipt/m.fully_read/{event}", {})
    assert bob.request("POST", f"/rooms/{room}/read_markers", {"m.fully_read": "$nope"}).status_code == 404


def test_presence(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    carol = hs.device("carol")
    since = bob.sync(set_presence="offline")["next_batch"]
    alice.ok("PUT", f"/presence/{alice.user_id}/status", {"presence": "unavailable", "status_msg": "lunch"})
    got = bob.ok("GET", f"/presence/{alice.user_id}/status")
    assert got["presence"] == "unavailable" and got["status_msg"] == "lunch"
    assert got["last_active_ago"] >= 0 and got["currently_active"] is False
    events = bob.sync(since, set_presence="offline")["presence"]["events"]
    assert [(e["sender"], e["content"]["presence"]) for e in events] == [(alice.user_id, "unavailable")]
    # Strangers and other users' presence.
    assert carol.request("GET", f"/presence/{alice.user_id}/status").status_code == 403
    assert carol.request("PUT", f"/presence/{alice.user_id}/status", {"presence": "online"}).status_code == 403
    assert alice.request("PUT", f"/presence/{alice.user_id}/status", {"presence": "busy"}).status_code == 400
    assert alice.request("GET", "/presence/@ghost:hs.test/status").status_code == 404
    assert carol.ok("GET", f"/presence/{carol.user_id}/status") == {"presence": "offline"}


def test_sync_sets_presence(hs: Harness) -> None:
    alice, bob, room = _room(hs)
    since = bob.sync(set_presence="offline")["next_batch"]
    alice.sync()  # online by default
    got = bob.ok("GET", f"/presence/{alice.user_id}/status")
    assert got["presence"] == "online" and got["currently_active"] is True
    events = bob.sync(since, set_presence="offline")["presence"]["events"]
    assert any(e["sender"] == alice.user_id and e["content"]["presence"] == "online" for e in events)
    alice.sync(set_presence="unavailable")
    assert bob.ok("GET", f"/presence/{alice.user_id}/status")["presence"] == "unavailable"
    alice.sync(set_presence="offline")  # leaves presence as it is
    assert bob.ok("GET", f"/presence/{alice.user_id}/status")["presence"] == "unavailable"
