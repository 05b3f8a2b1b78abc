"""EDUs this server sends about its own users: device-list and cross-signing changes,
to-device messages for remote users, typing, read receipts and presence.

Spec: server-server API "EDUs" and the sections naming each one:
- "Device Management": an ``m.device_list_update`` per changed device, to every server
  sharing a room with the user, each with a new ``stream_id`` and the one before it in
  ``prev_id`` (sent in series, so one ``prev_id``).
- "End-to-End Encryption": ``m.signing_key_update`` when the master or self-signing key
  changes (the user-signing key stays private).
- "Send-to-device messaging": one ``m.direct_to_device`` per destination server holding
  every message of the request for its users; ``message_id`` is derived from the sender's
  device and transaction ID, so it is unique per sender and the same if sent again.
- "Typing Notifications": ``m.typing`` to the servers in the room.
- "Receipts": ``m.receipt`` with ``m.read`` to the servers in the room (private receipts
  never leave the server).
- "Presence": ``m.presence`` to the servers sharing a room with the user, only when the
  state or status message changed since the last one sent, and at most
  ``PRESENCE_EDUS_PER_MINUTE`` per user; and again, unchanged, every ping interval while
  the user is not offline (other servers time out presence they stop hearing about; see
  durable/presence_rules.py).

Each EDU goes to the destination's persisted queue (``env.DESTINATIONS``), which retries;
queueing never fails the client request that caused it (logged instead).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Iterable, Mapping

from unpaddedbase64 import encode_base64

from d1 import remote_devices
from d1.ephemeral import presence_content
from d1.room_servers import servers_in_room, servers_sharing_rooms
from workers.auth import now_ms
from workers.federation.local_keys import cross_signing_keys, device_keys

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
DEVICE_LIST_UPDATE = "m.device_list_update"
SIGNING_KEY_UPDATE = "m.signing_key_update"
DIRECT_TO_DEVICE = "m.direct_to_device"
TYPING = "m.typing"
RECEIPT = "m.receipt"
PRESENCE = "m.presence"
MESSAGE_ID_LENGTH = 32  # the spec's limit on message_id
PRESENCE_EDUS_PER_MINUTE = 10
PRESENCE_KV_PREFIX = "fed:presence:"
PRESENCE_KV_TTL_SECONDS = 60


def _others(env: Any, servers: Iterable[str]) -> list[str]:
    own = env.config.server_name
    return sorted(s for s in servers if s and s != own)


async def _queue(env: Any, servers: Iterable[str], edus: list[JsonDict]) -> None:
    destinations = getattr(env, "DESTINATIONS", None)
    if destinations is None or not edus:
        return
    for server in servers:
        try:
            await destinations.get_by_name(server).enqueue([], edus)
        except Exception:  # the local change is committed; a queue failure must not undo it
            log.exception("could not queue %d EDUs (%s) for %s", len(edus), edus[0]["edu_type"], server)


# --- device lists and cross-signing --------------------------------------------------------


async def device_list_changed(
    env: Any, user_id: str, device_ids: Iterable[str], *, deleted: bool = False
) -> None:
    """Tell the servers sharing a room with local ``user_id`` that these devices changed
    (new keys, new signatures) or, with ``deleted``, are gone."""
    ids = sorted(set(device_ids))
    if not ids:
        return
    db = env.DB
    prev, stream_ids = await remote_devices.take_outbound_stream_ids(db, user_id, len(ids))
    servers = _others(env, await servers_sharing_rooms(db, user_id))
    if not servers:
        return
    keys = {} if deleted else await device_keys(db, user_id, ids)
    edus = []
    for device_id, stream_id in zip(ids, stream_ids):
        content: JsonDict = {
            "user_id": user_id,
            "device_id": device_id,
            "stream_id": stream_id,
            "prev_id": [prev] if prev else [],
            "deleted": deleted,
        }
        if device_id in keys:
            content["keys"] = keys[device_id]
        edus.append({"edu_type": DEVICE_LIST_UPDATE, "content": content})
        prev = stream_id
    await _queue(env, servers, edus)


async def signing_keys_changed(env: Any, user_id: str) -> None:
    """Send the user's current master and self-signing keys to the servers sharing a room."""
    servers = _others(env, await servers_sharing_rooms(env.DB, user_id))
    if not servers:
        return
    keys = await cross_signing_keys(env.DB, user_id)
    if not keys:
        return
    await _queue(env, servers, [{"edu_type": SIGNING_KEY_UPDATE, "content": {"user_id": user_id, **keys}}])


