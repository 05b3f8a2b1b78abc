"""A ``matrix-edge serve`` process that a test can stop (SIGKILL or SIGTERM) and start again
on the same data directory and port, to check what survives a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

STARTUP_SECONDS = 30
GRACEFUL_SECONDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EdgeProcess:
    """One homeserver: ``start()``, ``kill()`` (SIGKILL), ``terminate()`` (SIGTERM, waits for
    a clean exit) and ``start()`` again; the port, server name and data directory never change."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.server_name = f"localhost:{self.port}"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = root / "data"
        self.log_path = root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "server is not running"
        return self.process.pid

    def start(self) -> None:
        assert self.process is None, "server already running"
        exe = Path(sys.executable).parent / "matrix-edge"
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [str(exe), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
                 "--server-name", self.server_name, "--public-baseurl", self.base_url],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"matrix-edge exited early:\n{self.log_path.read_text()}")
            try:
                httpx.get(f"{self.base_url}/_matrix/client/versions", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"matrix-edge did not answer within {STARTUP_SECONDS}s:\n{self.log_path.read_text()}"
                    ) from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, as in a crash or power loss."""
        self._stop(signal.SIGKILL)

    def terminate(self) -> bool:
        """SIGTERM and wait for the process to exit by itself; True when it shut down cleanly:
        exit code 0 (the runtime closed its bindings after uvicorn stopped), or uvicorn's
        re-raised SIGTERM after it logged the end of the app's lifespan."""
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        code = self._stop(signal.SIGTERM)
        with open(self.log_path, "rb") as log:
            log.seek(logged)
            tail = log.read().decode(errors="replace")
        return code == 0 or (code == -signal.SIGTERM and "Application shutdown complete" in tail)

    def _stop(self, sig: signal.Signals) -> int:
        process, self.process = self.process, None
        if process is None:
            return 0
        process.send_signal(sig)
        try:
            return process.wait(timeout=GRACEFUL_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"matrix-edge ignored {sig.name} for {GRACEFUL_SECONDS}s") from None
