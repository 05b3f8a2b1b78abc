"""Which thread an event is in, for per-thread notification counts.

Spec: client-server API "Receipts", "Threaded read receipts": an event is in a thread when
it has a ``rel_type`` of ``m.thread``, or when, following its event relationships, a parent
event references the thread root with ``m.thread``; the search should stop after at most
3 hops. Anything else, thread roots included (and events related to a root by other
relations), is in the main timeline (thread ID ``main``).

Only ``m.relates_to`` relations with a ``rel_type`` are followed (a rich reply's
``m.in_reply_to`` alone is not a relationship of this kind). The parents' contents come from
an injected loader, so this stays free of I/O of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Awaitable, Callable

MAIN_THREAD = "main"
MAX_RELATION_HOPS = 3
ContentLoader = Callable[[str], Awaitable[Mapping[str, Any] | None]]


def _relation(content: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(rel_type, parent event ID)`` of an event's relationship, if it has one."""
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping):
        return None
    rel_type, parent = relates.get("rel_type"), relates.get("event_id")
    if isinstance(rel_type, str) and isinstance(parent, str):
        return rel_type, parent
    return None


async def thread_of(
    content: Mapping[str, Any], load_content: ContentLoader, max_hops: int = MAX_RELATION_HOPS
) -> str:
    """The thread root of the event with this content, or ``main``: follows at most
    ``max_hops`` relationships, the first ``m.thread`` one naming the root.
    ``load_content(event_id)`` gives a parent's content (None when it is unknown)."""
    current: Mapping[str, Any] | None = content
    for hop in range(max_hops):
        relation = _relation(current) if current is not None else None
        if relation is None:
            return MAIN_THREAD
        rel_type, parent = relation
        if rel_type == "m.thread":
            return parent
        if hop + 1 < max_hops:
            current = await load_content(parent)
    return MAIN_THREAD
