"""Who is calling: access-token authentication, and user ID helpers.

Spec: client-server API "Client Authentication" / "Using access tokens": the token comes in
``Authorization: Bearer <token>`` (or, for older clients, the ``access_token`` query
parameter); a missing token is 401 ``M_MISSING_TOKEN``, an unknown, revoked or expired one
401 ``M_UNKNOWN_TOKEN``. Expired tokens carry ``soft_logout: true`` ("Refreshing access
tokens": the client should refresh), every other refusal ``soft_logout: false``.

Tokens are looked up in D1, through ``env.TOKEN_CACHE`` when the runtime provides one (a
``kv.local_cache.LocalCache``): a token seen valid is trusted for ``TOKEN_CACHE_SECONDS``
without a read. Every change this process makes to a user's tokens (logout, device
deletion, password change, deactivation, refresh) calls ``forget_tokens`` after its commit,
so here it takes effect at once; a change made by another process is seen within
``TOKEN_CACHE_SECONDS``. User IDs follow the appendix "User Identifiers".
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from d1 import devices as devices_db
from d1 import tokens as tokens_db
from workers.errors import Codes, MatrixError

# Appendix "User Identifiers": user_id_char = DIGIT / a-z / "-" / "." / "=" / "_" / "/" / "+".
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
MAX_USER_ID_BYTES = 255
# Device last-seen times are refreshed at most this often (ms), to keep reads cheap.
LAST_SEEN_GRANULARITY_MS = 60_000
# How long a token found valid is trusted without reading D1 again: the longest a logout
# made by another process can go unseen here. Under load this still saves nearly every read.
TOKEN_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Requester:
    """The authenticated caller of a client-server request."""

    user_id: str
    device_id: str | None
    token_id: int | None
    is_guest: bool = False


def now_ms() -> int:
    return int(time.time() * 1000)


def hash_token(token: str) -> str:
    """How tokens are stored: SHA-256 hex of the token's UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(prefix: str) -> str:
    """A fresh opaque token (``prefix`` tells kinds apart in logs: "mat_", "mar_")."""
    return prefix + secrets.token_urlsafe(32)


def token_from_request(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.query_params.get("access_token") or None


def unknown_token(message: str, *, soft_logout: bool = False) -> MatrixError:
    return MatrixError(401, Codes.UNKNOWN_TOKEN, message, soft_logout=soft_logout)


async def require_user(request: Request, env: Any) -> Requester:
    """Authenticate the request's access token, or refuse with 401."""
    token = token_from_request(request)
    if token is None:
        raise MatrixError(401, Codes.MISSING_TOKEN, "Missing access token")
    token_hash = hash_token(token)
    cache = getattr(env, "TOKEN_CACHE", None)
    row = None if cache is None else cache.get(token_hash)
    if row is None:
        generation = 0 if cache is None else cache.generation()
        row = await tokens_db.lookup_access_token(env.DB, token_hash)
        if row is None:
            raise unknown_token("Unrecognised access token")
        if row["deactivated"]:
            raise unknown_token("User account has been deactivated")
        if cache is not None and row["used"]:
            # A token not yet used is marked below, which revokes others: not cached then.
            cache.put(token_hash, row, generation, row["user_id"])
    now = now_ms()
    if row["expires_ts"] is not None and row["expires_ts"] <= now:
        raise unknown_token("Access token has expired", soft_logout=True)
    if not row["used"]:
        # First use of a refreshed token: the refresh token it replaced is now spent.
        await tokens_db.mark_access_token_used(env.DB, row["id"], row["refresh_token_id"])
        forget_tokens(env, row["user_id"])
    device_id = row["device_id"]
    if device_id is not None and (
        row["last_seen_ts"] is None or now - row["last_seen_ts"] >= LAST_SEEN_GRANULARITY_MS
    ):
        ip = request.client.host if request.client else None
        await devices_db.touch_device(env.DB, row["user_id"], device_id, now, ip)
        row["last_seen_ts"] = now  # the cached row too: the next touch is a minute away
    return Requester(
        user_id=row["user_id"],
        device_id=device_id,
        token_id=row["id"],
        is_guest=bool(row["is_guest"]),
    )


def forget_tokens(env: Any, user_id: str) -> None:
    """Call after committing any change to the user's access tokens, devices or account
    state: their cached token lookups are dropped, and lookups already under way are not
    cached."""
    cache = getattr(env, "TOKEN_CACHE", None)
    if cache is not None:
        cache.invalidate(user_id)


async def optional_user(request: Request, env: Any) -> Requester | None:
    """Like ``require_user`` when a token is given; None when none is."""
    if token_from_request(request) is None:
        return None
    return await require_user(request, env)


# --- user IDs ----------------------------------------------------------------------------


def is_valid_localpart(localpart: str) -> bool:
    """A localpart a new local user may get (the current grammar, not the historical one)."""
    return _LOCALPART.fullmatch(localpart) is not None


def user_id_for_localpart(env: Any, localpart: str) -> str:
    return f"@{localpart}:{env.config.server_name}"


def split_user_id(user_id: str) -> tuple[str, str]:
    """(localpart, server_name) of a user ID, accepting historical localparts; 400
    ``M_INVALID_PARAM`` when it is not a user ID at all."""
    if (
        not user_id.startswith("@")
        or ":" not in user_id
        or "\x00" in user_id
        or len(user_id.encode("utf-8")) > MAX_USER_ID_BYTES
    ):
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid user ID: {user_id!r}")
    localpart, _, server_name = user_id[1:].partition(":")
    if not server_name:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid user ID: {user_id!r}")
    return localpart, server_name


def is_valid_user_id(user_id: str) -> bool:
    """Grammatically a user ID (historical localparts allowed)."""
    try:
        split_user_id(user_id)
    except MatrixError:
        return False
    return True


def is_local_user(env: Any, user_id: str) -> bool:
    return is_valid_user_id(user_id) and split_user_id(user_id)[1] == env.config.server_name
