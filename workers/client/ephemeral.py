"""Typing, receipts, read markers and presence:
``PUT /rooms/{roomId}/typing/{userId}``, ``POST /rooms/{roomId}/receipt/{receiptType}/{eventId}``,
``POST /rooms/{roomId}/read_markers`` and ``GET/PUT /presence/{userId}/status``.

Spec: client-server API modules "Typing Notifications", "Receipts", "Read and unread
markers" (``m.fully_read`` is room account data) and "Presence". Typing and receipts need
the caller to be joined to the room; receipts and markers must name an event of the room.
Every change wakes the syncs waiting on the room (or, for private data, on the user).
Typing, public read receipts and presence changes also go to the other servers concerned
(workers.federation.e2ee_out). A local user's presence is written by their presence actor
(durable/presence.py, which times it out); sending, receipts and typing count as activity
for it (Synapse's rule), reported at most once per ``CURRENTLY_ACTIVE_MS``.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from starlette.requests import Request

from d1 import account_data as account_data_db
from d1 import device_lists
from d1 import ephemeral as ephemeral_db
from d1.accounts import user_exists
from d1.state import membership_of
from durable.presence_rules import timers_from_config
from workers.auth import Requester, is_local_user, now_ms, require_user
from workers.client import client_routes
from workers.client.room_reads import reader_for
from workers.errors import Codes, MatrixError
from workers.federation import e2ee_out
from workers.push.threads import MAIN_THREAD, ContentLoader, thread_of
from workers.push.unread import parent_loader
from workers.room_access import require_room
from workers.routing import read_json_object

READ = "m.read"
PRIVATE_READ = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = (READ, PRIVATE_READ, FULLY_READ)
DEFAULT_TYPING_TIMEOUT_MS = 30_000
PRESENCE_STATES = ("online", "unavailable", "offline")

JsonDict = dict[str, Any]
# Per env (server): user_id -> PresenceHint, forgotten after this long unused.
HINT_TTL_SECONDS = 600
_HINTS: "weakref.WeakKeyDictionary[Any, TTLCache[str, PresenceHint]]" = weakref.WeakKeyDictionary()


async def _require_joined(env: Any, room_id: str, user_id: str) -> None:
    await require_room(env, room_id)
    if await membership_of(env.DB, room_id, user_id) != "join":
        raise MatrixError(403, Codes.FORBIDDEN, f"{user_id} is not in room {room_id}")


# --- typing --------------------------------------------------------------------------------


async def set_typing(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    room_id, user_id = request.path_params["room_id"], request.path_params["user_id"]
    if user_id != requester.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "Cannot set another user's typing state")
    body = await read_json_object(request)
    typing, timeout = body.get("typing"), body.get("timeout", DEFAULT_TYPING_TIMEOUT_MS)
    if not isinstance(typing, bool):
        raise MatrixError(400, Codes.BAD_JSON, "typing must be a boolean")
    if typing and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0):
        raise MatrixError(400, Codes.BAD_JSON, "timeout must be a non-negative integer")
    await _require_joined(env, room_id, user_id)
    stub = env.TYPING.get(env.TYPING.id_from_name(room_id))
    await stub.set_typing(user_id, typing, int(timeout) if typing else 0)
    await e2ee_out.typing_changed(env, room_id, user_id, typing)
    await presence_activity(env, user_id)
    return {}


# --- receipts and read markers -------------------------------------------------------------


async def _room_event(env: Any, room_id: str, event_id: Any) -> JsonDict:
    """The event (its PDU) if it is an accepted event of the room; else 400/404."""
    if not isinstance(event_id, str) or not event_id.startswith("$"):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{event_id!r} is not an event ID")
    row = await env.DB.prepare(
        "SELECT room_id, json FROM events WHERE event_id = ? AND rejected_reason IS NULL"
        " AND outlier = 0"
    ).bind(event_id).first()
    if row is None or row["room_id"] != room_id:
        raise MatrixError(404, Codes.NOT_FOUND, f"No event {event_id} in room {room_id}")
    return json.loads(row["json"])


async def check_thread(
    receipt_type: str, thread_id: Any, event_id: str, pdu: JsonDict, load_content: ContentLoader
) -> str | None:
    """The receipt's thread ID (None: unthreaded), after the spec's 400 checks: a non-empty
    string, not on ``m.fully_read``, and the event belongs to that thread (``main``: not
    in a thread; a root: the root itself or an event of its thread, found by following
    relations up to 3 hops as workers.push.threads does for notification counts)."""
    if thread_id is None:
        return None
    if not isinstance(thread_id, str) or not thread_id:
        raise MatrixError(400, Codes.INVALID_PARAM, "thread_id must be a non-empty string")
    if receipt_type == FULLY_READ:
        raise MatrixError(400, Codes.INVALID_PARAM, "m.fully_read cannot be threaded")
    content = pdu.get("content")
    thread = await thread_of(content if isinstance(content, dict) else {}, load_content)
    if thread_id == MAIN_THREAD:
        if thread != MAIN_THREAD:
            raise MatrixError(400, Codes.INVALID_PARAM, f"{event_id} is in thread {thread}, not main")
    elif thread_id != event_id and thread != thread_id:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{event_id} is not in thread {thread_id}")
    return thread_id


async def _apply_marker(
    env: Any, requester: Requester, room_id: str, receipt_type: str, event_id: str,
    thread_id: str | None, statements: list[Any], notify: set[str],
) -> None:
    db = env.DB
    user_id = requester.user_id
    if receipt_type == FULLY_READ:
        statements += account_data_db.put_statements(db, user_id, room_id, FULLY_READ, {"event_id": event_id})
        notify.add(user_id)
        return
    statements += ephemeral_db.put_receipt(db, room_id, receipt_type, user_id, thread_id, event_id, now_ms())
    notify.add(user_id if receipt_type == PRIVATE_READ else room_id)


async def post_receipt(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    room_id = request.path_params["room_id"]
    receipt_type = request.path_params["receipt_type"]
    event_id = request.path_params["event_id"]
    body = await read_json_object(request, allow_empty=True)
    if receipt_type not in RECEIPT_TYPES:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown receipt type {receipt_type!r}")
    await _require_joined(env, room_id, requester.user_id)
    pdu = await _room_event(env, room_id, event_id)
    thread_id = await check_thread(
        receipt_type, body.get("thread_id"), event_id, pdu,
        parent_loader(reader_for(env, requester), room_id),
    )
    statements: list[Any] = []
    notify: set[str] = set()
    await _apply_marker(env, requester, room_id, receipt_type, event_id, thread_id, statements, notify)
    await env.DB.batch(statements)
    env.NOTIFIER.notify(sorted(notify))
    if receipt_type == READ:
        await e2ee_out.read_receipt_sent(env, room_id, requester.user_id, event_id, thread_id, now_ms())
    await presence_activity(env, requester.user_id)
    return {}


async def post_read_markers(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    room_id = request.path_params["room_id"]
    body = await read_json_object(request)
    await _require_joined(env, room_id, requester.user_id)
    statements: list[Any] = []
    notify: set[str] = set()
    for receipt_type in (FULLY_READ, READ, PRIVATE_READ):
        event_id = body.get(receipt_type)
        if event_id is None:
            continue
        await _room_event(env, room_id, event_id)
        await _apply_marker(env, requester, room_id, receipt_type, event_id, None, statements, notify)
    if statements:
        await env.DB.batch(statements)
        env.NOTIFIER.notify(sorted(notify))
    if isinstance(body.get(READ), str):
        await e2ee_out.read_receipt_sent(env, room_id, requester.user_id, body[READ], None, now_ms())
    await presence_activity(env, requester.user_id)
    return {}


# --- presence ------------------------------------------------------------------------------


async def notify_presence(env: Any, user_id: str) -> None:
    """Wake the user's syncs and those of everyone sharing a room with them."""
    env.NOTIFIER.notify([user_id, *await device_lists.joined_rooms(env.DB, user_id)])


