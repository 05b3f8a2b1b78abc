"""Fixtures for push tests: the /sync harness (real write path through the room actor)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.workers.sync.harness import Harness, make_client


@pytest.fixture
def hs(tmp_path: Path) -> Iterator[Harness]:
    with make_client(tmp_path) as client:
        yield Harness(client)
