"""``GET /pushers`` and ``POST /pushers/set``.

Spec: client-server API "Push Notifications" / "Client behaviour" (pusher.yaml). A pusher is
keyed by (user, ``app_id``, ``pushkey``); ``kind: null`` deletes it. Only ``http`` pushers
are supported (``email`` needs an email sender this server does not have: 400
``M_INVALID_PARAM``). For ``http`` the ``data.url`` must be an absolute URL with the path
``/_matrix/push/v1/notify`` whose host the IP range policy permits (see
``workers.push.gateway``); ``data.format``, when given, must be ``event_id_only``.
Missing fields give 400 ``M_MISSING_PARAM`` naming them; wrong types or limits (pushkey
at most 512 bytes, app_id at most 64 characters) 400 ``M_INVALID_PARAM``.

After a change, the owner's pusher actor (``env.PUSHERS``) is told, and so are those of
users whose pushers were removed because another user took the same app_id and pushkey.

Each pusher records the device whose access token set it; deleting a device (logout,
``DELETE /devices``, deactivation) deletes its pushers (``on_devices_deleted``, as Synapse
removes the pushers of a deleted device), so a logged-out phone stops getting pushes.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from d1 import pushers as pushers_db
from workers.auth import now_ms, require_user
from workers.client import client_routes
from workers.errors import Codes, MatrixError
from workers.push.gateway import EVENT_ID_ONLY, GatewayError, PushGatewayClient, check_gateway_url
from workers.routing import check_stored_size, read_json_object

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
MAX_PUSHKEY_BYTES = 512
MAX_APP_ID_CHARS = 64
PUSHERS_KEY = "push:pushers"  # the notifier key that wakes the push dispatcher
_REQUIRED_FOR_KIND = ("app_display_name", "device_display_name", "lang", "data")


def gateway_client(env: Any) -> PushGatewayClient:
    """The env's push gateway client (made on first use from the config)."""
    client = getattr(env, "push_gateway", None)
    if client is None:
        client = PushGatewayClient.from_config(env.config)
        env.push_gateway = client
    return client


def pusher_json(row: JsonDict) -> JsonDict:
    out: JsonDict = {
        "pushkey": row["pushkey"], "kind": row["kind"], "app_id": row["app_id"],
        "app_display_name": row["app_display_name"],
        "device_display_name": row["device_display_name"], "lang": row["lang"],
        "data": row["data"],
    }
    if row["profile_tag"] is not None:
        out["profile_tag"] = row["profile_tag"]
    return out


async def get_pushers(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    return {"pushers": [pusher_json(r) for r in await pushers_db.list_pushers(env.DB, requester.user_id)]}


def _string(body: JsonDict, name: str) -> str:
    value = body[name]
    if not isinstance(value, str):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be a string")
    return value


def _validated(body: JsonDict) -> JsonDict:
    """The pusher fields of a ``kind``-not-null request, after the spec's checks."""
    missing = [n for n in _REQUIRED_FOR_KIND if n not in body]
    if missing:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameters: {', '.join(missing)}")
    if body["kind"] != "http":
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unsupported pusher kind {body['kind']!r}")
    fields = {n: _string(body, n) for n in ("app_display_name", "device_display_name", "lang")}
    profile_tag = body.get("profile_tag")
    if profile_tag is not None and not isinstance(profile_tag, str):
        raise MatrixError(400, Codes.INVALID_PARAM, "profile_tag must be a string")
    data = body["data"]
    if not isinstance(data, dict):
        raise MatrixError(400, Codes.INVALID_PARAM, "data must be an object")
    check_stored_size(data, "data")
    if "url" not in data:
        raise MatrixError(400, Codes.MISSING_PARAM, "data.url is required for http pushers")
    problem = check_gateway_url(data["url"])
    if problem is not None:
        raise MatrixError(400, Codes.INVALID_PARAM, problem)
    if "format" in data and data["format"] != EVENT_ID_ONLY:
        raise MatrixError(400, Codes.INVALID_PARAM, f"data.format must be {EVENT_ID_ONLY!r}")
    return {**fields, "profile_tag": profile_tag, "data": data}


async def _tell_actor(env: Any, user_id: str) -> None:
    """Let the user's pusher actor pick up the change (queues of removed pushers go)."""
    namespace = getattr(env, "PUSHERS", None)
    if namespace is None:
        return
    position = await env.DB.prepare(
        "SELECT COALESCE(MAX(stream_ordering), 0) AS p FROM events"
    ).first("p")
    await namespace.get_by_name(user_id).pushers_changed(int(position or 0))


async def on_devices_deleted(env: Any, user_id: str, device_ids: list[str]) -> None:
    """Delete the pushers the deleted devices set, and let the user's pusher actor drop
    their queues. Part of the ``devices_deleted`` hook (workers.hooks)."""
    if await pushers_db.delete_for_devices(env.DB, user_id, device_ids):
        await _tell_actor(env, user_id)
        env.NOTIFIER.notify([PUSHERS_KEY])


async def set_pusher(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    body = await read_json_object(request)
    missing = [n for n in ("kind", "app_id", "pushkey") if n not in body]
    if missing:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameters: {', '.join(missing)}")
    app_id, pushkey = _string(body, "app_id"), _string(body, "pushkey")
    if len(app_id) > MAX_APP_ID_CHARS or not app_id:
        raise MatrixError(400, Codes.INVALID_PARAM, f"app_id must be 1 to {MAX_APP_ID_CHARS} characters")
    if len(pushkey.encode()) > MAX_PUSHKEY_BYTES or not pushkey:
        raise MatrixError(400, Codes.INVALID_PARAM, f"pushkey must be 1 to {MAX_PUSHKEY_BYTES} bytes")
    user_id = requester.user_id
    db = env.DB
    if body["kind"] is None:
        await db.batch([pushers_db.delete(db, user_id, app_id, pushkey)])
        await _tell_actor(env, user_id)
        env.NOTIFIER.notify([PUSHERS_KEY])
        return {}
    append = body.get("append", False)
    if not isinstance(append, bool):
        raise MatrixError(400, Codes.INVALID_PARAM, "append must be a boolean")
    fields = _validated(body)
    try:
        await gateway_client(env).address_for(fields["data"]["url"])
    except GatewayError as exc:
        if not exc.retryable:
            raise MatrixError(400, Codes.INVALID_PARAM, f"data.url refused: {exc.message}") from None
        log.info("pusher of %s: gateway host not resolvable now: %s", user_id, exc.message)
    displaced = [] if append else await pushers_db.other_users(db, app_id, pushkey, user_id)
    statements = [] if append else [pushers_db.delete_for_other_users(db, app_id, pushkey, user_id)]
    statements.append(
        pushers_db.upsert(db, {
            **fields, "user_id": user_id, "app_id": app_id, "pushkey": pushkey, "kind": "http",
            "device_id": requester.device_id, "pushkey_ts": now_ms() // 1000,
        })
    )
    await db.batch(statements)
    for other in [user_id, *displaced]:
        await _tell_actor(env, other)
    env.NOTIFIER.notify([PUSHERS_KEY])
    return {}


routes = [
    *client_routes("/pushers", get_pushers, ["GET"]),
    *client_routes("/pushers/set", set_pusher, ["POST"]),
]
