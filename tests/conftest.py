"""Shared fixtures.

``live_server``: a real ``matrix-edge serve`` process on a free port (one per test session
and xdist worker, with its own data directory), for tests that drive real clients over
HTTP. It yields an object with ``.base_url`` (e.g. ``http://127.0.0.1:PORT``) and
``.server_name`` (``localhost:PORT``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

STARTUP_SECONDS = 30


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    server_name: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("live_server")
    port = _free_port()
    server_name = f"localhost:{port}"
    exe = Path(sys.executable).parent / "matrix-edge"
    log_path = data_dir / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(exe), "serve", "--port", str(port), "--data-dir", str(data_dir / "data"),
             "--server-name", server_name],
            stdout=log, stderr=subprocess.STDOUT, cwd=data_dir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"matrix-edge exited early:\n{log_path.read_text()}")
            try:
                httpx.get(f"{base_url}/_matrix/client/versions", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"matrix-edge did not answer within {STARTUP_SECONDS}s:\n{log_path.read_text()}"
                    ) from None
                time.sleep(0.2)
        yield LiveServer(base_url=base_url, server_name=server_name)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
