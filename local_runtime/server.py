"""Runs the workers app with its bindings under uvicorn."""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator

import uvicorn
from starlette.applications import Starlette

from local_runtime.config import ServerConfig
from local_runtime.env import Env
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


def serve(config: ServerConfig) -> None:
    configure_logging(config.log_level)
    app = build_app(config)
    print(
        f"matrix-edge: serving {config.server_name} on http://{config.host}:{config.port}"
        f" (client base URL {config.base_url}); data in {config.data_path}",
        flush=True,
    )
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        access_log=True,
        proxy_headers=False,
    )
