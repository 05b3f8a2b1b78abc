"""matrix-nio with its ``e2e`` extra (vodozemac Olm/Megolm) against a real ``matrix-edge
serve``: two users in an encrypted room exchange messages that the other decrypts, and a
second device of the receiver, logged in later, gets the room key and decrypts too.

Everything travels through our endpoints: /keys/upload, /keys/query, /keys/claim,
/sendToDevice and /sync (to_device, device_lists, one-time key counts). matrix-nio 0.26 has
no server-side key backup API, so backup and restore are covered by the matrix-js-sdk test.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Callable

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
DEADLINE_SECONDS = 20.0
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


class E2EClient:
    """A nio client with an Olm account, and the decrypted messages it has seen."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.texts: dict[str, list[RoomMessageText]] = {}
        self.undecrypted: list[tuple[str, MegolmEvent]] = []

    @property
    def user_id(self) -> str:
        return self.client.user_id

    async def step(self, timeout_ms: int = 0) -> SyncResponse:
        """One incremental sync, then the key work a client does after it."""
        response = await self.client.sync(timeout=timeout_ms, since=self.client.next_batch)
        assert isinstance(response, SyncResponse), response
        for room_id, room in response.rooms.join.items():
            for event in room.timeline.events:
                if isinstance(event, RoomMessageText):
                    self.texts.setdefault(room_id, []).append(event)
                elif isinstance(event, MegolmEvent):
                    self.undecrypted.append((room_id, event))
        self._retry_undecrypted()
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        if self.client.should_claim_keys:
            await self.client.keys_claim(self.client.get_users_for_key_claiming())
        return response

    def _retry_undecrypted(self) -> None:
        """Decrypt messages whose room key arrived after them, as clients do: a Megolm
        message and the to-device message carrying its key travel separately (over
        federation, a server may apply a transaction's EDUs before its PDUs)."""
        waiting, self.undecrypted = self.undecrypted, []
        for room_id, event in waiting:
            event.room_id = room_id
            try:
                decrypted = self.client.decrypt_event(event)
            except EncryptionError:  # the room key has not arrived yet
                self.undecrypted.append((room_id, event))
                continue
            if isinstance(decrypted, RoomMessageText):
                self.texts.setdefault(room_id, []).append(decrypted)

    async def until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not done():
            assert time.monotonic() < deadline, f"{self.user_id} ({self.client.device_id}) never saw {what}"
            await self.step(timeout_ms=1000)

    def bodies(self, room_id: str) -> list[str]:
        return [e.body for e in self.texts.get(room_id, [])]

    async def send(self, room_id: str, body: str) -> None:
        sent = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}, ignore_unverified_devices=True
        )
        assert isinstance(sent, RoomSendResponse), sent


async def _register(base_url: str, localpart: str) -> None:
    registrar = AsyncClient(base_url, localpart, config=AsyncClientConfig(encryption_enabled=False))
    try:
        registered = await registrar.register(localpart, PASSWORD)
        assert isinstance(registered, RegisterResponse), registered
    finally:
        await registrar.close()


async def _login(base_url: str, user_id: str, store: Path, device_name: str) -> E2EClient:
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(
        base_url, user_id, store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, request_timeout=30),
    )
    login = await client.login(PASSWORD, device_name=device_name)
    assert isinstance(login, LoginResponse), login
    e2e = E2EClient(client)
    await e2e.step()
    assert not client.should_upload_keys, "device and one-time keys were uploaded"
    return e2e


async def test_encrypted_messages_between_nio_clients(live_server, tmp_path: Path) -> None:
    base = live_server.base_url
    suffix = secrets.token_hex(3)
    alice_id, bob_id = (f"@{n}{suffix}:{live_server.server_name}" for n in ("alice", "bob"))
    await _register(base, f"alice{suffix}")
    await _register(base, f"bob{suffix}")
    alice = await _login(base, alice_id, tmp_path / "alice", "alice nio")
    bob = await _login(base, bob_id, tmp_path / "bob", "bob nio")
    clients = [alice, bob]
    try:
        created = await alice.client.room_create(name="secret", invite=[bob_id], initial_state=[ENCRYPTION])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        await bob.until(lambda: room_id in bob.client.invited_rooms, "the invite")
        assert isinstance(await bob.client.join(room_id), JoinResponse)
        await bob.step()
        await alice.until(
            lambda: room_id in alice.client.rooms and bob_id in alice.client.rooms[room_id].users, "bob's join"
        )
        assert alice.client.rooms[room_id].encrypted and bob.client.rooms[room_id].encrypted

        # Alice -> Bob: Megolm session shared over Olm-encrypted to-device messages.
        await alice.send(room_id, "the eagle lands at noon")
        await bob.until(lambda: "the eagle lands at noon" in bob.bodies(room_id), "alice's message")
        message = bob.texts[room_id][-1]
        assert message.decrypted and message.sender == alice_id

        # Bob -> Alice.
        await bob.send(room_id, "copy that")
        await alice.until(lambda: "copy that" in alice.bodies(room_id), "bob's reply")
        assert alice.texts[room_id][-1].decrypted

        # A second device of Bob, logged in now: Alice hears of it through device_lists,
        # downloads its keys and shares a new room key with it (and Bob's first device).
        bob2 = await _login(base, bob_id, tmp_path / "bob2", "bob second device")
        clients.append(bob2)
        await bob2.until(lambda: room_id in bob2.client.rooms, "the room")
        new_device = bob2.client.device_id
        await alice.until(
            lambda: new_device in alice.client.device_store[bob_id], "bob's new device in device_lists"
        )
        await alice.client.share_group_session(room_id, ignore_unverified_devices=True)
        await alice.send(room_id, "welcome, second device")
        await bob2.until(lambda: "welcome, second device" in bob2.bodies(room_id), "the message on the new device")
        assert bob2.texts[room_id][-1].decrypted
        await bob.until(lambda: "welcome, second device" in bob.bodies(room_id), "the message on the first device")
    finally:
        for e2e in clients:
            await e2e.client.close()
