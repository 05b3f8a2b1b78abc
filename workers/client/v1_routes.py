"""Mounting client-server endpoints that the spec defines under ``/_matrix/client/v1``."""

from __future__ import annotations

from starlette.routing import Route

from workers.routing import Handler, route

CLIENT_V1 = "/_matrix/client/v1"


def client_v1_routes(path: str, handler: Handler, methods: list[str]) -> list[Route]:
    return [route(CLIENT_V1 + path, handler, methods)]
