"""Fixtures for the client extras: the room harness (users made in D1, rooms through the real
endpoints) with a few more helpers, and a federation peer signing requests to the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from tests.federation.peers import ForgedPeer, PeerNetwork, client_for
from tests.workers.rooms.conftest import SERVER, V3, Harness, make_app

V1 = "/_matrix/client/v1"


class ExtrasHarness(Harness):
    def __init__(self, client: TestClient, network: PeerNetwork) -> None:
        super().__init__(client)
        self.network = network

    def message(self, headers: dict[str, str], room_id: str, body: str, txn: str,
                relates_to: dict[str, Any] | None = None, event_type: str = "m.room.message") -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        if relates_to is not None:
            content["m.relates_to"] = relates_to
        response = self.send(headers, room_id, content, txn, event_type)
        assert response.status_code == 200, response.text
        return str(response.json()["event_id"])

    def join(self, headers: dict[str, str], room_id: str) -> None:
        response = self.client.post(f"{V3}/join/{room_id}", headers=headers, json={})
        assert response.status_code == 200, response.text

    def invite(self, headers: dict[str, str], room_id: str, user_id: str) -> None:
        response = self.client.post(f"{V3}/rooms/{room_id}/invite", headers=headers, json={"user_id": user_id})
        assert response.status_code == 200, response.text

    def leave(self, headers: dict[str, str], room_id: str) -> None:
        response = self.client.post(f"{V3}/rooms/{room_id}/leave", headers=headers, json={})
        assert response.status_code == 200, response.text

    def get(self, headers: dict[str, str], path: str, **params: Any) -> Any:
        return self.client.get(path, headers=headers, params=params)

    def federation_get(self, peer: ForgedPeer, path: str, query: dict[str, str] | None = None) -> Any:
        uri, headers = peer.signed_headers(SERVER, "GET", path, query)
        return self.client.get(uri, headers=headers)

    def federation_post(self, peer: ForgedPeer, path: str, content: Any) -> Any:
        uri, headers = peer.signed_headers(SERVER, "POST", path, None, content)
        return self.client.post(uri, headers=headers, json=content)


@pytest.fixture
def network() -> PeerNetwork:
    return PeerNetwork()


@pytest.fixture
def peer(network: PeerNetwork) -> ForgedPeer:
    return network.add(ForgedPeer("remote.test"))


@pytest.fixture
def hs(tmp_path: Path, network: PeerNetwork) -> Iterator[ExtrasHarness]:
    with TestClient(make_app(tmp_path)) as client:
        harness = ExtrasHarness(client, network)
        real = harness.env.FEDERATION
        harness.env.FEDERATION = client_for(harness.env, network)
        harness.call(real.close)
        yield harness


__all__ = ["SERVER", "V1", "V3", "ExtrasHarness"]
