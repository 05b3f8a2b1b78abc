"""Invariant 2: an acknowledged event survives the process being killed right after."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from d1 import D1Database, apply_migrations
from d1.accounts import insert_user
from d1.tokens import insert_access_token
from tests.local_runtime.test_serve import free_port
from workers.auth import hash_token


async def _prepare(data: Path, server_name: str) -> None:
    db = D1Database(data / "matrix.sqlite")
    try:
        await apply_migrations(db)
        user_id = f"@alice:{server_name}"
        await db.batch(insert_user(db, user_id, "alice", None, 1)
                       + [insert_access_token(db, hash_token("tok"), user_id, "DEV", 1)])
    finally:
        db.close()


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    port = free_port()
    server_name = f"localhost:{port}"
    data = tmp_path / "data"
    data.mkdir()
    asyncio.run(_prepare(data, server_name))
    exe = Path(sys.executable).parent / "matrix-edge"
    process = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--data-dir", str(data), "--server-name", server_name,
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}/_matrix/client/v3"
    headers = {"Authorization": "Bearer tok"}
    acknowledged: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_matrix/client/versions", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        with httpx.Client(timeout=10) as client:
            room_id = client.post(f"{base}/createRoom", headers=headers, json={}).json()["room_id"]
            for i in range(50):
                response = client.put(f"{base}/rooms/{room_id}/send/m.room.message/t{i}", headers=headers,
                                      json={"msgtype": "m.text", "body": str(i)})
                assert response.status_code == 200
                acknowledged.append(response.json()["event_id"])
    finally:
        process.send_signal(signal.SIGKILL)  # no shutdown, no flush
        process.wait(timeout=10)
    conn = sqlite3.connect(data / "matrix.sqlite")
    stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    extremities = [row[0] for row in conn.execute("SELECT event_id FROM forward_extremities")]
    conn.close()
    assert set(acknowledged) <= stored
    assert extremities == [acknowledged[-1]]
