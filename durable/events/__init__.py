"""Events: the PDU view and the pure event-format algorithms of room versions 1 to 12."""

from durable.events.builder import GetEventHashes, build_event
from durable.events.canonical import canonical_json, parse_json
from durable.events.event import Event, StateKey
from durable.events.event_ids import (
    compute_event_id,
    event_from_pdu,
    is_create_event,
    room_id_for_create_event,
)
from durable.events.format import validate_pdu
from durable.events.hashes import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_reference_hash,
    federation_form,
    reference_hash_entry,
)
from durable.events.identifiers import is_valid_server_name, is_valid_user_id, server_name_of
from durable.events.redaction import redact
from durable.events.signing import (
    required_signers,
    sign_event,
    signing_key_id,
    verify_event_report,
    verify_event_signature,
)

__all__ = [
    "Event",
    "GetEventHashes",
    "StateKey",
    "add_content_hash",
    "build_event",
    "canonical_json",
    "check_content_hash",
    "compute_content_hash",
    "compute_event_id",
    "compute_reference_hash",
    "event_from_pdu",
    "federation_form",
    "is_create_event",
    "is_valid_server_name",
    "is_valid_user_id",
    "parse_json",
    "redact",
    "reference_hash_entry",
    "required_signers",
    "room_id_for_create_event",
    "server_name_of",
    "sign_event",
    "signing_key_id",
    "validate_pdu",
    "verify_event_report",
    "verify_event_signature",
]
