"""GET /sync through the real write path: createRoom, send, join, invite, leave, redact."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.workers.sync.harness import Harness, User, make_client

V3 = "/_matrix/client/v3"


def timeline(body: dict[str, Any], room_id: str, section: str = "join") -> list[dict[str, Any]]:
    return body["rooms"][section][room_id]["timeline"]["events"]


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def state_types(body: dict[str, Any], room_id: str, section: str = "join") -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in body["rooms"][section][room_id]["state"]["events"]}


def test_initial_sync_shape(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room(name="Room")
    alice.send(room, "hello")
    body = alice.sync()
    assert set(body) >= {
        "next_batch", "rooms", "account_data", "presence", "to_device", "device_lists",
        "device_one_time_keys_count", "device_unused_fallback_key_types",
    }
    assert body["device_lists"] == {"changed": [], "left": []}
    entry = body["rooms"]["join"][room]
    assert set(entry) == {"timeline", "state", "ephemeral", "account_data", "summary", "unread_notifications"}
    assert entry["unread_notifications"] == {"highlight_count": 0, "notification_count": 0}
    assert entry["summary"]["m.joined_member_count"] == 1
    assert entry["summary"]["m.invited_member_count"] == 0
    events = entry["timeline"]["events"]
    assert events[0]["type"] == "m.room.create" and not entry["timeline"]["limited"]
    assert bodies(events) == ["hello"]
    assert all("room_id" not in e for e in events)
    assert entry["state"]["events"] == []  # everything is in the timeline


def test_limited_timeline_state_and_prev_batch(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room(name="Room")
    for i in range(12):
        alice.send(room, f"m{i}")
    entry = alice.sync()["rooms"]["join"][room]
    assert entry["timeline"]["limited"] is True
    assert bodies(entry["timeline"]["events"]) == [f"m{i}" for i in range(2, 12)]
    # The state at the start of the timeline comes in `state`.
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.member", alice.user_id)} <= state_types(
        {"rooms": {"join": {room: entry}}}, room
    )
    # prev_batch continues backwards with /messages.
    page = alice.ok(f"/rooms/{room}/messages", dir="b", limit=2, **{"from": entry["timeline"]["prev_batch"]})
    assert bodies(page["chunk"]) == ["m1", "m0"]


def test_timeline_limit_filter(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room()
    for i in range(3):
        alice.send(room, f"m{i}")
    entry = alice.sync(filter={"room": {"timeline": {"limit": 2}}})["rooms"]["join"][room]
    assert bodies(entry["timeline"]["events"]) == ["m1", "m2"] and entry["timeline"]["limited"]


def test_incremental_sync_gives_only_new_events(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room()
    other = alice.create_room()
    first = alice.sync()
    alice.send(room, "new")
    body = alice.sync(first["next_batch"])
    assert list(body["rooms"]["join"]) == [room]  # the quiet room is left out
    entry = body["rooms"]["join"][room]
    assert bodies(entry["timeline"]["events"]) == ["new"]
    assert entry["timeline"]["limited"] is False and entry["state"]["events"] == []
    assert body["next_batch"] != first["next_batch"]
    again = alice.sync(body["next_batch"])
    assert again["rooms"]["join"] == {} and again["next_batch"] == body["next_batch"]
    assert other not in again["rooms"]["join"]


def test_gap_sends_state_changes(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room(name="Before")
    token = alice.sync()["next_batch"]
    alice.state(room, "m.room.name", {"name": "After"})
    for i in range(11):
        alice.send(room, f"m{i}")
    entry = alice.sync(token)["rooms"]["join"][room]
    assert entry["timeline"]["limited"] is True
    names = [e for e in entry["state"]["events"] if e["type"] == "m.room.name"]
    assert [e["content"] for e in names] == [{"name": "After"}]
    assert names[0]["unsigned"]["prev_content"] == {"name": "Before"}
    assert not any(e["type"] == "m.room.create" for e in entry["state"]["events"])


def test_full_state(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room(name="R")
    token = alice.sync()["next_batch"]
    alice.send(room, "x")
    entry = alice.sync(token, full_state="true")["rooms"]["join"][room]
    assert ("m.room.create", "") in state_types({"rooms": {"join": {room: entry}}}, room)
    assert bodies(entry["timeline"]["events"]) == ["x"]


def test_invite_then_join_then_leave(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = alice.create_room(name="Secret club")
    alice.send(room, "before bob")
    token = bob.sync()["next_batch"]
    alice.invite(room, bob)
    body = bob.sync(token)
    invite = body["rooms"]["invite"][room]["invite_state"]["events"]
    assert {"type": "m.room.name", "state_key": "", "content": {"name": "Secret club"}, "sender": alice.user_id} in invite
    own = [e for e in invite if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert own and own[0]["content"]["membership"] == "invite"
    assert body["rooms"]["join"] == {}

    token = body["next_batch"]
    bob.join(room)
    body = bob.sync(token)
    assert room not in body["rooms"]["invite"]
    entry = body["rooms"]["join"][room]
    # A newly joined room is sent in full, history included (visibility "shared").
    assert "before bob" in bodies(entry["timeline"]["events"])
    assert entry["summary"]["m.joined_member_count"] == 2

    token = body["next_batch"]
    bob.leave(room)
    alice.send(room, "after bob")
    body = bob.sync(token)
    assert room not in body["rooms"]["join"]
    left = body["rooms"]["leave"][room]
    events = left["timeline"]["events"]
    assert events[-1]["type"] == "m.room.member" and events[-1]["content"]["membership"] == "leave"
    assert "after bob" not in bodies(events)
    # Left rooms show up on initial sync only with include_leave.
    assert room not in bob.sync()["rooms"]["leave"]
    assert room in bob.sync(filter={"room": {"include_leave": True}})["rooms"]["leave"]
    # and not after the next sync.
    assert room not in bob.sync(body["next_batch"])["rooms"]["leave"]


def test_kick_shows_in_leave(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    token = bob.sync()["next_batch"]
    alice.post(f"/rooms/{room}/kick", {"user_id": bob.user_id, "reason": "bye"})
    left = bob.sync(token)["rooms"]["leave"][room]
    kick = left["timeline"]["events"][-1]
    assert kick["sender"] == alice.user_id and kick["content"]["membership"] == "leave"


def test_transaction_id_only_for_sending_device(hs: Harness) -> None:
    alice = hs.user("alice", "PHONE")
    laptop = hs.user("alice", "LAPTOP")
    room = alice.create_room()
    event_id = alice.send(room, "hi", txn="my-txn")
    mine = [e for e in timeline(alice.sync(), room) if e["event_id"] == event_id][0]
    theirs = [e for e in timeline(laptop.sync(), room) if e["event_id"] == event_id][0]
    assert mine["unsigned"]["transaction_id"] == "my-txn"
    assert "transaction_id" not in theirs["unsigned"]


def test_redacted_event_in_sync(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room()
    target = alice.send(room, "oops")
    token = alice.sync()["next_batch"]
    redaction = alice.redact(room, target, reason="typo")
    body = alice.sync(token)
    events = timeline(body, room)
    assert [e["event_id"] for e in events] == [redaction]
    assert events[0]["redacts"] == target and events[0]["content"]["redacts"] == target
    redacted = [e for e in timeline(alice.sync(), room) if e["event_id"] == target][0]
    assert redacted["content"] == {}
    assert redacted["unsigned"]["redacted_because"]["event_id"] == redaction
    assert redacted["unsigned"]["redacted_because"]["content"]["reason"] == "typo"


def test_lazy_load_members(hs: Harness) -> None:
    alice, bob, carol = hs.user("alice"), hs.user("bob"), hs.user("carol")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    carol.join(room)
    for i in range(10):
        bob.send(room, f"b{i}")
    lazy = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 3}}}
    entry = alice.sync(filter=lazy)["rooms"]["join"][room]
    members = {e["state_key"] for e in entry["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {bob.user_id, alice.user_id}
    assert entry["summary"]["m.joined_member_count"] == 3
    full = alice.sync(filter={"room": {"timeline": {"limit": 3}}})["rooms"]["join"][room]
    assert carol.user_id in {e["state_key"] for e in full["state"]["events"] if e["type"] == "m.room.member"}


def test_summary_heroes_without_name(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    summary = alice.sync()["rooms"]["join"][room]["summary"]
    assert summary["m.heroes"] == [bob.user_id]
    named = alice.create_room(name="Named")
    assert "m.heroes" not in alice.sync()["rooms"]["join"][named]["summary"]


def test_event_fields_and_types_filters(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room()
    alice.send(room, "x")
    body = alice.sync(filter={"event_fields": ["type", "content.body"], "room": {"timeline": {"types": ["m.room.message"]}}})
    assert timeline(body, room) == [{"type": "m.room.message", "content": {"body": "x"}}]
    body = alice.sync(filter={"room": {"rooms": []}})
    assert body["rooms"]["join"] == {}


def test_account_data(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room()
    token = alice.sync()["next_batch"]
    alice.put(f"/user/{alice.user_id}/account_data/org.example.g", {"a": 1})
    alice.put(f"/user/{alice.user_id}/rooms/{room}/account_data/org.example.r", {"b": 2})
    body = alice.sync(token)
    assert {"type": "org.example.g", "content": {"a": 1}} in body["account_data"]["events"]
    assert body["rooms"]["join"][room]["account_data"]["events"] == [{"type": "org.example.r", "content": {"b": 2}}]
    assert body["rooms"]["join"][room]["timeline"]["events"] == []
    later = alice.sync(body["next_batch"])
    assert later["account_data"]["events"] == [] and later["rooms"]["join"] == {}
    initial = alice.sync(filter={"account_data": {"not_types": ["org.example.g"]}})
    assert all(e["type"] != "org.example.g" for e in initial["account_data"]["events"])


def test_stored_filter_and_unknown_filter(hs: Harness) -> None:
    alice = hs.user("alice")
    room = alice.create_room()
    alice.send(room, "x")
    filter_id = alice.post(f"/user/{alice.user_id}/filter", {"room": {"timeline": {"limit": 1}}})["filter_id"]
    assert len(timeline(alice.sync(filter=filter_id), room)) == 1
    response = alice.get("/sync", filter="999")
    assert response.status_code == 400 and response.json()["errcode"] == "M_INVALID_PARAM"
    response = alice.get("/sync", filter="{bad")
    assert response.status_code == 400 and response.json()["errcode"] == "M_NOT_JSON"


def test_refusals(hs: Harness) -> None:
    alice = hs.user("alice")
    assert hs.client.get(f"{V3}/sync").status_code == 401
    for params in ({"since": "garbage"}, {"timeout": "soon"}, {"full_state": "maybe"}, {"set_presence": "away"}):
        response = alice.get("/sync", **params)
        assert response.status_code == 400, params
        assert response.json()["errcode"] == "M_INVALID_PARAM"
    assert alice.get("/sync", set_presence="unavailable").status_code == 200


def test_long_poll_times_out_with_since(hs: Harness) -> None:
    alice = hs.user("alice")
    alice.create_room()
    token = alice.sync()["next_batch"]
    started = time.monotonic()
    body = alice.sync(token, timeout=300)
    assert time.monotonic() - started >= 0.25
    assert body["next_batch"] == token and body["rooms"]["join"] == {}


def test_long_poll_wakes_on_new_event(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    token = alice.sync()["next_batch"]
    sender = threading.Timer(0.3, lambda: bob.send(room, "wake up"))
    sender.start()
    started = time.monotonic()
    try:
        body = alice.sync(token, timeout=20000)
    finally:
        sender.join()
    assert time.monotonic() - started < 10
    assert bodies(timeline(body, room)) == ["wake up"]


def test_long_poll_wakes_on_invite(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = alice.create_room()
    token = bob.sync()["next_batch"]
    inviter = threading.Timer(0.3, lambda: alice.invite(room, bob))
    inviter.start()
    try:
        body = bob.sync(token, timeout=20000)
    finally:
        inviter.join()
    assert room in body["rooms"]["invite"]


def test_long_poll_wakes_on_own_new_room(hs: Harness) -> None:
    """A waiting sync watches the rooms its user was in when it started; the room the user
    creates meanwhile (their own join) still wakes it."""
    alice = hs.user("alice")
    token = alice.sync()["next_batch"]
    created: list[str] = []
    creator = threading.Timer(0.3, lambda: created.append(alice.create_room(name="new")))
    creator.start()
    started = time.monotonic()
    try:
        body = alice.sync(token, timeout=20000)
    finally:
        creator.join()
    assert time.monotonic() - started < 10
    assert created and created[0] in body["rooms"]["join"]


def test_tokens_survive_restart(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        hs = Harness(client)
        alice = hs.user("alice")
        room = alice.create_room()
        token = alice.sync()["next_batch"]
        alice.send(room, "before restart")
    with make_client(tmp_path) as client:
        hs = Harness(client)
        alice = User(hs, "alice", "DEV")
        body = alice.sync(token)
        assert bodies(timeline(body, room)) == ["before restart"]
        assert alice.sync(body["next_batch"])["rooms"]["join"] == {}
