"""The redaction algorithm of each room version.

Spec: the "Redactions" section of each room version (rooms/fragments/v1-redactions.md for
v1-v5, v6-redactions.md for v6-v7, rooms/v8.md for v8, v9-redactions.md for v9-v10 and
v11-redactions.md for v11-v12). Every top-level key not in the version's list is stripped,
and ``content`` is stripped of every key except those the event type keeps.

Redaction is also step 1 of the reference hash and the form that signatures cover, so it
must match other servers byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from durable.room_versions import EventFormat, RoomVersion

# Top-level keys every room version keeps.
_KEPT_TOP_LEVEL = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)
# Room versions 1 to 10 also keep these; v11 dropped them.
_KEPT_TOP_LEVEL_BEFORE_V11 = frozenset({"prev_state", "origin", "membership"})

_POWER_LEVELS_KEPT = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)


@lru_cache(maxsize=None)  # one entry per room version
def kept_top_level_keys(room_version: RoomVersion) -> frozenset[str]:
    """The top-level keys the redaction algorithm of ``room_version`` keeps.

    ``event_id`` is in every version's list, but from room version 3 it is not part of the
    PDU (the ID is the reference hash), so a stray copy is not kept.
    """
    keys = _KEPT_TOP_LEVEL
    if not room_version.updated_redaction_rules:
        keys = keys | _KEPT_TOP_LEVEL_BEFORE_V11
    if room_version.event_format is not EventFormat.V1:
        keys = keys - {"event_id"}
    return keys


def kept_content_keys(event_type: str, room_version: RoomVersion) -> tuple[str, ...] | None:
    """The content keys an event type keeps; None means "all of them" (v11+ create events).

    The nested ``third_party_invite.signed`` of v11 member events is handled by ``redact``.
    """
    if event_type == "m.room.member":
        if room_version.restricted_join_rule_fix:  # v9: keep the authorising user
            return ("membership", "join_authorised_via_users_server")
        return ("membership",)
    if event_type == "m.room.create":
        return None if room_version.updated_redaction_rules else ("creator",)
    if event_type == "m.room.join_rules":
        if room_version.restricted_join_rule:  # v8: keep the restricted-join allow list
            return ("join_rule", "allow")
        return ("join_rule",)
    if event_type == "m.room.power_levels":
        if room_version.updated_redaction_rules:  # v11: keep the invite level
            return _POWER_LEVELS_KEPT + ("invite",)
        return _POWER_LEVELS_KEPT
    if event_type == "m.room.history_visibility":
        return ("history_visibility",)
    if event_type == "m.room.aliases" and room_version.special_case_aliases_auth:
        return ("aliases",)  # v1-v5 only; v6 removed the special case
    if event_type == "m.room.redaction" and room_version.updated_redaction_rules:
        return ("redacts",)  # v11 moved `redacts` into content
    return ()


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON data (much cheaper than ``copy.deepcopy`` for it)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _copy_json(item) for key, item in value.items()}
    return value


def redact(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """Return the redacted form of ``pdu`` under the rules of ``room_version``.

    The input is not modified; the result shares no mutable values with it. ``unsigned`` is
    not in any version's list, so it never survives. A ``content`` that is not an object is
    replaced by an empty object.
    """
    return _redacted(pdu, room_version, _copy_json)


def redacted_view(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The redacted form of ``pdu`` as ``redact`` gives it, except that the kept values are
    the PDU's own (shared, not copied): for reading only, e.g. to encode it for a hash or a
    signature. The returned top-level dict and its ``content`` dict are new."""
    return _redacted(pdu, room_version, _shared)


def _shared(value: Any) -> Any:
    return value


def _redacted(pdu: Mapping[str, Any], room_version: RoomVersion, copy: Any) -> dict[str, Any]:
    keep = kept_top_level_keys(room_version)
    redacted: dict[str, Any] = {
        key: copy(value) for key, value in pdu.items() if key in keep and key != "content"
    }
    if "content" not in pdu:
        return redacted

    content = pdu["content"]
    if not isinstance(content, Mapping):
        redacted["content"] = {}
        return redacted

    event_type = pdu.get("type")
    kept = kept_content_keys(event_type, room_version) if isinstance(event_type, str) else ()
    if kept is None:
        new_content = _copy_json(dict(content)) if copy is _copy_json else dict(content)
    else:
        new_content = {key: copy(content[key]) for key in kept if key in content}
        if event_type == "m.room.member" and room_version.updated_redaction_rules:
            # v11: "it allows the `signed` key of the `third_party_invite` key".
            third_party_invite = content.get("third_party_invite")
            if isinstance(third_party_invite, Mapping) and "signed" in third_party_invite:
                new_content["third_party_invite"] = {"signed": copy(third_party_invite["signed"])}
    redacted["content"] = new_content
    return redacted
