"""What a forged peer cannot do to a room on our server (spec: server-server "Checks
performed on receipt of a PDU", "Transactions", "Request Authentication"): PDUs with a bad
signature are dropped, a bad content hash gets the event redacted, events failing the auth
rules are rejected, events whose prev_events cannot be fetched are not taken in; requests
without a valid X-Matrix header are refused. None of these changes the room's state."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import pytest

from durable.events import sign_event
from durable.room_versions import get_room_version
from tests.federation.conftest import OURS, FedApp
from tests.federation.forged_rooms import (
    federation_request,
    forge_in_our_room,
    peer_joins,
    room_summary,
    send_transaction,
)
from tests.federation.peers import ForgedPeer, make_signing_key

V3 = "/_matrix/client/v3"
MALLORY = "@mallory:remote.test"


@pytest.fixture
def room(fed: FedApp, peer: ForgedPeer) -> dict[str, Any]:
    """A public room of ours that the peer's user has joined."""
    body = {"username": "alice", "password": "pw pw pw 1", "auth": {"type": "m.login.dummy"}}
    token = fed.client.post(f"{V3}/register", json=body).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    room_id = fed.client.post(f"{V3}/createRoom", json={"preset": "public_chat"}, headers=headers).json()["room_id"]
    peer_joins(fed, peer, room_id, MALLORY)
    return {"room_id": room_id, "headers": headers}


def _row(fed: FedApp, event_id: str) -> dict[str, Any] | None:
    return fed.call(fed.env.DB.prepare("SELECT * FROM events WHERE event_id = ?").bind(event_id).first)


def _message(fed: FedApp, peer: ForgedPeer, room_id: str, body: str = "hi") -> Any:
    return forge_in_our_room(fed, peer, room_id, MALLORY, "m.room.message", {"msgtype": "m.text", "body": body})


def test_a_valid_pdu_is_accepted(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    assert ["m.room.member", MALLORY] in [s[:2] for s in room_summary(fed, room_id)["state"]]
    event = _message(fed, peer, room_id)
    answer = send_transaction(fed, peer, [dict(event.pdu)])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"pdus": {event.event_id: {}}}
    assert room_summary(fed, room_id)["extremities"] == [event.event_id]


