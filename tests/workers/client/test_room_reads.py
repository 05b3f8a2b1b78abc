"""Room reads: /state, /members, /joined_members, /messages, /context, /event, /joined_rooms,
with rooms and events made through the real write path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.workers.sync.harness import Harness, User, make_client


@pytest.fixture
def hs(tmp_path: Path) -> Iterator[Harness]:
    with make_client(tmp_path) as client:
        yield Harness(client)


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def refused(user: User, path: str, status: int, errcode: str, **params: Any) -> None:
    response = user.get(path, **params)
    assert response.status_code == status, response.text
    assert response.json()["errcode"] == errcode


@pytest.fixture
def room(hs: Harness) -> tuple[User, User, str]:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = alice.create_room(name="Room", topic="t", preset="public_chat")
    bob.join(room_id)
    return alice, bob, room_id


def test_state(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    state = alice.ok(f"/rooms/{room_id}/state")
    keys = {(e["type"], e["state_key"]) for e in state}
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.member", bob.user_id)} <= keys
    assert all(e["room_id"] == room_id for e in state)
    assert alice.ok(f"/rooms/{room_id}/state/m.room.name/") == {"name": "Room"}
    assert alice.ok(f"/rooms/{room_id}/state/m.room.name") == {"name": "Room"}
    member = alice.ok(f"/rooms/{room_id}/state/m.room.member/{bob.user_id}", format="event")
    assert member["type"] == "m.room.member" and member["content"]["membership"] == "join"
    assert member["sender"] == bob.user_id and member["state_key"] == bob.user_id
    refused(alice, f"/rooms/{room_id}/state/m.room.avatar/", 404, "M_NOT_FOUND")


def test_state_prev_content(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, _, room_id = room
    old = [e for e in alice.ok(f"/rooms/{room_id}/state") if e["type"] == "m.room.name"][0]["event_id"]
    alice.state(room_id, "m.room.name", {"name": "Renamed"})
    event = alice.ok(f"/rooms/{room_id}/state/m.room.name", format="event")
    assert event["content"] == {"name": "Renamed"}
    assert event["unsigned"]["replaces_state"] == old
    assert event["unsigned"]["prev_content"] == {"name": "Room"}


def test_non_members_are_forbidden(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, _, room_id = room
    eve = hs.user("eve")
    event_id = alice.send(room_id, "secret")
    for path in (
        f"/rooms/{room_id}/state",
        f"/rooms/{room_id}/state/m.room.name/",
        f"/rooms/{room_id}/members",
        f"/rooms/{room_id}/joined_members",
        f"/rooms/{room_id}/messages",
        f"/rooms/{room_id}/context/{event_id}",
    ):
        refused(eve, path, 403, "M_FORBIDDEN")
    refused(eve, f"/rooms/{room_id}/event/{event_id}", 403, "M_FORBIDDEN")
    refused(eve, "/rooms/!nope:hs.test/state", 403, "M_FORBIDDEN")


def test_world_readable_room_is_readable(hs: Harness) -> None:
    alice, eve = hs.user("alice"), hs.user("eve")
    room_id = alice.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"}}],
    )
    alice.send(room_id, "public")
    assert any(e["type"] == "m.room.create" for e in eve.ok(f"/rooms/{room_id}/state"))
    assert bodies(eve.ok(f"/rooms/{room_id}/messages", dir="b")["chunk"]) == ["public"]


def test_members_and_joined_members(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    carol = hs.user("carol")
    alice.invite(room_id, carol)
    chunk = alice.ok(f"/rooms/{room_id}/members")["chunk"]
    assert {e["state_key"]: e["content"]["membership"] for e in chunk} == {
        alice.user_id: "join", bob.user_id: "join", carol.user_id: "invite",
    }
    joined = alice.ok(f"/rooms/{room_id}/members", membership="join")["chunk"]
    assert {e["state_key"] for e in joined} == {alice.user_id, bob.user_id}
    not_joined = alice.ok(f"/rooms/{room_id}/members", not_membership="join")["chunk"]
    assert {e["state_key"] for e in not_joined} == {carol.user_id}
    assert alice.ok(f"/rooms/{room_id}/joined_members") == {
        "joined": {
            alice.user_id: {"display_name": "alice"},  # no avatar: left out, not null
            bob.user_id: {"display_name": "bob"},
        }
    }


def test_members_at_token(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    token = alice.sync()["next_batch"]
    carol = hs.user("carol")
    carol.join(room_id)
    now = {e["state_key"] for e in alice.ok(f"/rooms/{room_id}/members")["chunk"]}
    then = {e["state_key"] for e in alice.ok(f"/rooms/{room_id}/members", at=token)["chunk"]}
    assert carol.user_id in now and carol.user_id not in then
    refused(alice, f"/rooms/{room_id}/members", 400, "M_INVALID_PARAM", at="bogus")


def test_joined_rooms(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    other = alice.create_room()
    assert sorted(alice.ok("/joined_rooms")["joined_rooms"]) == sorted([room_id, other])
    bob.leave(room_id)
    assert bob.ok("/joined_rooms") == {"joined_rooms": []}


def test_messages_backwards_and_forwards(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, _, room_id = room
    for i in range(5):
        alice.send(room_id, f"m{i}")
    page = alice.ok(f"/rooms/{room_id}/messages", dir="b", limit=2)
    assert bodies(page["chunk"]) == ["m4", "m3"]
    page2 = alice.ok(f"/rooms/{room_id}/messages", dir="b", limit=2, **{"from": page["end"]})
    assert bodies(page2["chunk"]) == ["m2", "m1"]
    assert page2["start"] == page["end"]
    forward = alice.ok(f"/rooms/{room_id}/messages", dir="f", limit=3, **{"from": page2["end"]})
    assert bodies(forward["chunk"]) == ["m1", "m2", "m3"]
    # to: stop at a token.
    bounded = alice.ok(f"/rooms/{room_id}/messages", dir="b", **{"from": page["end"], "to": page2["end"]})
    assert bodies(bounded["chunk"]) == ["m2", "m1"]
    # From the very start, forwards: the create event first.
    first = alice.ok(f"/rooms/{room_id}/messages", dir="f", limit=1)
    assert first["chunk"][0]["type"] == "m.room.create"
    # All of history backwards ends without an `end` token.
    everything = alice.ok(f"/rooms/{room_id}/messages", dir="b", limit=100)
    assert "end" not in everything and everything["chunk"][-1]["type"] == "m.room.create"
    refused(alice, f"/rooms/{room_id}/messages", 400, "M_INVALID_PARAM", dir="sideways")
    refused(alice, f"/rooms/{room_id}/messages", 400, "M_INVALID_PARAM", dir="b", **{"from": "x"})
    refused(alice, f"/rooms/{room_id}/messages", 400, "M_INVALID_PARAM", dir="b", limit="many")


def test_messages_filter_and_lazy_members(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    alice.send(room_id, "from alice")
    bob.send(room_id, "from bob")
    only_bob = json.dumps({"senders": [bob.user_id], "lazy_load_members": True})
    page = alice.ok(f"/rooms/{room_id}/messages", dir="b", filter=only_bob)
    assert [e["sender"] for e in page["chunk"]] == [bob.user_id, bob.user_id]
    assert [(e["type"], e["state_key"]) for e in page["state"]] == [("m.room.member", bob.user_id)]
    messages = json.dumps({"types": ["m.room.message"], "limit": 1})
    page = alice.ok(f"/rooms/{room_id}/messages", dir="b", filter=messages)
    assert bodies(page["chunk"]) == ["from bob"] and "state" not in page
    refused(alice, f"/rooms/{room_id}/messages", 400, "M_NOT_JSON", dir="b", filter="{nope")


def test_history_visibility_joined(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = alice.create_room(preset="public_chat")
    alice.state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    alice.send(room_id, "before bob")
    bob.join(room_id)
    alice.send(room_id, "after bob")
    seen = bodies(bob.ok(f"/rooms/{room_id}/messages", dir="b", limit=50)["chunk"])
    assert seen == ["after bob"]
    early = [e for e in alice.ok(f"/rooms/{room_id}/messages", dir="b", limit=50)["chunk"] if e["type"] == "m.room.message"]
    hidden = [e["event_id"] for e in early if e["content"]["body"] == "before bob"][0]
    refused(bob, f"/rooms/{room_id}/event/{hidden}", 403, "M_FORBIDDEN")
    # The user's own join is visible although visibility is "joined".
    assert any(
        e["type"] == "m.room.member" and e["state_key"] == bob.user_id
        for e in bob.ok(f"/rooms/{room_id}/messages", dir="b", limit=50)["chunk"]
    )


def test_history_visibility_shared_and_after_leave(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    carol = hs.user("carol")
    alice.send(room_id, "before carol")
    carol.join(room_id)
    alice.send(room_id, "with carol")
    assert bodies(carol.ok(f"/rooms/{room_id}/messages", dir="b", limit=50)["chunk"]) == ["with carol", "before carol"]
    carol.leave(room_id)
    alice.send(room_id, "after carol")
    alice.state(room_id, "m.room.topic", {"topic": "new topic"})
    seen = bodies(carol.ok(f"/rooms/{room_id}/messages", dir="b", limit=50)["chunk"])
    assert "after carol" not in seen and "with carol" in seen
    # State reads after leaving give the state at the leave.
    assert carol.ok(f"/rooms/{room_id}/state/m.room.topic") == {"topic": "t"}
    assert alice.ok(f"/rooms/{room_id}/state/m.room.topic") == {"topic": "new topic"}


def test_event_and_context(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    ids = [alice.send(room_id, f"m{i}") for i in range(6)]
    event = bob.ok(f"/rooms/{room_id}/event/{ids[2]}")
    assert event["content"]["body"] == "m2" and event["room_id"] == room_id
    assert "transaction_id" not in event["unsigned"]
    assert "transaction_id" in alice.ok(f"/rooms/{room_id}/event/{ids[2]}")["unsigned"]
    refused(bob, f"/rooms/{room_id}/event/$missing", 404, "M_NOT_FOUND")

    context = bob.ok(f"/rooms/{room_id}/context/{ids[3]}", limit=4)
    assert context["event"]["event_id"] == ids[3]
    assert bodies(context["events_before"]) == ["m2", "m1"]
    assert bodies(context["events_after"]) == ["m4", "m5"]
    assert any(e["type"] == "m.room.create" for e in context["state"])
    after = bob.ok(f"/rooms/{room_id}/messages", dir="f", **{"from": context["end"]})
    assert after["chunk"] == []
    before = bob.ok(f"/rooms/{room_id}/messages", dir="b", limit=1, **{"from": context["start"]})
    assert bodies(before["chunk"]) == ["m0"]
    refused(bob, f"/rooms/{room_id}/context/$missing", 404, "M_NOT_FOUND")


def test_redacted_event_read(hs: Harness, room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    target = alice.send(room_id, "regret")
    redaction = alice.redact(room_id, target)
    event = bob.ok(f"/rooms/{room_id}/event/{target}")
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]["event_id"] == redaction
    red = bob.ok(f"/rooms/{room_id}/event/{redaction}")
    assert red["redacts"] == target and red["content"]["redacts"] == target


def test_history_visibility_invited(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = alice.create_room(preset="private_chat")
    alice.state(room_id, "m.room.history_visibility", {"history_visibility": "invited"})
    alice.send(room_id, "before invite")
    alice.invite(room_id, bob)
    alice.send(room_id, "while invited")
    bob.join(room_id)
    alice.send(room_id, "joined")
    seen = bodies(bob.ok(f"/rooms/{room_id}/messages", dir="b", limit=50)["chunk"])
    assert seen == ["joined", "while invited"]
    # The newly joined room in sync follows the same rules.
    sync_seen = bodies(bob.sync()["rooms"]["join"][room_id]["timeline"]["events"])
    assert sync_seen == ["while invited", "joined"]
