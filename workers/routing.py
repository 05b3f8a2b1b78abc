"""How worker handlers are written and mounted.

A handler is ``async def handler(request: Request, env: Env) -> Response | dict``: it gets
the bindings as ``env`` (never from module state), returns a JSON-able dict (sent as 200) or
a Response, and raises ``MatrixError`` to refuse.
"""

from __future__ import annotations

import json
import re
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# A ``\uXXXX`` escape of a UTF-16 surrogate: paired ones decode to one code point, lone ones
# to a string no UTF-8 encoder (SQLite, canonical JSON) accepts.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


# How deeply objects and arrays of a client request may nest. The spec sets no limit, but
# every value taken in is later copied and serialised (events in /sync, account data,
# filters) by recursive code, and servers built on serde_json stop at 128 levels.
MAX_JSON_DEPTH = 128


def _too_deep(value: Any, max_depth: int) -> bool:
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > max_depth:
                    return True
                pending.append((child, depth + 1))
    return False


def loads_strict(body: bytes | str, max_depth: int | None = None) -> Any:
    """Strict JSON (RFC 8259): no ``NaN``/``Infinity``, no string with a lone surrogate, no
    nesting deeper than the parser takes (nor than ``max_depth`` when given); anything else
    raises ValueError."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
        if _SURROGATE_ESCAPE.search(raw):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    # Fewer brackets than the limit cannot nest that deep.
    if max_depth is not None and raw.count(b"{") + raw.count(b"[") > max_depth and _too_deep(value, max_depth):
        raise ValueError(f"JSON nested more than {max_depth} levels deep")
    return value


def parse_json(body: bytes | str, max_depth: int | None = MAX_JSON_DEPTH) -> Any:
    """``loads_strict``, with anything it refuses answered 400 ``M_NOT_JSON``. Client
    requests keep the default depth limit; federation bodies (``max_depth=None``) carry other
    servers' events, whose depth the spec leaves open."""
    try:
        return loads_strict(body, max_depth)
    except ValueError:
        raise MatrixError(400, Codes.NOT_JSON, "Content not JSON") from None


async def read_json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or M_NOT_JSON / M_BAD_JSON (400); nested at most
    ``MAX_JSON_DEPTH`` deep unless it comes over federation."""
    body = await request.body()
    if not body.strip():
        if allow_empty:
            return {}
        raise MatrixError(400, Codes.NOT_JSON, "Request body is empty; expected a JSON object")
    # The scope's path, not request.url (which parses the whole URL from the scope).
    federation = request.scope["path"].startswith(FEDERATION_PREFIX)
    value = parse_json(body, None if federation else MAX_JSON_DEPTH)
    if not isinstance(value, dict):
        raise MatrixError(400, Codes.BAD_JSON, "Expected a JSON object")
    if len(body) > MAX_STORED_JSON_BYTES:
        _check_string_sizes(value)
    return value


# What one client-supplied JSON value stored as a single row may weigh (D1 refuses bound
# values over 2 MiB).
MAX_STORED_JSON_BYTES = 1024 * 1024


def _check_string_sizes(value: Any) -> None:
    """413 ``M_TOO_LARGE`` for a string (or object key) longer than any field the server
    stores or looks up (a body smaller than the limit cannot hold one)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and len(item) > MAX_STORED_JSON_BYTES:
            raise MatrixError(413, Codes.TOO_LARGE, f"A string in the request is longer than {MAX_STORED_JSON_BYTES} characters")


def check_stored_size(value: Any, what: str) -> None:
    """413 ``M_TOO_LARGE`` when ``value``, serialised, is more than we store in one row."""
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > MAX_STORED_JSON_BYTES:
        raise MatrixError(413, Codes.TOO_LARGE, f"{what} is larger than {MAX_STORED_JSON_BYTES} bytes")


CLIENT_PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0")
FEDERATION_PREFIX = "/_matrix/federation/"


def client_routes(path: str, handler: Handler, methods: list[str]) -> list[Route]:
    """The same client-server endpoint under ``/v3`` and the legacy ``/r0`` prefix."""
    return [route(prefix + path, handler, methods) for prefix in CLIENT_PREFIXES]
