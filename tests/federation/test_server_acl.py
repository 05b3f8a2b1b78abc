"""A room's server ACL applied to a forged peer's requests (spec: server-server "Server
Access Control Lists (ACLs)"): the listed endpoints answer 403 M_FORBIDDEN to a denied
server, its PDUs for the room are refused one by one in /send while those of other rooms
go through, its typing and receipt EDUs for the room are ignored; once the ACL allows the
server again, the same requests work."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.federation.conftest import FedApp
from tests.federation.e2ee_support import LocalUser, federation_request, peer_joins, q, send_edus
from tests.federation.forged_rooms import forge_in_our_room, send_transaction
from tests.federation.peers import ForgedPeer

BOB = "@bob:remote.test"
CAROL = "@carol:remote.test"
DENY_REMOTE = {"allow": ["*"], "deny": ["*.evil.test", "REMOTE.test"], "allow_ip_literals": False}
ALLOW_REMOTE = {"allow": ["*"], "deny": ["*.evil.test"], "allow_ip_literals": False}


@pytest.fixture
def alice(fed: FedApp) -> LocalUser:
    user = LocalUser(fed, "alice")
    user.sync()
    return user


def _public_room(alice: LocalUser) -> str:
    room_id: str = alice.ok("POST", "/createRoom", {"preset": "public_chat"})["room_id"]
    return room_id


@pytest.fixture
def rooms(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> tuple[str, str]:
    """Two public rooms of alice's that bob (on the peer) has joined; the first denies the
    peer with its server ACL, the second has none."""
    denied, open_room = _public_room(alice), _public_room(alice)
    for room_id in (denied, open_room):
        peer_joins(fed, peer, room_id, BOB)
    set_acl(alice, denied, DENY_REMOTE)
    alice.sync()
    return denied, open_room


def set_acl(alice: LocalUser, room_id: str, content: dict[str, Any]) -> str:
    event_id: str = alice.ok("PUT", f"/rooms/{q(room_id)}/state/m.room.server_acl", content)["event_id"]
    return event_id


def _endpoint_requests(room_id: str, event_id: str) -> list[tuple[str, str, Any, dict[str, Any] | None]]:
    """(method, path, body, query) of every endpoint the spec says to protect."""
    r, e = q(room_id), q(event_id)
    v1, v2 = "/_matrix/federation/v1", "/_matrix/federation/v2"
    versions = {"ver": ["10", "11", "12"]}
    return [
        ("GET", f"{v1}/make_join/{r}/{q(CAROL)}", None, versions),
        ("GET", f"{v1}/make_leave/{r}/{q(BOB)}", None, None),
        ("GET", f"{v1}/make_knock/{r}/{q(CAROL)}", None, versions),
        ("PUT", f"{v1}/send_join/{r}/{e}", {}, None),
        ("PUT", f"{v2}/send_join/{r}/{e}", {}, None),
        ("PUT", f"{v1}/send_leave/{r}/{e}", {}, None),
        ("PUT", f"{v2}/send_leave/{r}/{e}", {}, None),
        ("PUT", f"{v1}/send_knock/{r}/{e}", {}, None),
        ("PUT", f"{v1}/invite/{r}/{e}", {}, None),
        ("PUT", f"{v2}/invite/{r}/{e}", {"room_version": "11", "event": {}, "invite_room_state": []}, None),
        ("GET", f"{v1}/state/{r}", None, {"event_id": event_id}),
        ("GET", f"{v1}/state_ids/{r}", None, {"event_id": event_id}),
        ("GET", f"{v1}/backfill/{r}", None, {"v": event_id, "limit": "5"}),
        ("GET", f"{v1}/event_auth/{r}/{e}", None, None),
        ("POST", f"{v1}/get_missing_events/{r}", {"earliest_events": [], "latest_events": [event_id]}, None),
    ]


def test_protected_endpoints_refuse_a_denied_server(
    fed: FedApp, peer: ForgedPeer, alice: LocalUser, rooms: tuple[str, str]
) -> None:
    denied, _ = rooms
    message = alice.ok("PUT", f"/rooms/{q(denied)}/send/m.room.message/m1", {"msgtype": "m.text", "body": "x"})
    for method, path, body, query in _endpoint_requests(denied, message["event_id"]):
        response = federation_request(fed, peer, method, path, body, query)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["errcode"] == "M_FORBIDDEN", path
        assert "server ACL" in response.json()["error"], path  # not refused for another reason


def test_reads_work_again_once_allowed(fed: FedApp, peer: ForgedPeer, alice: LocalUser, rooms: tuple[str, str]) -> None:
    denied, _ = rooms
    event_id = alice.ok("PUT", f"/rooms/{q(denied)}/send/m.room.message/m1", {"msgtype": "m.text", "body": "x"})["event_id"]
    path = f"/_matrix/federation/v1/state_ids/{q(denied)}"
    make_join = f"/_matrix/federation/v1/make_join/{q(denied)}/{q(CAROL)}"
    versions = {"ver": ["10", "11", "12"]}
    assert federation_request(fed, peer, "GET", path, query={"event_id": event_id}).status_code == 403
    assert federation_request(fed, peer, "GET", make_join, query=versions).status_code == 403

    set_acl(alice, denied, ALLOW_REMOTE)
    state_ids = federation_request(fed, peer, "GET", path, query={"event_id": event_id})
    assert state_ids.status_code == 200, state_ids.text
    assert event_id not in state_ids.json()["pdu_ids"] and state_ids.json()["pdu_ids"]
    made = federation_request(fed, peer, "GET", make_join, query=versions)
    assert made.status_code == 200, made.text
    assert made.json()["event"]["state_key"] == CAROL
    peer_joins(fed, peer, denied, CAROL)  # the whole handshake, make_join then send_join


def _stored(fed: FedApp, event_id: str) -> bool:
    row = fed.call(fed.env.DB.prepare("SELECT 1 AS x FROM events WHERE event_id = ?").bind(event_id).first)
    return row is not None


def _message(fed: FedApp, peer: ForgedPeer, room_id: str, body: str) -> Any:
    return forge_in_our_room(fed, peer, room_id, BOB, "m.room.message", {"msgtype": "m.text", "body": body})


def test_send_refuses_pdus_of_a_denying_room_only(
    fed: FedApp, peer: ForgedPeer, alice: LocalUser, rooms: tuple[str, str]
) -> None:
    denied, open_room = rooms
    refused, accepted = _message(fed, peer, denied, "no"), _message(fed, peer, open_room, "yes")
    answer = send_transaction(fed, peer, [dict(refused.pdu), dict(accepted.pdu)])
    assert answer.status_code == 200, answer.text
    results = answer.json()["pdus"]
    assert results[accepted.event_id] == {}
    assert "server ACL" in results[refused.event_id]["error"]
    assert not _stored(fed, refused.event_id) and _stored(fed, accepted.event_id)

    set_acl(alice, denied, ALLOW_REMOTE)
    again = _message(fed, peer, denied, "now yes")
    answer = send_transaction(fed, peer, [dict(again.pdu)])
    assert answer.json() == {"pdus": {again.event_id: {}}}
    assert _stored(fed, again.event_id)


def _ephemeral(body: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    events: list[dict[str, Any]] = room.get("ephemeral", {}).get("events", [])
    return events


def _typing(room_id: str) -> dict[str, Any]:
    return {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": BOB, "typing": True}}


def test_typing_for_a_denying_room_is_dropped(
    fed: FedApp, peer: ForgedPeer, alice: LocalUser, rooms: tuple[str, str]
) -> None:
    denied, open_room = rooms
    send_edus(fed, peer, [_typing(denied), _typing(open_room)])
    body = alice.sync()
    assert _ephemeral(body, denied) == []
    assert _ephemeral(body, open_room) == [{"type": "m.typing", "content": {"user_ids": [BOB]}}]

    set_acl(alice, denied, ALLOW_REMOTE)
    alice.sync()
    send_edus(fed, peer, [_typing(denied)])
    assert {"type": "m.typing", "content": {"user_ids": [BOB]}} in _ephemeral(alice.sync(), denied)


def test_receipts_for_a_denying_room_are_dropped(
    fed: FedApp, peer: ForgedPeer, alice: LocalUser, rooms: tuple[str, str]
) -> None:
    denied, open_room = rooms
    ids = {room: alice.ok("PUT", f"/rooms/{q(room)}/send/m.room.message/r-{i}", {"msgtype": "m.text", "body": "x"})["event_id"]
           for i, room in enumerate(rooms)}
    alice.sync()
    data = {"ts": int(time.time() * 1000)}
    content = {room: {"m.read": {BOB: {"event_ids": [ids[room]], "data": data}}} for room in rooms}
    send_edus(fed, peer, [{"edu_type": "m.receipt", "content": content}])
    body = alice.sync()
    assert _ephemeral(body, denied) == []
    assert _ephemeral(body, open_room) == [
        {"type": "m.receipt", "content": {ids[open_room]: {"m.read": {BOB: data}}}}]

    set_acl(alice, denied, ALLOW_REMOTE)
    alice.sync()
    send_edus(fed, peer, [{"edu_type": "m.receipt", "content": {denied: content[denied]}}])
    assert _ephemeral(alice.sync(), denied) == [
        {"type": "m.receipt", "content": {ids[denied]: {"m.read": {BOB: data}}}}]
