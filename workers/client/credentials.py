"""Who a login or ``m.login.password`` auth dict names, and whether the password is right.

Spec: client-server API "Identifier types" (``m.id.user``: a user ID or a localpart) and the
deprecated top-level ``user`` field of ``/login``.
"""

from __future__ import annotations

from typing import Any

from d1 import accounts as accounts_db
from workers.auth import is_local_user, user_id_for_localpart
from workers.client.passwords import verify_password
from workers.errors import Codes, MatrixError


def named_user_id(env: Any, body: dict[str, Any]) -> str | None:
    """The user ID an ``identifier`` (or legacy ``user``) names; None when it names a remote
    user or is not a user identifier this server supports (400 for malformed ones)."""
    identifier = body.get("identifier")
    if identifier is not None:
        if not isinstance(identifier, dict) or not isinstance(identifier.get("type"), str):
            raise MatrixError(400, Codes.BAD_JSON, "identifier must be an object with a type")
        if identifier["type"] != "m.id.user":
            raise MatrixError(
                400, Codes.UNKNOWN, f"Unsupported identifier type {identifier['type']!r}"
            )
        user = identifier.get("user")
    else:
        user = body.get("user")
    if not isinstance(user, str) or not user:
        raise MatrixError(400, Codes.MISSING_PARAM, "A user identifier is required")
    if user.startswith("@"):
        return user if is_local_user(env, user) else None
    return user_id_for_localpart(env, user.lower())


async def check_password_login(env: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    """The user row when the identifier and ``password`` match a local account, else None.
    Deactivated accounts have no password, so they never match."""
    password = body.get("password")
    if not isinstance(password, str):
        raise MatrixError(400, Codes.MISSING_PARAM, "password is required")
    user_id = named_user_id(env, body)
    if user_id is None:
        return None
    user = await accounts_db.get_user(env.DB, user_id)
    if user is None and user_id != user_id.lower():
        user = await accounts_db.get_user(env.DB, user_id.lower())
    if user is None:
        return None
    if not await verify_password(password, user["password_hash"]):
        return None
    return user
