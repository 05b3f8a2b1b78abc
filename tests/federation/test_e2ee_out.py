"""EDUs our server sends about its users (spec: server-server "Device Management",
"End-to-End Encryption", "Send-to-device messaging", "Typing Notifications", "Receipts",
"Presence"): to the servers sharing a room, through the destination queues."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.federation.conftest import FedApp
from tests.federation.e2ee_support import (
    LocalUser,
    federation_request,
    peer_joins,
    q,
    sent_edus,
    wait_for_edus,
)
from tests.federation.peers import ForgedPeer
from tests.federation.test_user_keys import _cross_signing
from workers.federation.e2ee_out import PRESENCE_EDUS_PER_MINUTE

BOB = "@bob:remote.test"


@pytest.fixture
def shared(fed: FedApp, peer: ForgedPeer) -> dict[str, Any]:
    """alice (ours, with device keys) and bob (of the peer) in a room of ours."""
    alice = LocalUser(fed, "alice")
    alice.upload_keys()
    room_id = alice.create_room()
    peer_joins(fed, peer, room_id, BOB)
    return {"alice": alice, "room_id": room_id}


def test_device_list_updates_form_a_chain(fed: FedApp, peer: ForgedPeer, shared: dict[str, Any]) -> None:
    alice: LocalUser = shared["alice"]
    # A second device of alice logs in and uploads keys.
    second = LocalUser(fed, "alice", login=True)
    second.upload_keys()
    [first_update] = wait_for_edus(peer, "m.device_list_update")
    assert first_update["user_id"] == alice.user_id
    assert first_update["device_id"] == second.device_id
    assert first_update["keys"] == second.device_keys()
    assert first_update["deleted"] is False

    # Deleting that device: the next update points at the first.
    deleted = second.request("POST", "/logout")
    assert deleted.status_code == 200, deleted.text
    updates = wait_for_edus(peer, "m.device_list_update", 2)
    assert updates[1]["deleted"] is True and updates[1]["device_id"] == second.device_id
    assert updates[1]["prev_id"] == [first_update["stream_id"]]
    assert updates[1]["stream_id"] > first_update["stream_id"]
    devices = federation_request(fed, peer, "GET", f"/_matrix/federation/v1/user/devices/{q(alice.user_id)}").json()
    assert devices["stream_id"] == updates[1]["stream_id"]
    assert [d["device_id"] for d in devices["devices"]] == [alice.device_id]


def test_no_updates_to_servers_sharing_no_room(fed: FedApp, peer: ForgedPeer) -> None:
    alice = LocalUser(fed, "alice")
    alice.upload_keys()
    alice.ok("PUT", f"/sendToDevice/m.test/t1", {"messages": {alice.user_id: {"*": {"a": 1}}}})
    time.sleep(0.3)
    assert peer.transactions == []


def test_signing_key_update(fed: FedApp, peer: ForgedPeer, shared: dict[str, Any]) -> None:
    alice: LocalUser = shared["alice"]
    keys = _cross_signing(alice)
    alice.ok("POST", "/keys/device_signing/upload", keys)
    [update] = wait_for_edus(peer, "m.signing_key_update")
    assert update == {"user_id": alice.user_id, "master_key": keys["master_key"],
                      "self_signing_key": keys["self_signing_key"]}


def test_to_device_for_remote_users_grouped_per_server(
    fed: FedApp, peer: ForgedPeer, shared: dict[str, Any]
) -> None:
    alice: LocalUser = shared["alice"]
    messages = {BOB: {"BOBDEV": {"n": 1}}, "@carol:remote.test": {"*": {"n": 2}}, alice.user_id: {"*": {"n": 3}}}
    alice.ok("PUT", "/sendToDevice/m.room_key_request/txn1", {"messages": messages})
    alice.ok("PUT", "/sendToDevice/m.room_key_request/txn1", {"messages": messages})  # a retry
    [edu] = wait_for_edus(peer, "m.direct_to_device")
    assert edu["sender"] == alice.user_id and edu["type"] == "m.room_key_request"
    assert edu["messages"] == {BOB: {"BOBDEV": {"n": 1}}, "@carol:remote.test": {"*": {"n": 2}}}
    assert isinstance(edu["message_id"], str) and 0 < len(edu["message_id"]) <= 32
    alice.ok("PUT", "/sendToDevice/m.room_key_request/txn2", {"messages": {BOB: {"BOBDEV": {"n": 4}}}})
    both = wait_for_edus(peer, "m.direct_to_device", 2)
    assert both[1]["message_id"] != edu["message_id"]
    time.sleep(0.2)
    assert len(sent_edus(peer, "m.direct_to_device")) == 2  # the retry sent nothing


def test_typing_and_public_receipts(fed: FedApp, peer: ForgedPeer, shared: dict[str, Any]) -> None:
    alice: LocalUser = shared["alice"]
    room_id = shared["room_id"]
    alice.ok("PUT", f"/rooms/{q(room_id)}/typing/{q(alice.user_id)}", {"typing": True, "timeout": 10000})
    [typing] = wait_for_edus(peer, "m.typing")
    assert typing == {"room_id": room_id, "user_id": alice.user_id, "typing": True}
    alice.ok("PUT", f"/rooms/{q(room_id)}/typing/{q(alice.user_id)}", {"typing": False})
    assert wait_for_edus(peer, "m.typing", 2)[1]["typing"] is False

    event_id = alice.ok("PUT", f"/rooms/{q(room_id)}/send/m.room.message/m1", {"msgtype": "m.text", "body": "hi"})["event_id"]
    alice.ok("POST", f"/rooms/{q(room_id)}/receipt/m.read.private/{q(event_id)}", {})
    alice.ok("POST", f"/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}", {})
    [receipt] = wait_for_edus(peer, "m.receipt")
    read = receipt[room_id]["m.read"][alice.user_id]
    assert read["event_ids"] == [event_id] and isinstance(read["data"]["ts"], int)
    assert set(receipt[room_id]) == {"m.read"}
    time.sleep(0.2)
    assert len(sent_edus(peer, "m.receipt")) == 1  # the private receipt stayed here


def test_presence_only_changes(fed: FedApp, peer: ForgedPeer, shared: dict[str, Any]) -> None:
    alice: LocalUser = shared["alice"]
    path = f"/presence/{q(alice.user_id)}/status"
    alice.ok("PUT", path, {"presence": "unavailable", "status_msg": "away"})
    [push] = wait_for_edus(peer, "m.presence")
    [update] = push["push"]
    assert update["user_id"] == alice.user_id
    assert (update["presence"], update["status_msg"]) == ("unavailable", "away")
    assert isinstance(update["last_active_ago"], int)
    alice.ok("PUT", path, {"presence": "unavailable", "status_msg": "away"})
    alice.ok("PUT", path, {"presence": "online"})
    pushes = wait_for_edus(peer, "m.presence", 2)
    time.sleep(0.2)
    assert len(sent_edus(peer, "m.presence")) == 2  # the repeat was not sent
    assert pushes[1]["push"][0]["presence"] == "online"


def test_typing_that_runs_out_is_sent_as_stopped(fed: FedApp, peer: ForgedPeer, shared: dict[str, Any]) -> None:
    alice: LocalUser = shared["alice"]
    room_id = shared["room_id"]
    alice.ok("PUT", f"/rooms/{q(room_id)}/typing/{q(alice.user_id)}", {"typing": True, "timeout": 200})
    updates = wait_for_edus(peer, "m.typing", 2)
    assert [u["typing"] for u in updates] == [True, False]


def test_presence_is_rate_limited(fed: FedApp, peer: ForgedPeer, shared: dict[str, Any]) -> None:
    alice: LocalUser = shared["alice"]
    for n in range(PRESENCE_EDUS_PER_MINUTE + 3):
        alice.ok("PUT", f"/presence/{q(alice.user_id)}/status", {"presence": "online", "status_msg": f"s{n}"})
    wait_for_edus(peer, "m.presence", PRESENCE_EDUS_PER_MINUTE)
    time.sleep(0.3)
    assert len(sent_edus(peer, "m.presence")) == PRESENCE_EDUS_PER_MINUTE


def test_renaming_a_device_sends_a_device_list_update(
    fed: FedApp, peer: ForgedPeer, shared: dict[str, Any]
) -> None:
    alice: LocalUser = shared["alice"]
    alice.ok("PUT", f"/devices/{alice.device_id}", {"display_name": "laptop"})
    [update] = wait_for_edus(peer, "m.device_list_update")
    assert update["user_id"] == alice.user_id and update["device_id"] == alice.device_id
    assert update["deleted"] is False
    # The keys go as other servers get them: our local display name stays here.
    assert update["keys"] == alice.device_keys()
    alice.ok("PUT", f"/devices/{alice.device_id}", {"display_name": "laptop"})  # no change
    time.sleep(0.2)
    assert len(sent_edus(peer, "m.device_list_update")) == 1
