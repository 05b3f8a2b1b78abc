"""Signing events and checking their signatures.

Spec: server-server-api, "Signing Events": "Adding hashes and signatures to outgoing events"
(the content hash is added first, then the *redacted* event is signed as in appendices
"Signing JSON", and the signature is copied back to the full event) and "Validating hashes
and signatures on received events" (the redacted event is checked for signatures from the
originating server(s); unknown keys are skipped). JSON signing itself is done by signedjson.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.signing import VerifyKey
from signedjson.key import decode_verify_key_base64, decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from durable.errors import InvalidEvent, SignatureError
from durable.events.canonical import canonical_json
from durable.events.event_ids import compute_event_id
from durable.events.hashes import check_content_hash, federation_form
from durable.events.identifiers import server_name_of
from durable.events.redaction import redact, redacted_view
from durable.room_versions import EventFormat, RoomVersion

SUPPORTED_SIGNING_ALGORITHM = "ed25519"


def signing_key_id(signing_key: SigningKey) -> str:
    """``<algorithm>:<version>``, e.g. ``ed25519:a_abcd`` (appendices, "Signing Details")."""
    return f"{signing_key.alg}:{signing_key.version}"


def _signable(redacted: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in redacted.items() if key not in ("signatures", "unsigned")}


def signature_of(message: bytes, signing_key: SigningKey) -> str:
    """The unpadded base64 ed25519 signature of ``message`` (pynacl), for a caller that has
    already encoded the signed object as canonical JSON without ``signatures`` and
    ``unsigned`` (appendices "Signing JSON"): the value signedjson's ``sign_json`` would
    store for that object under ``signing_key_id(signing_key)``."""
    return encode_base64(signing_key.sign(message).signature)


def sign_event(
    pdu: Mapping[str, Any], room_version: RoomVersion, server_name: str, signing_key: SigningKey
) -> dict[str, Any]:
    """A copy of ``pdu`` with ``server_name``'s signature over its redacted form added.

    The PDU must already carry its content hash (``hashes.sha256``): the hash is what lets the
    signature on the redacted form cover the full event. Existing signatures are kept.
    Raises InvalidEvent if the hash is missing or the event is not canonical JSON for the
    room version.
    """
    form = federation_form(pdu, room_version)
    hashes = form.get("hashes")
    if not isinstance(hashes, Mapping) or not isinstance(hashes.get("sha256"), str):
        raise InvalidEvent("an event is signed after its content hash is added (hashes.sha256)")
    existing = form.get("signatures", {})
    if not isinstance(existing, Mapping) or not all(
        isinstance(by_key, Mapping) for by_key in existing.values()
    ):
        raise InvalidEvent("`signatures` must be an object of objects")

    redacted = _signable(redacted_view(form, room_version))
    canonical_json(redacted, room_version)  # refuse values illegal in this room version
    signed = sign_json(redacted, server_name, signing_key)
    key_id = signing_key_id(signing_key)

    signatures = {server: dict(by_key) for server, by_key in existing.items()}
    signatures.setdefault(server_name, {})[key_id] = signed["signatures"][server_name][key_id]
    form["signatures"] = signatures
    return form


def verify_event_signature(
    pdu: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    key_id: str,
    verify_key: VerifyKey,
) -> None:
    """Check ``server_name``'s signature under ``key_id`` on the redacted form of ``pdu``.

    Spec: appendices, "Checking for a Signature", applied to the redacted event. Raises
    SignatureError if the signature is absent, undecodable, under an unsupported algorithm,
    or does not verify, or if the event is not canonical JSON for its room version.
    """
    redacted = redacted_view(federation_form(pdu, room_version), room_version)
    signatures = redacted.get("signatures")
    by_key = signatures.get(server_name) if isinstance(signatures, Mapping) else None
    signature = by_key.get(key_id) if isinstance(by_key, Mapping) else None
    if not isinstance(signature, str):
        raise SignatureError(f"no signature from {server_name} under {key_id}")
    try:
        canonical_json(_signable(redacted), room_version)
    except InvalidEvent as exc:
        raise SignatureError(f"event is not canonical JSON: {exc.reason}") from None
    try:
        key = decode_verify_key_bytes(key_id, bytes(verify_key))
    except ValueError:
        raise SignatureError(f"unsupported signing key ID {key_id!r}") from None
    to_check = dict(redacted)
    to_check["signatures"] = {server_name: {key_id: signature}}
    try:
        verify_signed_json(to_check, server_name, key)
    except SignatureVerifyException:
        raise SignatureError(f"bad signature from {server_name} under {key_id}") from None


def _is_third_party_invite(pdu: Mapping[str, Any]) -> bool:
    content = pdu.get("content")
    return (
        pdu.get("type") == "m.room.member"
        and isinstance(content, Mapping)
        and content.get("membership") == "invite"
        and "third_party_invite" in content
    )


def required_signers(pdu: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The servers that must have signed ``pdu``.

    Spec ("Validating hashes and signatures on received events"): the sender's server, except
    for a third-party invite, which may be sent by another server; in room versions 1 and 2
    also the server in the ``event_id``. Room version 8 auth rules (restricted joins): a join
    with ``join_authorised_via_users_server`` must also be signed by that user's server.
    """
    signers: set[str] = set()
    sender = pdu.get("sender")
    if isinstance(sender, str) and not _is_third_party_invite(pdu):
        domain = server_name_of(sender)
        if domain is not None:
            signers.add(domain)
    if room_version.event_format is EventFormat.V1:
        event_id = pdu.get("event_id")
        if isinstance(event_id, str):
            domain = server_name_of(event_id)
            if domain is not None:
                signers.add(domain)
    content = pdu.get("content")
    if (
        room_version.restricted_join_rule
        and pdu.get("type") == "m.room.member"
        and isinstance(content, Mapping)
        and content.get("membership") == "join"
    ):
        authoriser = content.get("join_authorised_via_users_server")
        if isinstance(authoriser, str):
            domain = server_name_of(authoriser)
            if domain is not None:
                signers.add(domain)
    return signers


