"""Profiles: ``GET /profile/{userId}``, ``GET/PUT/DELETE /profile/{userId}/{keyName}``.

Spec: client-server API "Profiles" (profile.yaml). This server stores the two standard
fields, ``displayname`` (a string) and ``avatar_url`` (an MXC URI); other keys are refused
on write (403) and absent on read (404). Reading needs no access token; writing is only
allowed for one's own profile. A remote user's profile is asked of their server
(server-server ``GET /_matrix/federation/v1/query/profile``); a failure there is mapped to
our own error (``as_client_error``: a remote 404 stays 404, anything else is 502).

After a change, ``env.hooks.profile_changed(user_id)`` runs (see ``workers.client``), so the
rooms code can send new ``m.room.member`` events.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from d1 import accounts as accounts_db
from workers.auth import require_user
from workers.client import call_hook, client_routes
from durable.events.identifiers import is_valid_user_id, server_name_of
from workers.errors import Codes, MatrixError
from workers.federation.client import federation_client
from workers.federation.errors import FederationError, as_client_error
from workers.routing import read_json_object

FIELDS = ("displayname", "avatar_url")
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000


async def _remote_profile(env: Any, server: str, user_id: str) -> dict[str, Any]:
    try:
        body = await federation_client(env).get_json(
            server, "/_matrix/federation/v1/query/profile", {"user_id": user_id}
        )
    except FederationError as exc:
        raise as_client_error(exc) from exc
    if not isinstance(body, dict):
        raise MatrixError(502, Codes.UNKNOWN, f"{server} answered the profile query with no object")
    return {k: body[k] for k in FIELDS if isinstance(body.get(k), str)}


async def _profile(env: Any, user_id: str) -> dict[str, Any]:
    if not is_valid_user_id(user_id):
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid user ID")
    server = server_name_of(user_id)
    if server is not None and server != env.config.server_name:
        return await _remote_profile(env, server, user_id)
    row = await accounts_db.get_profile(env.DB, user_id)
    if row is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Profile was not found")
    return {key: value for key, value in row.items() if value is not None}


async def get_profile(request: Request, env: Any) -> dict[str, Any]:
    return await _profile(env, request.path_params["user_id"])


async def get_field(request: Request, env: Any) -> dict[str, Any]:
    key = request.path_params["key"]
    profile = await _profile(env, request.path_params["user_id"])
    if key not in profile:
        raise MatrixError(404, Codes.NOT_FOUND, f"The user has no {key!r} in their profile")
    return {key: profile[key]}


def _checked_value(key: str, value: Any) -> str | None:
    """The value to store (None clears the field); 400 when it is not valid for ``key``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MatrixError(400, Codes.BAD_JSON, f"{key} must be a string")
    if key == "displayname":
        if len(value) > MAX_DISPLAYNAME_LENGTH:
            raise MatrixError(400, Codes.BAD_JSON, "displayname is too long")
        return value or None
    if len(value) > MAX_AVATAR_URL_LENGTH:
        raise MatrixError(400, Codes.BAD_JSON, "avatar_url is too long")
    if value and not value.startswith("mxc://"):
        raise MatrixError(400, Codes.BAD_JSON, "avatar_url must be an mxc:// URI")
    return value or None


async def _writable_key(request: Request, env: Any) -> str:
    """Check the caller may change this key of this profile; return the key."""
    requester = await require_user(request, env)
    user_id = request.path_params["user_id"]
    if requester.user_id != user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "You cannot change another user's profile")
    key = request.path_params["key"]
    if key not in FIELDS:
        raise MatrixError(
            403, Codes.FORBIDDEN, f"This server only stores {', '.join(FIELDS)} in profiles"
        )
    return key


async def set_field(request: Request, env: Any) -> dict[str, Any]:
    key = await _writable_key(request, env)
    body = await read_json_object(request)
    if key not in body:
        raise MatrixError(400, Codes.MISSING_PARAM, f"The body must contain {key!r}")
    value = _checked_value(key, body[key])
    user_id = request.path_params["user_id"]
    await accounts_db.set_profile_field(env.DB, user_id, key, value)
    await call_hook(env, "profile_changed", user_id)
    return {}


async def delete_field(request: Request, env: Any) -> dict[str, Any]:
    key = await _writable_key(request, env)
    user_id = request.path_params["user_id"]
    await accounts_db.set_profile_field(env.DB, user_id, key, None)
    await call_hook(env, "profile_changed", user_id)
    return {}


routes = [
    *client_routes("/profile/{user_id}", get_profile, ["GET"]),
    *client_routes("/profile/{user_id}/{key}", get_field, ["GET"]),
    *client_routes("/profile/{user_id}/{key}", set_field, ["PUT"]),
    *client_routes("/profile/{user_id}/{key}", delete_field, ["DELETE"]),
]
