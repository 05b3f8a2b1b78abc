"""Authenticating incoming federation requests (the ``X-Matrix`` scheme).

Spec: server-server API "Request Authentication". The receiving server rebuilds the signed
object ``{"method", "uri", "origin", "destination", "content"?}`` from the request as it
arrived (the raw path and query string, the parsed JSON body if there is one) and checks the
origin's signature on it with the origin's key, fetched through the key store. A
``destination`` that is not our server name is refused with 401; a missing, malformed or
wrong signature, or a key that cannot be obtained, is refused with 401 ``M_UNAUTHORIZED``.
"""

from __future__ import annotations

import logging
from typing import Any

from signedjson.sign import SignatureVerifyException, verify_signed_json
from starlette.requests import Request

from durable.events.identifiers import is_valid_server_name
from workers.errors import Codes, MatrixError
from workers.federation.client import now_ms
from workers.federation.key_store import KeyStoreError, get_verify_key
from workers.federation.x_matrix import AuthHeaderError, XMatrixAuth, parse_authorization, request_json
from workers.routing import parse_json

log = logging.getLogger(__name__)

BACKOFF_KV_PREFIX = "fed:backoff:"  # set by the destination actor while it waits to retry


def unauthorized(message: str) -> MatrixError:
    return MatrixError(401, Codes.UNAUTHORIZED, message)


def request_uri(request: Request) -> str:
    """The request target as the sender signed it: raw path plus ``?query`` if any."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
    query = request.scope.get("query_string", b"")
    return path + ("?" + query.decode("latin-1") if query else "")


async def _content(request: Request) -> Any:
    body = await request.body()
    if not body:
        return None
    return parse_json(body, max_depth=None)


async def verify_request(request: Request, env: Any) -> str:
    """Check the X-Matrix authorization of ``request``; return the origin server name.

    Every X-Matrix ``Authorization`` header must name the same origin and verify. Raises
    MatrixError 401 ``M_UNAUTHORIZED`` (400 ``M_NOT_JSON`` for a body that is not JSON).
    """
    headers = [
        h for h in request.headers.getlist("authorization") if h[:9].lower() == "x-matrix "
    ]
    if not headers:
        raise unauthorized("Missing X-Matrix authorization header")
    parsed: list[XMatrixAuth] = []
    for value in headers:
        try:
            parsed.append(parse_authorization(value))
        except AuthHeaderError as exc:
            raise unauthorized(f"Malformed X-Matrix header: {exc}") from None
    origin = parsed[0].origin
    if any(p.origin != origin for p in parsed):
        raise unauthorized("X-Matrix headers name different origins")
    if not is_valid_server_name(origin):
        raise unauthorized("X-Matrix origin is not a server name")
    ours = env.config.server_name
    for auth in parsed:
        if auth.destination is not None and auth.destination != ours:
            raise unauthorized(f"Request is for {auth.destination}, not this server")
    content = await _content(request)
    uri = request_uri(request)
    now = now_ms()
    for auth in parsed:
        signed = request_json(request.method, uri, origin, ours, content)
        if auth.destination is None:
            # Servers before v1.3 sign without a destination (then it is absent from the JSON).
            signed.pop("destination")
        signed["signatures"] = {origin: {auth.key: auth.sig}}
        try:
            key = await get_verify_key(env, origin, auth.key, now)
        except KeyStoreError as exc:
            raise unauthorized(f"Cannot verify the request signature: {exc}") from None
        try:
            verify_signed_json(signed, origin, key)
        except SignatureVerifyException:
            raise unauthorized(f"Invalid signature from {origin} under {auth.key}") from None
    return origin


async def require_server(request: Request, env: Any) -> str:
    """For federation handlers: the verified origin server of ``request``, or 401.

    A request from a server whose outbound queue is backing off shows it is reachable
    again, so its destination actor is woken to catch up (spec: "Transactions"; ARCHITECTURE
    "Federation out").
    """
    origin = await verify_request(request, env)
    if await env.CACHE.get(BACKOFF_KV_PREFIX + origin) is not None:
        destinations = getattr(env, "DESTINATIONS", None)
        if destinations is not None:
            await destinations.get_by_name(origin).wake()
    return origin
