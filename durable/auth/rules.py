"""The state-dependent authorisation rules, for every supported room version (1 to 12).

Spec: https://spec.matrix.org/v1.19/rooms/ — "Authorisation rules" of v2 (the v1 rules),
v3-v5 (redaction rule removed), v6 (aliases rule removed, ``notifications``), v7 (knocking),
v8/v9 (restricted joins), v10 (integer power levels, ``knock_restricted``), v11 (the creator
is the create event's sender) and v12 (room ID = create event hash, privileged creators).
Rule numbers shift between versions, so reasons name the rule, not its number.

This is the hot path of state resolution: no copies, no JSON, one pass over the rules.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from durable.auth.auth_events import CREATE_KEY, POWER_LEVELS_KEY, check_auth_events_list
from durable.auth.identifiers import domain_of, is_valid_user_id
from durable.auth.membership import check_member_event
from durable.auth.power_levels import (
    check_power_levels_event,
    event_power_level,
    named_level,
    user_power_level,
)
from durable.errors import AuthError
from durable.events.event import Event, StateKey
from durable.room_versions import KNOWN_ROOM_VERSIONS


def check_create_event(event: Event) -> None:
    """Rule 1, ``m.room.create``: no ``prev_events``; before v12 the ``room_id`` domain is
    the sender's, in v12 there is no ``room_id`` at all; ``content.room_version``, if present,
    is a version we recognise; v12: ``additional_creators`` is an array of valid user IDs;
    before v11: ``content.creator`` is present."""
    room_version = event.room_version
    if event.pdu.get("prev_events"):
        raise AuthError("create: has prev_events")
    if room_version.room_id_is_create_event_hash:
        if "room_id" in event.pdu:
            raise AuthError("create: has a room_id (room version 12)")
    else:
        room_id = event.pdu.get("room_id")
        room_domain = domain_of(room_id) if isinstance(room_id, str) else None
        if room_domain is None or room_domain != domain_of(event.sender):
            raise AuthError("create: room_id domain does not match sender domain")
    content = event.content
    declared = content.get("room_version")
    if "room_version" in content and not (isinstance(declared, str) and declared in KNOWN_ROOM_VERSIONS):
        raise AuthError("create: content.room_version is not a recognised version")
    if room_version.privileged_creators and "additional_creators" in content:
        additional = content["additional_creators"]
        if not isinstance(additional, list) or not all(is_valid_user_id(user) for user in additional):
            raise AuthError("create: additional_creators is not an array of valid user IDs")
    if not room_version.implicit_room_creator and "creator" not in content:
        raise AuthError("create: content has no creator")


def check_auth_rules(event: Event, auth_state: Mapping[StateKey, Event]) -> None:
    """Allow (return) or reject (raise AuthError) ``event`` against ``auth_state``.

    ``auth_state`` is the state to check against (the event's auth events, the state
    before it, or the current state); it must hold the ``m.room.create`` event, in v12
    too. The rules about the ``auth_events`` list itself are in ``check_auth_events_list``.
    """
    room_version = event.room_version
    event_type = event.type
    if event_type == "m.room.create":
        check_create_event(event)
        return

    create = auth_state.get(CREATE_KEY)
    if create is None:
        raise AuthError("no m.room.create event in the auth state")
    if room_version.room_id_is_create_event_hash:
        # v12 rule 2: the room ID is the event ID of an accepted create event, sigil `!`.
        if create.rejected_reason is not None:
            raise AuthError("room_id: the m.room.create event was rejected")
        if event.room_id != "!" + create.event_id[1:]:
            raise AuthError("room_id: not the event ID of the m.room.create event")

    sender = event.sender
    if create.content.get("m.federate", True) is False and domain_of(sender) != domain_of(create.sender):
        raise AuthError("m.federate is false and the sender is from another server")

    if room_version.special_case_aliases_auth and event_type == "m.room.aliases":
        # v1-v5 only: the state_key is the sender's server name.
        state_key = event.state_key
        if state_key is None:
            raise AuthError("aliases: no state_key")
        if domain_of(sender) != state_key:
            raise AuthError("aliases: sender's domain does not match state_key")
        return

    power_levels = auth_state.get(POWER_LEVELS_KEY)
    if event_type == "m.room.member":
        check_member_event(event, auth_state, create, power_levels)
        return

    sender_member = auth_state.get(("m.room.member", sender))
    if sender_member is None or sender_member.membership != "join":
        raise AuthError("sender is not joined to the room")

    sender_level = user_power_level(sender, power_levels, create)
    if event_type == "m.room.third_party_invite":
        if sender_level >= named_level("invite", power_levels):
            return
        raise AuthError("third_party_invite: sender's level is below the invite level")

    state_key = event.state_key
    if event_power_level(event_type, state_key, power_levels) > sender_level:
        raise AuthError(f"sender's level is below the required level for {event_type!r}")

    if state_key is not None and state_key.startswith("@") and state_key != sender:
        raise AuthError("state_key starts with '@' and is not the sender")

    if event_type == "m.room.power_levels":
        check_power_levels_event(event, power_levels, sender_level, create)
        return

    if event_type == "m.room.redaction" and room_version.event_id_in_event:
        # v1-v2 only (event IDs carry a domain); from v3 the check moves to "handling
        # redactions" outside the auth rules.
        if sender_level >= named_level("redact", power_levels):
            return
        redacts = event.redacts
        if redacts is not None and domain_of(redacts) == domain_of(event.event_id):
            return
        raise AuthError("redaction: below the redact level and the redacted event is from another server")


def check_event_auth(event: Event, auth_events: Sequence[Event]) -> None:
    """Authorise ``event`` against its own auth events: the list rules, then the rules
    against the state those events form (receipt check 4, "based on the event's auth
    events")."""
    auth_state = check_auth_events_list(event, auth_events)
    check_auth_rules(event, auth_state)
