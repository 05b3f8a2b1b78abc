"""Room writes through the room actor: creation, sending, auth refusals, membership, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.workers.rooms.conftest import SERVER, V3, Harness, make_app
from workers.client import room_create

VERSIONS = ["2", "6", "10", "11", "12"]


@pytest.mark.parametrize("version", VERSIONS)
def test_create_room_sends_the_spec_sequence(hs: Harness, version: str) -> None:
    alice = hs.user("alice")
    room_id = hs.create_room(alice, room_version=version, name="N", topic="T", room_alias_name="a" + version)
    summary = hs.summary(room_id)
    keys = {(t, k) for t, k, _ in summary["state"]}
    assert {("m.room.create", ""), ("m.room.member", f"@alice:{SERVER}"), ("m.room.power_levels", ""),
            ("m.room.join_rules", ""), ("m.room.history_visibility", ""), ("m.room.name", ""),
            ("m.room.topic", ""), ("m.room.canonical_alias", "")} <= keys
    assert summary["room_version"] == version
    assert len(summary["extremities"]) == 1
    power = hs.state_content(room_id, "m.room.power_levels")
    if version == "12":
        assert f"@alice:{SERVER}" not in power["users"]  # creators have infinite power
        assert power["events"]["m.room.tombstone"] == 150
        assert ":" not in room_id  # the room ID is the create event's hash
    else:
        assert power["users"][f"@alice:{SERVER}"] == 100
        assert room_id.endswith(":" + SERVER)
    create = hs.state_content(room_id, "m.room.create")
    assert create["room_version"] == version
    assert ("creator" in create) == (version in ("2", "6", "10"))


def test_identical_v12_creates_in_one_millisecond_get_distinct_rooms(
    hs: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A v12 room ID is the create event's hash: the same creator and content at the same
    # origin_server_ts would name the same room, so the second create must be retried.
    alice = hs.user("alice")
    monkeypatch.setattr(room_create.time, "time", lambda: 1_700_000_000.0)
    first = hs.create_room(alice, room_version="12", preset="public_chat")
    second = hs.create_room(alice, room_version="12", preset="public_chat")
    assert first != second
    assert hs.state_content(second, "m.room.create")["room_version"] == "12"
    assert hs.summary(second)["room_version"] == "12"


def test_trusted_private_chat_in_v12_makes_invitees_creators(hs: Harness) -> None:
    alice, _ = hs.user("alice"), hs.user("bob")
    room_id = hs.create_room(alice, preset="trusted_private_chat", invite=[f"@bob:{SERVER}"], is_direct=True)
    assert hs.state_content(room_id, "m.room.create")["additional_creators"] == [f"@bob:{SERVER}"]
    invite = hs.state_content(room_id, "m.room.member", f"@bob:{SERVER}")
    assert invite["membership"] == "invite" and invite["is_direct"] is True


def test_create_room_refusals(hs: Harness) -> None:
    alice = hs.user("alice")
    response = hs.client.post(f"{V3}/createRoom", headers=alice, json={"room_version": "99"})
    assert response.status_code == 400 and response.json()["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    response = hs.client.post(f"{V3}/createRoom", headers=alice, json={"preset": "nope"})
    assert response.status_code == 400 and response.json()["errcode"] == "M_INVALID_PARAM"
    response = hs.client.post(f"{V3}/createRoom", headers=alice, content=b"{not json")
    assert response.status_code == 400 and response.json()["errcode"] == "M_NOT_JSON"
    hs.create_room(alice, room_alias_name="taken")
    response = hs.client.post(f"{V3}/createRoom", headers=alice, json={"room_alias_name": "taken"})
    assert response.status_code == 400 and response.json()["errcode"] == "M_ROOM_IN_USE"
    response = hs.client.post(f"{V3}/createRoom", json={})
    assert response.status_code == 401 and response.json()["errcode"] == "M_MISSING_TOKEN"


def test_send_is_idempotent_per_device_room_and_txn(hs: Harness) -> None:
    alice = hs.user("alice")
    room_a, room_b = hs.create_room(alice), hs.create_room(alice)
    first = hs.send(alice, room_a, {"msgtype": "m.text", "body": "hi"}, "t1").json()["event_id"]
    again = hs.send(alice, room_a, {"msgtype": "m.text", "body": "hi"}, "t1").json()["event_id"]
    other_room = hs.send(alice, room_b, {"msgtype": "m.text", "body": "hi"}, "t1").json()["event_id"]
    assert first == again and other_room != first
    assert hs.summary(room_a)["extremities"] == [first]


def test_non_member_cannot_send_and_unknown_room_is_404(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = hs.create_room(alice)
    response = hs.send(bob, room_id, {"body": "x"}, "t")
    assert response.status_code == 403 and response.json()["errcode"] == "M_FORBIDDEN"
    response = hs.send(alice, "!nope:" + SERVER, {"body": "x"}, "t")
    assert response.status_code == 404 and response.json()["errcode"] == "M_NOT_FOUND"
    before = hs.summary(room_id)
    response = hs.send(alice, room_id, {"body": "x"}, "t", event_type="m.room.message")
    assert response.status_code == 200
    assert hs.summary(room_id)["extremities"] != before["extremities"]


def test_private_room_needs_invite_and_invite_needs_power(hs: Harness) -> None:
    alice, bob, carol = hs.user("alice"), hs.user("bob"), hs.user("carol")
    room_id = hs.create_room(alice, preset="private_chat")
    assert hs.post(bob, f"/rooms/{room_id}/join").status_code == 403
    assert hs.post(alice, f"/rooms/{room_id}/invite", {"user_id": f"@bob:{SERVER}"}).status_code == 200
    assert hs.post(bob, f"/rooms/{room_id}/join").json() == {"room_id": room_id}
    # private_chat lets members invite (invite level 0); raise it and bob can no longer invite.
    power = hs.state_content(room_id, "m.room.power_levels")
    power["invite"] = 50
    assert hs.state_put(alice, room_id, "m.room.power_levels", power).status_code == 200
    response = hs.post(bob, f"/rooms/{room_id}/invite", {"user_id": f"@carol:{SERVER}"})
    assert response.status_code == 403
    assert hs.post(carol, f"/rooms/{room_id}/join").status_code == 403


def test_power_levels_guard_state_and_moderation(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = hs.create_room(alice, preset="public_chat")
    assert hs.post(bob, f"/join/{room_id}").status_code == 200
    assert hs.state_put(bob, room_id, "m.room.name", {"name": "mine"}).status_code == 403
    assert hs.state_put(bob, room_id, "m.room.power_levels", {"users": {}}).status_code == 403
    assert hs.post(bob, f"/rooms/{room_id}/kick", {"user_id": f"@alice:{SERVER}"}).status_code == 403
    assert hs.post(alice, f"/rooms/{room_id}/ban", {"user_id": f"@bob:{SERVER}", "reason": "spam"}).status_code == 200
    assert hs.state_content(room_id, "m.room.member", f"@bob:{SERVER}")["membership"] == "ban"
    assert hs.post(bob, f"/join/{room_id}").status_code == 403
    assert hs.post(alice, f"/rooms/{room_id}/unban", {"user_id": f"@bob:{SERVER}"}).status_code == 200
    assert hs.post(bob, f"/join/{room_id}").status_code == 200
    assert hs.post(alice, f"/rooms/{room_id}/kick", {"user_id": f"@bob:{SERVER}"}).status_code == 200
    assert hs.send(bob, room_id, {"body": "x"}, "t").status_code == 403
    assert hs.post(alice, f"/rooms/{room_id}/unban", {"user_id": f"@bob:{SERVER}"}).status_code == 403


def test_leave_and_forget(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = hs.create_room(alice, preset="public_chat")
    assert hs.post(bob, f"/rooms/{room_id}/forget").status_code == 200  # never joined: fine
    hs.post(bob, f"/join/{room_id}")
    assert hs.post(bob, f"/rooms/{room_id}/forget").status_code == 400
    assert hs.post(bob, f"/rooms/{room_id}/leave").status_code == 200
    assert hs.post(bob, f"/rooms/{room_id}/leave").status_code == 403  # not in the room any more
    assert hs.post(bob, f"/rooms/{room_id}/forget").status_code == 200


@pytest.mark.parametrize("version", ["10", "11"])
def test_redaction_rules(hs: Harness, version: str) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = hs.create_room(alice, preset="public_chat", room_version=version)
    hs.post(bob, f"/join/{room_id}")
    alices = hs.send(alice, room_id, {"body": "a"}, "a1").json()["event_id"]
    bobs = hs.send(bob, room_id, {"body": "b"}, "b1").json()["event_id"]
    refused = hs.client.put(f"{V3}/rooms/{room_id}/redact/{alices}/r1", headers=bob, json={})
    assert refused.status_code == 403
    assert hs.client.put(f"{V3}/rooms/{room_id}/redact/{bobs}/r2", headers=bob, json={"reason": "oops"}).status_code == 200
    assert hs.client.put(f"{V3}/rooms/{room_id}/redact/{bobs}/r3", headers=alice, json={}).status_code == 200

    async def redacted_by(event_id: str) -> object:
        return await hs.env.DB.prepare("SELECT redacted_by FROM events WHERE event_id = ?").bind(event_id).first(
            "redacted_by"
        )

    assert hs.call(redacted_by, bobs) is not None
    assert hs.call(redacted_by, alices) is None


def test_knock_needs_room_version_7(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    for version, expected in (("6", 403), ("7", 200), ("12", 200)):
        room_id = hs.create_room(
            alice, room_version=version,
            initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}],
        )
        response = hs.post(bob, f"/knock/{room_id}", {"reason": "let me in"})
        assert response.status_code == expected, (version, response.text)


def test_restricted_join(hs: Harness) -> None:
    alice, bob, carol = hs.user("alice"), hs.user("bob"), hs.user("carol")
    space = hs.create_room(alice, preset="public_chat")
    room_id = hs.create_room(
        alice, room_version="10",
        initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": {
            "join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}}],
    )
    hs.post(bob, f"/join/{space}")
    assert hs.post(bob, f"/join/{room_id}").status_code == 200
    member = hs.state_content(room_id, "m.room.member", f"@bob:{SERVER}")
    assert member["join_authorised_via_users_server"] == f"@alice:{SERVER}"
    assert hs.post(carol, f"/join/{room_id}").status_code == 403


def test_aliases_and_directory(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = hs.create_room(alice, preset="public_chat", name="Cats", topic="all about cats")
    alias = f"#cats:{SERVER}"
    path = f"{V3}/directory/room/%23cats:{SERVER}"
    assert hs.client.put(path, headers=alice, json={"room_id": room_id}).status_code == 200
    assert hs.client.put(path, headers=alice, json={"room_id": room_id}).status_code == 409
    assert hs.client.get(path).json() == {"room_id": room_id, "servers": [SERVER]}
    remote = hs.client.put(f"{V3}/directory/room/%23x:other.test", headers=alice, json={"room_id": room_id})
    assert remote.status_code == 400
    assert hs.client.get(f"{V3}/rooms/{room_id}/aliases", headers=alice).json() == {"aliases": [alias]}
    assert hs.client.delete(path, headers=bob).status_code == 403
    assert hs.post(bob, f"/join/%23cats:{SERVER}").json() == {"room_id": room_id}
    assert hs.client.delete(path, headers=alice).status_code == 200
    assert hs.client.get(path).status_code == 404

    assert hs.client.get(f"{V3}/directory/list/room/{room_id}").json() == {"visibility": "private"}
    assert hs.client.put(f"{V3}/directory/list/room/{room_id}", headers=bob, json={"visibility": "public"}).status_code == 403
    assert hs.client.put(f"{V3}/directory/list/room/{room_id}", headers=alice, json={"visibility": "public"}).status_code == 200
    hs.create_room(alice, visibility="public", name="Dogs")
    listing = hs.client.get(f"{V3}/publicRooms").json()
    assert listing["total_room_count_estimate"] == 2
    cats = [r for r in listing["chunk"] if r["room_id"] == room_id][0]
    assert cats["name"] == "Cats" and cats["num_joined_members"] == 2 and cats["join_rule"] == "public"
    found = hs.client.post(f"{V3}/publicRooms", headers=alice, json={"filter": {"generic_search_term": "cat"}}).json()
    assert [r["room_id"] for r in found["chunk"]] == [room_id]
    page = hs.client.get(f"{V3}/publicRooms?limit=1").json()
    assert len(page["chunk"]) == 1 and "next_batch" in page


def test_room_survives_actor_eviction_and_restart(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        hs = Harness(client)
        alice = hs.user("alice")
        room_id = hs.create_room(alice, preset="public_chat")
        first = hs.send(alice, room_id, {"body": "1"}, "t1").json()["event_id"]
        hs.call(hs.env.ROOMS.evict, hs.env.ROOMS.id_from_name(room_id).hex)
        second = hs.send(alice, room_id, {"body": "2"}, "t2").json()["event_id"]
        before = hs.summary(room_id)
        assert before["extremities"] == [second]
    with TestClient(make_app(tmp_path)) as client:  # a new process, same data
        hs = Harness(client)
        alice = {"Authorization": "Bearer tok_alice"}
        assert hs.summary(room_id) == before
        assert hs.send(alice, room_id, {"body": "1"}, "t1").json()["event_id"] == first
        third = hs.send(alice, room_id, {"body": "3"}, "t3").json()["event_id"]

        async def prev_events(event_id: str) -> list[str]:
            import json
            row = await hs.env.DB.prepare("SELECT json FROM events WHERE event_id = ?").bind(event_id).first()
            return json.loads(row["json"])["prev_events"]

        assert hs.call(prev_events, third) == [second]


def test_a_server_acl_may_not_deny_this_server(hs: Harness) -> None:
    """As Synapse: an ACL that shuts out our own server is refused (400), in a state PUT
    and in createRoom's initial_state; an ACL that allows us is accepted."""
    alice = hs.user("alice")
    room_id = hs.create_room(alice)
    for content in ({"allow": ["*"], "deny": [SERVER]}, {"allow": []}, {"allow": ["other.test"]},
                    {"allow": ["*"], "deny": ["HS.*"]}):
        response = hs.state_put(alice, room_id, "m.room.server_acl", content)
        assert response.status_code == 400, content
        assert response.json()["errcode"] == "M_UNKNOWN"
    assert hs.state_content(room_id, "m.room.server_acl") is None  # nothing changed
    assert hs.state_put(alice, room_id, "m.room.server_acl", {"allow": ["*"], "deny": ["evil.test"]}).status_code == 200
    assert hs.state_content(room_id, "m.room.server_acl") == {"allow": ["*"], "deny": ["evil.test"]}
    refused = hs.client.post(f"{V3}/createRoom", headers=alice, json={
        "initial_state": [{"type": "m.room.server_acl", "state_key": "", "content": {"allow": ["other.test"]}}]})
    assert refused.status_code == 400
