"""A read-only view of a PDU (persistent data unit) with its event ID.

Spec: https://spec.matrix.org/v1.19/server-server-api/#pdus and the "Event format" section
of each room version. The PDU dict is kept exactly as received or built (federation format);
the properties below read it the same way for every room version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

from durable.room_versions import EventFormat, RoomVersion

StateKey = tuple[str, str]  # (event type, state_key)


class Event:
    """An event: its PDU (never mutated), its event ID and its room version.

    ``rejected_reason`` is set on events that failed the auth rules on receipt; such events are
    stored but never served, used as auth events or as forward extremities.
    """

    __slots__ = ("event_id", "pdu", "room_version", "rejected_reason", "json_text")

    def __init__(
        self,
        pdu: Mapping[str, Any],
        room_version: RoomVersion,
        event_id: str,
        rejected_reason: str | None = None,
        json_text: str | None = None,
    ) -> None:
        self.pdu: Mapping[str, Any] = pdu
        self.room_version = room_version
        self.event_id = event_id
        self.rejected_reason = rejected_reason
        # The PDU without ``unsigned`` as JSON text, when whoever made the event had it
        # already (the event builder): what the events table stores, without encoding again.
        self.json_text = json_text

    def __repr__(self) -> str:
        return f"<Event {self.event_id} {self.type} {self.state_key!r} {self.sender}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)

    # --- top-level keys -------------------------------------------------------------------
    @property
    def type(self) -> str:
        return self.pdu["type"]

    @property
    def state_key(self) -> str | None:
        return self.pdu.get("state_key")

    def is_state(self) -> bool:
        return "state_key" in self.pdu

    @property
    def key(self) -> StateKey:
        """The (type, state_key) pair of a state event."""
        return (self.pdu["type"], self.pdu["state_key"])

    @property
    def sender(self) -> str:
        return self.pdu["sender"]

    @property
    def room_id(self) -> str:
        """The room ID. A room v12 create event has none in its PDU: it is derived from the
        event ID (spec: room version 12, "Room IDs")."""
        room_id = self.pdu.get("room_id")
        if room_id is None and self.room_version.room_id_is_create_event_hash:
            if self.pdu.get("type") == "m.room.create" and self.pdu.get("state_key") == "":
                return "!" + self.event_id[1:]
        return room_id  # type: ignore[return-value]

    @property
    def content(self) -> Mapping[str, Any]:
        content = self.pdu.get("content")
        if type(content) is dict:  # the usual case, without the slower ABC check
            return content
        return content if isinstance(content, Mapping) else {}

    @property
    def depth(self) -> int:
        return self.pdu.get("depth", 0)

    @property
    def origin_server_ts(self) -> int:
        return self.pdu.get("origin_server_ts", 0)

    @property
    def hashes(self) -> Mapping[str, str]:
        return self.pdu.get("hashes", {})

    @property
    def signatures(self) -> Mapping[str, Mapping[str, str]]:
        return self.pdu.get("signatures", {})

    @property
    def unsigned(self) -> Mapping[str, Any]:
        return self.pdu.get("unsigned", {})

    @property
    def membership(self) -> str | None:
        membership = self.content.get("membership")
        return membership if isinstance(membership, str) else None

    @property
    def redacts(self) -> str | None:
        """The event a redaction redacts: in `content` from v11, at the top level before."""
        if self.room_version.updated_redaction_rules:
            value = self.content.get("redacts")
        else:
            value = self.pdu.get("redacts")
        return value if isinstance(value, str) else None

    # --- graph edges ----------------------------------------------------------------------
    @property
    def prev_event_ids(self) -> list[str]:
        return list(_edge_ids(self.pdu.get("prev_events", []), self.room_version))

    @property
    def auth_event_ids(self) -> list[str]:
        return list(_edge_ids(self.pdu.get("auth_events", []), self.room_version))


def _edge_ids(edges: Any, room_version: RoomVersion) -> Iterator[str]:
    """Room versions 1 and 2 list edges as `[event_id, {hashes}]` pairs; later ones as IDs."""
    if room_version.event_format is EventFormat.V1:
        for edge in edges:
            yield edge[0] if isinstance(edge, (list, tuple)) else edge
    else:
        yield from edges
