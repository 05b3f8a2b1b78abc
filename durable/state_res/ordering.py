"""The two orderings of state resolution v2/v2.1.

Spec: rooms v2 "Reverse topological power ordering" (Kahn's algorithm over the auth-event
DAG, choosing at each step the smallest candidate: higher sender power level first, then
smaller ``origin_server_ts``, then smaller ``event_id``) and "Mainline ordering" (the position
of the first power levels event met when walking an event's power levels auth events towards
the mainline of the resolved power levels event; a greater position sorts first, then
``origin_server_ts``, then ``event_id``).

Both functions take the graph as callables so they can be driven by plain tables.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Callable, Iterable

SortKey = tuple[Any, ...]


def power_sort_key(power_level: int | float, origin_server_ts: int, event_id: str) -> SortKey:
    """Comparison key for the reverse topological power ordering (smallest first)."""
    return (-power_level, origin_server_ts, event_id)


def reverse_topological_power_sort(
    event_ids: Iterable[str],
    auth_parents: Callable[[str], Iterable[str]],
    sort_key: Callable[[str], SortKey],
) -> list[str]:
    """Kahn's algorithm, earliest first: an event becomes a candidate once all of its auth
    events that are in the set have been output; the smallest candidate by ``sort_key`` goes
    next. Only edges between events of the set count.

    Events on an auth-event cycle (impossible with hash-based event IDs) can never become
    candidates and are left out.
    """
    nodes = set(event_ids)
    pending: dict[str, int] = {}
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for node in nodes:
        parents = {p for p in auth_parents(node) if p in nodes and p != node}
        pending[node] = len(parents)
        for parent in parents:
            children[parent].append(node)
    heap = [(sort_key(n), n) for n in nodes if pending[n] == 0]
    heapq.heapify(heap)
    ordered: list[str] = []
    while heap:
        _, node = heapq.heappop(heap)
        ordered.append(node)
        for child in children[node]:
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(heap, (sort_key(child), child))
    return ordered


def mainline(power_levels_id: str | None, power_levels_parent: Callable[[str], str | None]) -> list[str]:
    """The mainline of P0: [P0, P1, ...], each P(i+1) the power levels event in P(i)'s auth
    events, until one cites none."""
    line: list[str] = []
    seen: set[str] = set()
    current = power_levels_id
    while current is not None and current not in seen:
        line.append(current)
        seen.add(current)
        current = power_levels_parent(current)
    return line


def mainline_sort(
    event_ids: Iterable[str],
    power_levels_id: str | None,
    power_levels_parent: Callable[[str], str | None],
    origin_server_ts: Callable[[str], int],
) -> list[str]:
    """Order events by the mainline ordering based on ``power_levels_id`` (None: the
    partially resolved state has no power levels, so every position is infinite)."""
    positions = {pl: i for i, pl in enumerate(mainline(power_levels_id, power_levels_parent))}
    memo: dict[str, float] = {}

    def position_from(start: str | None) -> float:
        # Position of the first mainline event on the walk that starts at ``start``.
        walked: list[str] = []
        walked_set: set[str] = set()
        current = start
        found = math.inf
        while current is not None:
            if current in positions:
                found = positions[current]
                break
            if current in memo:
                found = memo[current]
                break
            if current in walked_set:
                break
            walked.append(current)
            walked_set.add(current)
            current = power_levels_parent(current)
        for event_id in walked:
            memo[event_id] = found
        return found

    def key(event_id: str) -> SortKey:
        return (-position_from(power_levels_parent(event_id)), origin_server_ts(event_id), event_id)

    return sorted(set(event_ids), key=key)
