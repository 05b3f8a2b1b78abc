"""Room version 1 over the client-server API: listed in /capabilities, created locally, used
(send, state, members, messages, membership changes, redaction) and kept across an actor
restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from tests.workers.rooms.conftest import SERVER, V3, Harness, make_app


def _get(hs: Harness, headers: dict[str, str], path: str) -> Any:
    response = hs.client.get(f"{V3}{path}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_capabilities_list_version_1_as_stable_and_keep_12_as_default(hs: Harness) -> None:
    alice = hs.user("alice")
    versions = _get(hs, alice, "/capabilities")["capabilities"]["m.room_versions"]
    assert versions["available"]["1"] == "stable"
    assert set(versions["available"]) == {str(n) for n in range(1, 13)}
    assert versions["default"] == "12"


def test_default_room_version_is_still_12(hs: Harness) -> None:
    alice = hs.user("alice")
    room_id = hs.create_room(alice)
    assert hs.summary(room_id)["room_version"] == "12"


def test_a_v1_room_is_created_and_used(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = hs.create_room(alice, room_version="1", preset="public_chat", name="Old", topic="T0")
    assert room_id.endswith(":" + SERVER)
    summary = hs.summary(room_id)
    assert summary["room_version"] == "1"
    create = hs.state_content(room_id, "m.room.create")
    assert create["room_version"] == "1" and create["creator"] == f"@alice:{SERVER}"
    assert hs.state_content(room_id, "m.room.power_levels")["users"][f"@alice:{SERVER}"] == 100

    assert hs.post(bob, f"/join/{room_id}").status_code == 200
    sent = hs.send(alice, room_id, {"msgtype": "m.text", "body": "hello v1"}, "t1")
    assert sent.status_code == 200
    event_id = sent.json()["event_id"]
    assert event_id.startswith("$") and event_id.endswith(":" + SERVER)  # v1 event IDs carry a domain
    assert hs.send(bob, room_id, {"msgtype": "m.text", "body": "hi alice"}, "t2").status_code == 200

    assert hs.state_put(alice, room_id, "m.room.topic", {"topic": "T1"}).status_code == 200
    refused = hs.state_put(bob, room_id, "m.room.topic", {"topic": "bob's"})
    assert refused.status_code == 403 and refused.json()["errcode"] == "M_FORBIDDEN"
    assert _get(hs, bob, f"/rooms/{room_id}/state/m.room.topic") == {"topic": "T1"}
    state = {(e["type"], e["state_key"]): e for e in _get(hs, bob, f"/rooms/{room_id}/state")}
    assert state[("m.room.name", "")]["content"] == {"name": "Old"}
    assert state[("m.room.member", f"@bob:{SERVER}")]["content"]["membership"] == "join"

    members = _get(hs, alice, f"/rooms/{room_id}/members")["chunk"]
    assert {m["state_key"]: m["content"]["membership"] for m in members} == {
        f"@alice:{SERVER}": "join",
        f"@bob:{SERVER}": "join",
    }
    joined = _get(hs, alice, f"/rooms/{room_id}/joined_members")["joined"]
    assert set(joined) == {f"@alice:{SERVER}", f"@bob:{SERVER}"}

    chunk = _get(hs, bob, f"/rooms/{room_id}/messages?dir=b&limit=10")["chunk"]
    bodies = [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]
    assert bodies == ["hi alice", "hello v1"]
    fetched = _get(hs, bob, f"/rooms/{room_id}/event/{event_id}")
    assert fetched["event_id"] == event_id and fetched["content"]["body"] == "hello v1"

    # Moderation and redaction under the v1 auth rules (the same as v2's).
    redacted = hs.client.put(f"{V3}/rooms/{room_id}/redact/{event_id}/r1", headers=alice, json={})
    assert redacted.status_code == 200
    assert _get(hs, bob, f"/rooms/{room_id}/event/{event_id}")["content"] == {}
    assert hs.post(alice, f"/rooms/{room_id}/ban", {"user_id": f"@bob:{SERVER}"}).status_code == 200
    banned = hs.send(bob, room_id, {"msgtype": "m.text", "body": "still here?"}, "t3")
    assert banned.status_code == 403
    assert hs.post(bob, f"/join/{room_id}").status_code == 403


def test_a_v1_room_survives_an_actor_restart(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        hs = Harness(client)
        alice = hs.user("alice")
        room_id = hs.create_room(alice, room_version="1", topic="kept")
        assert hs.send(alice, room_id, {"msgtype": "m.text", "body": "before"}, "t1").status_code == 200
    with TestClient(make_app(tmp_path)) as client:
        hs = Harness(client)
        alice = {"Authorization": "Bearer tok_alice"}
        assert hs.summary(room_id)["room_version"] == "1"
        assert hs.state_content(room_id, "m.room.topic") == {"topic": "kept"}
        assert hs.send(alice, room_id, {"msgtype": "m.text", "body": "after"}, "t2").status_code == 200
