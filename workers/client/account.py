"""Account management: ``POST /account/password``, ``POST /account/deactivate`` and
``GET /account/3pid``.

Spec: client-server API "Account registration and management" (password_management.yaml,
account_deactivation.yaml, administrative_contact.yaml). Both changes need an access token
and a ``m.login.password`` UIA stage with the requester's own password.

Deactivation here: password wiped, profile cleared, every token revoked, every device
deleted, then the ``user_deactivated`` hook runs (the rooms code makes the user leave).
This server binds no third-party identifiers, so there is never anything to unbind.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from d1 import accounts as accounts_db
from d1 import devices as devices_db
from d1 import tokens as tokens_db
from workers.auth import forget_tokens, require_user
from workers.client import call_hook, client_routes
from workers.client.passwords import check_password_shape, hash_password
from workers.client.uia import PASSWORD_FLOWS, authenticate
from workers.errors import Codes, MatrixError
from workers.routing import read_json_object


async def change_password(request: Request, env: Any) -> dict[str, Any] | Response:
    requester = await require_user(request, env)
    body = await read_json_object(request)
    if "new_password" not in body:
        raise MatrixError(400, Codes.MISSING_PARAM, "new_password is required")
    new_password = check_password_shape(body["new_password"])
    logout_devices = body.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise MatrixError(400, Codes.BAD_JSON, "logout_devices must be a boolean")
    challenge = await authenticate(request, env, body, PASSWORD_FLOWS, requester)
    if challenge is not None:
        return challenge

    statements = [
        accounts_db.set_password_hash(env.DB, requester.user_id, await hash_password(new_password))
    ]
    removed: list[str] = []
    if logout_devices:
        # Other devices go, with their tokens; the token making this request stays.
        for device in await devices_db.list_devices(env.DB, requester.user_id):
            if device["device_id"] != requester.device_id:
                removed.append(device["device_id"])
                statements += devices_db.delete_device(env.DB, requester.user_id, device["device_id"])
        statements.append(
            env.DB.prepare(
                "DELETE FROM access_tokens WHERE user_id = ? AND id != ?"
                " AND (device_id IS NULL OR device_id IS NOT ?)"
            ).bind(requester.user_id, requester.token_id, requester.device_id)
        )
    await env.DB.batch(statements)
    forget_tokens(env, requester.user_id)
    if removed:
        await call_hook(env, "devices_deleted", requester.user_id, removed)
    return {}


async def deactivate(request: Request, env: Any) -> dict[str, Any] | Response:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    challenge = await authenticate(request, env, body, PASSWORD_FLOWS, requester)
    if challenge is not None:
        return challenge
    device_ids = [d["device_id"] for d in await devices_db.list_devices(env.DB, requester.user_id)]
    await env.DB.batch([
        *accounts_db.mark_deactivated(env.DB, requester.user_id),
        *tokens_db.delete_user_tokens(env.DB, requester.user_id),
        devices_db.delete_all_devices(env.DB, requester.user_id),
    ])
    forget_tokens(env, requester.user_id)
    if device_ids:
        await call_hook(env, "devices_deleted", requester.user_id, device_ids)
    await call_hook(env, "user_deactivated", requester.user_id)
    return {"id_server_unbind_result": "success"}


async def threepids(request: Request, env: Any) -> dict[str, Any]:
    await require_user(request, env)
    return {"threepids": []}


routes = [
    *client_routes("/account/password", change_password, ["POST"]),
    *client_routes("/account/deactivate", deactivate, ["POST"]),
    *client_routes("/account/3pid", threepids, ["GET"]),
]
