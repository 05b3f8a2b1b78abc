"""Fixtures for the presence timer tests: a server whose presence timeouts are short."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from local_runtime.config import load_config
from local_runtime.server import build_app
from tests.workers.e2ee.harness import SERVER, Harness
from workers.client import passwords



class Servers:
    """Starts servers on one data folder with the given presence timeouts (ms); a server
    started after ``stop`` runs on the same data (a restart)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.running: list[TestClient] = []

    def start(self, sync_timeout_ms: int = 300, idle_ms: int = 60_000) -> Harness:
        config = load_config(
            data_dir=str(self.data_dir), server_name=SERVER,
            presence_sync_timeout_ms=sync_timeout_ms, presence_idle_ms=idle_ms,
        )
        client = TestClient(build_app(config))
        client.__enter__()
        self.running.append(client)
        return Harness(client)

    def stop(self, hs: Harness) -> None:
        self.running.remove(hs.client)
        hs.client.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def cheap_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    servers = Servers(tmp_path)
    yield servers
    for client in list(servers.running):
        client.__exit__(None, None, None)
