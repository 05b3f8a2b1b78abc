"""The order in which backfilled events are checked and given stream positions.

Spec: server-server API "Backfilling and retrieving missing events": the events a server
answers to ``/backfill`` are older history, each of which must still pass the receipt checks
against the state before it, so an event can only be checked after its ``prev_events``.
This module orders a batch accordingly. Pure: no I/O.
"""

from __future__ import annotations

import heapq
from typing import Iterable

from durable.events.event import Event


def topological_order(events: Iterable[Event]) -> list[Event]:
    """The events with every event after those of its ``prev_events`` that are in the
    batch; among events that are ready together, the lowest ``depth`` first, then the
    earliest ``origin_server_ts``, then the event ID (so the order is deterministic).
    Events on a ``prev_events`` cycle (impossible for honest servers, since event IDs are
    hashes) are left out."""
    by_id = {e.event_id: e for e in events}
    waiting = {e.event_id: {p for p in e.prev_event_ids if p in by_id and p != e.event_id} for e in by_id.values()}
    children: dict[str, list[str]] = {}
    for event_id, prevs in waiting.items():
        for prev in prevs:
            children.setdefault(prev, []).append(event_id)

    def key(event_id: str) -> tuple[int, int, str]:
        event = by_id[event_id]
        return (event.depth, event.origin_server_ts, event_id)

    ready = [key(e) for e, prevs in waiting.items() if not prevs]
    heapq.heapify(ready)
    out: list[Event] = []
    while ready:
        _, _, event_id = heapq.heappop(ready)
        out.append(by_id[event_id])
        for child in children.get(event_id, []):
            waiting[child].discard(event_id)
            if not waiting[child]:
                heapq.heappush(ready, key(child))
    return out


def backfill_positions(count: int, lowest_existing: int | None) -> list[int]:
    """Stream positions for ``count`` backfilled events in topological order: negative,
    below every existing position (and below 0), increasing, so history reads in order and
    no incremental sync (which only looks above its ``since`` position, never negative)
    sees them."""
    top = min(0, lowest_existing if lowest_existing is not None else 0)
    return [top - count + i for i in range(count)]
