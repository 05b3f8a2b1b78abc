"""Fixtures for federation tests: an app whose federation client talks to forged peers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from local_runtime.config import load_config
from local_runtime.server import build_app
from tests.federation.peers import ForgedPeer, PeerNetwork, client_for

OURS = "ours.test"


class FedApp:
    def __init__(self, client: TestClient, network: PeerNetwork) -> None:
        self.client = client
        self.network = network
        self.env: Any = client.app.state.env  # type: ignore[attr-defined]

    def call(self, fn: Any, *args: Any) -> Any:
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]


@pytest.fixture
def network() -> PeerNetwork:
    return PeerNetwork()


@pytest.fixture
def peer(network: PeerNetwork) -> ForgedPeer:
    return network.add(ForgedPeer("remote.test"))


@pytest.fixture
def fed(tmp_path: Path, network: PeerNetwork) -> Iterator[FedApp]:
    with TestClient(build_app(load_config(data_dir=str(tmp_path), server_name=OURS))) as client:
        app = FedApp(client, network)
        real = app.env.FEDERATION
        app.env.FEDERATION = client_for(app.env, network)
        app.call(real.close)
        yield app
