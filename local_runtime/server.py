"""Runs the workers app with its bindings under uvicorn.

One process, one event loop, one app and one ``Env``: the plain HTTP client listener on
``port`` and, when ``federation_port`` is set, a TLS federation listener on that port (spec:
server-server API "TLS"), both uvicorn servers sharing the app. The ``Env`` is started before
the listeners and closed after both stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import AsyncIterator, Callable, Iterator

import uvicorn
from starlette.applications import Starlette

from local_runtime.config import ServerConfig
from local_runtime.env import Env
from local_runtime.tls import tls_files
from workers.app import create_app

log = logging.getLogger(__name__)


def build_app(config: ServerConfig) -> Starlette:
    """The app with an ``Env`` that starts (migrations, keys, actors) in the app's lifespan."""
    env = Env(config)
    app = create_app(env)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await env.start()
        try:
            yield
        finally:
            await env.close()

    app.router.lifespan_context = lifespan
    return app


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def access_log_enabled(log_level: str) -> bool:
    """Whether uvicorn's access log can print anything at ``log_level``: its lines are INFO.
    With it off uvicorn does not even format them (it builds the quoted path of every request
    before the logger's level check)."""
    level = logging.getLevelName(log_level.upper())
    return not isinstance(level, int) or level <= logging.INFO


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``Listeners`` (two servers in one
    loop would otherwise replace each other's handlers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Listeners:
    """The client listener and the optional TLS federation listener over one app."""

    def __init__(self, app: Starlette, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        common = dict(
            log_level=config.log_level, access_log=access_log_enabled(config.log_level),
            proxy_headers=False, lifespan="off",
        )
        self.servers: list[uvicorn.Server] = [
            _Listener(uvicorn.Config(app, host=config.host, port=config.port, **common))
        ]
        if config.federation_port:
            cert, key = tls_files(config)
            self.servers.append(
                _Listener(
                    uvicorn.Config(
                        app, host=config.host, port=config.federation_port,
                        ssl_certfile=str(cert), ssl_keyfile=str(key), **common,
                    )
                )
            )

    @property
    def started(self) -> bool:
        return all(server.started for server in self.servers)

    def stop(self) -> None:
        """Stop accepting requests, end waiting long-polls at once (with what a timeout would
        give them), and let the listeners finish the requests in flight."""
        for server in self.servers:
            server.should_exit = True
        self.app.state.env.NOTIFIER.close()

    async def run(self) -> None:
        """Start the Env, serve until ``stop()`` (or a SIGINT/SIGTERM in the main thread),
        then close the Env."""
        env = self.app.state.env
        await env.start()
        try:
            await asyncio.gather(*(server.serve() for server in self.servers))
        finally:
            await env.close()


def serve(config: ServerConfig) -> None:
    configure_logging(config.log_level)
    app = build_app(config)
    listeners = Listeners(app, config)
    federation = (
        f"; federation (TLS) on https://{config.host}:{config.federation_port}"
        if config.federation_port else ""
    )
    print(
        f"matrix-edge: serving {config.server_name} on http://{config.host}:{config.port}"
        f" (client base URL {config.base_url}){federation}; data in {config.data_path}",
        flush=True,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, listeners.stop)
        await listeners.run()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when uvloop is installed, as uvicorn's own runner would pick
    (about a tenth less CPU per request here); asyncio's default loop otherwise. Likewise
    uvicorn parses HTTP with httptools when that is installed, else with h11."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
