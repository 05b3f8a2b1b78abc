"""Handlers of the EDUs other servers send us: typing, receipts, presence, to-device
messages, device-list and cross-signing updates. Each is ``async def on_x(env, origin,
content)``, dispatched by ``workers.federation.edus``; what it accepts reaches our users
through ``/sync`` (the same tables local data uses, and the waiting syncs are woken).

Spec: server-server API "EDUs" and the sections of each type. Common rule: a server speaks
only for its own users, so an EDU about a user of another server is ignored (logged), as is
anything malformed (it does not fail the transaction that carried it).
- "Typing Notifications", "Receipts": "Receiving servers should verify that the user is in
  the room, and is a user belonging to the sending server." Both are ignored for a room
  whose server ACL denies the sending server ("Server Access Control Lists (ACLs)").
- "Presence": kept for users sharing a room with one of ours (nobody else would see it),
  by the user's presence actor (durable/presence.py), which makes it ``offline`` when their
  server sends nothing about them for the federation timeout.
- "Send-to-device messaging": delivered to our users' devices (``*``: all of them);
  ``message_id`` makes a repeat harmless; messages for unknown users or devices are dropped.
- "Device Management": ``m.device_list_update`` is applied to our cached copy of the list
  when its ``prev_id`` is known, else the list is fetched again (``/user/devices``);
  ``m.signing_key_update`` replaces the cached cross-signing keys. Either way our users
  sharing a room with the owner see them in ``device_lists.changed``.
"""

from __future__ import annotations

import logging
from typing import Any

from d1 import devices as devices_db
from d1 import ephemeral as ephemeral_db
from d1 import remote_devices
from d1 import to_device as to_device_db
from d1.database import D1Error
from d1.remote_devices import RemoteDevice
from d1.room_servers import is_joined
from workers.auth import is_local_user, is_valid_user_id, now_ms
from workers.client.ephemeral import PRESENCE_STATES, READ
from workers.client.keys import announce_device_list_change
from workers.federation.errors import FederationError
from workers.federation.room_acl import server_allowed_in_room
from workers.federation.remote_keys import (
    checked_cross_signing_key,
    checked_device_keys,
    resync_device_list,
    shares_room_with_us,
)

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
# How long a remote user's typing lasts unless their server says it stopped (Synapse's
# federation timeout: its servers resend while the user keeps typing).
FEDERATION_TYPING_TIMEOUT_MS = 60_000
RESYNC_TIMEOUT_S = 10.0
ALL_DEVICES = "*"
# The to-device "sender device" under which message_ids of remote senders are recorded.
FEDERATION_SENDER_DEVICE = "federation"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def from_origin(user_id: Any, origin: str, edu_type: str) -> bool:
    """Whether ``user_id`` is a user of ``origin`` (logged when not)."""
    if isinstance(user_id, str) and is_valid_user_id(user_id) and user_id.split(":", 1)[1] == origin:
        return True
    log.info("%s from %s about %r ignored: not a user of %s", edu_type, origin, user_id, origin)
    return False


# --- typing and receipts -------------------------------------------------------------------


async def on_typing(env: Any, origin: str, content: JsonDict) -> None:
    room_id, user_id, typing = content.get("room_id"), content.get("user_id"), content.get("typing")
    if not isinstance(room_id, str) or not isinstance(typing, bool):
        log.info("m.typing from %s ignored: malformed", origin)
        return
    if not from_origin(user_id, origin, "m.typing"):
        return
    if not await server_allowed_in_room(env, room_id, origin):
        log.info("m.typing from %s ignored: denied by the server ACL of %s", origin, room_id)
        return
    if not await is_joined(env.DB, room_id, user_id):
        log.info("m.typing from %s ignored: %s is not in %s", origin, user_id, room_id)
        return
    stub = env.TYPING.get(env.TYPING.id_from_name(room_id))
    await stub.set_typing(user_id, typing, FEDERATION_TYPING_TIMEOUT_MS if typing else 0)


async def on_receipt(env: Any, origin: str, content: JsonDict) -> None:
    db = env.DB
    for room_id, by_type in content.items():
        if not isinstance(by_type, dict):
            continue
        if not await server_allowed_in_room(env, room_id, origin):
            log.info("m.receipt from %s ignored: denied by the server ACL of %s", origin, room_id)
            continue
        statements: list[Any] = []
        for receipt_type, by_user in by_type.items():
            if receipt_type != READ or not isinstance(by_user, dict):
                continue  # private receipts never cross servers; other types are unknown
            for user_id, receipt in by_user.items():
                if not from_origin(user_id, origin, "m.receipt"):
                    continue
                if not await is_joined(db, room_id, user_id):
                    log.info("m.receipt from %s ignored: %s is not in %s", origin, user_id, room_id)
                    continue
                event_ids = receipt.get("event_ids") if isinstance(receipt, dict) else None
                data = receipt.get("data") if isinstance(receipt, dict) else None
                if (not isinstance(event_ids, list) or not event_ids or not isinstance(event_ids[0], str)
                        or not event_ids[0].startswith("$") or not isinstance(data, dict)):
                    log.info("m.receipt from %s for %s ignored: malformed", origin, user_id)
                    continue
                ts = data["ts"] if _is_int(data.get("ts")) else now_ms()
                thread_id = data.get("thread_id") if isinstance(data.get("thread_id"), str) else None
                statements += ephemeral_db.put_receipt(
                    db, room_id, READ, user_id, thread_id or None, event_ids[0], ts
                )
        if statements:
            await db.batch(statements)
            env.NOTIFIER.notify([room_id])


