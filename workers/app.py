"""The one Starlette application that mounts every worker.

Each worker module exposes ``routes``; this module only assembles them and renders errors:
``MatrixError`` as its JSON, unknown paths as 404 ``M_UNRECOGNIZED``, a known path with the
wrong method as 405 ``M_UNRECOGNIZED``, anything unexpected as 500 ``M_UNKNOWN`` (logged).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from workers.dispatch import IndexedRouter
from workers.errors import Codes, MatrixError
from workers.routing import MatrixJSONResponse

log = logging.getLogger(__name__)

# Worker modules, each with a module-level ``routes`` list.
ROUTE_MODULES = [
    "workers.discovery",
    "workers.client.register",
    "workers.client.login",
    "workers.client.account",
    "workers.client.devices",
    "workers.client.profile",
    "workers.client.account_data",
    "workers.client.filters",
    "workers.client.pushrules",
    "workers.client.capabilities",
    "workers.client.room_create",
    "workers.client.room_send",
    "workers.client.membership",
    "workers.client.directory",
    "workers.client.user_directory",
    "workers.client.voip",
    "workers.client.room_reads",
    "workers.sync.handler",
    "workers.federation",
    "workers.federation.server.transactions",
    "workers.federation.server.events",
    "workers.federation.server.membership",
    "workers.federation.server.user_keys",
    "workers.client.keys",
    "workers.client.to_device",
    "workers.client.key_backup",
    "workers.client.ephemeral",
    "workers.push.pushers",
    "workers.push.notifications",
    "workers.media.upload",
    "workers.media.download",
    "workers.media.thumbnail",
    "workers.media.config",
    "workers.media.preview",
    "workers.media.federation",
    "workers.client.relations",
    "workers.client.threads",
    "workers.client.hierarchy",
    "workers.client.room_summary",
    "workers.client.mutual_rooms",
    "workers.federation.server.hierarchy",
    "workers.client.timestamp",
    "workers.client.search",
    "workers.client.room_upgrade",
    "workers.client.reports",
    "workers.client.openid",
    "workers.federation.server.openid",
    "workers.client.admin",
    "workers.federation.server.public_rooms",
]


def collect_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in ROUTE_MODULES:
        routes.extend(importlib.import_module(name).routes)
    return routes


async def _matrix_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MatrixError)
    return MatrixJSONResponse(exc.to_json(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = {"errcode": Codes.UNRECOGNIZED.value, "error": "Unrecognized request"}
    elif exc.status_code == 405:
        body = {"errcode": Codes.UNRECOGNIZED.value, "error": "Method not allowed for this endpoint"}
    else:
        body = {"errcode": Codes.UNKNOWN.value, "error": str(exc.detail)}
    return MatrixJSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return MatrixJSONResponse(
        {"errcode": Codes.UNKNOWN.value, "error": "Internal server error"}, status_code=500
    )


class OptionsMiddleware:
    """Answer any OPTIONS request with 200 and an empty object, as Synapse does, so that
    browser clients' preflights succeed even on paths that CORSMiddleware does not see as
    preflights."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = dict(scope.get("headers") or [])
            if b"access-control-request-method" not in headers:
                await MatrixJSONResponse({})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(env: Any) -> Starlette:
    """Build the ASGI app around an ``env`` holding the bindings."""
    app = Starlette(
        middleware=[
            Middleware(OptionsMiddleware),
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
                allow_headers=["X-Requested-With", "Content-Type", "Authorization", "Date"],
                expose_headers=["ETag"],
            ),
        ],
        exception_handlers={
            MatrixError: _matrix_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    # The same routes, found through a path index instead of one regex per route.
    app.router = IndexedRouter(collect_routes())
    app.state.env = env
    return app