def test_bad_signature_is_dropped(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    event = forge_in_our_room(fed, peer, room_id, MALLORY, "m.room.power_levels",
                              {"users": {MALLORY: 100}}, "")
    pdu = {k: v for k, v in event.pdu.items() if k != "signatures"}
    version = get_room_version(before["room_version"])
    # Signed by a key with the peer's key ID that is not the peer's key.
    forged = sign_event(pdu, version, peer.server_name, make_signing_key(peer.signing_key.version))
    answer = send_transaction(fed, peer, [forged])
    assert answer.status_code == 200
    error = answer.json()["pdus"][event.event_id]["error"]
    assert "dropped" in error.lower() and "signature" in error
    assert _row(fed, event.event_id) is None
    assert room_summary(fed, room_id) == before


def test_missing_signature_is_dropped(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    event = _message(fed, peer, room_id)
    pdu = {**event.pdu, "signatures": {}}
    answer = send_transaction(fed, peer, [pdu])
    assert "dropped" in answer.json()["pdus"][event.event_id]["error"].lower()
    assert _row(fed, event.event_id) is None
    assert room_summary(fed, room_id) == before


def test_bad_content_hash_is_redacted(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    """The body of a message is not covered by the signature (it is redacted away), only by
    the content hash: a changed body keeps the signature valid, and the event is redacted."""
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    event = _message(fed, peer, room_id, "original")
    pdu = {**event.pdu, "content": {"msgtype": "m.text", "body": "tampered"}}
    answer = send_transaction(fed, peer, [pdu])
    assert answer.json()["pdus"][event.event_id] == {}
    row = _row(fed, event.event_id)
    assert row is not None and json.loads(row["json"])["content"] == {}
    after = room_summary(fed, room_id)
    assert after["state"] == before["state"]
    served = fed.client.get(
        f"{V3}/rooms/{urllib.parse.quote(room_id)}/event/{urllib.parse.quote(event.event_id)}",
        headers=room["headers"],
    ).json()
    assert served["content"] == {}


def test_state_event_without_power_is_rejected(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    event = forge_in_our_room(fed, peer, room_id, MALLORY, "m.room.power_levels",
                              {"users": {MALLORY: 100}}, "")
    answer = send_transaction(fed, peer, [dict(event.pdu)])
    error = answer.json()["pdus"][event.event_id]["error"]
    assert "rejected" in error.lower()
    row = _row(fed, event.event_id)
    assert row is not None and row["rejected_reason"] is not None
    assert room_summary(fed, room_id) == before
    # A later event citing the rejected one as an auth event is rejected too.
    state = {(t, k): e for t, k, e in before["state"]}
    topic = forge_in_our_room(fed, peer, room_id, MALLORY, "m.room.topic", {"topic": "mine"}, "",
                              auth=[event.event_id, state[("m.room.member", MALLORY)]])
    answer = send_transaction(fed, peer, [dict(topic.pdu)])
    assert "rejected" in answer.json()["pdus"][topic.event_id]["error"].lower()
    assert room_summary(fed, room_id)["state"] == before["state"]


def test_kick_without_power_is_rejected(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    alice = f"@alice:{OURS}"
    event = forge_in_our_room(fed, peer, room_id, MALLORY, "m.room.member", {"membership": "ban"}, alice)
    answer = send_transaction(fed, peer, [dict(event.pdu)])
    assert "rejected" in answer.json()["pdus"][event.event_id]["error"].lower()
    assert room_summary(fed, room_id) == before


def test_unfetchable_prev_events(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    unknown = "$" + "A" * 43
    event = forge_in_our_room(fed, peer, room_id, MALLORY, "m.room.message",
                              {"msgtype": "m.text", "body": "orphan"}, prev=[unknown])
    answer = send_transaction(fed, peer, [dict(event.pdu)])
    assert answer.status_code == 200
    assert "missing" in answer.json()["pdus"][event.event_id]["error"].lower()
    paths = [r.url.path for r in fed.network.requests if r.headers["host"] == "remote.test"]
    assert any(p.startswith("/_matrix/federation/v1/get_missing_events/") for p in paths)
    row = _row(fed, event.event_id)
    assert row is None or row["outlier"] == 1
    assert room_summary(fed, room_id) == before


def test_transaction_without_x_matrix_is_401(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    event = _message(fed, peer, room_id)
    body = {"origin": peer.server_name, "origin_server_ts": int(time.time() * 1000), "pdus": [dict(event.pdu)]}
    response = fed.client.put("/_matrix/federation/v1/send/no-auth", json=body)
    assert (response.status_code, response.json()["errcode"]) == (401, "M_UNAUTHORIZED")
    uri = "/_matrix/federation/v1/send/wrong-key"
    header = peer.authorization(OURS, "PUT", uri, body, signing_key=make_signing_key(peer.signing_key.version))
    response = fed.client.put(uri, json=body, headers={"Authorization": header})
    assert (response.status_code, response.json()["errcode"]) == (401, "M_UNAUTHORIZED")
    other_body = {**body, "pdus": []}  # signed for another body
    header = peer.authorization(OURS, "PUT", uri, other_body)
    response = fed.client.put(uri, json=body, headers={"Authorization": header})
    assert response.status_code == 401
    assert _row(fed, event.event_id) is None
    assert room_summary(fed, room_id) == before


def test_transaction_idempotency(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    first = _message(fed, peer, room_id, "first")
    answer = send_transaction(fed, peer, [dict(first.pdu)], txn_id="same")
    assert answer.json() == {"pdus": {first.event_id: {}}}
    # The same txnId again, even with another body: the first answer, nothing processed.
    second = _message(fed, peer, room_id, "second")
    again = send_transaction(fed, peer, [dict(second.pdu)], txn_id="same")
    assert again.json() == answer.json()
    assert _row(fed, second.event_id) is None
    assert room_summary(fed, room_id)["extremities"] == [first.event_id]
    # Another origin's txnId of the same name is its own transaction.
    other = fed.network.add(ForgedPeer("other.test"))
    stranger = forge_in_our_room(fed, other, room_id, "@eve:other.test", "m.room.message",
                                 {"msgtype": "m.text", "body": "not joined"})
    theirs = send_transaction(fed, other, [dict(stranger.pdu)], txn_id="same")
    assert "rejected" in theirs.json()["pdus"][stranger.event_id]["error"].lower()


def test_too_many_pdus_are_refused(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    events = [_message(fed, peer, room_id, f"m{i}") for i in range(51)]
    answer = send_transaction(fed, peer, [dict(e.pdu) for e in events])
    assert (answer.status_code, answer.json()["errcode"]) == (400, "M_BAD_JSON")
    assert all(_row(fed, e.event_id) is None for e in events)
    assert room_summary(fed, room_id) == before
    edus = [{"edu_type": "m.typing", "content": {}}] * 101
    answer = send_transaction(fed, peer, [], edus=edus)
    assert answer.status_code == 400


def test_pdus_for_unknown_rooms_are_ignored(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    room_id = room["room_id"]
    event = _message(fed, peer, room_id)
    pdu = {**event.pdu, "room_id": "!unknown:remote.test"}
    answer = send_transaction(fed, peer, [pdu, dict(event.pdu)])
    assert answer.status_code == 200
    assert answer.json() == {"pdus": {event.event_id: {}}}
    count = fed.call(fed.env.DB.prepare(
        "SELECT count(*) AS n FROM events WHERE room_id = '!unknown:remote.test'").first, "n")
    assert count == 0


def test_a_pdu_from_a_server_not_its_senders_is_not_accepted(
    fed: FedApp, peer: ForgedPeer, room: dict[str, Any],
) -> None:
    """An event claiming a sender of another server must carry that server's signature."""
    room_id = room["room_id"]
    before = room_summary(fed, room_id)
    alice = f"@alice:{OURS}"
    event = forge_in_our_room(fed, peer, room_id, alice, "m.room.message", {"msgtype": "m.text", "body": "fake"})
    answer = send_transaction(fed, peer, [dict(event.pdu)])
    assert "dropped" in answer.json()["pdus"][event.event_id]["error"].lower()
    assert room_summary(fed, room_id) == before


def test_make_join_for_another_servers_user_is_refused(fed: FedApp, peer: ForgedPeer, room: dict[str, Any]) -> None:
    q = urllib.parse.quote
    response = federation_request(
        fed, peer, "GET", f"/_matrix/federation/v1/make_join/{q(room['room_id'], safe='')}/{q('@x:' + OURS, safe='')}",
        query={"ver": ["12"]},
    )
    assert response.status_code == 403


