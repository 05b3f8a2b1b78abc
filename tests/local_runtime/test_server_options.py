"""local_runtime.server: listener options chosen for speed keep what the server does."""

from __future__ import annotations

import sys

import pytest

from local_runtime.server import access_log_enabled, event_loop_factory


@pytest.mark.parametrize(
    "level, enabled",
    [("debug", True), ("info", True), ("INFO", True), ("warning", False), ("error", False), ("critical", False)],
)
def test_access_log_only_where_its_info_lines_can_show(level: str, enabled: bool) -> None:
    assert access_log_enabled(level) is enabled


def test_asyncio_loop_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert event_loop_factory() is None
