"""End-to-end encryption and ephemeral data between our server and a real Synapse: in an
encrypted room shared by a user of each, device keys are queried and one-time keys claimed
both ways, to-device messages cross both ways, device-list changes show up in the other
side's /sync, typing and read receipts are seen across servers, and matrix-nio clients (one
on each server) exchange Megolm-encrypted messages that the other side decrypts.

Each side is a real homeserver: ours in a thread with its TLS federation listener, Synapse
from PyPI in a subprocess; everything crosses real federation requests.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from nio import AsyncClient, AsyncClientConfig, LoginResponse, RoomCreateResponse, RoomPreset
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from tests.clients.test_nio_e2ee import E2EClient
from tests.federation.local_server import LocalServer
from tests.federation.synapse_peer import PASSWORD, SynapsePeer

# A real Synapse in another process: under CI load, propagation can miss a deadline now and
# then (seen once in many runs, not reproduced). One bounded rerun keeps such a miss from
# failing the suite; a real bug fails every run.
pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=1, reruns_delay=2)]

DEADLINE_S = 20.0
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Device:
    """A logged-in device on either server, with an Ed25519 key and a /sync cursor."""

    def __init__(self, base_url: str, account: dict[str, Any]) -> None:
        self.user_id: str = account["user_id"]
        self.device_id: str = account["device_id"]
        self.http = httpx.Client(base_url=f"{base_url}/_matrix/client/v3",
                                 headers={"Authorization": f"Bearer {account['access_token']}"}, timeout=60)
        self.signing_key = generate_signing_key(self.device_id)
        self.since: str | None = None

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.http.request(method, path, json=body, params=params or None)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def device_keys(self) -> dict[str, Any]:
        keys = {
            "user_id": self.user_id, "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{self.device_id}": "c" + secrets.token_hex(21),
                     f"ed25519:{self.device_id}": encode_verify_key_base64(get_verify_key(self.signing_key))},
        }
        return sign_json(keys, self.user_id, self.signing_key)

    def upload_keys(self) -> dict[str, Any]:
        keys = self.device_keys()
        otks = {f"signed_curve25519:{self.device_id}{n}": sign_json(
            {"key": secrets.token_hex(16)}, self.user_id, self.signing_key) for n in range(2)}
        self.call("POST", "/keys/upload", {"device_keys": keys, "one_time_keys": otks})
        return {"device_keys": keys, "one_time_keys": otks}

    def sync_once(self, timeout_ms: int = 1000) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": timeout_ms}
        if self.since:
            params["since"] = self.since
        body = self.call("GET", "/sync", **params)
        self.since = body["next_batch"]
        return body

    def wait_for(self, predicate: Callable[[dict[str, Any]], Any], what: str) -> Any:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            found = predicate(self.sync_once())
            if found:
                return found
        raise AssertionError(f"{self.user_id} did not see {what} within {DEADLINE_S}s")


def _login(base_url: str, user_id: str) -> dict[str, Any]:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": PASSWORD}
    response = httpx.post(f"{base_url}/_matrix/client/v3/login", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _register_ours(ours: LocalServer, username: str) -> dict[str, Any]:
    body = {"username": username, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
    response = httpx.post(f"{ours.client_url}/_matrix/client/v3/register", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _ephemeral(body: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    events = body.get("rooms", {}).get("join", {}).get(room_id, {}).get("ephemeral", {}).get("events", [])
    return [e["content"] for e in events if e["type"] == event_type]


def _joined(body: dict[str, Any], room_id: str, user_id: str) -> bool:
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    events = room.get("timeline", {}).get("events", []) + room.get("state", {}).get("events", [])
    return any(e.get("type") == "m.room.member" and e.get("state_key") == user_id
               and e.get("content", {}).get("membership") == "join" for e in events)


@pytest.fixture(scope="module")
def pair(ours: LocalServer, synapse: SynapsePeer) -> Iterator[dict[str, Any]]:
    """alice (ours) and bob (Synapse), each with uploaded keys, in an encrypted room of ours."""
    alice = Device(ours.client_url, _register_ours(ours, "alice"))
    bob = Device(synapse.client_url, synapse.register("bob"))
    uploaded = {"alice": alice.upload_keys(), "bob": bob.upload_keys()}
    room_id = alice.call("POST", "/createRoom", {"preset": "public_chat", "initial_state": [ENCRYPTION]})["room_id"]
    bob.call("POST", f"/join/{q(room_id)}", {}, server_name=ours.server_name)
    alice.wait_for(lambda b: _joined(b, room_id, bob.user_id), "bob's join")
    bob.sync_once(0)
    yield {"alice": alice, "bob": bob, "room_id": room_id, "uploaded": uploaded}
    alice.http.close()
    bob.http.close()


def test_keys_query_both_ways(pair: dict[str, Any]) -> None:
    alice, bob = pair["alice"], pair["bob"]
    found = alice.call("POST", "/keys/query", {"device_keys": {bob.user_id: []}})
    assert found["failures"] == {}
    assert found["device_keys"][bob.user_id][bob.device_id]["keys"] == pair["uploaded"]["bob"]["device_keys"]["keys"]
    found = bob.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert found.get("failures", {}) == {}
    theirs = found["device_keys"][alice.user_id][alice.device_id]
    assert {k: v for k, v in theirs.items() if k != "unsigned"} == pair["uploaded"]["alice"]["device_keys"]


def test_keys_claim_both_ways(pair: dict[str, Any]) -> None:
    alice, bob = pair["alice"], pair["bob"]
    claimed = alice.call("POST", "/keys/claim", {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}})
    [(key_id, key)] = claimed["one_time_keys"][bob.user_id][bob.device_id].items()
    assert pair["uploaded"]["bob"]["one_time_keys"][key_id] == key
    claimed = bob.call("POST", "/keys/claim", {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
    [(key_id, key)] = claimed["one_time_keys"][alice.user_id][alice.device_id].items()
    assert pair["uploaded"]["alice"]["one_time_keys"][key_id] == key


def test_to_device_both_ways(pair: dict[str, Any]) -> None:
    alice, bob = pair["alice"], pair["bob"]

    def received(device: Device, sender: str, marker: str) -> Callable[[dict[str, Any]], bool]:
        return lambda b: any(e["sender"] == sender and e["content"].get("marker") == marker
                             for e in b.get("to_device", {}).get("events", []))

    alice.call("PUT", "/sendToDevice/m.test.ping/a1", {"messages": {bob.user_id: {bob.device_id: {"marker": "a1"}}}})
    bob.wait_for(received(bob, alice.user_id, "a1"), "alice's to-device message")
    bob.call("PUT", "/sendToDevice/m.test.ping/b1", {"messages": {alice.user_id: {"*": {"marker": "b1"}}}})
    alice.wait_for(received(alice, bob.user_id, "b1"), "bob's to-device message")


def _sees_device(watcher: Device, owner: str, device_id: str) -> Callable[[dict[str, Any]], bool]:
    """True once ``watcher`` was told ``owner``'s devices changed and /keys/query lists
    ``device_id``. A new device is announced twice (at login, then with its keys), and a
    client queries after each change, so the first notice may come before the keys."""
    def seen(body: dict[str, Any]) -> bool:
        if owner not in body.get("device_lists", {}).get("changed", []):
            return False
        found = watcher.call("POST", "/keys/query", {"device_keys": {owner: []}})
        return device_id in found["device_keys"].get(owner, {})
    return seen


def test_device_list_changes_both_ways(ours: LocalServer, synapse: SynapsePeer, pair: dict[str, Any]) -> None:
    alice, bob = pair["alice"], pair["bob"]
    alice.sync_once(0)
    bob.sync_once(0)
    alice2 = Device(ours.client_url, _login(ours.client_url, alice.user_id))
    bob2 = Device(synapse.client_url, _login(synapse.client_url, bob.user_id))
    try:
        alice2.upload_keys()
        bob.wait_for(_sees_device(bob, alice.user_id, alice2.device_id), "alice's new device")
        bob2.upload_keys()
        alice.wait_for(_sees_device(alice, bob.user_id, bob2.device_id), "bob's new device")
        found = alice.call("POST", "/keys/query", {"device_keys": {bob.user_id: []}})
        assert {bob.device_id, bob2.device_id} <= set(found["device_keys"][bob.user_id])
    finally:
        for device in (alice2, bob2):
            device.http.close()


def test_typing_and_receipts_both_ways(pair: dict[str, Any]) -> None:
    alice, bob, room_id = pair["alice"], pair["bob"], pair["room_id"]
    alice.call("PUT", f"/rooms/{q(room_id)}/typing/{q(alice.user_id)}", {"typing": True, "timeout": 20000})
    bob.wait_for(lambda b: any(alice.user_id in t["user_ids"] for t in _ephemeral(b, room_id, "m.typing")),
                 "alice typing")
    bob.call("PUT", f"/rooms/{q(room_id)}/typing/{q(bob.user_id)}", {"typing": True, "timeout": 20000})
    alice.wait_for(lambda b: any(bob.user_id in t["user_ids"] for t in _ephemeral(b, room_id, "m.typing")),
                   "bob typing")

    event_id = bob.call("PUT", f"/rooms/{q(room_id)}/send/m.room.message/r1", {"msgtype": "m.text", "body": "x"})["event_id"]
    alice.wait_for(lambda b: any(e.get("event_id") == event_id for e in b.get("rooms", {}).get("join", {})
                                 .get(room_id, {}).get("timeline", {}).get("events", [])), "bob's message")
    alice.call("POST", f"/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}", {})
    bob.wait_for(lambda b: any(alice.user_id in r.get(event_id, {}).get("m.read", {})
                               for r in _ephemeral(b, room_id, "m.receipt")), "alice's read receipt")
    mine = alice.call("PUT", f"/rooms/{q(room_id)}/send/m.room.message/r2", {"msgtype": "m.text", "body": "y"})["event_id"]
    bob.wait_for(lambda b: any(e.get("event_id") == mine for e in b.get("rooms", {}).get("join", {})
                               .get(room_id, {}).get("timeline", {}).get("events", [])), "alice's message")
    bob.call("POST", f"/rooms/{q(room_id)}/receipt/m.read/{q(mine)}", {})
    alice.wait_for(lambda b: any(bob.user_id in r.get(mine, {}).get("m.read", {})
                                 for r in _ephemeral(b, room_id, "m.receipt")), "bob's read receipt")


async def nio_login(base_url: str, user_id: str, store: Path, device_name: str) -> E2EClient:
    """A matrix-nio client with encryption on, logged in, its keys uploaded."""
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(base_url, user_id, store_path=str(store), config=AsyncClientConfig(
        encryption_enabled=True, store_sync_tokens=False, request_timeout=30))
    login = await client.login(PASSWORD, device_name=device_name)
    assert isinstance(login, LoginResponse), login
    e2e = E2EClient(client)
    await e2e.step()
    return e2e


async def test_nio_encrypted_messages_across_servers(
    ours: LocalServer, synapse: SynapsePeer, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)  # a rerun registers fresh users
    carol_account = _register_ours(ours, f"carol{suffix}")
    dave_account = synapse.register(f"dave{suffix}")
    carol = await nio_login(ours.client_url, carol_account["user_id"], tmp_path / "carol", "carol nio")
    dave = await nio_login(synapse.client_url, dave_account["user_id"], tmp_path / "dave", "dave nio")
    try:
        created = await carol.client.room_create(
            name="secret", preset=RoomPreset.public_chat, initial_state=[ENCRYPTION])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        joined = httpx.post(
            f"{synapse.client_url}/_matrix/client/v3/join/{q(room_id)}", params={"server_name": ours.server_name},
            headers={"Authorization": f"Bearer {dave.client.access_token}"}, json={}, timeout=60)
        assert joined.status_code == 200, joined.text
        await carol.until(lambda: room_id in carol.client.rooms and dave.user_id in carol.client.rooms[room_id].users,
                          "dave's join")
        await dave.until(lambda: room_id in dave.client.rooms and dave.client.rooms[room_id].encrypted, "the room")

        await carol.send(room_id, "sealed at matrix-edge")
        await dave.until(lambda: "sealed at matrix-edge" in dave.bodies(room_id), "carol's encrypted message")
        assert dave.texts[room_id][-1].decrypted
        await dave.send(room_id, "sealed at synapse")
        await carol.until(lambda: "sealed at synapse" in carol.bodies(room_id), "dave's encrypted message")
        assert carol.texts[room_id][-1].decrypted
    finally:
        for e2e in (carol, dave):
            await e2e.client.close()
