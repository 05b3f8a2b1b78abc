"""The shape of a PDU in each room version: keys, types, sizes.

Spec: the "Event format" of each room version (the PDU schemas ``pdu_v1`` for v1/v2,
``pdu_v3``, ``pdu_v4`` for v4/v5, ``pdu_v6`` for v6-v10, ``pdu_v11`` and ``pdu_v12``),
client-server API "Size limits", appendices "Identifier Grammar" and "Canonical JSON"
(strict from room version 6). Only what the spec requires is checked: extra keys are allowed,
historical user IDs are accepted, and event content is not inspected (that is the auth rules'
job, e.g. a v12 create event that has a ``room_id`` is refused by auth rule 1).
"""

from __future__ import annotations

from typing import Any, Mapping

from durable.errors import InvalidEvent
from durable.events.canonical import canonical_json
from durable.events.event_ids import is_create_event
from durable.events.hashes import federation_form
from durable.events.identifiers import MAX_IDENTIFIER_BYTES, byte_length, is_valid_user_id
from durable.room_versions import EventFormat, RoomVersion

MAX_PDU_BYTES = 65536
MAX_TYPE_BYTES = 255
MAX_STATE_KEY_BYTES = 255
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
MAX_DEPTH = 2**63 - 1  # v6+ is further bounded by the canonical JSON range (2**53 - 1)

# Spec: pdu_base "required" plus the edges, common to every room version.
_REQUIRED_KEYS = (
    "sender",
    "origin_server_ts",
    "type",
    "content",
    "depth",
    "hashes",
    "signatures",
    "prev_events",
    "auth_events",
)


def validate_pdu(pdu: object, room_version: RoomVersion) -> None:
    """Check that ``pdu`` is a well-formed PDU for ``room_version``.

    Raises InvalidEvent with the reason; no other exception escapes, whatever the input.
    From room version 3 a convenience ``event_id`` key is ignored (it is not part of the
    format and is dropped before hashing); in v1/v2 it is required.
    """
    try:
        _validate(pdu, room_version)
    except RecursionError:
        raise InvalidEvent("event is nested too deeply") from None


def validate_pdu_shape(pdu: object, room_version: RoomVersion) -> None:
    """Every check of ``validate_pdu`` but the canonical JSON encoding and its size.

    For a caller that has just encoded the event itself (the event builder): it must have
    checked the values with ``canonical_json`` for the room version and the size with
    ``check_pdu_size``. Raises InvalidEvent.
    """
    try:
        if not isinstance(pdu, dict):
            raise InvalidEvent("a PDU must be a JSON object")
        _check_shape(federation_form(pdu, room_version), room_version)
    except RecursionError:
        raise InvalidEvent("event is nested too deeply") from None


def check_pdu_size(size: int) -> None:
    """Client-server "Size limits": an event is at most 65536 bytes of canonical JSON,
    signatures included. Raises InvalidEvent."""
    if size > MAX_PDU_BYTES:
        raise InvalidEvent(f"event is {size} bytes, more than the {MAX_PDU_BYTES} allowed")


def _validate(pdu: object, room_version: RoomVersion) -> None:
    if not isinstance(pdu, dict):
        raise InvalidEvent("a PDU must be a JSON object")
    form = federation_form(pdu, room_version)

    # Canonical JSON (strict from v6) and "Size limits": at most 65536 bytes, signatures included.
    check_pdu_size(len(canonical_json(form, room_version)))
    _check_shape(form, room_version)


def _check_shape(form: dict[str, Any], room_version: RoomVersion) -> None:
    for key in _REQUIRED_KEYS:
        if key not in form:
            raise InvalidEvent(f"missing required key `{key}`")

    _check_identifiers(form, room_version)
    _check_string(form, "type", MAX_TYPE_BYTES)
    if "state_key" in form:
        _check_string(form, "state_key", MAX_STATE_KEY_BYTES)
    if not isinstance(form["content"], dict):
        raise InvalidEvent("`content` must be an object")
    if "unsigned" in form and not isinstance(form["unsigned"], dict):
        raise InvalidEvent("`unsigned` must be an object")
    if not room_version.updated_redaction_rules and "redacts" in form:
        if not isinstance(form["redacts"], str):
            raise InvalidEvent("`redacts` must be a string")

    _check_integer(form, "origin_server_ts")
    _check_integer(form, "depth")
    if not 0 <= form["depth"] <= MAX_DEPTH:
        raise InvalidEvent(f"`depth` must be between 0 and {MAX_DEPTH}")

    _check_hashes(form["hashes"])
    _check_signatures(form["signatures"])
    _check_edges(form, "prev_events", MAX_PREV_EVENTS, room_version)
    _check_edges(form, "auth_events", MAX_AUTH_EVENTS, room_version)


