"""Content hashes and reference hashes of events.

Spec: server-server-api, "Calculating the content hash for an event" and "Calculating the
reference hash for an event"; "Adding hashes and signatures to outgoing events" for where
the content hash is stored (``hashes.sha256``, unpadded base64).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from unpaddedbase64 import decode_base64, encode_base64

from durable.errors import InvalidEvent
from durable.events.canonical import canonical_json
from durable.events.redaction import redacted_view
from durable.room_versions import EventFormat, RoomVersion

_NOT_IN_CONTENT_HASH = ("unsigned", "signatures", "hashes")
_NOT_IN_REFERENCE_HASH = ("signatures", "unsigned", "age_ts")


def federation_form(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The PDU as it is sent over federation: a shallow copy without the ``event_id`` that
    callers may attach for convenience in room versions 3 and later, where the event ID is
    derived from the reference hash and is not part of the event. In v1/v2 it is kept."""
    form = dict(pdu)
    if room_version.event_format is not EventFormat.V1:
        form.pop("event_id", None)
    return form


def compute_content_hash(pdu: Mapping[str, Any]) -> str:
    """The content hash of ``pdu`` as unpadded standard base64.

    Spec: "remove any existing `unsigned`, `signatures` and `hashes`, encode the rest as
    canonical JSON and hash it with SHA-256". The caller passes the PDU in federation form
    (see ``federation_form``). Raises InvalidEvent if the PDU is not JSON-encodable.
    """
    stripped = {key: value for key, value in pdu.items() if key not in _NOT_IN_CONTENT_HASH}
    return encode_base64(hashlib.sha256(canonical_json(stripped, None)).digest())


def check_content_hash(pdu: Mapping[str, Any]) -> bool:
    """Whether ``hashes.sha256`` of ``pdu`` matches its content hash.

    Spec: "Validating hashes and signatures on received events": the received hash is
    base64-decoded and compared with the computed one. False when it is missing or malformed.
    """
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    received = hashes.get("sha256")
    if not isinstance(received, str):
        return False
    try:
        received_bytes = decode_base64(received)
    except ValueError:  # binascii.Error is a ValueError
        return False
    stripped = {key: value for key, value in pdu.items() if key not in _NOT_IN_CONTENT_HASH}
    try:
        expected = hashlib.sha256(canonical_json(stripped, None)).digest()
    except InvalidEvent:
        return False
    return received_bytes == expected


def add_content_hash(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``pdu`` with ``hashes`` set to ``{"sha256": <content hash>}``.

    Spec: "Before signing the event, the content hash of the event is calculated ... and
    stored in the event object, in a `hashes` object, under a `sha256` key."
    """
    hashed = dict(pdu)
    hashed["hashes"] = {"sha256": compute_content_hash(pdu)}
    return hashed


def compute_reference_hash(pdu: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """The SHA-256 reference hash of ``pdu`` (raw 32 bytes).

    Spec: "the event is put through the redaction algorithm; `signatures` and `unsigned`
    are removed; the result is encoded as canonical JSON and hashed with SHA-256". The legacy
    top-level ``age_ts`` is removed as well (redaction strips it in every version anyway).
    A convenience ``event_id`` is ignored in v3+. Raises InvalidEvent if the redacted event
    is not canonical JSON for the room version.
    """
    return hashlib.sha256(canonical_json(reference_hash_form(pdu, room_version), room_version)).digest()


def reference_hash_form(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """What the reference hash covers: the redacted event without ``signatures``,
    ``unsigned`` and ``age_ts``.

    This is also exactly what a server's signature covers (server-server API, "Signing
    Events": the redacted event, signed as in "Signing JSON", which leaves out
    ``signatures`` and ``unsigned``; redaction keeps no ``age_ts``), so an event builder can
    encode it once for both. Its values are shared with ``pdu``: read it, do not change it.
    """
    redacted = redacted_view(federation_form(pdu, room_version), room_version)
    for key in _NOT_IN_REFERENCE_HASH:
        redacted.pop(key, None)
    return redacted


def reference_hash_entry(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, str]:
    """``{"sha256": <unpadded base64 reference hash>}``: the second element of a room v1/v2
    ``prev_events``/``auth_events`` pair (spec: PDU v1 schema, "Event IDs and reference
    hashes")."""
    return {"sha256": encode_base64(compute_reference_hash(pdu, room_version))}
