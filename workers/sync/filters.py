"""Filters: which events and rooms a sync or history request returns.

Spec: client-server API "Filtering" and the ``Filter`` / ``RoomFilter`` / ``RoomEventFilter``
/ ``EventFilter`` schemas. ``types``/``not_types`` entries may use ``*`` as a wildcard for any
sequence of characters; a ``not_*`` match excludes an event even when the positive list
includes it; an absent list does not restrict. ``contains_url`` true keeps only events with a
``url`` in their content, false only events without. ``lazy_load_members`` ("Lazy-loading room
members") sends only the membership events of the senders of the returned events.

The ``/sync`` ``filter`` parameter is either the ID of a filter the user uploaded or an
inline JSON filter (it starts with ``{``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Mapping
from typing import Any

from d1.database import D1Database
from workers.errors import Codes, MatrixError
from workers.routing import parse_json

# Synapse's defaults: 10 timeline events per room in /sync and per page in /messages.
DEFAULT_TIMELINE_LIMIT = 10
MAX_LIMIT = 1000


def _bad(message: str) -> MatrixError:
    return MatrixError(400, Codes.BAD_JSON, message)


def _str_list(obj: Mapping[str, Any], key: str) -> list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"Filter field {key!r} must be a list of strings")
    return value


def _bool(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"Filter field {key!r} must be a boolean")
    return value


def _object(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(f"Filter field {key!r} must be an object")
    return value


@lru_cache(maxsize=256)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def type_matches(event_type: str, patterns: list[str]) -> bool:
    return any(_wildcard(p).fullmatch(event_type) for p in patterns)


@dataclass(frozen=True)
class EventFilter:
    """An ``EventFilter`` or ``RoomEventFilter`` (the room fields are unused for the
    former)."""

    limit: int | None = None
    types: list[str] | None = None
    not_types: list[str] = field(default_factory=list)
    senders: list[str] | None = None
    not_senders: list[str] = field(default_factory=list)
    rooms: list[str] | None = None
    not_rooms: list[str] = field(default_factory=list)
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    @classmethod
    def parse(cls, obj: Any) -> "EventFilter":
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping):
            raise _bad("An event filter must be an object")
        limit = obj.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise _bad("Filter field 'limit' must be a non-negative integer")
        contains_url = obj.get("contains_url")
        if contains_url is not None and not isinstance(contains_url, bool):
            raise _bad("Filter field 'contains_url' must be a boolean")
        return cls(
            limit=None if limit is None else min(limit, MAX_LIMIT),
            types=_str_list(obj, "types"),
            not_types=_str_list(obj, "not_types") or [],
            senders=_str_list(obj, "senders"),
            not_senders=_str_list(obj, "not_senders") or [],
            rooms=_str_list(obj, "rooms"),
            not_rooms=_str_list(obj, "not_rooms") or [],
            contains_url=contains_url,
            lazy_load_members=_bool(obj, "lazy_load_members"),
            include_redundant_members=_bool(obj, "include_redundant_members"),
            unread_thread_notifications=_bool(obj, "unread_thread_notifications"),
        )

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def allows(self, event: Mapping[str, Any]) -> bool:
        """Whether an event (any dict with ``type``, ``sender``, ``content`` and optionally
        ``room_id``) passes the filter."""
        event_type = event.get("type")
        if not isinstance(event_type, str):
            return False
        if type_matches(event_type, self.not_types):
            return False
        if self.types is not None and not type_matches(event_type, self.types):
            return False
        sender = event.get("sender")
        if sender in self.not_senders:
            return False
        if self.senders is not None and sender not in self.senders:
            return False
        room_id = event.get("room_id")
        if isinstance(room_id, str) and not self.allows_room(room_id):
            return False
        if self.contains_url is not None:
            content = event.get("content")
            has_url = isinstance(content, Mapping) and isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True

    def allows_nothing(self) -> bool:
        return self.types == [] or self.senders == [] or self.rooms == [] or self.limit == 0

    def timeline_limit(self, default: int = DEFAULT_TIMELINE_LIMIT) -> int:
        return default if self.limit is None else self.limit


@dataclass(frozen=True)
class RoomFilter:
    rooms: list[str] | None = None
    not_rooms: list[str] = field(default_factory=list)
    include_leave: bool = False
    timeline: EventFilter = field(default_factory=EventFilter)
    state: EventFilter = field(default_factory=EventFilter)
    ephemeral: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> "RoomFilter":
        return cls(
            rooms=_str_list(obj, "rooms"),
            not_rooms=_str_list(obj, "not_rooms") or [],
            include_leave=_bool(obj, "include_leave"),
            timeline=EventFilter.parse(_object(obj, "timeline")),
            state=EventFilter.parse(_object(obj, "state")),
            ephemeral=EventFilter.parse(_object(obj, "ephemeral")),
            account_data=EventFilter.parse(_object(obj, "account_data")),
        )

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


@dataclass(frozen=True)
class SyncFilter:
    """The top-level ``Filter``."""

    event_fields: list[str] | None = None
    event_format: str = "client"
    presence: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    room: RoomFilter = field(default_factory=RoomFilter)

    @classmethod
    def parse(cls, obj: Any) -> "SyncFilter":
        if not isinstance(obj, Mapping):
            raise _bad("A filter must be a JSON object")
        event_format = obj.get("event_format", "client")
        if event_format not in ("client", "federation"):
            raise _bad("Filter field 'event_format' must be 'client' or 'federation'")
        return cls(
            event_fields=_str_list(obj, "event_fields"),
            event_format=event_format,
            presence=EventFilter.parse(_object(obj, "presence")),
            account_data=EventFilter.parse(_object(obj, "account_data")),
            room=RoomFilter.parse(_object(obj, "room")),
        )


async def stored_filter_json(db: D1Database, user_id: str, filter_id: str) -> Any | None:
    """The JSON of a filter the user uploaded, or None."""
    if not (filter_id.isascii() and filter_id.isdigit() and len(filter_id) <= 18):
        return None  # not an ID we hand out (they are SQLite integers)
    text = await db.prepare(
        "SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?"
    ).bind(user_id, int(filter_id)).first("filter_json")
    return None if text is None else json.loads(text)


async def load_sync_filter(db: D1Database, user_id: str, param: str | None) -> SyncFilter:
    """The filter named by the ``/sync`` ``filter`` parameter: inline JSON or a stored ID.

    Malformed inline JSON is 400 ``M_NOT_JSON``; an unknown filter ID is 400
    ``M_INVALID_PARAM`` (as Synapse answers); a malformed filter 400 ``M_BAD_JSON``.
    """
    if param is None or param == "":
        return SyncFilter()
    if param.lstrip().startswith("{"):
        return SyncFilter.parse(parse_json(param))
    obj = await stored_filter_json(db, user_id, param)
    if obj is None:
        raise MatrixError(400, Codes.INVALID_PARAM, "No such filter")
    return SyncFilter.parse(obj)


def parse_room_event_filter(param: str | None) -> EventFilter:
    """The ``filter`` query parameter of ``/messages`` and ``/context`` (inline JSON)."""
    if param is None or param == "":
        return EventFilter()
    return EventFilter.parse(parse_json(param))
