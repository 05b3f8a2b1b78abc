"""``GET /_matrix/federation/v1/openid/userinfo``.

Spec: server-server API "OpenID": exchanges an OpenID token (from the client
``request_token``) for ``{"sub": user_id}``; an unknown or expired token is 401
``M_UNKNOWN_TOKEN``. Third parties call it, so it carries no X-Matrix signature.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.openid import openid_token_owner
from workers.auth import hash_token, now_ms
from workers.errors import Codes, MatrixError
from workers.federation.server.common import FEDERATION_V1
from workers.routing import route


async def userinfo(request: Request, env: Any) -> dict[str, Any]:
    token = request.query_params.get("access_token")
    owner = await openid_token_owner(env.DB, hash_token(token), now_ms()) if token else None
    if owner is None:
        raise MatrixError(401, Codes.UNKNOWN_TOKEN, "Access token unknown or expired")
    return {"sub": owner}


routes: list[Route] = [route(FEDERATION_V1 + "/openid/userinfo", userinfo, ["GET"])]