async def write_presence(
    env: Any, user_id: str, state: str, status_msg: str | None, last_active_ts: int
) -> None:
    """Store a presence change (with a new position), wake the syncs that see it and send it
    to the servers sharing a room with the user. Local users' presence is written by their
    presence actor (durable/presence.py) only."""
    await env.DB.batch(ephemeral_db.put_presence(env.DB, user_id, state, status_msg, last_active_ts))
    await notify_presence(env, user_id)
    row = await ephemeral_db.get_presence(env.DB, user_id)
    if row is not None:
        await e2ee_out.presence_changed(env, user_id, row)


def presence_actor(env: Any, user_id: str) -> Any:
    return env.PRESENCE.get(env.PRESENCE.id_from_name(user_id))


@dataclass
class PresenceHint:
    """What this worker last told a user's presence actor (to skip calls that change nothing)."""

    online_until: int = 0
    requested: str | None = None
    state: str | None = None
    active_at: int = 0


def presence_hint(env: Any, user_id: str) -> PresenceHint:
    cache = _HINTS.get(env)
    if cache is None:
        cache = _HINTS[env] = TTLCache(maxsize=100_000, ttl=HINT_TTL_SECONDS)
    hint = cache.get(user_id)
    if hint is None:
        hint = cache[user_id] = PresenceHint()
    return hint


