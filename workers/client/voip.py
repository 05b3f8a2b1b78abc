"""``GET /voip/turnServer`` and the third-party network lookups.

Spec: client-server API "Voice over IP" and application service "Third-party networks".
TURN: the configured URIs with time-limited credentials (the TURN REST API scheme
coturn uses: username ``expiry:user_id``, password ``base64(HMAC-SHA1(secret, username))``),
or ``{}`` when no TURN server is configured. Third-party protocols: this server has no
bridges, so the protocol list is empty and every protocol lookup is unknown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.auth import require_user
from workers.errors import Codes, MatrixError
from workers.routing import MatrixJSONResponse, client_routes


async def turn_server(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    config = env.config
    if not config.turn_uris:
        return {}
    ttl = config.turn_user_lifetime_seconds
    result: dict[str, Any] = {"uris": list(config.turn_uris), "ttl": ttl}
    if config.turn_shared_secret:
        username = f"{int(time.time()) + ttl}:{requester.user_id}"
        digest = hmac.new(config.turn_shared_secret.encode(), username.encode(), hashlib.sha1).digest()
        result["username"] = username
        result["password"] = base64.b64encode(digest).decode()
    else:
        result["username"] = config.turn_username
        result["password"] = config.turn_password
    return result


async def protocols(request: Request, env: Any) -> dict[str, Any]:
    await require_user(request, env)
    return {}


async def unknown_protocol(request: Request, env: Any) -> dict[str, Any]:
    await require_user(request, env)
    raise MatrixError(404, Codes.NOT_FOUND, "No bridge serves this protocol on this server")


async def no_results(request: Request, env: Any) -> Any:
    await require_user(request, env)
    return MatrixJSONResponse([])


routes: list[Route] = [
    *client_routes("/voip/turnServer", turn_server, ["GET"]),
    *client_routes("/thirdparty/protocols", protocols, ["GET"]),
    *client_routes("/thirdparty/protocol/{protocol}", unknown_protocol, ["GET"]),
    *client_routes("/thirdparty/location/{protocol}", unknown_protocol, ["GET"]),
    *client_routes("/thirdparty/user/{protocol}", unknown_protocol, ["GET"]),
    *client_routes("/thirdparty/location", no_results, ["GET"]),
    *client_routes("/thirdparty/user", no_results, ["GET"]),
]
