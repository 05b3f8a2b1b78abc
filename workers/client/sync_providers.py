"""What ``/sync`` asks of the E2EE and ephemeral streams: one provider per response field.

Spec: client-server API "Syncing" plus the modules "Send-to-Device messaging" (``to_device``),
"End-to-End Encryption" (``device_lists``, ``device_one_time_keys_count``,
``device_unused_fallback_key_types``), "Typing Notifications" and "Receipts" (a room's
``ephemeral`` events) and "Presence" (``presence``, and ``set_presence`` on the request).

Positions are those of the sync token's streams (workers.sync.tokens.StreamToken):
``to_device``, ``device_lists`` (with ``events`` for membership changes), ``receipts``,
``typing`` and ``presence``. ``since`` 0 means an initial sync.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from d1 import device_lists
from d1 import ephemeral as ephemeral_db
from d1 import sync_reads
from d1 import to_device as to_device_db
from workers.auth import now_ms
from durable.presence_rules import timers_from_config
from workers.client.ephemeral import presence_actor, presence_hint
from workers.sync.filters import SyncFilter
from workers.sync.tokens import StreamToken

JsonDict = dict[str, Any]


async def device_lists_for_sync(
    env: Any,
    user_id: str,
    since_devices: int,
    upto_devices: int,
    since_events: int,
    upto_events: int,
) -> dict[str, list[str]]:
    """``device_lists`` of an incremental sync ({"changed": [...], "left": [...]}). Only for
    incremental syncs: on an initial sync clients download every key they need anyway (a
    since token whose positions are all 0 is still incremental: it comes from a fresh server)."""
    return await device_lists.device_list_changes(
        env.DB, user_id, since_devices, upto_devices, since_events, upto_events
    )


async def ephemeral_for_rooms(
    env: Any,
    user_id: str,
    room_ids: list[str],
    since_receipts: int,
    upto_receipts: int,
    since_typing: int,
    upto_typing: int,
) -> dict[str, list[JsonDict]]:
    """room_id -> the room's ``ephemeral`` events for this sync: an ``m.receipt`` with the
    receipts changed in the window (others' ``m.read.private`` left out; everything on an
    initial sync) and an ``m.typing`` with the current typers when they changed in the window.
    Rooms with nothing are absent."""
    out: dict[str, list[JsonDict]] = {}
    receipts = (
        await ephemeral_db.receipts_changed(env.DB, room_ids, user_id, since_receipts, upto_receipts)
        if since_receipts != upto_receipts
        else {}
    )
    typing = (
        await ephemeral_db.typing_changed(env.DB, room_ids, since_typing, upto_typing, now_ms())
        if since_typing != upto_typing
        else {}
    )
    for room_id in room_ids:
        events: list[JsonDict] = []
        if room_id in receipts:
            events.append({"type": "m.receipt", "content": receipts[room_id]})
        if room_id in typing:
            events.append({"type": "m.typing", "content": {"user_ids": typing[room_id]}})
        if events:
            out[room_id] = events
    return out


async def presence_for_sync(env: Any, user_id: str, since_pos: int, upto_pos: int) -> list[JsonDict]:
    """``presence.events``: ``m.presence`` of the user and of everyone sharing a room with
    them, for presence changed in (since_pos, upto_pos]."""
    users = await device_lists.users_sharing_a_room(env.DB, user_id)
    rows = await ephemeral_db.presence_changed(env.DB, sorted(users), since_pos, upto_pos)
    now = now_ms()
    return [
        {"type": "m.presence", "sender": row["user_id"], "content": ephemeral_db.presence_content(row, now)}
        for row in rows
    ]


async def _keep_online(env: Any, user_id: str, requested: str, row_state: str | None, needed: int) -> None:
    """Tell the user's presence actor about a sync when it would change something: the
    sync asks for another state than the last one, the stored state is not what the actor
    last answered, or the sync deadline it knows ends
    before ``needed``. The deadline asked for is padded by a third of the sync timeout, so
    a client polling fast calls the actor about once per that padding."""
    hint = presence_hint(env, user_id)
    if (hint.requested, hint.state) == (requested, row_state) and hint.online_until >= needed:
        return
    until = needed + timers_from_config(env.config).sync_timeout_ms // 3
    hint.state = await presence_actor(env, user_id).sync(requested, until)
    hint.online_until, hint.requested = until, requested


async def presence_on_sync(env: Any, user_id: str, set_presence: str | None, timeout_ms: int = 0) -> None:
    """Apply ``/sync?set_presence=`` (default ``online``) before reading the streams.

    ``online`` and ``unavailable`` keep the user online (not ``offline``) for the sync's
    long poll plus the sync timeout, and set the state through the user's presence actor
    (durable/presence.py, which also times it out); ``offline`` leaves presence alone (the
    spec: the client is not marked online by this sync). A sync is not activity: the last
    active time does not move.
    """
    state = set_presence or "online"
    if state not in ("online", "unavailable"):
        return
    row = await ephemeral_db.get_presence(env.DB, user_id)
    needed = now_ms() + timeout_ms + timers_from_config(env.config).sync_timeout_ms
    await _keep_online(env, user_id, state, row["state"] if row is not None else None, needed)


async def presence_sync_ended(env: Any, user_id: str, set_presence: str | None) -> None:
    """A sync answered: the user stays online for one sync timeout from now (the actor is
    called only when the deadline it knows is earlier, e.g. after an overlong poll)."""
    state = set_presence or "online"
    if state not in ("online", "unavailable"):
        return
    hint = presence_hint(env, user_id)
    needed = now_ms() + timers_from_config(env.config).sync_timeout_ms
    await _keep_online(env, user_id, state, hint.state, needed)


# --- the one call /sync makes --------------------------------------------------------------


async def fill_sync_response(
    env: Any,
    user_id: str,
    device_id: str | None,
    since: StreamToken | None,
    upto: StreamToken,
    sync_filter: SyncFilter,
    body: JsonDict,
) -> tuple[StreamToken, bool]:
    """Fill ``to_device``, ``device_lists``, ``device_one_time_keys_count``,
    ``device_unused_fallback_key_types``, ``presence`` and each joined room's ``ephemeral``
    in a sync response over (since, upto]. Returns the token for ``next_batch`` (``upto``,
    or with an earlier to_device position when the device has more messages waiting) and
    whether anything new was added (a long poll answers at once when so).

    A joined room with only ephemeral news gets an entry with an empty timeline.
    """
    db = env.DB
    start = since or StreamToken()
    has_data = False
    next_token = upto

    if device_id is not None:
        # The device's inbox size and key counts in one hop; the inbox is read (and what the
        # token acknowledges deleted) only when it holds something.
        device = await sync_reads.device_reads(db, user_id, device_id)
        events: list[JsonDict] = []
        to_device_pos = upto.to_device
        if device.pending_to_device:
            events, to_device_pos = await to_device_db.to_device_for_sync(
                db, user_id, device_id, start.to_device, upto.to_device
            )
        body["to_device"] = {"events": events}
        next_token = replace(next_token, to_device=to_device_pos)
        body["device_one_time_keys_count"] = {"signed_curve25519": 0, **device.one_time_key_counts}
        body["device_unused_fallback_key_types"] = device.unused_fallback_key_types
        has_data = has_data or bool(events)

    # Each stream below whose position did not move since the token has nothing new: its
    # reads are skipped (the token carries every stream's position).
    if since is not None and (since.device_lists, since.events) != (upto.device_lists, upto.events):
        lists = await device_lists_for_sync(
            env, user_id, since.device_lists, upto.device_lists, since.events, upto.events
        )
        body["device_lists"] = lists
        has_data = has_data or bool(lists["changed"] or lists["left"])

    presence_filter = sync_filter.presence
    if not presence_filter.allows_nothing() and start.presence != upto.presence:
        presence = [
            e for e in await presence_for_sync(env, user_id, start.presence, upto.presence)
            if presence_filter.allows(e)
        ]
        body["presence"] = {"events": presence}
        has_data = has_data or bool(presence)

    room_filter = sync_filter.room
    ephemeral_moved = (start.receipts, start.typing) != (upto.receipts, upto.typing)
    if not room_filter.ephemeral.allows_nothing() and ephemeral_moved:
        rooms = [r for r in await device_lists.joined_rooms(db, user_id) if room_filter.allows_room(r)]
        ephemeral = await ephemeral_for_rooms(
            env, user_id, rooms, start.receipts, upto.receipts, start.typing, upto.typing
        )
        joined = body.setdefault("rooms", {}).setdefault("join", {})
        for room_id, events in ephemeral.items():
            events = [e for e in events if room_filter.ephemeral.allows({**e, "room_id": room_id})]
            if not events:
                continue
            entry = joined.get(room_id)
            if entry is None:
                entry = joined[room_id] = {
                    "timeline": {"events": [], "limited": False, "prev_batch": upto.encode()},
                    "state": {"events": []},
                    "account_data": {"events": []},
                }
            entry["ephemeral"] = {"events": events}
            has_data = True
    return next_token, has_data
