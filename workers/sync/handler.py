"""``GET /_matrix/client/v3/sync``.

Spec: client-server API "Syncing" and ``GET /sync`` (data/api/client-server/sync.yaml).
Without ``since`` the response is an initial sync; with it, what changed after that token.
``next_batch`` is the token to pass next time. With ``timeout`` (ms) > 0 and nothing new, the
request waits until something the user watches changes (their rooms, their user ID) or the
time runs out, then answers with an empty response whose ``next_batch`` is ``since``.

Waiting uses ``env.NOTIFIER``: its position is taken before D1 is read, so a change committed
between the read and the wait wakes the request at once. There is no polling loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.auth import Requester, now_ms, require_user
from workers.client.events_format import JsonDict
from workers.client.history import RoomReader
from workers.client.sync_providers import fill_sync_response, presence_on_sync, presence_sync_ended
from workers.errors import Codes, MatrixError
from workers.push.unread import fill_unread_counts
from workers.routing import client_routes
from workers.sync.account_data import AccountDataChanges, account_data_changes
from workers.sync.filters import SyncFilter, load_sync_filter
from workers.sync.rooms import RoomsSection, SyncWindow, current_memberships, rooms_section
from workers.sync.tokens import StreamToken, current_token

# Synapse caps long polls; clients commonly ask for 30 s.
MAX_TIMEOUT_MS = 5 * 60 * 1000
PRESENCE_STATES = ("online", "offline", "unavailable")


def _parse_timeout(request: Request) -> int:
    raw = request.query_params.get("timeout")
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise MatrixError(400, Codes.INVALID_PARAM, "timeout must be an integer") from None
    return max(0, min(value, MAX_TIMEOUT_MS))


def _parse_bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return False
    if raw not in ("true", "false"):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be 'true' or 'false'")
    return raw == "true"


async def build_response(
    env: Any,
    requester: Requester,
    since: StreamToken | None,
    sync_filter: SyncFilter,
    full_state: bool,
) -> tuple[JsonDict, bool]:
    """One sync response over ``(since, now]`` and whether it carries anything."""
    upto = await current_token(env.DB)
    if since is not None:
        # Positions beyond ours (a token from a database that was reset) count as "now".
        since = since.clamped_to(upto)
    reader = RoomReader(
        env.DB, user_id=requester.user_id, device_id=requester.device_id, now_ms=now_ms(),
        room_versions=getattr(env, "ROOM_VERSIONS", None),
    )
    # A stream whose position has not moved since the token has nothing new: skip its reads.
    if since is not None and since.account_data == upto.account_data:
        account_data = AccountDataChanges()
    else:
        account_data = await account_data_changes(
            env.DB,
            requester.user_id,
            since.account_data if since is not None else 0,
            upto.account_data,
            sync_filter.account_data,
            sync_filter.room.account_data,
        )
    window = SyncWindow(
        since=since.events if since is not None else None,
        upto=upto.events,
        full_state=full_state,
        filter=sync_filter,
    )
    if window.since == window.upto and not account_data.by_room and not full_state:
        # No event since the token and no room account data: every room section is empty
        # (each entry of an incremental sync needs one of those, or full_state).
        rooms = RoomsSection()
    else:
        rooms = await rooms_section(
            reader, window, account_data.by_room, lambda position: upto.with_events(position).encode()
        )
    body: JsonDict = {
        "next_batch": upto.encode(),
        "rooms": rooms.to_json(),
        "account_data": {"events": account_data.global_events},
        "presence": {"events": []},
        "to_device": {"events": []},
        "device_lists": {"changed": [], "left": []},
        "device_one_time_keys_count": {},
        "device_unused_fallback_key_types": [],
    }
    has_data = not rooms.is_empty() or bool(account_data.global_events)
    # To-device, device lists, key counts, presence and rooms' ephemeral events.
    next_token, more = await fill_sync_response(
        env, requester.user_id, requester.device_id, since, upto, sync_filter, body
    )
    body["next_batch"] = next_token.encode()
    # unread_notifications of every joined room in the response, per thread when the
    # timeline filter asks for unread_thread_notifications (workers.push.unread).
    await fill_unread_counts(
        reader, body["rooms"]["join"], upto.events,
        per_thread=sync_filter.room.timeline.unread_thread_notifications,
    )
    return body, has_data or more


def empty_response(since: StreamToken) -> JsonDict:
    return {
        "next_batch": since.encode(),
        "rooms": {"join": {}, "invite": {}, "knock": {}, "leave": {}},
        "account_data": {"events": []},
        "presence": {"events": []},
        "to_device": {"events": []},
        "device_lists": {"changed": [], "left": []},
        "device_one_time_keys_count": {},
        "device_unused_fallback_key_types": [],
    }


async def sync(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    params = request.query_params
    since_param = params.get("since")
    since = StreamToken.parse(since_param) if since_param else None
    timeout_ms = _parse_timeout(request)
    full_state = _parse_bool(request, "full_state")
    set_presence = params.get("set_presence")
    if set_presence is not None and set_presence not in PRESENCE_STATES:
        raise MatrixError(400, Codes.INVALID_PARAM, "set_presence must be online, offline or unavailable")
    sync_filter = await load_sync_filter(env.DB, requester.user_id, params.get("filter"))
    await presence_on_sync(env, requester.user_id, set_presence, timeout_ms)
    try:
        return await _respond(env, requester, since, sync_filter, full_state, timeout_ms)
    finally:
        await presence_sync_ended(env, requester.user_id, set_presence)


async def _respond(
    env: Any,
    requester: Requester,
    since: StreamToken | None,
    sync_filter: SyncFilter,
    full_state: bool,
    timeout_ms: int,
) -> JsonDict:
    """Build the response, long-polling up to ``timeout_ms`` for something new."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    keys: list[str] | None = None
    while True:
        position = env.NOTIFIER.position()
        body, has_data = await build_response(env, requester, since, sync_filter, full_state)
        if has_data or since is None or full_state:
            return body
        remaining = deadline - loop.time()
        if remaining <= 0:
            return body if timeout_ms == 0 else empty_response(since)
        if keys is None:
            # The user's ID (membership changes, invites) and every room they have a
            # membership in; a membership change wakes the user key, so this list can be
            # taken once per request.
            reader = RoomReader(env.DB, user_id=requester.user_id, device_id=None, now_ms=0)
            keys = [requester.user_id, *(m.room_id for m in await current_memberships(reader))]
        # Woken by a change that this user's filter hides: build again and wait on.
        if not await env.NOTIFIER.wait(keys, position, remaining):
            return empty_response(since)


routes: list[Route] = [*client_routes("/sync", sync, ["GET"])]
