"""Client /keys/query and /keys/claim for users of other servers (spec: client-server "Key
management API", server-server "Device Management"): asked per server, in parallel, within
the timeout; unreachable servers in ``failures``; device lists of users sharing a room
cached from /user/devices; what a server answers is checked."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from tests.federation.conftest import FedApp
from tests.federation.e2ee_support import LocalUser, peer_joins
from tests.federation.peers import ForgedPeer, PeerNetwork, make_signing_key
from signedjson.key import encode_verify_key_base64, get_verify_key
from signedjson.sign import sign_json

BOB = "@bob:remote.test"
CAROL = "@carol:other.test"


def remote_device_keys(user_id: str, device_id: str) -> dict[str, Any]:
    key = make_signing_key(device_id)
    keys = {"user_id": user_id, "device_id": device_id, "algorithms": ["m.megolm.v1.aes-sha2"],
            "keys": {f"ed25519:{device_id}": encode_verify_key_base64(get_verify_key(key))}}
    return sign_json(keys, user_id, key)


def master_key(user_id: str) -> dict[str, Any]:
    public = encode_verify_key_base64(get_verify_key(make_signing_key()))
    return {"user_id": user_id, "usage": ["master"], "keys": {f"ed25519:{public}": public}}


class RemoteDevices:
    """The peer's answer to /user/devices, counting requests."""

    def __init__(self, user_id: str, stream_id: int, device_ids: list[str]) -> None:
        self.user_id = user_id
        self.stream_id = stream_id
        self.devices = {d: remote_device_keys(user_id, d) for d in device_ids}
        self.master = master_key(user_id)
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(200, json={
            "user_id": self.user_id, "stream_id": self.stream_id, "master_key": self.master,
            "devices": [{"device_id": d, "keys": k} for d, k in self.devices.items()],
        })


@pytest.fixture
def alice(fed: FedApp) -> LocalUser:
    return LocalUser(fed, "alice")


@pytest.fixture
def bob_devices(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> RemoteDevices:
    """bob of remote.test shares a room with alice; the peer serves his devices."""
    peer_joins(fed, peer, alice.create_room(), BOB)
    answer = RemoteDevices(BOB, 7, ["B1", "B2"])
    fed.network.handlers[("remote.test", f"/_matrix/federation/v1/user/devices/{BOB}")] = answer
    return answer


def test_shared_room_user_is_fetched_once_then_cached(
    fed: FedApp, alice: LocalUser, bob_devices: RemoteDevices
) -> None:
    first = alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})
    assert first["failures"] == {}
    assert first["device_keys"][BOB] == bob_devices.devices
    assert first["master_keys"][BOB] == bob_devices.master
    again = alice.ok("POST", "/keys/query", {"device_keys": {BOB: ["B2"]}})
    assert again["device_keys"][BOB] == {"B2": bob_devices.devices["B2"]}
    assert bob_devices.requests == 1


def test_users_sharing_no_room_are_asked_each_time(fed: FedApp, network: PeerNetwork, alice: LocalUser) -> None:
    network.add(ForgedPeer("other.test"))
    asked: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        return httpx.Response(200, json={
            "device_keys": {
                CAROL: {"C1": remote_device_keys(CAROL, "C1"),
                        "C2": remote_device_keys(CAROL, "NOT_C2"),  # names another device: dropped
                        "C3": remote_device_keys("@mallory:other.test", "C3")},
                "@dave:other.test": {"D1": remote_device_keys("@dave:other.test", "D1")},  # not asked
            },
            "master_keys": {CAROL: master_key("@mallory:other.test")},  # not carol's: dropped
        })

    network.handlers[("other.test", "/_matrix/federation/v1/user/keys/query")] = answer
    for _ in range(2):
        found = alice.ok("POST", "/keys/query", {"device_keys": {CAROL: []}})
        assert list(found["device_keys"]) == [CAROL]
        assert list(found["device_keys"][CAROL]) == ["C1"]
        assert found["master_keys"] == {} and found["failures"] == {}
    assert asked == [{"device_keys": {CAROL: []}}] * 2


def test_unreachable_and_slow_servers_are_failures(
    fed: FedApp, network: PeerNetwork, alice: LocalUser, bob_devices: RemoteDevices
) -> None:
    slow = network.add(ForgedPeer("slow.test"))

    async def hang(request: httpx.Request) -> httpx.Response:  # MockTransport awaits it
        await asyncio.sleep(10)
        return httpx.Response(200, json={"device_keys": {}})

    network.handlers[("slow.test", "/_matrix/federation/v1/user/keys/query")] = hang  # type: ignore[assignment]
    started = time.monotonic()
    found = alice.ok("POST", "/keys/query", {"timeout": 500, "device_keys": {
        BOB: [], "@x:slow.test": [], "@y:unknown.test": []}})
    assert time.monotonic() - started < 4
    assert found["device_keys"][BOB] == bob_devices.devices  # the reachable server still answers
    assert set(found["failures"]) == {"slow.test", "unknown.test"}
    assert all(f["status"] == 503 for f in found["failures"].values())
    assert slow.server_name not in found["device_keys"]


def test_remote_claim(fed: FedApp, network: PeerNetwork, peer: ForgedPeer, alice: LocalUser) -> None:
    asked: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        return httpx.Response(200, json={"one_time_keys": {
            BOB: {"B1": {"signed_curve25519:AAAA": {"key": "k", "signatures": {}}},
                  "B2": {"curve25519:BBBB": "wrong algorithm"},
                  "B9": {"signed_curve25519:CCCC": {"key": "not asked"}}},
        }})

    network.handlers[("remote.test", "/_matrix/federation/v1/user/keys/claim")] = answer
    wanted = {BOB: {"B1": "signed_curve25519", "B2": "signed_curve25519"}, "@z:unknown.test": {"Z": "signed_curve25519"}}
    claimed = alice.ok("POST", "/keys/claim", {"one_time_keys": wanted})
    assert asked == [{"one_time_keys": {BOB: wanted[BOB]}}]
    assert claimed["one_time_keys"] == {BOB: {"B1": {"signed_curve25519:AAAA": {"key": "k", "signatures": {}}}}}
    assert list(claimed["failures"]) == ["unknown.test"]


def test_remote_server_error_is_a_failure_without_its_text(
    fed: FedApp, network: PeerNetwork, peer: ForgedPeer, alice: LocalUser
) -> None:
    network.handlers[("remote.test", "/_matrix/federation/v1/user/keys/claim")] = (
        lambda request: httpx.Response(500, json={"errcode": "M_UNKNOWN", "error": "secret remote text"}))
    claimed = alice.request("POST", "/keys/claim", {"one_time_keys": {BOB: {"B1": "signed_curve25519"}}})
    assert claimed.status_code == 200
    assert claimed.json()["failures"]["remote.test"]["status"] == 500
    assert "secret remote text" not in claimed.text
