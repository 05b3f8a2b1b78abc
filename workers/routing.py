"""How worker handlers are written and mounted.

A handler is ``async def handler(request: Request, env: Env) -> Response | dict``: it gets
the bindings as ``env`` (never from module state), returns a JSON-able dict (sent as 200) or
a Response, and raises ``MatrixError`` to refuse.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Union

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workers.errors import Codes, MatrixError

HandlerResult = Union[Response, dict[str, Any]]
Handler = Callable[[Request, Any], Awaitable[HandlerResult]]


class MatrixJSONResponse(JSONResponse):
    """JSON as Matrix servers send it: UTF-8, compact."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def route(path: str, handler: Handler, methods: list[str]) -> Route:
    """A Starlette route that hands ``env`` to the handler and renders dicts as JSON."""

    async def endpoint(request: Request) -> Response:
        result = await handler(request, request.app.state.env)
        if isinstance(result, Response):
            return result
        return MatrixJSONResponse(result)

    endpoint.__name__ = handler.__name__
    return Route(path, endpoint, methods=methods)


async def read_json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or M_NOT_JSON / M_BAD_JSON (400)."""
    body = await request.body()
    if not body.strip():
        if allow_empty:
            return {}
        raise MatrixError(400, Codes.NOT_JSON, "Request body is empty; expected a JSON object")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MatrixError(400, Codes.NOT_JSON, "Content not JSON") from None
    if not isinstance(value, dict):
        raise MatrixError(400, Codes.BAD_JSON, "Expected a JSON object")
    return value


CLIENT_PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0")


def client_routes(path: str, handler: Handler, methods: list[str]) -> list[Route]:
    """The same client-server endpoint under ``/v3`` and the legacy ``/r0`` prefix."""
    return [route(prefix + path, handler, methods) for prefix in CLIENT_PREFIXES]
