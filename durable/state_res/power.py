"""Power events and sender power levels as used by state resolution v2/v2.1.

Spec: rooms v2 "Power events" and "Reverse topological power ordering"; room v12 "State
resolution" (a creator ranks above everyone, MSC4289).
"""

from __future__ import annotations

from typing import Callable

from durable.auth import user_power_level
from durable.events.event import Event, StateKey
from durable.room_versions import RoomVersion

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")


def is_power_event(event: Event) -> bool:
    """A power event is a power levels or join rules state event, or a member event with
    membership ``leave`` or ``ban`` whose sender is not its state_key (a kick or a ban): events
    that might take away someone's ability to act."""
    if not event.is_state():
        return False
    key = event.key
    if key == POWER_LEVELS_KEY or key == JOIN_RULES_KEY:
        return True
    return (
        event.type == "m.room.member"
        and event.membership in ("leave", "ban")
        and event.sender != event.state_key
    )


def is_create_event(event: Event) -> bool:
    return event.is_state() and event.key == CREATE_KEY


def create_event_id_for_room(room_id: str) -> str:
    """Room version 12: the room ID is the create event's ID with ``!`` for ``$``."""
    return "$" + room_id[1:]


def create_event_of(
    event: Event, room_version: RoomVersion, fetch: Callable[[str], Event | None]
) -> Event | None:
    """The create event that governs ``event``: listed in its auth events before room v12,
    implied by its room ID from v12 on; the event itself when it is the create event."""
    if is_create_event(event):
        return event
    if room_version.room_id_is_create_event_hash:
        room_id = event.room_id
        return fetch(create_event_id_for_room(room_id)) if isinstance(room_id, str) else None
    for auth_id in event.auth_event_ids:
        auth_event = fetch(auth_id)
        if auth_event is not None and is_create_event(auth_event):
            return auth_event
    return None


def sender_power_level(
    event: Event, room_version: RoomVersion, fetch: Callable[[str], Event | None]
) -> int | float:
    """The sender's power level "when looking at their respective auth_events": read from the
    power levels event among ``event``'s own auth events (the creator rules of the auth rules
    apply when it cites none; room v12 creators are infinite). Without any create event the
    sender ranks lowest (0)."""
    power_levels: Event | None = None
    for auth_id in event.auth_event_ids:
        auth_event = fetch(auth_id)
        if auth_event is not None and auth_event.is_state() and auth_event.key == POWER_LEVELS_KEY:
            power_levels = auth_event
            break
    create = create_event_of(event, room_version, fetch)
    if create is None:
        return 0
    return user_power_level(event.sender, power_levels, create)
