"""The `m.room.member` authorisation rule (rule 5 in v1-v5, 4 in v6-v11, 5 in v12).

Spec: https://spec.matrix.org/v1.19/rooms/v12/#authorisation-rules and the earlier room
versions' copies; each branch notes the room version that changed it.
"""

from __future__ import annotations

from typing import Mapping

from durable.auth.auth_events import JOIN_RULES_KEY
from durable.auth.identifiers import domain_of
from durable.auth.power_levels import named_level, room_creator, user_power_level
from durable.auth.third_party_invite import check_third_party_invite
from durable.errors import AuthError
from durable.events.event import Event, StateKey

MEMBER = "m.room.member"


def membership_of(user_id: str, auth_state: Mapping[StateKey, Event]) -> str | None:
    """The user's current membership, or None when the state has no member event for them."""
    member = auth_state.get((MEMBER, user_id))
    return member.membership if member is not None else None


def join_rule_of(auth_state: Mapping[StateKey, Event]) -> str:
    """The current ``join_rule``. The spec names no default for a room without an
    ``m.room.join_rules`` event; like the common servers we read that as ``invite``."""
    event = auth_state.get(JOIN_RULES_KEY)
    if event is None:
        return "invite"
    rule = event.content.get("join_rule")
    return rule if isinstance(rule, str) else "invite"


def check_member_event(
    event: Event, auth_state: Mapping[StateKey, Event], create: Event, power_levels: Event | None
) -> None:
    """Allow (return) or reject (raise AuthError) an ``m.room.member`` event."""
    room_version = event.room_version
    content = event.content
    state_key = event.state_key
    if state_key is None or "membership" not in content:
        raise AuthError("member: no state_key or no content.membership")

    if room_version.restricted_join_rule and "join_authorised_via_users_server" in content:
        # v8+: must be signed by the authorising user's server. Only presence is checked here;
        # the cryptographic check belongs to the PDU signature checks, which must cover it.
        authoriser = content["join_authorised_via_users_server"]
        server = domain_of(authoriser) if isinstance(authoriser, str) else None
        if server is None or not event.signatures.get(server):
            raise AuthError("member: not signed by the server of join_authorised_via_users_server")

    membership = content["membership"]
    sender = event.sender
    if membership == "join":
        _check_join(event, state_key, auth_state, create, power_levels)
    elif membership == "invite":
        _check_invite(event, state_key, auth_state, create, power_levels)
    elif membership == "leave":
        _check_leave(event, state_key, auth_state, create, power_levels)
    elif membership == "ban":
        if membership_of(sender, auth_state) != "join":
            raise AuthError("member ban: sender is not joined")
        sender_level = user_power_level(sender, power_levels, create)
        if sender_level < named_level("ban", power_levels):
            raise AuthError("member ban: sender's level is below the ban level")
        if user_power_level(state_key, power_levels, create) >= sender_level:
            raise AuthError("member ban: target's level is not below the sender's")
    elif membership == "knock" and room_version.knock_join_rule:
        _check_knock(event, state_key, auth_state)
    else:
        raise AuthError(f"member: unknown membership {membership!r}")


def _check_join(
    event: Event,
    state_key: str,
    auth_state: Mapping[StateKey, Event],
    create: Event,
    power_levels: Event | None,
) -> None:
    room_version = event.room_version
    sender = event.sender
    # The creator's first join: the only prev event is the create event (v11+: the creator
    # is the create event's sender; before, content.creator).
    prev_events = event.prev_event_ids
    if len(prev_events) == 1 and prev_events[0] == create.event_id and state_key == room_creator(create):
        return
    if sender != state_key:
        raise AuthError("member join: sender does not match state_key")
    sender_membership = membership_of(sender, auth_state)
    if sender_membership == "ban":
        raise AuthError("member join: sender is banned")
    join_rule = join_rule_of(auth_state)
    if join_rule == "invite" or (room_version.knock_join_rule and join_rule == "knock"):
        if sender_membership in ("invite", "join"):
            return
        raise AuthError(f"member join: join rule is {join_rule!r} and sender is not invited")
    if (room_version.restricted_join_rule and join_rule == "restricted") or (
        room_version.knock_restricted_join_rule and join_rule == "knock_restricted"
    ):
        if sender_membership in ("join", "invite"):
            return
        authoriser = event.content.get("join_authorised_via_users_server")
        if not isinstance(authoriser, str):
            raise AuthError("member join (restricted): no join_authorised_via_users_server")
        if membership_of(authoriser, auth_state) != "join":
            raise AuthError("member join (restricted): authorising user is not joined")
        if user_power_level(authoriser, power_levels, create) < named_level("invite", power_levels):
            raise AuthError("member join (restricted): authorising user cannot invite")
        return
    if join_rule == "public":
        return
    raise AuthError(f"member join: join rule {join_rule!r} does not allow joining")


def _check_invite(
    event: Event,
    state_key: str,
    auth_state: Mapping[StateKey, Event],
    create: Event,
    power_levels: Event | None,
) -> None:
    target_membership = membership_of(state_key, auth_state)
    if "third_party_invite" in event.content:
        check_third_party_invite(event, auth_state, target_membership)
        return
    sender = event.sender
    if membership_of(sender, auth_state) != "join":
        raise AuthError("member invite: sender is not joined")
    if target_membership in ("join", "ban"):
        raise AuthError(f"member invite: target is already {target_membership}")
    if user_power_level(sender, power_levels, create) < named_level("invite", power_levels):
        raise AuthError("member invite: sender's level is below the invite level")


def _check_leave(
    event: Event,
    state_key: str,
    auth_state: Mapping[StateKey, Event],
    create: Event,
    power_levels: Event | None,
) -> None:
    sender = event.sender
    target_membership = membership_of(state_key, auth_state)
    if sender == state_key:
        # v7+: a knock may also be withdrawn.
        allowed = ("invite", "join", "knock") if event.room_version.knock_join_rule else ("invite", "join")
        if target_membership in allowed:
            return
        raise AuthError(f"member leave: cannot leave from membership {target_membership!r}")
    if membership_of(sender, auth_state) != "join":
        raise AuthError("member leave (kick): sender is not joined")
    sender_level = user_power_level(sender, power_levels, create)
    if target_membership == "ban" and sender_level < named_level("ban", power_levels):
        raise AuthError("member leave (unban): sender's level is below the ban level")
    if sender_level < named_level("kick", power_levels):
        raise AuthError("member leave (kick): sender's level is below the kick level")
    if user_power_level(state_key, power_levels, create) >= sender_level:
        raise AuthError("member leave (kick): target's level is not below the sender's")


def _check_knock(event: Event, state_key: str, auth_state: Mapping[StateKey, Event]) -> None:
    room_version = event.room_version
    join_rule = join_rule_of(auth_state)
    if not (join_rule == "knock" or (room_version.knock_restricted_join_rule and join_rule == "knock_restricted")):
        raise AuthError(f"member knock: join rule {join_rule!r} does not allow knocking")
    if event.sender != state_key:
        raise AuthError("member knock: sender does not match state_key")
    if membership_of(event.sender, auth_state) in ("ban", "invite", "join"):
        raise AuthError("member knock: sender is banned, invited or joined")
