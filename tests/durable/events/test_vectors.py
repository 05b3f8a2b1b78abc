"""The spec's test vectors (tests/spec_data/vectors.json), used as data.

Honours the file's notes and flags: the event-signing vectors only reproduce with the
pre-v11 redaction (which keeps `origin`), so they are run under every room version 2-10 and
checked to *differ* under v11/v12 as recorded; the "Signing Details" example does not verify
and is only used as a negative case; `derived_*` values are secondary cross-checks.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from signedjson.key import decode_verify_key_base64, get_verify_key
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from durable.errors import SignatureError
from durable.events import (
    add_content_hash,
    canonical_json,
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    parse_json,
    redact,
    sign_event,
    verify_event_report,
    verify_event_signature,
)
from durable.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version

from .conftest import VECTORS

PRE_V11 = [v for v in KNOWN_ROOM_VERSIONS.values() if not v.updated_redaction_rules]
# Room versions whose PDUs carry `event_id` (v1 and v2).
EVENT_ID_IN_PDU = [v for v in KNOWN_ROOM_VERSIONS.values() if v.event_id_in_event]
V11_PLUS = [v for v in KNOWN_ROOM_VERSIONS.values() if v.updated_redaction_rules]
ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())
SERVER = VECTORS["signing_key"]["server_name"]
KEY_ID = VECTORS["signing_key"]["key_id"]


def _ids(items: list[Any], prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(len(items))]


def _version_id(version: RoomVersion) -> str:
    return f"v{version.identifier}"


# --- signing key -------------------------------------------------------------------------


def test_public_key_derived_from_seed(spec_signing_key: SigningKey) -> None:
    public = encode_base64(get_verify_key(spec_signing_key).encode())
    assert public == VECTORS["signing_key"]["derived_public_key_base64"]
    assert f"{spec_signing_key.alg}:{spec_signing_key.version}" == KEY_ID


# --- canonical JSON ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector", VECTORS["canonical_json"], ids=_ids(VECTORS["canonical_json"], "canonical")
)
@pytest.mark.parametrize("room_version", ALL_VERSIONS, ids=_version_id)
def test_canonical_json_vectors(vector: dict[str, Any], room_version: RoomVersion) -> None:
    assert vector["our_check_matches"] is True
    parsed = parse_json(vector["input_text"])
    expected = vector["expected_canonical"].encode("utf-8")
    assert canonical_json(parsed, room_version) == expected


# --- JSON signing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector", VECTORS["json_signing"], ids=_ids(VECTORS["json_signing"], "json_signing")
)
def test_json_signing_vectors(vector: dict[str, Any], spec_signing_key: SigningKey) -> None:
    signed = sign_json(copy.deepcopy(vector["input"]), SERVER, spec_signing_key)
    assert signed == vector["expected_signed"]
    assert canonical_json(vector["input"], None) == vector["canonical_bytes_signed"].encode()
    if vector["expected_verifies_with_derived_key"]:
        verify_key = decode_verify_key_base64(
            "ed25519", "1", VECTORS["signing_key"]["derived_public_key_base64"]
        )
        verify_signed_json(copy.deepcopy(vector["expected_signed"]), SERVER, verify_key)


def test_signing_details_example_does_not_verify() -> None:
    """The appendix's illustrative object is flagged as not verifying: a negative case only."""
    example = VECTORS["signing_details_example"]
    assert example["signature_verifies_with_listed_key"] is False
    obj = copy.deepcopy(example["object"])
    verify_key = decode_verify_key_base64("ed25519", "1", obj["signing_keys"]["ed25519:1"])
    with pytest.raises(SignatureVerifyException):
        verify_signed_json(obj, "example.org", verify_key)


# --- event signing (spec appendix) -------------------------------------------------------

EVENT_VECTORS = VECTORS["event_signing"]


@pytest.mark.parametrize("vector", EVENT_VECTORS, ids=_ids(EVENT_VECTORS, "event"))
def test_event_content_hash(vector: dict[str, Any]) -> None:
    assert vector["our_content_hash_matches"] is True
    assert compute_content_hash(vector["input"]) == vector["expected_content_hash_sha256"]
    stripped = {
        k: v for k, v in vector["input"].items() if k not in ("unsigned", "signatures", "hashes")
    }
    assert canonical_json(stripped, None) == vector["content_hash_input_canonical"].encode()
    assert check_content_hash(vector["expected_signed"])


def _pre_v11_cases() -> list[Any]:
    """Vectors with a top-level `event_id` use the room v1/v2 event format, so they run under
    v2 only (from v3 that key is a convenience copy that is dropped before signing)."""
    cases = []
    for i, vector in enumerate(EVENT_VECTORS):
        versions = EVENT_ID_IN_PDU if "event_id" in vector["input"] else PRE_V11
        cases += [pytest.param(vector, v, id=f"event{i}-v{v.identifier}") for v in versions]
    return cases