async def presence_activity(env: Any, user_id: str) -> None:
    """The user did something that counts as activity (sent, read, typed): tell their
    presence actor, at most once per ``CURRENTLY_ACTIVE_MS`` (the granularity of the last
    active time, or a fifth of the idle time when that is shorter)."""
    hint = presence_hint(env, user_id)
    now = now_ms()
    granularity = min(ephemeral_db.CURRENTLY_ACTIVE_MS, timers_from_config(env.config).idle_ms // 5)
    if now - hint.active_at < granularity:
        return
    hint.active_at = now
    await presence_actor(env, user_id).activity()


async def put_presence(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    user_id = request.path_params["user_id"]
    if user_id != requester.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "Cannot set another user's presence")
    body = await read_json_object(request)
    state, status_msg = body.get("presence"), body.get("status_msg")
    if state not in PRESENCE_STATES:
        raise MatrixError(400, Codes.INVALID_PARAM, f"presence must be one of {', '.join(PRESENCE_STATES)}")
    if status_msg is not None and not isinstance(status_msg, str):
        raise MatrixError(400, Codes.BAD_JSON, "status_msg must be a string")
    await presence_actor(env, user_id).set_presence(state, status_msg)
    presence_hint(env, user_id).active_at = now_ms()
    return {}


async def get_presence(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    user_id = request.path_params["user_id"]
    if is_local_user(env, user_id) and not await user_exists(env.DB, user_id):
        raise MatrixError(404, Codes.NOT_FOUND, f"Unknown user {user_id}")
    # A remote user's presence is what their server last sent us (made offline by their
    # presence actor when it goes stale), visible like a local user's to those sharing a room.
    if user_id != requester.user_id and user_id not in await device_lists.users_sharing_a_room(
        env.DB, requester.user_id
    ):
        raise MatrixError(403, Codes.FORBIDDEN, "You do not share a room with this user")
    row = await ephemeral_db.get_presence(env.DB, user_id)
    if row is None:
        return {"presence": "offline"}
    return ephemeral_db.presence_content(row, now_ms())


routes = [
    *client_routes("/rooms/{room_id}/typing/{user_id}", set_typing, ["PUT"]),
    *client_routes("/rooms/{room_id}/receipt/{receipt_type}/{event_id}", post_receipt, ["POST"]),
    *client_routes("/rooms/{room_id}/read_markers", post_read_markers, ["POST"]),
    *client_routes("/presence/{user_id}/status", put_presence, ["PUT"]),
    *client_routes("/presence/{user_id}/status", get_presence, ["GET"]),
]
