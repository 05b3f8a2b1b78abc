"""Power levels: reading them, and the auth rule for changing them.

Spec: https://spec.matrix.org/v1.19/server-server-api/#definitions ("Required Power Level",
"Invite Level, Kick Level, Ban Level, Redact Level"), the `m.room.power_levels` rule of each
room version's authorisation rules, `rooms/fragments/v1-stringy-power-levels.md` and
`v1-floaty-power-levels.md`, and room version 12's "room creators" note.

Reads go straight to the PDU content (one dict lookup and one value parse per question), so
the hot path of the auth rules never normalises a whole power-levels event.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from durable.auth.identifiers import is_valid_user_id
from durable.errors import AuthError
from durable.events.event import Event
from durable.room_versions import RoomVersion

INFINITE_POWER = float("inf")

# The top-level integer properties of m.room.power_levels and their defaults when absent
# (spec: m.room.power_levels; state_default is 50 even when there is no power levels event).
LEVEL_DEFAULTS: dict[str, int] = {
    "ban": 50,
    "events_default": 0,
    "invite": 0,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users_default": 0,
}
# The properties whose alterations the power-levels rule checks (users_default … invite).
_CHECKED_LEVELS = ("users_default", "events_default", "state_default", "ban", "redact", "kick", "invite")

# v1-stringy-power-levels: optional whitespace, optional single sign, base-10 digits.
_INT_STRING = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)


def parse_level(value: object, room_version: RoomVersion) -> int | None:
    """One power-level value as an int, or None when the room version does not accept it.

    v10+ accept only JSON integers. Before v10 a string holding an integer is accepted
    ("stringy power levels"); in v1-v5 (no strict canonical JSON) a finite float is
    truncated at the decimal point ("floaty power levels"). Booleans are never integers.
    """
    if type(value) is int:
        return value
    if room_version.enforce_int_power_levels:
        return None
    if isinstance(value, str):
        return int(value) if _INT_STRING.fullmatch(value) else None
    if type(value) is float and not room_version.strict_canonicaljson and math.isfinite(value):
        return int(value)
    return None


# --- creators ------------------------------------------------------------------------------
def room_creator(create: Event) -> str | None:
    """The single creator the "first join" rule names: the create event's ``sender`` from
    v11 (implicit room creator), its ``content.creator`` before."""
    if create.room_version.implicit_room_creator:
        return create.sender
    creator = create.content.get("creator")
    return creator if isinstance(creator, str) else None


def creators(create: Event) -> set[str]:
    """The room creators. v12: the create event's ``sender`` plus every string in
    ``content.additional_creators``; earlier versions: the single creator."""
    if create.room_version.privileged_creators:
        result = {create.sender}
        extra = create.content.get("additional_creators")
        if isinstance(extra, list):
            result.update(user for user in extra if isinstance(user, str))
        return result
    creator = room_creator(create)
    return {creator} if creator is not None else set()


def _is_privileged_creator(user_id: str, create: Event) -> bool:
    if create.sender == user_id:
        return True
    extra = create.content.get("additional_creators")
    return isinstance(extra, list) and user_id in extra


# --- reading levels ------------------------------------------------------------------------
def user_power_level(user_id: str, power_levels: Event | None, create: Event) -> int | float:
    """The power level of ``user_id``.

    v12: room creators have infinite power. Without a power levels event the (non-v12)
    creator has 100 and everyone else 0; otherwise ``users[user_id]``, falling back to
    ``users_default`` (0 when absent).
    """
    room_version = create.room_version
    if room_version.privileged_creators:
        if _is_privileged_creator(user_id, create):
            return INFINITE_POWER
        if power_levels is None:
            return 0
    elif power_levels is None:
        return 100 if room_creator(create) == user_id else 0
    content = power_levels.content
    users = content.get("users")
    if isinstance(users, Mapping) and user_id in users:
        level = parse_level(users[user_id], room_version)
        if level is not None:
            return level
    return named_level("users_default", power_levels)


def named_level(name: str, power_levels: Event | None) -> int:
    """A top-level level (``invite``, ``kick``, ``ban``, ``redact``, ``users_default``,
    ``events_default``, ``state_default``) with the spec's default when absent."""
    default = LEVEL_DEFAULTS[name]
    if power_levels is None:
        return default
    value = power_levels.content.get(name)
    if value is None:
        return default
    level = parse_level(value, power_levels.room_version)
    return default if level is None else level


def event_power_level(event_type: str, state_key: str | None, power_levels: Event | None) -> int:
    """The *required power level* to send an event: ``events[type]`` if listed, else
    ``state_default`` for state events and ``events_default`` for the others."""
    if power_levels is not None:
        events = power_levels.content.get("events")
        if isinstance(events, Mapping) and event_type in events:
            level = parse_level(events[event_type], power_levels.room_version)
            if level is not None:
                return level
    return named_level("state_default" if state_key is not None else "events_default", power_levels)


def _level_map(value: object, room_version: RoomVersion) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    result: dict[str, int] = {}
    for key, raw in value.items():
        level = parse_level(raw, room_version)
        if level is not None:
            result[key] = level
    return result


