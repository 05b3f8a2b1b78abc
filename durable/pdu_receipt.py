"""The first receipt checks on a PDU from another server: format, signatures, hashes.

Spec: server-server API "Checks performed on receipt of a PDU":

1. Is a valid event, otherwise it is dropped.
2. Passes signature checks, otherwise it is dropped.
3. Passes hash checks, otherwise it is redacted before being processed further.

(Steps 4 to 6, the authorization checks, are in the room actor, which owns the state they
need.) This module is I/O-free except for the key lookup it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Awaitable, Callable

from nacl.signing import VerifyKey

from durable.errors import InvalidEvent, SignatureError
from durable.events import (
    check_content_hash,
    event_from_pdu,
    redact,
    required_signers,
    validate_pdu,
    verify_event_signature,
)
from durable.events.event import Event
from durable.room_versions import RoomVersion

# (server_name, key_id, the event's origin_server_ts or None) -> the key, or raise.
KeyLookup = Callable[[str, str, "int | None"], Awaitable[VerifyKey]]


class Dropped(Exception):
    """The PDU failed check 1 or 2 and is dropped (not stored)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def check_signatures(pdu: Mapping[str, Any], room_version: RoomVersion, get_key: KeyLookup) -> None:
    """Every server that must sign (the sender's, the v1/v2 event ID's, the authorising
    server of a restricted join) has at least one valid ed25519 signature; and every
    signature we can check under a known key verifies. Raises SignatureError."""
    at_ts = pdu.get("origin_server_ts") if room_version.enforce_key_validity else None
    signatures = pdu.get("signatures")
    if not isinstance(signatures, Mapping):
        raise SignatureError("no signatures")
    for server in sorted(required_signers(pdu, room_version)):
        by_key = signatures.get(server)
        if not isinstance(by_key, Mapping) or not by_key:
            raise SignatureError(f"not signed by {server}")
        verified = False
        last_error = f"no usable ed25519 signature from {server}"
        for key_id in sorted(by_key):
            if not key_id.startswith("ed25519:"):
                continue
            try:
                key = await get_key(server, key_id, at_ts if isinstance(at_ts, int) else None)
            except LookupError as exc:
                last_error = f"cannot get key {server} {key_id}: {exc}"
                continue
            verify_event_signature(pdu, room_version, server, key_id, key)
            verified = True
        if not verified:
            raise SignatureError(last_error)


async def receive_checks(
    pdu: Mapping[str, Any], room_version: RoomVersion, get_key: KeyLookup
) -> Event:
    """Checks 1 to 3. Returns the event to process: as received, or redacted if its content
    hash does not match. Raises Dropped for a malformed or badly signed PDU."""
    try:
        validate_pdu(pdu, room_version)
    except InvalidEvent as exc:
        raise Dropped(f"invalid event: {exc.reason}") from exc
    try:
        await check_signatures(pdu, room_version, get_key)
    except SignatureError as exc:
        raise Dropped(f"bad signature: {exc.reason}") from exc
    try:
        event = event_from_pdu(dict(pdu), room_version)
    except InvalidEvent as exc:
        raise Dropped(f"invalid event: {exc.reason}") from exc
    if not check_content_hash(pdu):
        redacted = redact(pdu, room_version)
        return Event(redacted, room_version, event.event_id)
    return event
