"""Event IDs and (room version 12) room IDs.

Spec: "Event IDs" of each room version: v1/v2 (rooms/fragments/v1-event-ids.md) carry a
server-made ``$opaque_id:domain`` inside the event; v3 uses ``$`` + the reference hash in
unpadded standard base64; v4 and later (v4-event-ids.md) use URL-safe unpadded base64.
Room version 12 ("Room IDs", appendices "Room IDs"): the room ID is the create event's event
ID with the sigil ``!`` instead of ``$``, and the create event carries no ``room_id``.
"""

from __future__ import annotations

from typing import Any, Mapping

from unpaddedbase64 import encode_base64

from durable.errors import InvalidEvent
from durable.events.event import Event
from durable.events.hashes import compute_reference_hash, federation_form
from durable.room_versions import EventFormat, RoomVersion


def compute_event_id(pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The event ID of ``pdu`` in ``room_version``.

    v1/v2: the ``event_id`` carried in the PDU (InvalidEvent if absent or not a string).
    v3: ``$`` + standard unpadded base64 of the reference hash. v4+: URL-safe alphabet.
    """
    if room_version.event_format is EventFormat.V1:
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str):
            raise InvalidEvent("room versions 1 and 2 need an `event_id` string in the event")
        return event_id
    return event_id_for_reference_hash(compute_reference_hash(pdu, room_version), room_version)


def event_id_for_reference_hash(reference_hash: bytes, room_version: RoomVersion) -> str:
    """``$`` + the reference hash in unpadded base64: the standard alphabet in room version 3
    (event format V2), the URL-safe one from v4 (format V3). Not for v1/v2, whose event IDs
    are made by the server."""
    urlsafe = room_version.event_format is EventFormat.V3
    return "$" + encode_base64(reference_hash, urlsafe=urlsafe)


def is_create_event(pdu: Mapping[str, Any]) -> bool:
    """The room's ``m.room.create`` event (a state event with an empty state key)."""
    return pdu.get("type") == "m.room.create" and pdu.get("state_key") == ""


def room_id_for_create_event(pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The room ID a room version 12 create event defines: ``!`` + URL-safe reference hash.

    Raises InvalidEvent if the room version does not derive room IDs this way or ``pdu`` is
    not a create event.
    """
    if not room_version.room_id_is_create_event_hash:
        raise InvalidEvent(
            f"room version {room_version.identifier} does not derive room IDs from the create event"
        )
    if not is_create_event(pdu):
        raise InvalidEvent("only an m.room.create event with state_key '' defines a room ID")
    return "!" + compute_event_id(pdu, room_version)[1:]


def event_from_pdu(
    pdu: Mapping[str, Any], room_version: RoomVersion, rejected_reason: str | None = None
) -> Event:
    """Wrap ``pdu`` in an ``Event`` with its computed event ID.

    From v3 a convenience ``event_id`` in the input is dropped (the stored PDU is in
    federation form) and never trusted: the ID is always recomputed from the reference hash.
    Raises InvalidEvent when the ID cannot be computed.
    """
    form = federation_form(pdu, room_version)
    return Event(form, room_version, compute_event_id(form, room_version), rejected_reason)
