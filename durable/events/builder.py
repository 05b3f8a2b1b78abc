"""Building a new, hashed and signed event of our own.

Spec: server-server-api "Adding hashes and signatures to outgoing events" (content hash,
then a signature over the redacted event), the "Event format" of each room version, room
version 11 "Moving the `redacts` property of `m.room.redaction` events to a `content`
property", and room version 12 (the create event carries no ``room_id``).

Decision for room versions 1 and 2, whose ``prev_events``/``auth_events`` are
``[event_id, {"sha256": hash}]`` pairs: the builder takes the event IDs plus a
``get_event_hashes`` callable returning the hash object to write next to each ID. Callers
should return ``reference_hash_entry(referenced_pdu, room_version)``, the referenced event's
reference hash, as the PDU v1 schema describes ("Event IDs and reference hashes"). Receivers
do not check these hashes, so the builder trusts what the callable returns.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping, Sequence

from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from durable.events.canonical import canonical_json, encode_checked, merged_object_length, merged_objects
from durable.events.event import Event
from durable.events.event_ids import event_id_for_reference_hash
from durable.events.format import check_pdu_size, validate_pdu_shape
from durable.events.hashes import reference_hash_form
from durable.events.signing import signature_of, signing_key_id
from durable.room_versions import EventFormat, RoomVersion

GetEventHashes = Callable[[str], Mapping[str, str]]


def build_event(
    room_version: RoomVersion,
    *,
    room_id: str | None,
    sender: str,
    type: str,
    content: Mapping[str, Any],
    state_key: str | None = None,
    prev_event_ids: Sequence[str],
    auth_event_ids: Sequence[str],
    depth: int,
    origin_server_ts: int,
    server_name: str,
    signing_key: SigningKey,
    redacts: str | None = None,
    unsigned: Mapping[str, Any] | None = None,
    event_id_localpart: str | None = None,
    get_event_hashes: GetEventHashes | None = None,
) -> Event:
    """Build, hash and sign a PDU, check its format and return it as an ``Event``.

    - ``room_id`` must be None for a room version 12 create event (its ID is derived from
      the event) and a string otherwise.
    - ``redacts`` goes into ``content`` from room version 11 and at the top level before.
    - Room versions 1 and 2 need ``event_id_localpart`` (the caller's randomness; the event ID
      is ``$<localpart>:<server_name>``) and ``get_event_hashes`` for the edge pairs.
    - ``unsigned`` is attached as is; it is covered by neither the hash nor the signature.

    Raises ValueError for arguments that cannot make an event in this room version, and
    InvalidEvent if the result breaks the event format (for example it exceeds 65536 bytes).
    """
    is_v12_create = (
        room_version.room_id_is_create_event_hash and type == "m.room.create" and state_key == ""
    )
    if is_v12_create and room_id is not None:
        raise ValueError("a room version 12 create event has no room_id: it defines it")
    if not is_v12_create and room_id is None:
        raise ValueError("room_id is required")

    event_content = dict(content)
    pdu: dict[str, Any] = {
        "type": type,
        "sender": sender,
        "origin_server_ts": origin_server_ts,
        "depth": depth,
    }
    if room_id is not None:
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if room_version.updated_redaction_rules:
            event_content["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    pdu["content"] = event_content

    if room_version.event_format is EventFormat.V1:
        if event_id_localpart is None:
            raise ValueError("room versions 1 and 2 need an event_id_localpart")
        if get_event_hashes is None:
            raise ValueError("room versions 1 and 2 need get_event_hashes for edge pairs")
        pdu["event_id"] = f"${event_id_localpart}:{server_name}"
        pdu["prev_events"] = [[eid, dict(get_event_hashes(eid))] for eid in prev_event_ids]
        pdu["auth_events"] = [[eid, dict(get_event_hashes(eid))] for eid in auth_event_ids]
    else:
        pdu["prev_events"] = list(prev_event_ids)
        pdu["auth_events"] = list(auth_event_ids)

    # Content hash: the canonical JSON of the event without hashes, signatures and unsigned
    # (it has none yet). Encoding it checks every value against the room version's rules.
    unhashed = canonical_json(pdu, room_version)
    pdu["hashes"] = {"sha256": encode_base64(hashlib.sha256(unhashed).digest())}
    # The redacted event without signatures is both what our signature covers and the input
    # of the reference hash (the v3+ event ID): encode it once for both.
    signed_form = encode_checked(reference_hash_form(pdu, room_version))
    signature = signature_of(signed_form, signing_key)
    pdu["signatures"] = {server_name: {signing_key_id(signing_key): signature}}
    # The event without unsigned, as stored: both encodings' members in one object (valid
    # JSON for the same object, though not canonical: no third encoding of the event).
    merged = merged_objects(
        unhashed, canonical_json({"hashes": pdu["hashes"], "signatures": pdu["signatures"]}, room_version)
    )
    size = len(merged)
    if unsigned is not None:
        pdu["unsigned"] = dict(unsigned)
        size = merged_object_length(merged, canonical_json({"unsigned": pdu["unsigned"]}, room_version))
    check_pdu_size(size)  # "Size limits": the whole event, signatures included
    validate_pdu_shape(pdu, room_version)
    if room_version.event_format is EventFormat.V1:
        event_id = pdu["event_id"]
    else:
        event_id = event_id_for_reference_hash(hashlib.sha256(signed_form).digest(), room_version)
    return Event(pdu, room_version, event_id, json_text=merged.decode())