# --- presence ------------------------------------------------------------------------------


async def on_presence(env: Any, origin: str, content: JsonDict) -> None:
    push = content.get("push")
    if not isinstance(push, list):
        return
    now = now_ms()
    for update in push:
        if not isinstance(update, dict) or not from_origin(update.get("user_id"), origin, "m.presence"):
            continue
        user_id, state = update["user_id"], update.get("presence")
        status_msg = update.get("status_msg")
        ago = update.get("last_active_ago")
        if state not in PRESENCE_STATES or (status_msg is not None and not isinstance(status_msg, str)):
            log.info("m.presence from %s for %s ignored: malformed", origin, user_id)
            continue
        if not await shares_room_with_us(env, user_id):
            continue
        last_active = now - ago if _is_int(ago) and 0 <= ago <= now else now
        # The user's presence actor stores it and times it out if their server goes quiet.
        await env.PRESENCE.get_by_name(user_id).remote_update(state, status_msg, last_active)


# --- to-device -----------------------------------------------------------------------------


async def on_direct_to_device(env: Any, origin: str, content: JsonDict) -> None:
    db = env.DB
    sender, event_type = content.get("sender"), content.get("type")
    message_id, messages = content.get("message_id"), content.get("messages")
    if not isinstance(event_type, str) or not isinstance(message_id, str) or not isinstance(messages, dict):
        log.info("m.direct_to_device from %s ignored: malformed", origin)
        return
    if not from_origin(sender, origin, "m.direct_to_device"):
        return
    if await to_device_db.txn_seen(db, sender, FEDERATION_SENDER_DEVICE, message_id):
        return
    deliveries: list[tuple[str, str, JsonDict]] = []
    for user_id, per_device in messages.items():
        if not isinstance(per_device, dict) or not is_local_user(env, user_id):
            log.info("to-device from %s for %r dropped: not a user of this server", origin, user_id)
            continue
        known = [d["device_id"] for d in await devices_db.list_devices(db, user_id)]
        if not known:
            log.info("to-device from %s for %s dropped: no such user or no devices", origin, user_id)
        for device_id, message in per_device.items():
            if not isinstance(message, dict):
                continue
            targets = known if device_id == ALL_DEVICES else [device_id] if device_id in known else []
            deliveries += [(user_id, target, message) for target in targets]
    statements = to_device_db.send_statements(
        db, sender, FEDERATION_SENDER_DEVICE, message_id, event_type, deliveries, now_ms()
    )
    try:
        await db.batch(statements)
    except D1Error:
        if await to_device_db.txn_seen(db, sender, FEDERATION_SENDER_DEVICE, message_id):
            return  # the same message, delivered by a concurrent transaction
        raise
    if deliveries:
        env.NOTIFIER.notify(sorted({user_id for user_id, _, _ in deliveries}))


# --- device lists and cross-signing --------------------------------------------------------


async def _resync(env: Any, user_id: str) -> None:
    try:
        await resync_device_list(env, user_id, RESYNC_TIMEOUT_S)
    except FederationError as exc:
        # Forget the stale copy: the next /keys/query fetches the list again.
        log.info("device list of %s not refetched (%s): cache dropped", user_id, exc)
        await env.DB.batch(remote_devices.drop_list(env.DB, user_id))


async def on_device_list_update(env: Any, origin: str, content: JsonDict) -> None:
    db = env.DB
    user_id, device_id, stream_id = content.get("user_id"), content.get("device_id"), content.get("stream_id")
    prev_ids = content.get("prev_id") or []
    if (not isinstance(device_id, str) or not _is_int(stream_id) or not isinstance(prev_ids, list)
            or not all(_is_int(p) for p in prev_ids)):
        log.info("m.device_list_update from %s ignored: malformed", origin)
        return
    if not from_origin(user_id, origin, "m.device_list_update"):
        return
    if not await shares_room_with_us(env, user_id):
        await db.batch(remote_devices.drop_list(db, user_id))
        return
    cached = await remote_devices.cached_list(db, user_id)
    if cached is not None and stream_id <= cached.stream_id:
        return  # already part of our copy
    if cached is not None:
        if prev_ids and all(p <= cached.stream_id for p in prev_ids):
            name = content.get("device_display_name")
            device = RemoteDevice(
                device_id, name if isinstance(name, str) else None,
                checked_device_keys(content.get("keys"), user_id, device_id),
            )
            await db.batch(remote_devices.apply_device_update(
                db, user_id, stream_id, device, content.get("deleted") is True
            ))
        else:
            await _resync(env, user_id)
    # Not cached: nothing to update; the next /keys/query fetches the whole list.
    await announce_device_list_change(env, [user_id])


async def on_signing_key_update(env: Any, origin: str, content: JsonDict) -> None:
    db = env.DB
    user_id = content.get("user_id")
    if not from_origin(user_id, origin, "m.signing_key_update"):
        return
    if not await shares_room_with_us(env, user_id):
        return
    master = checked_cross_signing_key(content.get("master_key"), user_id, "master")
    self_signing = checked_cross_signing_key(content.get("self_signing_key"), user_id, "self_signing")
    if master is None and self_signing is None:
        log.info("m.signing_key_update from %s for %s ignored: no valid key", origin, user_id)
        return
    # Updates the cached copy if there is one (a list not cached is fetched whole when needed).
    await db.batch(remote_devices.set_cross_signing(db, user_id, master, self_signing))
    await announce_device_list_change(env, [user_id])