def _check_string(form: Mapping[str, Any], key: str, max_bytes: int) -> str:
    value = form[key]
    if not isinstance(value, str):
        raise InvalidEvent(f"`{key}` must be a string")
    if byte_length(value) > max_bytes:
        raise InvalidEvent(f"`{key}` is longer than {max_bytes} bytes")
    return value


def _check_integer(form: Mapping[str, Any], key: str) -> None:
    if not isinstance(form[key], int) or isinstance(form[key], bool):
        raise InvalidEvent(f"`{key}` must be an integer")


def _check_identifiers(form: Mapping[str, Any], room_version: RoomVersion) -> None:
    sender = form["sender"]
    if not is_valid_user_id(sender):
        raise InvalidEvent(f"`sender` {sender!r} is not a valid user ID")

    # room_id: required, except on a room version 12 create event (pdu_v12: "Omitted from
    # m.room.create events"); whether one is present there is left to the auth rules.
    if "room_id" in form:
        room_id = _check_string(form, "room_id", MAX_IDENTIFIER_BYTES)
        if not room_id.startswith("!"):
            raise InvalidEvent("`room_id` must start with '!'")
    elif not (room_version.room_id_is_create_event_hash and is_create_event(form)):
        raise InvalidEvent("missing required key `room_id`")

    if room_version.event_format is EventFormat.V1:
        if "event_id" not in form:
            raise InvalidEvent("missing required key `event_id` (room versions 1 and 2)")
        event_id = _check_string(form, "event_id", MAX_IDENTIFIER_BYTES)
        if not event_id.startswith("$") or ":" not in event_id:
            raise InvalidEvent("`event_id` must look like $opaque_id:domain")


def _check_hashes(hashes: object) -> None:
    """pdu_base: ``hashes`` is an Event Hash object whose ``sha256`` is required."""
    if not isinstance(hashes, dict):
        raise InvalidEvent("`hashes` must be an object")
    if not isinstance(hashes.get("sha256"), str):
        raise InvalidEvent("`hashes.sha256` must be a string")


def _check_signatures(signatures: object) -> None:
    """pdu_base: ``signatures`` maps server names to objects of key ID → signature string."""
    if not isinstance(signatures, dict):
        raise InvalidEvent("`signatures` must be an object")
    for server, by_key in signatures.items():
        if not isinstance(by_key, dict):
            raise InvalidEvent(f"`signatures.{server}` must be an object")
        for key_id, signature in by_key.items():
            if not isinstance(signature, str):
                raise InvalidEvent(f"`signatures.{server}.{key_id}` must be a string")


def _check_edges(
    form: Mapping[str, Any], key: str, max_count: int, room_version: RoomVersion
) -> None:
    """v1/v2: a list of ``[event_id, {hashes}]`` pairs; v3+: a list of event ID strings."""
    edges = form[key]
    if not isinstance(edges, list):
        raise InvalidEvent(f"`{key}` must be a list")
    if len(edges) > max_count:
        raise InvalidEvent(f"`{key}` has {len(edges)} entries, more than {max_count}")
    for edge in edges:
        if room_version.event_format is EventFormat.V1:
            if not (
                isinstance(edge, list)
                and len(edge) == 2
                and isinstance(edge[0], str)
                and isinstance(edge[1], dict)
            ):
                raise InvalidEvent(f"`{key}` entries must be [event_id, {{hashes}}] pairs")
        elif not isinstance(edge, str):
            raise InvalidEvent(f"`{key}` entries must be event ID strings")