def verify_event_report(
    room_version: RoomVersion,
    pdu: Mapping[str, Any],
    keys: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    """Check the hashes and signatures of a received ``pdu`` against known ``keys``.

    ``keys`` maps server name → key ID → unpadded base64 public key. Returns
    ``{"event_id", "content_hash_ok", "signatures_ok", "redacted"}``: ``signatures_ok`` holds
    when every signature under a known key ID verifies (unknown key IDs and algorithms are
    skipped) and every required signer has at least one verified signature. ``redacted`` is
    the redacted event (no ``unsigned``), which the caller uses instead of the full event when
    the content hash fails. A convenience ``event_id`` is ignored from v3. Key validity periods
    are the caller's concern: pass only keys valid at the event's ``origin_server_ts``.
    Raises InvalidEvent when no event ID can be computed (v1/v2 without ``event_id``, or an
    event that is not canonical JSON for the room version).
    """
    form = federation_form(pdu, room_version)
    event_id = compute_event_id(form, room_version)
    signatures = form.get("signatures")
    signatures_ok = isinstance(signatures, Mapping)
    verified: set[str] = set()
    for server, by_key in (signatures.items() if isinstance(signatures, Mapping) else ()):
        known = keys.get(server, {})
        if not isinstance(by_key, Mapping):
            signatures_ok = False
            continue
        for key_id in by_key:
            if not isinstance(key_id, str) or key_id not in known:
                continue
            algorithm, _, version = key_id.partition(":")
            if algorithm != SUPPORTED_SIGNING_ALGORITHM:
                continue
            try:
                verify_key = decode_verify_key_base64(algorithm, version, known[key_id])
                verify_event_signature(form, room_version, server, key_id, verify_key)
            except (SignatureError, ValueError, TypeError):  # bad signature or key material
                signatures_ok = False
            else:
                verified.add(server)
    if not required_signers(form, room_version) <= verified:
        signatures_ok = False
    return {
        "event_id": event_id,
        "content_hash_ok": check_content_hash(form),
        "signatures_ok": signatures_ok,
        "redacted": redact(form, room_version),
    }
