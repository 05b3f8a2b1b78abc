"""State resolution v1 (room version 1).

Spec: https://spec.matrix.org/v1.19/rooms/v1/#state-resolution. The resolved state R is built
in passes:

- R starts as the union of the states, less the conflicting events (a conflict: two states
  give different event IDs for one (event_type, state_key)).
- ``m.room.power_levels`` conflicts, then ``m.room.join_rules``, then ``m.room.member``: sort
  the candidates by ascending ``depth``, then descending ``sha1(event_id)``; the first goes into
  R unchecked; each next one goes into R while the authorisation rules allow it in state R, and
  the pass stops at the first one they refuse.
- Every other conflict: the candidate with the highest ``depth`` and lowest
  ``sha1(event_id)`` that passes the authorisation rules in R.

Where the spec text is silent or ambiguous, this follows what Synapse does, so that our
servers and Synapse's reach the same state:

- A key present in only some of the states, with one event ID wherever present, is not a
  conflict: it belongs to the union that R starts from.
- A conflicted candidate that ``get_event`` cannot supply, or that was rejected, takes no part.
  A conflicted key left with one candidate takes it, but it does not join R for the checks of
  the later passes; a key left with none is dropped from the result.
- The member pass runs once per state key; the join rules pass, once per ``m.room.join_rules``
  key. Each key is resolved against R as it stood when its pass began, and R takes the results
  of a whole pass at its end. The same holds for the other conflicts, each checked against R
  after the member pass. (Only the key ``("m.room.power_levels", "")`` makes the power levels
  pass; power levels events with another state key are "other" conflicts.)
- An "other" conflict in which the rules refuse every candidate takes the last one in its
  order: the lowest depth, then the highest ``sha1(event_id)``.
- "Allowed in state R" means the state-dependent authorisation rules checked against the
  events of R at the keys the rules select for the candidate (``auth_types_for_event``); an
  event of R that cannot be fetched, or was rejected, is missing from that auth state. A create
  event has no state-dependent rules and is always allowed.
- ``sha1(event_id)`` is the SHA-1 of the UTF-8 bytes of the event ID, compared as hex text.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Mapping, Sequence

from durable.auth import auth_types_for_event, check_auth_rules
from durable.errors import AuthError
from durable.events.event import Event, StateKey
from durable.room_versions import RoomVersion

POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
JOIN_RULES_TYPE = "m.room.join_rules"
MEMBER_TYPE = "m.room.member"


def split_state_v1(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], dict[StateKey, frozenset[str]]]:
    """The union of ``state_sets`` less its conflicts, and the conflicts by key.

    A key is conflicted when the sets holding it give it two or more different event IDs;
    a key missing from some sets is not a conflict by that alone.
    """
    values: dict[StateKey, set[str]] = {}
    for state in state_sets:
        for key, event_id in state.items():
            values.setdefault(key, set()).add(event_id)
    unconflicted = {key: next(iter(ids)) for key, ids in values.items() if len(ids) == 1}
    conflicted = {key: frozenset(ids) for key, ids in values.items() if len(ids) > 1}
    return unconflicted, conflicted


def _depth(event: Event) -> int:
    depth = event.depth
    return depth if isinstance(depth, int) and not isinstance(depth, bool) else 0


def _sha1_hex(event_id: str) -> str:
    return hashlib.sha1(event_id.encode("utf-8")).hexdigest()


def order_highest_first(events: Sequence[Event]) -> list[Event]:
    """Highest ``depth`` first, then lowest ``sha1(event_id)``: the order in which "other"
    conflicts are tried. Its reverse is the ascending order of the auth-event passes."""
    return sorted(events, key=lambda e: (-_depth(e), _sha1_hex(e.event_id)))


class _StateR:
    """The resolved state R (event IDs) and the auth check "allowed in state R"."""

    def __init__(
        self,
        room_version: RoomVersion,
        state: Mapping[StateKey, str],
        fetch: Callable[[str], Event | None],
    ) -> None:
        self.room_version = room_version
        self.state = dict(state)
        self.fetch = fetch

    def allows(self, event: Event, overlay: Mapping[StateKey, str] | None = None) -> bool:
        """Whether the state-dependent auth rules allow ``event`` in R (with ``overlay``
        laid over R)."""
        if event.is_state() and event.type == "m.room.create":
            return True
        auth_state: dict[StateKey, Event] = {}
        keys = auth_types_for_event(
            self.room_version, event.type, event.state_key, event.sender, event.content
        )
        for key in keys:
            event_id = overlay.get(key) if overlay is not None and key in overlay else self.state.get(key)
            if event_id is None:
                continue
            found = self.fetch(event_id)
            if found is not None:
                auth_state[key] = found
        try:
            check_auth_rules(event, auth_state)
        except AuthError:
            return False
        return True

    def resolve_auth_conflict(self, candidates: Sequence[Event]) -> str:
        """An auth-event pass over one key: ascending depth, descending sha1; the first is
        taken unchecked, each next one while R (holding the one taken last) allows it."""
        ascending = list(reversed(order_highest_first(candidates)))
        chosen = ascending[0]
        for event in ascending[1:]:
            if not self.allows(event, {chosen.key: chosen.event_id}):
                break
            chosen = event
        return chosen.event_id

    def resolve_other_conflict(self, candidates: Sequence[Event]) -> str:
        """Highest depth, lowest sha1 among the candidates R allows (the last in that order
        when it allows none)."""
        ordered = order_highest_first(candidates)
        for event in ordered:
            if self.allows(event):
                return event.event_id
        return ordered[-1].event_id


def resolve_state_v1(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    get_event: Callable[[str], Event | None],
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` (maps of (type, state_key) to event ID) by state resolution v1.

    ``get_event`` returns an event by ID, or None. Pure: no I/O of its own, and the result
    depends neither on the order of ``state_sets`` nor on dict order.
    """
    if not state_sets:
        return {}
    unconflicted, conflicted = split_state_v1(state_sets)
    if not conflicted:
        return unconflicted

    def fetch(event_id: str) -> Event | None:
        event = get_event(event_id)
        return event if event is not None and event.rejected_reason is None else None

    resolved = dict(unconflicted)
    candidates: dict[StateKey, list[Event]] = {}
    for key, event_ids in conflicted.items():
        known = [e for e in (fetch(i) for i in sorted(event_ids)) if e is not None]
        if len(known) == 1:
            resolved[key] = known[0].event_id
        elif known:
            candidates[key] = known

    state_r = _StateR(room_version, unconflicted, fetch)
    passes: list[Callable[[StateKey], bool]] = [
        lambda key: key == POWER_LEVELS_KEY,
        lambda key: key[0] == JOIN_RULES_TYPE,
        lambda key: key[0] == MEMBER_TYPE,
    ]
    done: set[StateKey] = set()
    for in_pass in passes:
        outcome = {
            key: state_r.resolve_auth_conflict(events)
            for key, events in candidates.items()
            if key not in done and in_pass(key)
        }
        done.update(outcome)
        state_r.state.update(outcome)
        resolved.update(outcome)
    for key, events in candidates.items():
        if key not in done:
            resolved[key] = state_r.resolve_other_conflict(events)
    return resolved
