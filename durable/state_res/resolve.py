"""State resolution: v1 (room version 1), v2 (room versions 2 to 11) and v2.1 (room version 12).

Spec: rooms v1 "State resolution" (in ``v1``), rooms v2 "State resolution" algorithm and rooms
v12 "State resolution" (MSC4297). ``resolve_state`` picks the algorithm from the room
version's ``state_res`` flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from durable.events.event import Event, StateKey
from durable.room_versions import RoomVersion, StateResAlgorithm

from .auth_chain import AuthGraph, auth_difference
from .conflicts import split_state
from .iterative import iterative_auth_checks
from .ordering import mainline_sort, power_sort_key, reverse_topological_power_sort
from .power import POWER_LEVELS_KEY, is_power_event, sender_power_level
from .subgraph import conflicted_state_subgraph
from .v1 import resolve_state_v1


@dataclass
class ResolutionTrace:
    """What each step produced (filled in by ``_resolve`` for tests and debugging)."""

    conflicted: set[str] = field(default_factory=set)
    auth_difference: set[str] = field(default_factory=set)  # less the conflicted set
    subgraph: set[str] = field(default_factory=set)
    power_sorted: list[str] = field(default_factory=list)
    partial_state: dict[StateKey, str] = field(default_factory=dict)
    others_sorted: list[str] = field(default_factory=list)


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    get_event: Callable[[str], Event | None],
    auth_chain: Callable[[str], set[str]] | None = None,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` (maps of (type, state_key) to event ID) into one state map.

    Room versions with state resolution v1 go to ``resolve_state_v1`` (``auth_chain`` is not
    used there). For v2 and v2.1, follows the spec's five steps:

    1. Take the power events of the full conflicted set (conflicted state set ∪ auth
       difference, plus the conflicted state subgraph in v2.1) together with their auth
       ancestors inside that set, and sort them by the reverse topological power ordering.
    2. Run the iterative auth checks over them, starting from the unconflicted state map
       (v2) or from an empty map (v2.1).
    3. Sort the other events of the full conflicted set by the mainline ordering based on the
       power levels event of that partially resolved state.
    4. Run the iterative auth checks over them on top of the partially resolved state.
    5. Overlay the unconflicted state map.

    ``get_event`` returns an event by ID, or None: such an event is left out of every step,
    though an unconflicted entry naming it is still copied to the result. ``auth_chain``,
    when given, returns an event's full auth chain from the caller's cache. Pure: no I/O of
    its own, and the result depends neither on the order of ``state_sets`` nor on dict order.
    """
    if room_version.state_res is StateResAlgorithm.V1:
        return resolve_state_v1(room_version, state_sets, get_event)
    return _resolve(room_version, state_sets, get_event, auth_chain, None)


def _resolve(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    get_event: Callable[[str], Event | None],
    auth_chain: Callable[[str], set[str]] | None,
    trace: ResolutionTrace | None,
) -> dict[StateKey, str]:
    if not state_sets:
        return {}
    split = split_state(state_sets)
    if not split.conflicted_by_key:
        return dict(split.unconflicted)

    graph = AuthGraph(get_event, auth_chain)
    fetch = graph.event
    conflicted = {e for e in split.conflicted_ids if fetch(e) is not None}
    difference = auth_difference(state_sets, split.unconflicted, split.conflicted_by_key, graph)
    full_conflicted = conflicted | difference
    is_v2_1 = room_version.state_res is StateResAlgorithm.V2_1
    subgraph: set[str] = set()
    if is_v2_1:
        subgraph = conflicted_state_subgraph(conflicted, graph)
        full_conflicted |= subgraph
    known: dict[str, Event] = {}
    for event_id in full_conflicted:
        event = fetch(event_id)
        if event is not None:
            known[event_id] = event
    full_conflicted = set(known)

    def parents_in_full(event_id: str) -> list[str]:
        return [p for p in graph.parents(event_id) if p in full_conflicted]

    # Step 1: power events, grown by their auth ancestors within the full conflicted set.
    power_ids = _power_events_with_ancestors(known, parents_in_full)

    def power_key(event_id: str) -> tuple[object, ...]:
        event = known[event_id]
        level = sender_power_level(event, room_version, fetch)
        return power_sort_key(level, event.origin_server_ts, event_id)

    sorted_power = reverse_topological_power_sort(power_ids, parents_in_full, power_key)

    # Step 2.
    initial: Mapping[StateKey, str] = {} if is_v2_1 else split.unconflicted
    partial = iterative_auth_checks(room_version, sorted_power, initial, fetch)

    # Step 3.
    def power_levels_parent(event_id: str) -> str | None:
        for parent_id in graph.parents(event_id):
            parent = fetch(parent_id)
            if parent is not None and parent.is_state() and parent.key == POWER_LEVELS_KEY:
                return parent_id
        return None

    def origin_server_ts(event_id: str) -> int:
        return known[event_id].origin_server_ts

    others = mainline_sort(
        full_conflicted - power_ids,
        partial.get(POWER_LEVELS_KEY),
        power_levels_parent,
        origin_server_ts,
    )

    if trace is not None:
        trace.conflicted, trace.auth_difference, trace.subgraph = conflicted, difference, subgraph
        trace.power_sorted, trace.partial_state, trace.others_sorted = sorted_power, dict(partial), others

    # Step 4, then step 5.
    resolved = iterative_auth_checks(room_version, others, partial, fetch)
    resolved.update(split.unconflicted)
    return resolved


def _power_events_with_ancestors(
    full_conflicted: Mapping[str, Event],
    parents_in_full: Callable[[str], list[str]],
) -> set[str]:
    """Step 1's set X: the power events of the full conflicted set, and the events of that
    set in their auth chains. Like Synapse and ruma, the chains are followed through events of
    the set only. The spec's wording would also take in an event of the set reachable solely
    through events outside it; that event must be conflicted and lie under an event common to
    every full auth chain. In v2.1 the two readings coincide: the in-between events lie on a
    path between two conflicted events, so the conflicted state subgraph holds them."""
    selected: set[str] = set()
    stack = [e for e, event in full_conflicted.items() if is_power_event(event)]
    while stack:
        event_id = stack.pop()
        if event_id in selected:
            continue
        selected.add(event_id)
        stack.extend(p for p in parents_in_full(event_id) if p not in selected)
    return selected
