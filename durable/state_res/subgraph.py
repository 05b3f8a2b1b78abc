"""The conflicted state subgraph (state resolution v2.1, room version 12).

Spec: rooms v12 "Conflicted state subgraph": following ``auth_events`` edges from an event of
the conflicted state set may lead to another event of that set; the union of all such paths
between any two conflicted events, endpoints included, is the conflicted state subgraph.
"""

from __future__ import annotations

from typing import Collection

from .auth_chain import AuthGraph


def conflicted_state_subgraph(conflicted: Collection[str], graph: AuthGraph) -> set[str]:
    """Every event lying on an auth-edge path from one conflicted event to another.

    An event is on such a path exactly when it is reachable from a conflicted event and a
    conflicted event is reachable from it. Reachability "down" is the walk of the conflicted
    events' auth chains; reachability "up" is settled over that walk in parents-first order.
    """
    conflicted_set = set(conflicted)
    below: set[str] = set()
    stack = [p for c in conflicted_set for p in graph.parents(c)]
    while stack:
        event_id = stack.pop()
        if event_id in below:
            continue
        below.add(event_id)
        stack.extend(p for p in graph.parents(event_id) if p not in below)

    reaches: dict[str, bool] = {}
    entered: set[str] = set()
    for root in below:
        if root in reaches:
            continue
        # Iterative post-order: settle parents before the event itself.
        work: list[tuple[str, bool]] = [(root, False)]
        while work:
            event_id, expanded = work.pop()
            if event_id in reaches:
                continue
            parents = graph.parents(event_id)
            if expanded:
                reaches[event_id] = any(p in conflicted_set or reaches.get(p, False) for p in parents)
                continue
            if event_id in entered:  # only on a cycle, which no valid auth graph has
                continue
            entered.add(event_id)
            work.append((event_id, True))
            work.extend((p, False) for p in parents if p not in reaches)
    subgraph = {e for e in below if reaches[e]}
    # Endpoints: conflicted events on some path (start or end of one).
    for event_id in conflicted_set:
        if event_id in below or any(
            p in conflicted_set or reaches.get(p, False) for p in graph.parents(event_id)
        ):
            subgraph.add(event_id)
    return subgraph
