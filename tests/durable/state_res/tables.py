"""Small events-and-edges tables for the state-res step tests."""

from __future__ import annotations

from typing import Any

from durable.events.event import Event
from durable.room_versions import V10, RoomVersion

ROOM = "!room:example.com"


def event(
    event_id: str,
    auth: list[str] = (),  # type: ignore[assignment]
    *,
    type: str = "m.room.topic",
    state_key: str = "",
    sender: str = "@alice:example.com",
    content: dict[str, Any] | None = None,
    ts: int = 0,
    prev: list[str] = (),  # type: ignore[assignment]
    room_version: RoomVersion = V10,
    room_id: str | None = ROOM,
) -> Event:
    pdu: dict[str, Any] = {
        "type": type,
        "state_key": state_key,
        "sender": sender,
        "content": content or {},
        "origin_server_ts": ts,
        "auth_events": list(auth),
        "prev_events": list(prev),
        "depth": 1,
    }
    if room_id is not None:
        pdu["room_id"] = room_id
    return Event(pdu, room_version, event_id)


def graph(edges: dict[str, list[str]]) -> dict[str, Event]:
    """A table {event_id: auth event IDs} as events (all topics, so no event is a power event)."""
    return {eid: event(eid, parents, state_key=eid) for eid, parents in edges.items()}
