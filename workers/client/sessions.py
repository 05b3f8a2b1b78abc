"""Issuing logins: a device, an access token and, for clients that ask, a refresh token.

Spec: client-server API "Relationship between access tokens and devices" and "Refreshing
access tokens". Access tokens issued with a refresh token expire after
``REFRESHABLE_ACCESS_TOKEN_LIFETIME_MS``; the others never expire.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from starlette.requests import Request

from d1 import devices as devices_db
from d1 import tokens as tokens_db
from d1.database import PreparedStatement
from workers.auth import hash_token, new_token, now_ms
from workers.errors import Codes, MatrixError

REFRESHABLE_ACCESS_TOKEN_LIFETIME_MS = 5 * 60 * 1000
MAX_DEVICE_ID_LENGTH = 255
ACCESS_PREFIX = "mat_"
REFRESH_PREFIX = "mar_"


def generate_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


def checked_device_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_DEVICE_ID_LENGTH:
        raise MatrixError(400, Codes.INVALID_PARAM, "device_id must be a non-empty string")
    return value


def checked_display_name(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise MatrixError(400, Codes.INVALID_PARAM, "initial_device_display_name must be a string")
    return value


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def token_pair_statements(
    env: Any, user_id: str, device_id: str, want_refresh: bool
) -> tuple[list[PreparedStatement], dict[str, Any]]:
    """Statements inserting a new access token (and refresh token), and the response fields
    that describe them."""
    now = now_ms()
    access = new_token(ACCESS_PREFIX)
    fields: dict[str, Any] = {"access_token": access}
    statements: list[PreparedStatement] = []
    refresh_hash = None
    expires_ts = None
    if want_refresh:
        refresh = new_token(REFRESH_PREFIX)
        refresh_hash = hash_token(refresh)
        statements.append(
            tokens_db.insert_refresh_token(env.DB, refresh_hash, user_id, device_id, now)
        )
        expires_ts = now + REFRESHABLE_ACCESS_TOKEN_LIFETIME_MS
        fields["refresh_token"] = refresh
        fields["expires_in_ms"] = REFRESHABLE_ACCESS_TOKEN_LIFETIME_MS
    statements.append(
        tokens_db.insert_access_token(
            env.DB, hash_token(access), user_id, device_id, now, expires_ts, refresh_hash
        )
    )
    return statements, fields


def login_statements(
    env: Any,
    user_id: str,
    device_id: str | None,
    display_name: str | None,
    want_refresh: bool,
    ip: str | None,
) -> tuple[list[PreparedStatement], dict[str, Any]]:
    """Statements creating (or reusing) the device and its tokens, and the login response
    body (``user_id``, ``device_id``, ``access_token``, maybe ``refresh_token`` and
    ``expires_in_ms``; ``home_server`` for old clients)."""
    device_id = device_id or generate_device_id()
    statements = [devices_db.upsert_device(env.DB, user_id, device_id, display_name, now_ms(), ip)]
    token_statements, fields = token_pair_statements(env, user_id, device_id, want_refresh)
    body = {
        "user_id": user_id,
        "device_id": device_id,
        "home_server": env.config.server_name,
        **fields,
    }
    return statements + token_statements, body
