"""Push rule conditions, as pure functions of an event (its PDU) and a ``PushContext``.

Spec: client-server API "Push Rules" / "Conditions", and the appendices "Glob-style
matching" and "Dot-separated property paths".

- ``event_match``: a case-insensitive glob over the *whole* string value of a property;
  for ``content.body`` the glob need only match a substring that starts and ends at a word
  boundary (the start or end of the value, or any character outside ``[A-Za-z0-9_]``).
  A property that is absent or not a string never matches, even with ``*``.
- ``event_property_is``: an exact match on a string, integer, boolean or null value.
- ``event_property_contains``: an array property holds exactly that value.
- ``contains_display_name``: ``content.body`` holds the user's display name in the room.
- ``room_member_count``: ``is`` = an optional ``==``, ``<``, ``>``, ``<=`` or ``>=`` and a
  decimal integer, compared with the room's joined member count.
- ``sender_notification_permission``: the sender's power level is at least the level the
  power levels' ``notifications`` object requires for ``key`` (50 when not given).
An unrecognised condition never matches (which disables its rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Mapping
from typing import Any

from workers.client.events_format import split_field_path as split_path  # one field-path grammar

# Characters inside a word; anything else (and the ends of the value) is a boundary.
_WORD = "A-Za-z0-9_"
_MEMBER_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]+)")
# The integer range of canonical JSON.
_MAX_SAFE_INT = 2**53 - 1
DEFAULT_NOTIFICATION_LEVEL = 50


@dataclass(frozen=True)
class PushContext:
    """What conditions need beyond the event, for one user and one event."""

    user_id: str
    display_name: str | None = None
    member_count: int = 0
    sender_power_level: int | float = 0
    notification_levels: Mapping[str, int] = field(default_factory=dict)


# --- property paths ------------------------------------------------------------------------


_ABSENT = object()


@lru_cache(maxsize=1024)
def _path(key: str) -> tuple[str, ...]:
    """``split_path`` memoized: rules name the same few paths for every event."""
    return tuple(split_path(key))


def property_at(event: Mapping[str, Any], key: str) -> Any:
    """The value at a dot-separated path of the event, or ``_ABSENT``."""
    value: Any = event
    for name in _path(key):
        # Events are plain dicts: the exact type test spares the ABC check.
        if not (type(value) is dict or isinstance(value, Mapping)) or name not in value:
            return _ABSENT
        value = value[name]
    return value


# --- globs ---------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str, word_boundary: bool) -> re.Pattern[str]:
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    if word_boundary:
        return re.compile(f"(?:^|[^{_WORD}]){body}(?:[^{_WORD}]|$)", re.IGNORECASE | re.DOTALL)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=1024)
def _word_regex(text: str) -> re.Pattern[str]:
    """``text`` literally, case-insensitively, between word boundaries."""
    return re.compile(f"(?:^|[^{_WORD}]){re.escape(text)}(?:[^{_WORD}]|$)", re.IGNORECASE)


def glob_matches(pattern: str, value: str, *, word_boundary: bool = False) -> bool:
    """Whether the glob (``*``: zero or more characters, ``?``: exactly one) matches the
    whole value, or with ``word_boundary`` any substring bounded by word boundaries."""
    regex = _glob_regex(pattern, word_boundary)
    if word_boundary:
        return regex.search(value) is not None
    return regex.fullmatch(value) is not None


# --- exact values --------------------------------------------------------------------------


def _is_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    return type(value) is int and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT


def _same_scalar(a: Any, b: Any) -> bool:
    """Exact equality of two canonical JSON scalars: no casts (``1`` is not ``true``)."""
    if not (_is_scalar(a) and _is_scalar(b)):
        return False
    return type(a) is type(b) and a == b


# --- the conditions ------------------------------------------------------------------------


def event_match(event: Mapping[str, Any], key: Any, pattern: Any) -> bool:
    if not isinstance(key, str) or not isinstance(pattern, str):
        return False
    value = property_at(event, key)
    if not isinstance(value, str):
        return False
    return glob_matches(pattern, value, word_boundary=key == "content.body")


def event_property_is(event: Mapping[str, Any], key: Any, value: Any) -> bool:
    if not isinstance(key, str):
        return False
    return _same_scalar(property_at(event, key), value)


def event_property_contains(event: Mapping[str, Any], key: Any, value: Any) -> bool:
    if not isinstance(key, str):
        return False
    found = property_at(event, key)
    if not isinstance(found, list):
        return False
    return any(_same_scalar(item, value) for item in found)


def contains_display_name(event: Mapping[str, Any], display_name: str | None) -> bool:
    if not display_name:
        return False
    content = event.get("content")
    body = content.get("body") if isinstance(content, Mapping) else None
    if not isinstance(body, str):
        return False
    return _word_regex(display_name).search(body) is not None


def room_member_count(spec: Any, member_count: int) -> bool:
    if not isinstance(spec, str):
        return False
    match = _MEMBER_COUNT.fullmatch(spec)
    if match is None:
        return False
    op, number = match.group(1) or "==", int(match.group(2))
    if op == "==":
        return member_count == number
    if op == "<":
        return member_count < number
    if op == ">":
        return member_count > number
    if op == "<=":
        return member_count <= number
    return member_count >= number


def sender_notification_permission(key: Any, context: PushContext) -> bool:
    if not isinstance(key, str):
        return False
    required = context.notification_levels.get(key, DEFAULT_NOTIFICATION_LEVEL)
    return context.sender_power_level >= required


def condition_matches(
    condition: Mapping[str, Any], event: Mapping[str, Any], context: PushContext
) -> bool:
    """Whether one condition of an override or underride rule holds for the event."""
    kind = condition.get("kind")
    if kind == "event_match":
        return event_match(event, condition.get("key"), condition.get("pattern"))
    if kind == "event_property_is":
        return "value" in condition and event_property_is(
            event, condition.get("key"), condition["value"]
        )
    if kind == "event_property_contains":
        return "value" in condition and event_property_contains(
            event, condition.get("key"), condition["value"]
        )
    if kind == "contains_display_name":
        return contains_display_name(event, context.display_name)
    if kind == "room_member_count":
        return room_member_count(condition.get("is"), context.member_count)
    if kind == "sender_notification_permission":
        return sender_notification_permission(condition.get("key"), context)
    return False
