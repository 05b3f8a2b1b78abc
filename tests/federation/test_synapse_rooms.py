"""Rooms shared with a real Synapse, both ways: joins by ID and alias, messages seen through
/sync on each side, state changes, invite-only rooms, bans, back-pagination.

Each side is a real homeserver: ours in a thread with its TLS federation listener, Synapse
from PyPI in a subprocess; every event crosses real federation requests.
"""

from __future__ import annotations

import importlib.util
import os
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.federation.local_server import LocalServer
from tests.federation.synapse_peer import PASSWORD, SynapsePeer

pytestmark = pytest.mark.slow

DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapsePeer]:
    if importlib.util.find_spec("synapse") is None:
        message = "matrix-synapse is not installed (make test installs the interop extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    peer = SynapsePeer(tmp_path_factory.mktemp("synapse")).start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = LocalServer(tmp_path_factory.mktemp("ours")).start()
    try:
        yield server
    finally:
        server.stop()


class User:
    """A user on either server, with a /sync cursor."""

    def __init__(self, base_url: str, account: dict[str, Any]) -> None:
        self.user_id: str = account["user_id"]
        self.http = httpx.Client(
            base_url=f"{base_url}/_matrix/client/v3",
            headers={"Authorization": f"Bearer {account['access_token']}"}, timeout=60,
        )
        self.since: str | None = None

    def post(self, path: str, body: dict[str, Any] | None = None, **params: Any) -> httpx.Response:
        return self.http.post(path, json=body or {}, params=params)

    def put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.put(path, json=body)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def send(self, room_id: str, body: str) -> httpx.Response:
        txn = f"t{time.monotonic_ns()}"
        return self.put(f"/rooms/{urllib.parse.quote(room_id)}/send/m.room.message/{txn}",
                        {"msgtype": "m.text", "body": body})

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Sync until ``predicate(sync_response)`` holds."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            params: dict[str, Any] = {"timeout": 1000}
            if self.since:
                params["since"] = self.since
            response = self.get("/sync", **params)
            response.raise_for_status()
            body = response.json()
            self.since = body["next_batch"]
            if predicate(body):
                return body
        raise AssertionError(f"{self.user_id} did not see {what} within {DEADLINE_S}s")

    def wait_for_message(self, room_id: str, text: str) -> None:
        def seen(body: dict[str, Any]) -> bool:
            room = body.get("rooms", {}).get("join", {}).get(room_id, {})
            return any(e.get("content", {}).get("body") == text for e in room.get("timeline", {}).get("events", []))
        self.wait_for(seen, f"message {text!r} in {room_id}")

    def wait_for_invite(self, room_id: str) -> None:
        self.wait_for(lambda b: room_id in b.get("rooms", {}).get("invite", {}), f"an invite to {room_id}")


def _register(base_url: str, username: str) -> dict[str, Any]:
    url = f"{base_url}/_matrix/client/v3/register"
    body: dict[str, Any] = {"username": username, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
    response = httpx.post(url, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def alice(ours: LocalServer) -> Iterator[User]:
    user = User(ours.client_url, _register(ours.client_url, "alice"))
    yield user
    user.http.close()


@pytest.fixture(scope="module")
def bob(synapse: SynapsePeer) -> Iterator[User]:
    user = User(synapse.client_url, synapse.register("bob"))
    yield user
    user.http.close()


def _state(user: User, room_id: str, event_type: str, state_key: str = "") -> httpx.Response:
    return user.get(f"/rooms/{urllib.parse.quote(room_id)}/state/{event_type}/{urllib.parse.quote(state_key)}")


def test_synapse_user_joins_our_room_and_they_talk(ours: LocalServer, alice: User, bob: User) -> None:
    room_id = alice.post("/createRoom", {"preset": "public_chat", "name": "ours"}).json()["room_id"]
    joined = bob.post(f"/join/{urllib.parse.quote(room_id)}", server_name=ours.server_name)
    assert joined.status_code == 200, joined.text
    alice.wait_for(lambda b: any(
        e.get("type") == "m.room.member" and e.get("state_key") == bob.user_id
        for e in b.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {}).get("events", [])
    ), "bob's join")
    assert alice.send(room_id, "hello from matrix-edge").status_code == 200
    bob.wait_for_message(room_id, "hello from matrix-edge")
    assert bob.send(room_id, "hello from synapse").status_code == 200
    alice.wait_for_message(room_id, "hello from synapse")


def test_our_user_joins_a_synapse_room_by_alias(synapse: SynapsePeer, alice: User, bob: User) -> None:
    created = bob.post("/createRoom", {"preset": "public_chat", "room_alias_name": "theirs", "name": "theirs"})
    room_id = created.json()["room_id"]
    alias = f"#theirs:{synapse.server_name}"
    joined = alice.post(f"/join/{urllib.parse.quote(alias)}")
    assert joined.status_code == 200, joined.text
    assert joined.json()["room_id"] == room_id
    assert _state(alice, room_id, "m.room.name").json() == {"name": "theirs"}
    assert bob.send(room_id, "welcome").status_code == 200
    alice.wait_for_message(room_id, "welcome")
    assert alice.send(room_id, "thanks").status_code == 200
    bob.wait_for_message(room_id, "thanks")
