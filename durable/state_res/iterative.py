"""Iterative auth checks (state resolution v2/v2.1).

Spec: rooms v2 "Iterative auth checks": walk a sorted list of state events, applying each one
to the room state when the authorization rules allow it and ignoring it otherwise. A key the
rules need that the state lacks is taken from the event's own ``auth_events``, unless that auth
event was rejected ("Rejected auth events are deliberately excluded").
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from durable.auth import auth_types_for_event, check_auth_rules
from durable.errors import AuthError
from durable.events.event import Event, StateKey
from durable.room_versions import RoomVersion

from .power import CREATE_KEY, create_event_of


def iterative_auth_checks(
    room_version: RoomVersion,
    event_ids: Iterable[str],
    initial_state: Mapping[StateKey, str],
    fetch: Callable[[str], Event | None],
) -> dict[StateKey, str]:
    """Apply ``event_ids`` in order on top of ``initial_state``; return the new state map.

    The auth state of each event is its non-rejected auth events keyed by (type, state_key),
    overlaid with the current state for the keys the rules select for it
    (``auth_types_for_event``). From room version 12 the create event is not listed in
    ``auth_events``; it is added from the room ID. An event that was itself rejected on receipt
    is checked again like any other (spec: "Rejected events ... are handled as usual").
    """
    state = dict(initial_state)
    for event_id in event_ids:
        event = fetch(event_id)
        if event is None or not event.is_state():
            continue
        auth_state: dict[StateKey, Event] = {}
        for auth_id in event.auth_event_ids:
            auth_event = fetch(auth_id)
            if auth_event is not None and auth_event.rejected_reason is None and auth_event.is_state():
                auth_state[auth_event.key] = auth_event
        if room_version.room_id_is_create_event_hash and CREATE_KEY not in auth_state:
            create = create_event_of(event, room_version, fetch)
            if create is not None and create.event_id != event.event_id:
                auth_state[CREATE_KEY] = create
        auth_types = auth_types_for_event(
            room_version, event.type, event.state_key, event.sender, event.content
        )
        for key in auth_types:
            current_id = state.get(key)
            if current_id is None:
                continue
            current = fetch(current_id)
            if current is not None and current.rejected_reason is None:
                auth_state[key] = current
        try:
            check_auth_rules(event, auth_state)
        except AuthError:
            continue
        state[event.key] = event_id
    return state
