"""Shutting down does not wait for long-polls: SIGTERM ends a waiting /sync at once (with
the empty answer its timeout would give) and the process exits cleanly."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_runtime.notifier import Notifier
from tests.clients.edge_process import EdgeProcess


async def test_closing_the_notifier_ends_waits_now_and_later() -> None:
    notifier = Notifier()
    since = notifier.position()
    started = time.monotonic()
    waiting = asyncio.ensure_future(notifier.wait(["@a:x"], since, 30))
    await asyncio.sleep(0.01)
    notifier.close()
    assert await waiting is False
    assert await notifier.wait(["@a:x"], since, 30) is False  # no new wait after close
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_sigterm_does_not_wait_for_a_long_poll(tmp_path: Path) -> None:
    server = EdgeProcess(tmp_path)
    server.start()
    try:
        body = {"username": "sleeper", "password": "long poll sleeper", "auth": {"type": "m.login.dummy"}}
        account = httpx.post(f"{server.base_url}/_matrix/client/v3/register", json=body, timeout=30).json()
        headers = {"Authorization": f"Bearer {account['access_token']}"}
        first = httpx.get(f"{server.base_url}/_matrix/client/v3/sync", headers=headers, timeout=30).json()
        answer: dict[str, Any] = {}

        def long_poll() -> None:
            response = httpx.get(
                f"{server.base_url}/_matrix/client/v3/sync", headers=headers, timeout=60,
                params={"since": first["next_batch"], "timeout": 60_000},
            )
            answer["status"] = response.status_code

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.5)  # the poll is waiting on the server
        started = time.monotonic()
        assert server.terminate(), server.log_path.read_text()
        assert time.monotonic() - started < 10
        poller.join(timeout=10)
        assert answer.get("status") == 200
    finally:
        if server.process is not None:
            server.kill()
