"""Server-side key backups: ``/room_keys/version[/{version}]`` and
``/room_keys/keys[/{roomId}[/{sessionId}]]``.

Spec: client-server API "Server-side key backups" (key_backup.yaml).
- GET ``/room_keys/version`` with no backup is 404 ``M_NOT_FOUND``.
- Keys are written only to the current (latest) version: another version is 403
  ``M_WRONG_ROOM_KEYS_VERSION`` with ``current_version``; no backup at all is 404.
- When a session is uploaded again, ``should_replace`` decides which copy stays.
- Changing keys answers (and bumps) the version's ``etag``, with the key ``count``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from d1 import key_backup as backup_db
from workers.auth import require_user
from workers.client import client_routes
from workers.errors import Codes, MatrixError
from workers.routing import check_stored_size, read_json_object

ALGORITHMS = ("m.megolm_backup.v1.curve25519-aes-sha2",)
WRONG_VERSION = "M_WRONG_ROOM_KEYS_VERSION"

JsonDict = dict[str, Any]


def should_replace(existing: JsonDict, new: JsonDict) -> bool:
    """Spec "Server-side key backups": keep the copy with ``is_verified`` true; if both agree,
    the lower ``first_message_index``; if that ties too, the lower ``forwarded_count``.
    True when ``new`` is the one to keep (on a full tie the stored copy stays)."""
    if bool(existing["is_verified"]) != bool(new["is_verified"]):
        return bool(new["is_verified"])
    if existing["first_message_index"] != new["first_message_index"]:
        return new["first_message_index"] < existing["first_message_index"]
    return new["forwarded_count"] < existing["forwarded_count"]


def check_session(data: Any) -> JsonDict:
    """A KeyBackupData object, or 400 ``M_BAD_JSON``."""
    if not isinstance(data, dict):
        raise MatrixError(400, Codes.BAD_JSON, "Key backup data must be an object")
    for field in ("first_message_index", "forwarded_count"):
        value = data.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MatrixError(400, Codes.BAD_JSON, f"{field} must be a non-negative integer")
    if not isinstance(data.get("is_verified"), bool):
        raise MatrixError(400, Codes.BAD_JSON, "is_verified must be a boolean")
    if not isinstance(data.get("session_data"), dict):
        raise MatrixError(400, Codes.BAD_JSON, "session_data must be an object")
    check_stored_size(data, "Key backup data")
    return data


def _version_number(text: str | None) -> int | None:
    """The stored number of a version string; None for anything we never issued."""
    if text is None or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def _unknown_version(text: str | None) -> MatrixError:
    return MatrixError(404, Codes.NOT_FOUND, f"Unknown backup version {text!r}")


def _check_backup_body(body: JsonDict) -> tuple[str, JsonDict]:
    algorithm, auth_data = body.get("algorithm"), body.get("auth_data")
    if not isinstance(algorithm, str):
        raise MatrixError(400, Codes.MISSING_PARAM, "algorithm is required")
    if algorithm not in ALGORITHMS:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unsupported backup algorithm {algorithm!r}")
    if not isinstance(auth_data, dict):
        raise MatrixError(400, Codes.MISSING_PARAM, "auth_data must be an object")
    check_stored_size(auth_data, "auth_data")
    return algorithm, auth_data


# --- versions ------------------------------------------------------------------------------


async def create_version(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    algorithm, auth_data = _check_backup_body(await read_json_object(request))
    version = await backup_db.create_version(env.DB, requester.user_id, algorithm, auth_data)
    return {"version": str(version)}


async def get_current_version(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    current = await backup_db.current_version(env.DB, requester.user_id)
    if current is None:
        raise MatrixError(404, Codes.NOT_FOUND, "No current backup version")
    return current


async def _existing_version(env: Any, user_id: str, text: str | None) -> tuple[int, JsonDict]:
    number = _version_number(text)
    found = None if number is None else await backup_db.get_version(env.DB, user_id, number)
    if number is None or found is None:
        raise _unknown_version(text)
    return number, found


async def get_version(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    return (await _existing_version(env, requester.user_id, request.path_params["version"]))[1]


async def update_version(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    text = request.path_params["version"]
    body = await read_json_object(request)
    algorithm, auth_data = _check_backup_body(body)
    number, found = await _existing_version(env, requester.user_id, text)
    if "version" in body and body["version"] != text:
        raise MatrixError(400, Codes.INVALID_PARAM, "version in the body does not match the path")
    if algorithm != found["algorithm"]:
        raise MatrixError(400, Codes.INVALID_PARAM, "Algorithm does not match")
    await backup_db.update_auth_data(env.DB, requester.user_id, number, auth_data)
    return {}


async def delete_version(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    number, _ = await _existing_version(env, requester.user_id, request.path_params["version"])
    await backup_db.delete_version(env.DB, requester.user_id, number)
    return {}


# --- keys ----------------------------------------------------------------------------------


def _version_param(request: Request) -> str:
    text = request.query_params.get("version")
    if text is None:
        raise MatrixError(400, Codes.MISSING_PARAM, "The version query parameter is required")
    return text


def _etag_and_count(version: JsonDict) -> JsonDict:
    return {"etag": version["etag"], "count": version["count"]}


async def put_keys(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    user_id = requester.user_id
    text = _version_param(request)
    body = await read_json_object(request)
    room_id = request.path_params.get("room_id")
    session_id = request.path_params.get("session_id")
    if room_id is None:
        rooms = body.get("rooms")
    elif session_id is None:
        rooms = {room_id: body}
    else:
        rooms = {room_id: {"sessions": {session_id: body}}}
    if not isinstance(rooms, dict) or not all(
        isinstance(r, dict) and isinstance(r.get("sessions"), dict) for r in rooms.values()
    ):
        raise MatrixError(400, Codes.BAD_JSON, "Expected rooms -> room ID -> sessions")
    uploads = {
        (room, session): check_session(data)
        for room, entry in rooms.items()
        for session, data in entry["sessions"].items()
    }

    current = await backup_db.current_version(env.DB, user_id)
    if current is None:
        raise _unknown_version(text)
    if text != current["version"]:
        raise MatrixError(403, WRONG_VERSION, "Wrong backup version", current_version=current["version"])
    number = int(current["version"])
    stored = await backup_db.get_sessions(env.DB, user_id, number) if uploads else {}
    statements = []
    for (room, session), data in uploads.items():
        existing = stored.get(room, {}).get(session)
        if existing is None or should_replace(existing, data):
            statements.append(backup_db.put_session(env.DB, user_id, number, room, session, data))
    if statements:
        await env.DB.batch([*statements, backup_db.bump_etag(env.DB, user_id, number)])
    after = await backup_db.get_version(env.DB, user_id, number)
    if after is None:  # deleted meanwhile
        raise _unknown_version(str(number))
    return _etag_and_count(after)


async def get_keys(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    number, _ = await _existing_version(env, requester.user_id, _version_param(request))
    room_id = request.path_params.get("room_id")
    session_id = request.path_params.get("session_id")
    rooms = await backup_db.get_sessions(env.DB, requester.user_id, number, room_id, session_id)
    if room_id is None:
        return {"rooms": {room: {"sessions": sessions} for room, sessions in rooms.items()}}
    sessions = rooms.get(room_id, {})
    if session_id is None:
        return {"sessions": sessions}
    if session_id not in sessions:
        raise MatrixError(404, Codes.NOT_FOUND, "No key backed up for this session")
    return sessions[session_id]


async def delete_keys(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    user_id = requester.user_id
    number, _ = await _existing_version(env, user_id, _version_param(request))
    room_id = request.path_params.get("room_id")
    session_id = request.path_params.get("session_id")
    await env.DB.batch([
        backup_db.delete_sessions(env.DB, user_id, number, room_id, session_id),
        backup_db.bump_etag(env.DB, user_id, number),
    ])
    after = await backup_db.get_version(env.DB, user_id, number)
    if after is None:  # deleted meanwhile
        raise _unknown_version(str(number))
    return _etag_and_count(after)


routes = [
    *client_routes("/room_keys/version", create_version, ["POST"]),
    *client_routes("/room_keys/version", get_current_version, ["GET"]),
    *client_routes("/room_keys/version/{version}", get_version, ["GET"]),
    *client_routes("/room_keys/version/{version}", update_version, ["PUT"]),
    *client_routes("/room_keys/version/{version}", delete_version, ["DELETE"]),
    *client_routes("/room_keys/keys", put_keys, ["PUT"]),
    *client_routes("/room_keys/keys", get_keys, ["GET"]),
    *client_routes("/room_keys/keys", delete_keys, ["DELETE"]),
    *client_routes("/room_keys/keys/{room_id}", put_keys, ["PUT"]),
    *client_routes("/room_keys/keys/{room_id}", get_keys, ["GET"]),
    *client_routes("/room_keys/keys/{room_id}", delete_keys, ["DELETE"]),
    *client_routes("/room_keys/keys/{room_id}/{session_id}", put_keys, ["PUT"]),
    *client_routes("/room_keys/keys/{room_id}/{session_id}", get_keys, ["GET"]),
    *client_routes("/room_keys/keys/{room_id}/{session_id}", delete_keys, ["DELETE"]),
]
