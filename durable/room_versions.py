"""Room versions as a table of feature flags.

Spec: https://spec.matrix.org/v1.19/rooms/ — every stable room version (1 to 12).
Code branches on these flags, never on version strings.

Room version 1 differs from version 2 only in its state resolution algorithm (v1): same
event format, redaction and authorisation rules (rooms/v2.md: "uses the base components of
room version 1, changing only the state resolution algorithm").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EventFormat(enum.Enum):
    """How event IDs are made (spec: "Event format" in each room version)."""

    V1 = 1  # v1, v2: server-generated `$opaque:domain`, carried in the event; prev/auth as [id, hashes] pairs
    V2 = 2  # v3: `$` + reference hash in standard unpadded base64, not carried in the event
    V3 = 3  # v4+: `$` + reference hash in URL-safe unpadded base64


class StateResAlgorithm(enum.Enum):
    V1 = "v1"
    V2 = "v2"
    V2_1 = "v2.1"  # room version 12 (MSC4297)


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    event_format: EventFormat
    state_res: StateResAlgorithm
    # v5: a signing key is only valid for events before its `valid_until_ts`.
    enforce_key_validity: bool
    # v1-v5: `m.room.aliases` has a special auth rule and redaction rule.
    special_case_aliases_auth: bool
    # v6+: canonical JSON is strict (integers in ±(2**53 - 1), no floats).
    strict_canonicaljson: bool
    # v6+: changing `notifications` in power levels is checked like the other keys.
    limit_notifications_power_levels: bool
    # v7+: `join_rule: knock` and `membership: knock`.
    knock_join_rule: bool
    # v8+: `join_rule: restricted` with `join_authorised_via_users_server`.
    restricted_join_rule: bool
    # v9+: redaction keeps `join_authorised_via_users_server` in member content.
    restricted_join_rule_fix: bool
    # v10+: `join_rule: knock_restricted`.
    knock_restricted_join_rule: bool
    # v10+: power level values must be integers, not strings.
    enforce_int_power_levels: bool
    # v11+: the create event has no `creator`; the sender is the creator.
    implicit_room_creator: bool
    # v11+: the updated redaction algorithm; `redacts` lives in the content of m.room.redaction.
    updated_redaction_rules: bool
    # v12: room ID is `!` + the create event's reference hash; create event not in auth_events.
    room_id_is_create_event_hash: bool
    # v12: creators (sender + `additional_creators`) have infinite power.
    privileged_creators: bool

    @property
    def event_id_in_event(self) -> bool:
        """Only room versions 1 and 2 carry `event_id` inside the PDU."""
        return self.event_format is EventFormat.V1

    @property
    def create_event_in_auth_events(self) -> bool:
        return not self.room_id_is_create_event_hash


def _v(identifier: str, **flags: object) -> RoomVersion:
    base: dict[str, object] = dict(
        event_format=EventFormat.V1,
        state_res=StateResAlgorithm.V2,
        enforce_key_validity=False,
        special_case_aliases_auth=True,
        strict_canonicaljson=False,
        limit_notifications_power_levels=False,
        knock_join_rule=False,
        restricted_join_rule=False,
        restricted_join_rule_fix=False,
        knock_restricted_join_rule=False,
        enforce_int_power_levels=False,
        implicit_room_creator=False,
        updated_redaction_rules=False,
        room_id_is_create_event_hash=False,
        privileged_creators=False,
    )
    base.update(flags)
    return RoomVersion(identifier=identifier, **base)  # type: ignore[arg-type]


V1 = _v("1", state_res=StateResAlgorithm.V1)
V2 = _v("2")
V3 = _v("3", event_format=EventFormat.V2)
V4 = _v("4", event_format=EventFormat.V3)
V5 = _v("5", event_format=EventFormat.V3, enforce_key_validity=True)
_V6_FLAGS: dict[str, object] = dict(
    event_format=EventFormat.V3,
    enforce_key_validity=True,
    special_case_aliases_auth=False,
    strict_canonicaljson=True,
    limit_notifications_power_levels=True,
)
V6 = _v("6", **_V6_FLAGS)
V7 = _v("7", **_V6_FLAGS, knock_join_rule=True)
V8 = _v("8", **_V6_FLAGS, knock_join_rule=True, restricted_join_rule=True)
_V9_FLAGS: dict[str, object] = dict(
    _V6_FLAGS, knock_join_rule=True, restricted_join_rule=True, restricted_join_rule_fix=True
)
V9 = _v("9", **_V9_FLAGS)
_V10_FLAGS: dict[str, object] = dict(
    _V9_FLAGS, knock_restricted_join_rule=True, enforce_int_power_levels=True
)
V10 = _v("10", **_V10_FLAGS)
_V11_FLAGS: dict[str, object] = dict(
    _V10_FLAGS, implicit_room_creator=True, updated_redaction_rules=True
)
V11 = _v("11", **_V11_FLAGS)
V12 = _v(
    "12",
    **_V11_FLAGS,
    state_res=StateResAlgorithm.V2_1,
    room_id_is_create_event_hash=True,
    privileged_creators=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12)
}

DEFAULT_ROOM_VERSION = "12"


class UnsupportedRoomVersion(Exception):
    """A room version this server does not implement (spec errcode M_UNSUPPORTED_ROOM_VERSION)."""

    def __init__(self, identifier: object) -> None:
        super().__init__(f"Room version {identifier!r} is not supported by this server")
        self.identifier = identifier


def get_room_version(identifier: object) -> RoomVersion:
    """Look up a room version by its identifier, or raise UnsupportedRoomVersion."""
    if isinstance(identifier, str):
        version = KNOWN_ROOM_VERSIONS.get(identifier)
        if version is not None:
            return version
    raise UnsupportedRoomVersion(identifier)