def get_power_levels_content(power_levels: Event | None, create: Event | None = None) -> dict[str, Any]:
    """The effective power levels as plain ints with every default filled in.

    Values the room version does not accept are treated as absent. Without a power levels
    event, ``users`` holds the (non-v12) creator at 100 when ``create`` is given; v12
    creators are never listed (their power is infinite, see :func:`user_power_level`).
    """
    if power_levels is None:
        users: dict[str, int] = {}
        if create is not None and not create.room_version.privileged_creators:
            creator = room_creator(create)
            if creator is not None:
                users[creator] = 100
        result: dict[str, Any] = dict(LEVEL_DEFAULTS)
        result.update(users=users, events={}, notifications={"room": 50})
        return result
    room_version = power_levels.room_version
    content = power_levels.content
    result = {name: named_level(name, power_levels) for name in LEVEL_DEFAULTS}
    result["users"] = _level_map(content.get("users"), room_version)
    result["events"] = _level_map(content.get("events"), room_version)
    notifications = {"room": 50}
    notifications.update(_level_map(content.get("notifications"), room_version))
    result["notifications"] = notifications
    return result


# --- the m.room.power_levels rule ----------------------------------------------------------
def _validate_new_content(event: Event, create: Event) -> None:
    """The shape checks that come first in the power-levels rule."""
    room_version = event.room_version
    content = event.content
    if room_version.enforce_int_power_levels:
        # v10+: top-level levels must be integers; events/notifications objects of integers.
        for name in _CHECKED_LEVELS:
            if name in content and type(content[name]) is not int:
                raise AuthError(f"power_levels: {name!r} is not an integer")
        for name in ("events", "notifications"):
            if name in content:
                value = content[name]
                if not isinstance(value, Mapping) or any(type(v) is not int for v in value.values()):
                    raise AuthError(f"power_levels: {name!r} is not an object of integers")
    if "users" in content:
        users = content["users"]
        if not isinstance(users, Mapping):
            raise AuthError("power_levels: 'users' is not an object")
        for user_id, level in users.items():
            if not is_valid_user_id(user_id):
                raise AuthError(f"power_levels: 'users' key {user_id!r} is not a valid user ID")
            if parse_level(level, room_version) is None:
                raise AuthError(f"power_levels: level of {user_id!r} is not an integer")
        if room_version.privileged_creators:
            # v12 rule 10.4: creators must not appear in users.
            for creator in creators(create):
                if creator in users:
                    raise AuthError(f"power_levels: room creator {creator!r} listed in 'users'")


def _optional_level(content: Mapping[str, Any], name: str, room_version: RoomVersion) -> int | None:
    return parse_level(content[name], room_version) if name in content else None


def check_power_levels_event(
    event: Event, current: Event | None, sender_level: int | float, create: Event
) -> None:
    """The ``m.room.power_levels`` rule (rule 10 in v1-v5, 9 in v6-v11, 10 in v12).

    After the shape checks: with no previous power levels event, allow. Otherwise a sender
    may only alter a level (top-level property, ``events`` entry, from v6 ``notifications``
    entry) when both its old and its new value are at most the sender's own level; may only
    change or remove another user's entry when that entry is below the sender's level; and
    may not set any user above the sender's level.
    """
    _validate_new_content(event, create)
    if current is None:
        return
    room_version = event.room_version
    new = event.content
    old = current.content
    old_version = current.room_version

    for name in _CHECKED_LEVELS:
        old_level = _optional_level(old, name, old_version)
        new_level = _optional_level(new, name, room_version)
        if old_level == new_level:
            continue
        if old_level is not None and old_level > sender_level:
            raise AuthError(f"power_levels: cannot alter {name!r}, current value above sender's level")
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"power_levels: cannot set {name!r} above sender's level")

    maps = ("events", "notifications") if room_version.limit_notifications_power_levels else ("events",)
    for name in maps:
        old_map = _level_map(old.get(name), old_version)
        new_map = _level_map(new.get(name), room_version)
        for key in old_map.keys() | new_map.keys():
            old_level = old_map.get(key)
            new_level = new_map.get(key)
            if old_level == new_level:
                continue
            if old_level is not None and old_level > sender_level:
                raise AuthError(f"power_levels: cannot change {name}[{key!r}], current value above sender's level")
            if new_level is not None and new_level > sender_level:
                raise AuthError(f"power_levels: cannot set {name}[{key!r}] above sender's level")

    sender = event.sender
    old_users = _level_map(old.get("users"), old_version)
    new_users = _level_map(new.get("users"), room_version)
    for user_id in old_users.keys() | new_users.keys():
        old_level = old_users.get(user_id)
        new_level = new_users.get(user_id)
        if old_level == new_level:
            continue
        if old_level is not None and user_id != sender and old_level >= sender_level:
            raise AuthError(f"power_levels: cannot change level of {user_id!r}, not below sender's level")
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"power_levels: cannot raise {user_id!r} above sender's level")
