"""EDUs from another server reaching our users through /sync (spec: server-server "EDUs",
"Typing Notifications", "Receipts", "Presence", "Send-to-device messaging", "Device
Management", "End-to-End Encryption"), and the ones a server may not send: about another
server's users, about rooms the user is not in, for users we do not have."""

from __future__ import annotations

from typing import Any

import pytest

from tests.federation.conftest import FedApp
from tests.federation.e2ee_support import LocalUser, peer_joins, send_edus
from tests.federation.peers import ForgedPeer
from tests.federation.test_remote_keys import BOB, RemoteDevices, master_key, remote_device_keys

EVE = "@eve:evil.test"  # a user of another server, named by remote.test


@pytest.fixture
def alice(fed: FedApp) -> LocalUser:
    user = LocalUser(fed, "alice")
    user.sync()
    return user


@pytest.fixture
def room_id(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> str:
    room = alice.create_room()
    peer_joins(fed, peer, room, BOB)
    alice.sync()
    return room


def _ephemeral(body: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    return room.get("ephemeral", {}).get("events", [])


def test_typing(fed: FedApp, peer: ForgedPeer, alice: LocalUser, room_id: str) -> None:
    other_room = alice.create_room()
    alice.sync()
    send_edus(fed, peer, [
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": EVE, "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": other_room, "user_id": BOB, "typing": True}},
    ])
    body = alice.sync()
    assert _ephemeral(body, room_id) == [] and _ephemeral(body, other_room) == []
    send_edus(fed, peer, [{"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": BOB, "typing": True}}])
    assert _ephemeral(alice.sync(), room_id) == [{"type": "m.typing", "content": {"user_ids": [BOB]}}]
    send_edus(fed, peer, [{"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": BOB, "typing": False}}])
    assert _ephemeral(alice.sync(), room_id) == [{"type": "m.typing", "content": {"user_ids": []}}]


def test_receipts(fed: FedApp, peer: ForgedPeer, alice: LocalUser, room_id: str) -> None:
    event_id = alice.ok("PUT", f"/rooms/{room_id}/send/m.room.message/r1", {"msgtype": "m.text", "body": "x"})["event_id"]
    other_room = alice.create_room()
    alice.sync()

    def receipt(room: str, user: str, receipt_type: str = "m.read") -> dict[str, Any]:
        data = {"event_ids": [event_id], "data": {"ts": 1234, "thread_id": "main"}}
        return {"edu_type": "m.receipt", "content": {room: {receipt_type: {user: data}}}}

    send_edus(fed, peer, [receipt(room_id, EVE), receipt(other_room, BOB), receipt(room_id, BOB, "m.read.private")])
    body = alice.sync()
    assert _ephemeral(body, room_id) == [] and _ephemeral(body, other_room) == []
    send_edus(fed, peer, [receipt(room_id, BOB)])
    assert _ephemeral(alice.sync(), room_id) == [{"type": "m.receipt", "content": {
        event_id: {"m.read": {BOB: {"ts": 1234, "thread_id": "main"}}}}}]


def test_presence(fed: FedApp, peer: ForgedPeer, alice: LocalUser, room_id: str) -> None:
    def push(user: str) -> dict[str, Any]:
        return {"edu_type": "m.presence", "content": {"push": [
            {"user_id": user, "presence": "unavailable", "status_msg": "lunch", "last_active_ago": 5000,
             "currently_active": False}]}}

    send_edus(fed, peer, [push(EVE), push("@stranger:remote.test")])  # another server's; shares no room
    assert alice.sync()["presence"]["events"] == []
    send_edus(fed, peer, [push(BOB)])
    [event] = alice.sync()["presence"]["events"]
    assert event["sender"] == BOB
    assert event["content"]["presence"] == "unavailable" and event["content"]["status_msg"] == "lunch"
    assert 5000 <= event["content"]["last_active_ago"] < 60_000


