"""``GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`` (spec: "Room Summaries", v1.15)."""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx
import pytest

from tests.federation.peers import ForgedPeer
from tests.workers.client_extras.conftest import SERVER, V1, ExtrasHarness
from workers.client.room_summary import summary_from_remote

REMOTE_ROOM = "!remote:remote.test"
FED_HIERARCHY = "/_matrix/federation/v1/hierarchy/"


def summary(hs: ExtrasHarness, identifier: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    path = f"{V1}/room_summary/{urllib.parse.quote(identifier, safe='')}"
    return hs.client.get(path, headers=headers or {}, params=params)


def assert_not_found(response: Any) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["errcode"] == "M_NOT_FOUND"


def test_public_room_without_a_token(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    room = hs.create_room(alice, preset="public_chat", name="Cheese", topic="Tasty", room_version="11")
    response = summary(hs, room)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "room_id": room, "name": "Cheese", "topic": "Tasty", "num_joined_members": 1,
        "world_readable": False, "guest_can_join": False, "join_rule": "public", "room_version": "11",
    }


def test_private_room_refused_to_strangers_shown_to_members(hs: ExtrasHarness) -> None:
    alice, bob, carol = hs.user("alice"), hs.user("bob"), hs.user("carol")
    room = hs.create_room(alice, preset="private_chat", name="Secret")
    assert_not_found(summary(hs, room))
    assert_not_found(summary(hs, room, bob))
    hs.invite(alice, room, f"@bob:{SERVER}")
    invited = summary(hs, room, bob)
    assert invited.status_code == 200, invited.text
    assert invited.json()["membership"] == "invite" and invited.json()["join_rule"] == "invite"
    hs.join(bob, room)
    joined = summary(hs, room, bob).json()
    assert joined["membership"] == "join" and joined["name"] == "Secret" and joined["num_joined_members"] == 2
    assert summary(hs, room, alice).json()["membership"] == "join"
    assert_not_found(summary(hs, room, carol))


def test_authenticated_non_member_sees_leave(hs: ExtrasHarness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = hs.create_room(alice, preset="public_chat")
    assert summary(hs, room, bob).json()["membership"] == "leave"
    hs.join(bob, room)
    hs.leave(bob, room)
    assert summary(hs, room, bob).json()["membership"] == "leave"


def test_banned_user_sees_only_world_readable_rooms(hs: ExtrasHarness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = hs.create_room(alice, preset="public_chat")
    hs.join(bob, room)
    response = hs.post(alice, f"/rooms/{room}/ban", {"user_id": f"@bob:{SERVER}"})
    assert response.status_code == 200, response.text
    assert_not_found(summary(hs, room, bob))
    assert summary(hs, room).status_code == 200  # still public to anyone else
    response = hs.state_put(alice, room, "m.room.history_visibility", {"history_visibility": "world_readable"})
    assert response.status_code == 200, response.text
    assert summary(hs, room, bob).json()["membership"] == "ban"


def test_world_readable_private_room_is_public_to_anyone(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    room = hs.create_room(alice, preset="private_chat", initial_state=[{
        "type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"},
    }])
    body = summary(hs, room).json()
    assert body["world_readable"] is True and body["join_rule"] == "invite" and "membership" not in body


def test_knockable_room_is_public_to_anyone(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    room = hs.create_room(alice, preset="private_chat", room_version="7", initial_state=[{
        "type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"},
    }])
    assert summary(hs, room).json()["join_rule"] == "knock"


def test_restricted_room_needs_membership_of_an_allowed_room(hs: ExtrasHarness) -> None:
    alice, bob, carol = hs.user("alice"), hs.user("bob"), hs.user("carol")
    space = hs.create_room(alice, preset="public_chat", creation_content={"type": "m.space"})
    room = hs.create_room(alice, preset="private_chat", room_version="10", initial_state=[{
        "type": "m.room.join_rules", "state_key": "",
        "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]},
    }])
    hs.join(bob, space)
    body = summary(hs, room, bob).json()
    assert body["join_rule"] == "restricted" and body["allowed_room_ids"] == [space]
    assert body["membership"] == "leave" and body["room_version"] == "10"
    assert_not_found(summary(hs, room, carol))
    assert_not_found(summary(hs, room))  # the spec allows unauthenticated access only to public, knock, world_readable


def test_encryption_and_room_type_are_reported(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    room = hs.create_room(alice, preset="public_chat", creation_content={"type": "m.space"}, initial_state=[{
        "type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"},
    }])
    body = summary(hs, room, alice).json()
    assert body["room_type"] == "m.space" and body["encryption"] == "m.megolm.v1.aes-sha2"
    assert "children_state" not in body


def test_alias_resolves(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    room = hs.create_room(alice, preset="public_chat", room_alias_name="cheese")
    body = summary(hs, f"#cheese:{SERVER}").json()
    assert body["room_id"] == room and body["canonical_alias"] == f"#cheese:{SERVER}"
    assert_not_found(summary(hs, f"#nothing:{SERVER}"))


@pytest.mark.parametrize("identifier", ["cheese", "@alice:hs.test", "#no-server", "!"])
def test_malformed_identifier_is_invalid_param(hs: ExtrasHarness, identifier: str) -> None:
    response = summary(hs, identifier)
    assert response.status_code == 400, response.text
    assert response.json()["errcode"] == "M_INVALID_PARAM"


def test_unknown_room_is_not_found(hs: ExtrasHarness) -> None:
    assert_not_found(summary(hs, f"!unknown:{SERVER}"))
    assert_not_found(summary(hs, f"!unknown:{SERVER}", hs.user("alice")))


def test_bad_token_is_still_refused(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    room = hs.create_room(alice, preset="public_chat")
    response = summary(hs, room, {"Authorization": "Bearer nope"})
    assert response.status_code == 401 and response.json()["errcode"] == "M_UNKNOWN_TOKEN"


# --- rooms on other servers --------------------------------------------------------------

def remote_room(**overrides: Any) -> dict[str, Any]:
    return {
        "room_id": REMOTE_ROOM, "name": "Far away", "num_joined_members": 3, "world_readable": False,
        "guest_can_join": False, "join_rule": "public", "room_version": "10", "children_state": [],
        **overrides,
    }


def serve_hierarchy(hs: ExtrasHarness, server: str, room: dict[str, Any] | None) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if room is None:
            return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})
        return httpx.Response(200, json={"room": room, "children": [], "inaccessible_children": []})

    hs.network.handlers[(server, FED_HIERARCHY + REMOTE_ROOM)] = handle
    return seen


def test_remote_room_is_fetched_over_federation(hs: ExtrasHarness, peer: ForgedPeer) -> None:
    seen = serve_hierarchy(hs, "remote.test", remote_room())
    body = summary(hs, REMOTE_ROOM, hs.user("bob")).json()
    assert body == {**{k: v for k, v in remote_room().items() if k != "children_state"}, "membership": "leave"}
    assert len(seen) == 1 and seen[0].url.params["suggested_only"] == "true"


def test_remote_room_through_via(hs: ExtrasHarness, peer: ForgedPeer) -> None:
    serve_hierarchy(hs, "remote.test", None)
    seen = serve_hierarchy(hs, "other.test", remote_room(encryption="m.megolm.v1.aes-sha2"))
    response = summary(hs, REMOTE_ROOM, hs.user("bob"), via=["other.test"])
    assert response.status_code == 200, response.text
    assert response.json()["encryption"] == "m.megolm.v1.aes-sha2" and len(seen) == 1


def test_remote_room_private_or_unauthenticated_is_not_found(hs: ExtrasHarness, peer: ForgedPeer) -> None:
    seen = serve_hierarchy(hs, "remote.test", remote_room(join_rule="invite"))
    assert_not_found(summary(hs, REMOTE_ROOM, hs.user("bob")))
    assert len(seen) == 1
    assert_not_found(summary(hs, REMOTE_ROOM))
    assert len(seen) == 1  # an unauthenticated caller causes no federation request


def test_remote_answer_for_another_room_is_ignored(hs: ExtrasHarness, peer: ForgedPeer) -> None:
    serve_hierarchy(hs, "remote.test", remote_room(room_id="!other:remote.test"))
    assert_not_found(summary(hs, REMOTE_ROOM, hs.user("bob")))


def test_summary_from_remote_keeps_typed_fields_only() -> None:
    room = remote_room(num_joined_members=True, topic=5, extra="x")
    assert summary_from_remote(REMOTE_ROOM, room) is None  # a bool is not a member count
    kept = summary_from_remote(REMOTE_ROOM, remote_room(topic=5, extra="x", join_rule=None))
    assert kept is not None and "topic" not in kept and "extra" not in kept
    assert kept["join_rule"] == "public"  # absent join_rule: assumed public
