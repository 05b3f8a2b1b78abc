"""Sessions: ``GET/POST /login``, ``POST /refresh``, ``POST /logout``, ``POST /logout/all``
and ``GET /account/whoami``.

Spec: client-server API "Legacy login" (login.yaml), "Refreshing access tokens"
(refresh.yaml), logout.yaml and whoami.yaml. Only ``m.login.password`` is offered.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from d1 import devices as devices_db
from d1 import tokens as tokens_db
from workers.auth import forget_tokens, hash_token, require_user, unknown_token
from workers.client import call_hook, client_routes
from workers.client.credentials import check_password_login
from workers.client.sessions import (
    checked_device_id,
    checked_display_name,
    client_ip,
    login_statements,
    token_pair_statements,
)
from workers.ratelimit import limit_login
from workers.errors import Codes, MatrixError
from workers.routing import read_json_object

LOGIN_FLOWS = [{"type": "m.login.password"}]


async def login_flows(request: Request, env: Any) -> dict[str, Any]:
    return {"flows": LOGIN_FLOWS}


async def login(request: Request, env: Any) -> dict[str, Any]:
    await limit_login(request, env)
    body = await read_json_object(request)
    login_type = body.get("type")
    if login_type != "m.login.password":
        raise MatrixError(400, Codes.UNKNOWN, f"Unsupported login type {login_type!r}")
    device_id = checked_device_id(body.get("device_id"))
    display_name = checked_display_name(body.get("initial_device_display_name"))
    user = await check_password_login(env, body)
    if user is None:
        raise MatrixError(403, Codes.FORBIDDEN, "Invalid username or password")
    if user["deactivated"]:
        raise MatrixError(403, Codes.USER_DEACTIVATED, "This account has been deactivated")
    statements, response = login_statements(
        env, user["user_id"], device_id, display_name, body.get("refresh_token") is True,
        client_ip(request),
    )
    await env.DB.batch(statements)
    # Clients (Element) switch to this base URL after logging in, so it must be our real one.
    response["well_known"] = {"m.homeserver": {"base_url": env.config.public_baseurl}}
    return response


async def refresh(request: Request, env: Any) -> dict[str, Any]:
    """Trade a refresh token for a new access token and refresh token. The old refresh token
    stays valid until the new pair is first used (then ``require_user`` or this handler
    revokes it), so a client that lost the answer can repeat the call."""
    body = await read_json_object(request)
    token = body.get("refresh_token")
    if not isinstance(token, str):
        raise MatrixError(400, Codes.MISSING_PARAM, "refresh_token is required")
    row = await tokens_db.lookup_refresh_token(env.DB, hash_token(token))
    if row is None or row["deactivated"]:
        raise unknown_token("Unknown or already used refresh token")
    statements, fields = token_pair_statements(env, row["user_id"], row["device_id"], True)
    statements += tokens_db.retire_predecessors(env.DB, row["id"])
    statements += tokens_db.replace_refresh_token(
        env.DB, row["id"], row["next_id"], hash_token(fields["refresh_token"])
    )
    await env.DB.batch(statements)
    forget_tokens(env, row["user_id"])
    return fields


async def logout(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    if requester.device_id is None:
        assert requester.token_id is not None
        await env.DB.batch([tokens_db.delete_access_token(env.DB, requester.token_id)])
        forget_tokens(env, requester.user_id)
        return {}
    await env.DB.batch(devices_db.delete_device(env.DB, requester.user_id, requester.device_id))
    forget_tokens(env, requester.user_id)
    await call_hook(env, "devices_deleted", requester.user_id, [requester.device_id])
    return {}


async def logout_all(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    device_ids = [d["device_id"] for d in await devices_db.list_devices(env.DB, requester.user_id)]
    await env.DB.batch([
        *tokens_db.delete_user_tokens(env.DB, requester.user_id),
        devices_db.delete_all_devices(env.DB, requester.user_id),
    ])
    forget_tokens(env, requester.user_id)
    if device_ids:
        await call_hook(env, "devices_deleted", requester.user_id, device_ids)
    return {}


async def whoami(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    body: dict[str, Any] = {"user_id": requester.user_id, "is_guest": requester.is_guest}
    if requester.device_id is not None:
        body["device_id"] = requester.device_id
    return body


routes = [
    *client_routes("/login", login_flows, ["GET"]),
    *client_routes("/login", login, ["POST"]),
    *client_routes("/refresh", refresh, ["POST"]),
    *client_routes("/logout", logout, ["POST"]),
    *client_routes("/logout/all", logout_all, ["POST"]),
    *client_routes("/account/whoami", whoami, ["GET"]),
]
