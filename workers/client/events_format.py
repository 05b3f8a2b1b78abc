"""Turning stored PDUs into the events clients see.

Spec: client-server API "Room Events" / "ClientEvent": a client event has ``content``,
``event_id``, ``origin_server_ts``, ``room_id`` (left out inside ``/sync``, where the room is
the key), ``sender``, ``state_key`` for state events, ``type`` and ``unsigned``. ``unsigned``
carries ``age`` (milliseconds since the event was sent), ``prev_content`` and
``replaces_state`` (the state event this one replaced), ``redacted_because`` (the redaction
that removed this event's content) and ``transaction_id`` (only for the device that sent it).

Redactions: room version 11 moved ``redacts`` into ``content``; servers copy it to the top
level for older clients, and from older rooms into ``content`` for newer clients.

Everything here is pure: the caller passes the time and whatever it looked up.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from durable.events.redaction import redact
from durable.room_versions import RoomVersion

JsonDict = dict[str, Any]


def client_event(
    pdu: Mapping[str, Any],
    event_id: str,
    room_id: str,
    room_version: RoomVersion,
    *,
    now_ms: int,
    redacted_because: JsonDict | None = None,
    local_unsigned: Mapping[str, Any] | None = None,
    prev_state: tuple[str, Mapping[str, Any]] | None = None,
    transaction_id: str | None = None,
    include_room_id: bool = True,
) -> JsonDict:
    """The client format of one event.

    ``redacted_because``: the redaction event (already in client format) when the event was
    redacted; the content is then the room version's redacted form.
    ``prev_state``: (event ID, content) of the state event this state event replaced.
    ``local_unsigned``: server-local additions (``invite_room_state``, ...), merged into
    ``unsigned``.
    """
    body = redact(pdu, room_version) if redacted_because is not None else pdu
    content = body.get("content")
    event: JsonDict = {
        "content": copy.deepcopy(dict(content)) if isinstance(content, Mapping) else {},
        "event_id": event_id,
        "origin_server_ts": pdu.get("origin_server_ts", 0),
        "sender": pdu.get("sender"),
        "type": pdu.get("type"),
    }
    if include_room_id:
        event["room_id"] = room_id
    if "state_key" in pdu:
        event["state_key"] = pdu["state_key"]
    if pdu.get("type") == "m.room.redaction":
        copy_redacts(event, body)

    unsigned: JsonDict = {}
    if local_unsigned:
        unsigned.update(copy.deepcopy(dict(local_unsigned)))
    if isinstance(pdu.get("origin_server_ts"), int):
        unsigned["age"] = max(0, now_ms - pdu["origin_server_ts"])
    if prev_state is not None and "state_key" in pdu:
        prev_id, prev_content = prev_state
        unsigned["replaces_state"] = prev_id
        unsigned["prev_content"] = copy.deepcopy(dict(prev_content))
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if redacted_because is not None:
        unsigned["redacted_because"] = redacted_because
    event["unsigned"] = unsigned
    return event


def copy_redacts(event: JsonDict, body: Mapping[str, Any]) -> None:
    """Put the redacted event ID both at the top level and in ``content`` (room version 11
    "Event format": servers serve ``redacts`` in both places over the client-server API)."""
    redacts = body.get("redacts")
    content = body.get("content")
    if not isinstance(redacts, str) and isinstance(content, Mapping):
        redacts = content.get("redacts")
    if isinstance(redacts, str):
        event["redacts"] = redacts
        event["content"]["redacts"] = redacts


def stripped_state(pdu: Mapping[str, Any]) -> JsonDict:
    """The stripped form of a state event (spec: "Stripped state"): type, state_key,
    content and sender only."""
    content = pdu.get("content")
    return {
        "type": pdu.get("type"),
        "state_key": pdu.get("state_key", ""),
        "content": copy.deepcopy(dict(content)) if isinstance(content, Mapping) else {},
        "sender": pdu.get("sender"),
    }


def apply_event_fields(event: Mapping[str, Any], fields: list[str]) -> JsonDict:
    """Keep only the listed fields (spec: Filter ``event_fields``): each entry is a
    dot-separated path into the event; a literal dot in a key is written ``\\.``. Fields
    that are absent are left out; an empty list keeps nothing but what the paths name."""
    out: JsonDict = {}
    for field in fields:
        path = split_field_path(field)
        value: Any = event
        found = True
        for part in path:
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                found = False
                break
        if not found:
            continue
        target = out
        for part in path[:-1]:
            existing = target.get(part)
            if not isinstance(existing, dict):
                existing = {}
                target[part] = existing
            target = existing
        target[path[-1]] = copy.deepcopy(value)
    return out


def split_field_path(field: str) -> list[str]:
    """``"content.m\\.relates_to"`` -> ``["content", "m.relates_to"]``."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(field):
        char = field[index]
        if char == "\\" and index + 1 < len(field) and field[index + 1] in ".\\":
            current.append(field[index + 1])
            index += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts
