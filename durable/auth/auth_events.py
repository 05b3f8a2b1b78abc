"""Which state an event cites as its ``auth_events``, and the rules about that list.

Spec: https://spec.matrix.org/v1.19/server-server-api/#auth-events-selection and the
"Considering the event's `auth_events`" rule of each room version (rule 2; rule 3 in v12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

from durable.errors import AuthError
from durable.events.event import Event, StateKey
from durable.room_versions import RoomVersion

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")


def auth_types_for_event(
    room_version: RoomVersion,
    type: str,  # noqa: A002 - the spec's name for the field
    state_key: str | None,
    sender: str,
    content: Mapping[str, Any],
) -> list[StateKey]:
    """The (type, state_key) pairs the auth events selection picks, without duplicates.

    None for ``m.room.create``. Otherwise: the create event (not in v12, where the room ID
    implies it), the power levels, the sender's member event; for ``m.room.member`` also the
    target's member event, the join rules when ``membership`` is join/invite/knock, the
    ``m.room.third_party_invite`` named by ``third_party_invite.signed.token`` for such
    invites, and (room versions with restricted joins) the member event of
    ``join_authorised_via_users_server`` for joins.
    """
    if type == "m.room.create":
        return []
    keys: list[StateKey] = []
    if room_version.create_event_in_auth_events:
        keys.append(CREATE_KEY)
    keys.append(POWER_LEVELS_KEY)
    keys.append(("m.room.member", sender))
    if type == "m.room.member":
        if state_key is not None:
            keys.append(("m.room.member", state_key))
        membership = content.get("membership")
        if membership in ("join", "invite", "knock"):
            keys.append(JOIN_RULES_KEY)
        if membership == "invite":
            third_party_invite = content.get("third_party_invite")
            if isinstance(third_party_invite, Mapping):
                signed = third_party_invite.get("signed")
                token = signed.get("token") if isinstance(signed, Mapping) else None
                if isinstance(token, str):
                    keys.append(("m.room.third_party_invite", token))
        if membership == "join" and room_version.restricted_join_rule:
            authoriser = content.get("join_authorised_via_users_server")
            if isinstance(authoriser, str):
                keys.append(("m.room.member", authoriser))
    return list(dict.fromkeys(keys))


def check_auth_events_list(event: Event, auth_events: Sequence[Event]) -> dict[StateKey, Event]:
    """Apply the rules about the ``auth_events`` list itself and return it as a state map.

    Reject on: an entry that is not a state event; two entries with one (type, state_key);
    an entry the selection algorithm would not pick; an entry that was itself rejected; an
    entry from another room; before v12, no ``m.room.create`` among the entries.

    v12: the create event must not be listed in the PDU's ``auth_events``. The caller still
    passes it in ``auth_events`` (the room ID implies it), so it is accepted here unless the
    PDU itself lists its ID.

    For an ``m.room.create`` event the list is not considered: rule 1 decides the create
    event before this rule is reached, so the result is empty.
    """
    if event.type == "m.room.create":
        return {}
    room_version = event.room_version
    room_id = event.room_id
    listed_ids: set[str] = set()
    if room_version.room_id_is_create_event_hash:
        listed_ids = set(event.auth_event_ids)
        if isinstance(room_id, str) and "$" + room_id[1:] in listed_ids:
            raise AuthError("auth_events: lists the m.room.create event (room version 12)")
    expected = set(
        auth_types_for_event(room_version, event.type, event.state_key, event.sender, event.content)
    )
    result: dict[StateKey, Event] = {}
    for auth_event in auth_events:
        if not auth_event.is_state():
            raise AuthError(f"auth_events: {auth_event.event_id} is not a state event")
        key = auth_event.key
        if key in result:
            raise AuthError(f"auth_events: duplicate entries for {key!r}")
        if key == CREATE_KEY and room_version.room_id_is_create_event_hash:
            if auth_event.event_id in listed_ids:
                raise AuthError("auth_events: lists the m.room.create event (room version 12)")
        elif key not in expected:
            raise AuthError(f"auth_events: {key!r} is not selected for this event")
        if auth_event.rejected_reason is not None:
            raise AuthError(f"auth_events: {auth_event.event_id} was rejected")
        if auth_event.room_id != room_id:
            raise AuthError(f"auth_events: {auth_event.event_id} belongs to another room")
        result[key] = auth_event
    if room_version.create_event_in_auth_events and CREATE_KEY not in result:
        raise AuthError("auth_events: no m.room.create event")
    return result
