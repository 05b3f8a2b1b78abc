"""Fixtures for federation tests: an app whose federation client talks to forged peers."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from local_runtime.config import load_config
from local_runtime.server import build_app
from tests.federation.local_server import LocalServer
from tests.federation.peers import ForgedPeer, PeerNetwork, client_for
from tests.federation.synapse_peer import SynapsePeer

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


# --- a real Synapse and our server side by side (the interop modules) ------------------------
# Module-scoped: each interop module gets its own pair of servers.


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
