"""Account registration: ``POST /register`` and ``GET /register/available``.

Spec: client-server API "Legacy account registration" (registration.yaml). Registration
uses user-interactive auth with a single ``m.login.dummy`` stage. Guest accounts are not
supported (``kind=guest`` is refused with 403 M_FORBIDDEN), nor is registration when the
config turns it off.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from d1 import accounts as accounts_db
from d1.database import D1Error
from workers.auth import MAX_USER_ID_BYTES, is_valid_localpart, now_ms, user_id_for_localpart
from workers.client import client_routes
from workers.client.passwords import check_password_shape, hash_password
from workers.client.sessions import (
    checked_device_id,
    checked_display_name,
    client_ip,
    login_statements,
)
from workers.client.uia import DUMMY_FLOWS, authenticate
from workers.ratelimit import limit_registration
from workers.errors import Codes, MatrixError
from workers.routing import read_json_object

GENERATED_LOCALPART_LENGTH = 12


def _check_registration_allowed(request: Request, env: Any) -> None:
    kind = request.query_params.get("kind", "user")
    if kind == "guest":
        raise MatrixError(403, Codes.FORBIDDEN, "Guest access is not supported by this server")
    if kind != "user":
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown account kind {kind!r}")
    if not env.config.enable_registration:
        raise MatrixError(403, Codes.FORBIDDEN, "Registration is disabled on this server")


async def _available_user_id(env: Any, username: object) -> str:
    """The user ID for ``username`` (lower-cased), or 400 M_INVALID_USERNAME / M_USER_IN_USE."""
    if not isinstance(username, str):
        raise MatrixError(400, Codes.INVALID_USERNAME, "username must be a string")
    localpart = username.lower()
    if not is_valid_localpart(localpart):
        raise MatrixError(
            400, Codes.INVALID_USERNAME,
            "User ID may only contain the characters a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
        )
    user_id = user_id_for_localpart(env, localpart)
    if len(user_id.encode("utf-8")) > MAX_USER_ID_BYTES:
        raise MatrixError(400, Codes.INVALID_USERNAME, "User ID is too long")
    if await accounts_db.user_exists(env.DB, user_id):
        raise MatrixError(400, Codes.USER_IN_USE, "User ID already taken")
    return user_id


async def _generated_user_id(env: Any) -> str:
    alphabet = string.ascii_lowercase + string.digits
    while True:
        localpart = "".join(secrets.choice(alphabet) for _ in range(GENERATED_LOCALPART_LENGTH))
        user_id = user_id_for_localpart(env, localpart)
        if not await accounts_db.user_exists(env.DB, user_id):
            return user_id


async def register(request: Request, env: Any) -> dict[str, Any] | Response:
    _check_registration_allowed(request, env)
    await limit_registration(request, env)
    body = await read_json_object(request, allow_empty=True)
    username = body.get("username")
    if username is not None:
        await _available_user_id(env, username)
    password = body.get("password")
    if password is not None:
        check_password_shape(password)
    device_id = checked_device_id(body.get("device_id"))
    display_name = checked_display_name(body.get("initial_device_display_name"))

    challenge = await authenticate(request, env, body, DUMMY_FLOWS, None)
    if challenge is not None:
        return challenge

    user_id = (
        await _available_user_id(env, username) if username is not None
        else await _generated_user_id(env)
    )
    localpart = user_id[1:].split(":", 1)[0]
    password_hash = await hash_password(password) if password is not None else None
    statements = accounts_db.insert_user(env.DB, user_id, localpart, password_hash, now_ms())
    response: dict[str, Any] = {"user_id": user_id, "home_server": env.config.server_name}
    if not body.get("inhibit_login"):
        login, response = login_statements(
            env, user_id, device_id, display_name, body.get("refresh_token") is True,
            client_ip(request),
        )
        statements += login
    try:
        await env.DB.batch(statements)
    except D1Error as exc:
        if "UNIQUE" in str(exc):
            raise MatrixError(400, Codes.USER_IN_USE, "User ID already taken") from None
        raise
    return response


async def available(request: Request, env: Any) -> dict[str, Any]:
    if not env.config.enable_registration:
        raise MatrixError(403, Codes.FORBIDDEN, "Registration is disabled on this server")
    username = request.query_params.get("username")
    if username is None:
        raise MatrixError(400, Codes.MISSING_PARAM, "username is required")
    await _available_user_id(env, username)
    return {"available": True}


async def register_flows(request: Request, env: Any) -> dict[str, Any]:
    """``GET /register``: not in the spec, but some clients probe it; answer with the flows."""
    _check_registration_allowed(request, env)
    return {"flows": DUMMY_FLOWS, "params": {}}


routes = [
    *client_routes("/register", register, ["POST"]),
    *client_routes("/register", register_flows, ["GET"]),
    *client_routes("/register/available", available, ["GET"]),
]