@pytest.mark.parametrize(("vector", "room_version"), _pre_v11_cases())
def test_event_signing_pre_v11(
    vector: dict[str, Any], room_version: RoomVersion, spec_signing_key: SigningKey
) -> None:
    assert vector["our_signature_matches_with_v1_to_v10_redaction"] is True
    signed = sign_event(add_content_hash(vector["input"]), room_version, SERVER, spec_signing_key)
    assert signed == vector["expected_signed"]

    redacted = redact(vector["expected_signed"], room_version)
    redacted.pop("signatures")
    assert redacted == vector["redacted_form_signed_v1_to_v10_rules"]
    assert canonical_json(redacted, room_version) == vector[
        "redacted_form_canonical_v1_to_v10"
    ].encode("utf-8")

    verify_key = get_verify_key(spec_signing_key)
    verify_event_signature(vector["expected_signed"], room_version, SERVER, KEY_ID, verify_key)


@pytest.mark.parametrize("room_version", V11_PLUS, ids=_version_id)
@pytest.mark.parametrize("vector", EVENT_VECTORS, ids=_ids(EVENT_VECTORS, "event"))
def test_event_signing_v11_redaction_differs(
    vector: dict[str, Any], room_version: RoomVersion, spec_signing_key: SigningKey
) -> None:
    """The vectors record that v11 redaction (no top-level `origin`) gives another signature."""
    assert vector["our_signature_matches_with_v11_redaction"] is False
    redacted = redact(vector["expected_signed"], room_version)
    redacted.pop("signatures")
    expected = dict(vector["redacted_form_v11_rules"])
    # v11+ PDUs have no `event_id` (it is the reference hash), so a copy in the input is dropped.
    expected.pop("event_id", None)
    assert redacted == expected

    signed = sign_event(add_content_hash(vector["input"]), room_version, SERVER, spec_signing_key)
    assert signed["hashes"] == vector["expected_signed"]["hashes"]
    assert signed["signatures"] != vector["expected_signed"]["signatures"]
    with pytest.raises(SignatureError):
        verify_event_signature(
            vector["expected_signed"],
            room_version,
            SERVER,
            KEY_ID,
            get_verify_key(spec_signing_key),
        )


@pytest.mark.parametrize(
    ("key", "room_version_id"),
    [
        ("derived_reference_hash_event_id_v4plus_rules_if_room_were_v4_to_v10", "4"),
        ("derived_reference_hash_event_id_v4plus_rules_if_room_were_v4_to_v10", "10"),
        ("derived_reference_hash_event_id_v11_rules", "11"),
    ],
)
def test_derived_event_ids(key: str, room_version_id: str) -> None:
    """Secondary: event IDs derived by the vector file's independent implementation."""
    vector = EVENT_VECTORS[0]
    assert compute_event_id(vector["expected_signed"], get_room_version(room_version_id)) == vector[
        key
    ]


@pytest.mark.parametrize(
    "room_version", [v for v in PRE_V11 if not v.event_id_in_event], ids=_version_id
)
def test_event_vector_report(room_version: RoomVersion) -> None:
    vector = EVENT_VECTORS[0]
    keys = {SERVER: {KEY_ID: VECTORS["signing_key"]["derived_public_key_base64"]}}
    report = verify_event_report(room_version, vector["expected_signed"], keys)
    assert report["content_hash_ok"] is True
    # The vector's sender is @a:domain, so `domain` is the one required signer.
    assert report["signatures_ok"] is True
    assert report["redacted"] == {
        **vector["redacted_form_signed_v1_to_v10_rules"],
        "signatures": vector["expected_signed"]["signatures"],
    }


# --- additional vectors from Synapse's tests ---------------------------------------------

SYNAPSE_VECTORS = VECTORS["additional_event_signing_from_synapse"]


@pytest.mark.parametrize(
    "vector", SYNAPSE_VECTORS, ids=[v["source"]["test"] for v in SYNAPSE_VECTORS]
)
@pytest.mark.parametrize("room_version", EVENT_ID_IN_PDU, ids=_version_id)
def test_synapse_event_signing(
    vector: dict[str, Any], room_version: RoomVersion, spec_signing_key: SigningKey
) -> None:
    """Recorded for room version 1, whose event format, hashing, redaction and signing are
    those of room version 2 (v1 itself is not supported here)."""
    assert vector["source"]["room_version"] == "1"
    assert vector["our_content_hash_matches"] is True
    assert vector["our_signature_matches_with_v1_to_v10_redaction"] is True
    assert compute_content_hash(vector["input"]) == vector["expected_content_hash_sha256"]
    signed = sign_event(add_content_hash(vector["input"]), room_version, SERVER, spec_signing_key)
    assert signed["hashes"] == {"sha256": vector["expected_content_hash_sha256"]}
    assert signed["signatures"] == {SERVER: {KEY_ID: vector["expected_signature_domain_ed25519_1"]}}
    assert signed["unsigned"] == vector["input"]["unsigned"]
