"""Our server as ``matrix-edge serve`` runs it (client listener plus TLS federation
listener, one app, one Env), in a thread of the test process, so tests can also call into
its Env (``run``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from local_runtime.config import load_config
from local_runtime.server import Listeners, build_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    def __init__(self, data_dir: Path, **config: Any) -> None:
        self.client_port = free_port()
        self.federation_port = free_port()
        self.server_name = f"localhost:{self.federation_port}"
        self.config = load_config(
            data_dir=str(data_dir), server_name=self.server_name, port=self.client_port,
            federation_port=self.federation_port, federation_verify_tls=False,
            federation_allow_loopback=True, **config,
        )
        self.app = build_app(self.config)
        self.env: Any = self.app.state.env
        self.listeners = Listeners(self.app, self.config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 30.0) -> "LocalServer":
        def main() -> None:
            self.loop = asyncio.new_event_loop()
            try:
                self.loop.run_until_complete(self.listeners.run())
            except BaseException as exc:  # reported by start()/stop() in the test thread
                self._error = exc
            finally:
                self.loop.close()

        self._thread = threading.Thread(target=main, name="matrix-edge", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.listeners.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"our server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("our server did not start in time")
            time.sleep(0.05)
        return self

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float = 60.0) -> Any:
        """Await ``fn(*args)`` on the server's event loop (where its Env lives)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.listeners.stop)
            self._thread.join(30)