# --- to-device -----------------------------------------------------------------------------


def message_id(sender: str, sender_device: str, txn_id: str) -> str:
    """A ``message_id`` unique for the sender's device and transaction, within the spec's
    32 characters."""
    digest = hashlib.sha256(json.dumps([sender, sender_device, txn_id]).encode()).digest()
    return encode_base64(digest, urlsafe=True)[:MESSAGE_ID_LENGTH]


async def send_to_device(
    env: Any,
    sender: str,
    sender_device: str,
    txn_id: str,
    event_type: str,
    messages: Mapping[str, Mapping[str, JsonDict]],
) -> None:
    """Queue one ``m.direct_to_device`` per server for ``messages`` (remote user ->
    device ID or ``*`` -> content)."""
    by_server: dict[str, dict[str, Mapping[str, JsonDict]]] = {}
    for user_id, per_device in messages.items():
        by_server.setdefault(user_id.split(":", 1)[1], {})[user_id] = per_device
    ident = message_id(sender, sender_device, txn_id)
    for server in _others(env, by_server):
        content = {"sender": sender, "type": event_type, "message_id": ident,
                   "messages": by_server[server]}
        await _queue(env, [server], [{"edu_type": DIRECT_TO_DEVICE, "content": content}])


# --- typing and receipts -------------------------------------------------------------------


async def typing_changed(env: Any, room_id: str, user_id: str, typing: bool) -> None:
    servers = _others(env, await servers_in_room(env.DB, room_id))
    edu = {"edu_type": TYPING, "content": {"room_id": room_id, "user_id": user_id, "typing": typing}}
    await _queue(env, servers, [edu])


async def read_receipt_sent(
    env: Any, room_id: str, user_id: str, event_id: str, thread_id: str | None, ts: int
) -> None:
    """Send a public read receipt (``m.read``) to the servers in the room."""
    servers = _others(env, await servers_in_room(env.DB, room_id))
    data: JsonDict = {"ts": ts}
    if thread_id is not None:
        data["thread_id"] = thread_id
    content = {room_id: {"m.read": {user_id: {"event_ids": [event_id], "data": data}}}}
    await _queue(env, servers, [{"edu_type": RECEIPT, "content": content}])


# --- presence ------------------------------------------------------------------------------


async def presence_changed(env: Any, user_id: str, row: Mapping[str, Any]) -> None:
    """Send the user's presence (a stored ``presence`` row) if it differs from the last one
    sent and the user is under the rate limit."""
    await _send_presence(env, user_id, row, repeat=False)


async def presence_ping(env: Any, user_id: str, row: Mapping[str, Any]) -> None:
    """Send the user's presence again even though it did not change: the periodic re-send
    that keeps other servers from timing the user out (durable/presence_rules.py)."""
    await _send_presence(env, user_id, row, repeat=True)


async def _send_presence(env: Any, user_id: str, row: Mapping[str, Any], *, repeat: bool) -> None:
    servers = _others(env, await servers_sharing_rooms(env.DB, user_id))
    if not servers:
        return
    key = PRESENCE_KV_PREFIX + user_id
    raw = await env.CACHE.get(key)
    last = json.loads(raw) if raw else {"state": None, "status_msg": None, "window": []}
    now = now_ms()
    if not repeat and (last["state"], last["status_msg"]) == (row["state"], row["status_msg"]):
        return
    window = [t for t in last["window"] if now - t < 60_000]
    if len(window) >= PRESENCE_EDUS_PER_MINUTE:
        log.info("presence of %s not federated: over %d per minute", user_id, PRESENCE_EDUS_PER_MINUTE)
        return
    record = {"state": row["state"], "status_msg": row["status_msg"], "window": window + [now]}
    await env.CACHE.put(key, json.dumps(record), expiration_ttl=PRESENCE_KV_TTL_SECONDS)
    push = {"user_id": user_id, **presence_content(row, now)}
    await _queue(env, servers, [{"edu_type": PRESENCE, "content": {"push": [push]}}])
