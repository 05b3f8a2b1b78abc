"""The server the README starts: a real process answering /versions on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from local_runtime.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_make_run_answers_versions(tmp_path: Path) -> None:
    """The README's first command, `make run`, on a free port and a fresh data folder."""
    port = free_port()
    run_args = f"--port {port} --data-dir {tmp_path / 'data'} --server-name localhost:{port}"
    process = subprocess.Popen(
        ["make", "-s", "-C", str(ROOT), "run", f"RUN_ARGS={run_args}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/_matrix/client/versions", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert body is not None, "server did not answer within 30 s"
        assert "v1.1" in body["versions"]
        assert (tmp_path / "data" / "matrix.sqlite").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # make and the server it started
        output, _ = process.communicate(timeout=20)
    assert f"serving localhost:{port}" in output
    assert "GET /_matrix/client/versions" in output  # one access-log line per request


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nserver_name = "a.test"\nport = 9000\n[bindings]\nDB = "x.sqlite"\n')
    config = load_config(path, port=9100)
    assert (config.server_name, config.port, config.bindings.DB) == ("a.test", 9100, "x.sqlite")


@pytest.mark.parametrize(
    "text",
    ['[server]\nnot_a_key = 1\n', '[server]\ndefault_room_version = "99"\n', "not toml ["],
)
def test_bad_config_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)
