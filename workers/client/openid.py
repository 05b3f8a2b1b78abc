"""``POST /_matrix/client/v3/user/{userId}/openid/request_token``.

Spec: client-server API "OpenID": a token a third party can exchange, through the federation
``/openid/userinfo``, for the user's ID. It is good for that exchange only (it is no access
token) and expires after ``expires_in`` seconds. Only the user themself may ask for one
(403 ``M_FORBIDDEN`` otherwise).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.openid import delete_expired, insert_openid_token
from workers.auth import hash_token, new_token, now_ms, require_user
from workers.errors import forbidden
from workers.routing import client_routes, read_json_object

EXPIRES_IN_S = 3600


async def request_token(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    if request.path_params["userId"] != requester.user_id:
        raise forbidden("Cannot request OpenID tokens for other users")
    await read_json_object(request, allow_empty=True)
    token = new_token("oid_")
    now = now_ms()
    await delete_expired(env.DB, now)
    await insert_openid_token(env.DB, hash_token(token), requester.user_id, now + EXPIRES_IN_S * 1000)
    return {
        "access_token": token,
        "token_type": "Bearer",
        "matrix_server_name": env.config.server_name,
        "expires_in": EXPIRES_IN_S,
    }


routes: list[Route] = [*client_routes("/user/{userId}/openid/request_token", request_token, ["POST"])]
