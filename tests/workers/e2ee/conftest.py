"""Fixtures for the E2EE and ephemeral endpoint tests."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.workers.e2ee.harness import Harness, make_client
from workers.client import passwords


@pytest.fixture(autouse=True)
def cheap_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def hs(tmp_path: Path) -> Iterator[Harness]:
    with make_client(tmp_path) as client:
        yield Harness(client)