def test_to_device(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    second = LocalUser(fed, "alice", login=True)
    second.sync()

    def message(message_id: str, messages: dict[str, Any], sender: str = BOB) -> dict[str, Any]:
        return {"edu_type": "m.direct_to_device", "content": {
            "sender": sender, "type": "m.room_key_request", "message_id": message_id, "messages": messages}}

    send_edus(fed, peer, [
        message("m1", {alice.user_id: {alice.device_id: {"n": 1}}}),
        message("m1", {alice.user_id: {alice.device_id: {"n": 1}}}),  # a repeat
        message("m2", {alice.user_id: {"*": {"n": 2}}, "@nobody:ours.test": {"*": {"n": 3}},
                       "@carol:elsewhere.test": {"*": {"n": 4}}}),
        message("m3", {alice.user_id: {"*": {"n": 5}}}, sender=EVE),  # spoofed sender
        message("m4", {alice.user_id: {"NO_SUCH_DEVICE": {"n": 6}}}),
    ])
    events = alice.sync()["to_device"]["events"]
    assert events == [{"type": "m.room_key_request", "sender": BOB, "content": {"n": 1}},
                      {"type": "m.room_key_request", "sender": BOB, "content": {"n": 2}}]
    assert [e["content"] for e in second.sync()["to_device"]["events"]] == [{"n": 2}]


def test_device_list_updates(fed: FedApp, peer: ForgedPeer, alice: LocalUser, room_id: str) -> None:
    devices = RemoteDevices(BOB, 7, ["B1"])
    fed.network.handlers[("remote.test", f"/_matrix/federation/v1/user/devices/{BOB}")] = devices
    assert list(alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})["device_keys"][BOB]) == ["B1"]
    alice.sync()

    # The next update in the sequence: applied to the cache, no request.
    b2 = remote_device_keys(BOB, "B2")
    send_edus(fed, peer, [{"edu_type": "m.device_list_update", "content": {
        "user_id": BOB, "device_id": "B2", "stream_id": 8, "prev_id": [7], "deleted": False, "keys": b2}}])
    assert BOB in alice.sync()["device_lists"]["changed"]
    found = alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})["device_keys"][BOB]
    assert found == {"B1": devices.devices["B1"], "B2": b2}
    assert devices.requests == 1

    # A deletion, then an update about another server's user (ignored).
    send_edus(fed, peer, [
        {"edu_type": "m.device_list_update", "content": {
            "user_id": BOB, "device_id": "B1", "stream_id": 9, "prev_id": [8], "deleted": True}},
        {"edu_type": "m.device_list_update", "content": {
            "user_id": EVE, "device_id": "E1", "stream_id": 1, "prev_id": [], "keys": remote_device_keys(EVE, "E1")}},
    ])
    changed = alice.sync()["device_lists"]["changed"]
    assert BOB in changed and EVE not in changed
    assert list(alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})["device_keys"][BOB]) == ["B2"]

    # An update whose prev_id we never saw: the whole list is fetched again.
    devices.stream_id, devices.devices = 12, {"B3": remote_device_keys(BOB, "B3")}
    send_edus(fed, peer, [{"edu_type": "m.device_list_update", "content": {
        "user_id": BOB, "device_id": "B3", "stream_id": 12, "prev_id": [11], "keys": devices.devices["B3"]}}])
    assert devices.requests == 2
    assert BOB in alice.sync()["device_lists"]["changed"]
    assert list(alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})["device_keys"][BOB]) == ["B3"]


def test_signing_key_update(fed: FedApp, peer: ForgedPeer, alice: LocalUser, room_id: str) -> None:
    devices = RemoteDevices(BOB, 3, ["B1"])
    fed.network.handlers[("remote.test", f"/_matrix/federation/v1/user/devices/{BOB}")] = devices
    alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})
    alice.sync()
    new_master = master_key(BOB)
    send_edus(fed, peer, [
        {"edu_type": "m.signing_key_update", "content": {"user_id": EVE, "master_key": master_key(EVE)}},
        {"edu_type": "m.signing_key_update", "content": {"user_id": BOB, "master_key": master_key(EVE)}},
    ])
    assert alice.sync()["device_lists"]["changed"] == []  # neither was accepted
    send_edus(fed, peer, [{"edu_type": "m.signing_key_update", "content": {"user_id": BOB, "master_key": new_master}}])
    assert alice.sync()["device_lists"]["changed"] == [BOB]
    assert alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})["master_keys"][BOB] == new_master
    assert devices.requests == 1


def test_unknown_and_malformed_edus_do_not_fail_the_transaction(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    send_edus(fed, peer, [
        {"edu_type": "m.unknown", "content": {}},
        {"edu_type": "m.typing", "content": "not an object"},
        {"edu_type": "m.receipt", "content": {"!r:x": "no"}},
        {"edu_type": "m.presence", "content": {"push": "no"}},
        {"edu_type": "m.direct_to_device", "content": {"sender": BOB}},
        {"edu_type": "m.device_list_update", "content": {"user_id": BOB, "stream_id": "x"}},
    ])


def test_unsigned_transaction_is_refused_and_delivers_nothing(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    edu = {"edu_type": "m.direct_to_device", "content": {
        "sender": BOB, "type": "m.test", "message_id": "u1", "messages": {alice.user_id: {"*": {"n": 1}}}}}
    body = {"origin": peer.server_name, "origin_server_ts": 1, "pdus": [], "edus": [edu]}
    response = fed.client.put("/_matrix/federation/v1/send/unsigned1", json=body)
    assert (response.status_code, response.json()["errcode"]) == (401, "M_UNAUTHORIZED")
    assert alice.sync()["to_device"]["events"] == []
