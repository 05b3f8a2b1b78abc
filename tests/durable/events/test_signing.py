"""Signing, signature checks, required signers and the verification report."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from signedjson.key import get_verify_key
from unpaddedbase64 import encode_base64

from durable.errors import InvalidEvent, SignatureError
from durable.events import (
    add_content_hash,
    build_event,
    required_signers,
    sign_event,
    verify_event_report,
    verify_event_signature,
)
from durable.room_versions import KNOWN_ROOM_VERSIONS, get_room_version

from .conftest import fixed_signing_key, make_event_kwargs, public_key_b64

ALL = list(KNOWN_ROOM_VERSIONS)
KEY = fixed_signing_key(1)
OTHER_KEY = fixed_signing_key(2)
KEYS = {"example.org": {"ed25519:1": public_key_b64(KEY)}}


def _built(version_id: str, **overrides: Any) -> dict[str, Any]:
    event = build_event(get_room_version(version_id), **make_event_kwargs(version_id, **overrides))
    return copy.deepcopy(dict(event.pdu))


@pytest.mark.parametrize("version_id", ALL)
def test_round_trip_report(version_id: str) -> None:
    room_version = get_room_version(version_id)
    pdu = _built(version_id, unsigned={"age": 3})
    report = verify_event_report(room_version, pdu, KEYS)
    assert report["content_hash_ok"] is True
    assert report["signatures_ok"] is True
    assert "unsigned" not in report["redacted"]
    assert report["redacted"]["content"] == {}
    assert report["event_id"] == build_event(
        room_version, **make_event_kwargs(version_id)
    ).event_id


@pytest.mark.parametrize("version_id", ALL)
def test_tampered_content_fails_hash_but_not_signature(version_id: str) -> None:
    """Message content is redacted away, so the signature still holds; the hash does not.
    The spec's answer is to use the redacted copy (the report carries it)."""
    pdu = _built(version_id)
    pdu["content"]["body"] = "evil"
    report = verify_event_report(get_room_version(version_id), pdu, KEYS)
    assert report["content_hash_ok"] is False
    assert report["signatures_ok"] is True


TAMPERED_VALUES: dict[str, Any] = {
    "sender": "@mallory:example.org",
    "depth": 6,
    "origin_server_ts": 1,
    "prev_events": [],
}


@pytest.mark.parametrize("field", ["sender", "depth", "origin_server_ts", "prev_events"])
@pytest.mark.parametrize("version_id", ["2", "5", "10", "12"])
def test_tampered_signed_field_fails_signature(version_id: str, field: str) -> None:
    room_version = get_room_version(version_id)
    pdu = _built(version_id)
    pdu[field] = TAMPERED_VALUES[field]
    assert verify_event_report(room_version, pdu, KEYS)["signatures_ok"] is False
    with pytest.raises(SignatureError):
        verify_event_signature(pdu, room_version, "example.org", "ed25519:1", get_verify_key(KEY))


def test_tampered_signature_bytes() -> None:
    room_version = get_room_version("11")
    pdu = _built("11")
    signature = pdu["signatures"]["example.org"]["ed25519:1"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    pdu["signatures"]["example.org"]["ed25519:1"] = flipped
    with pytest.raises(SignatureError):
        verify_event_signature(pdu, room_version, "example.org", "ed25519:1", get_verify_key(KEY))
    assert verify_event_report(room_version, pdu, KEYS)["signatures_ok"] is False


@pytest.mark.parametrize(
    ("signature", "key_id", "verify_key"),
    [
        (None, "ed25519:1", get_verify_key(KEY)),  # missing
        ("!!!not base64!!!", "ed25519:1", get_verify_key(KEY)),  # undecodable
        ("keep", "ed25519:1", get_verify_key(OTHER_KEY)),  # wrong key
        ("keep", "curve25519:1", get_verify_key(KEY)),  # unsupported algorithm
    ],
    ids=["missing", "bad-base64", "wrong-key", "unsupported-algorithm"],
)
def test_verify_event_signature_refusals(
    signature: str | None, key_id: str, verify_key: Any
) -> None:
    room_version = get_room_version("12")
    pdu = _built("12")
    by_key = pdu["signatures"]["example.org"]
    good = by_key.pop("ed25519:1")
    if signature is not None:
        by_key[key_id] = good if signature == "keep" else signature
    with pytest.raises(SignatureError):
        verify_event_signature(pdu, room_version, "example.org", key_id, verify_key)


def test_report_requires_a_known_key_for_each_required_signer() -> None:
    room_version = get_room_version("10")
    pdu = _built("10")
    report = verify_event_report(room_version, pdu, {"example.org": {"ed25519:other": "AAAA"}})
    assert report["signatures_ok"] is False  # the only signature's key ID is unknown: skipped
    assert verify_event_report(room_version, pdu, {})["signatures_ok"] is False


def test_report_skips_unknown_keys_but_checks_every_known_one() -> None:
    room_version = get_room_version("10")
    pdu = _built("10")
    pdu["signatures"]["notary.org"] = {"ed25519:x": "garbage"}  # unknown key: skipped
    assert verify_event_report(room_version, pdu, KEYS)["signatures_ok"] is True
    # The same bad signature under a key we know must now verify, and does not.
    keys = {**KEYS, "notary.org": {"ed25519:x": public_key_b64(OTHER_KEY)}}
    assert verify_event_report(room_version, pdu, keys)["signatures_ok"] is False


def test_report_checks_all_signatures_of_a_server() -> None:
    room_version = get_room_version("12")
    pdu = sign_event(_built("12"), room_version, "example.org", fixed_signing_key(2, "2"))
    keys = {
        "example.org": {"ed25519:1": public_key_b64(KEY), "ed25519:2": public_key_b64(OTHER_KEY)}
    }
    assert verify_event_report(room_version, pdu, keys)["signatures_ok"] is True
    pdu["signatures"]["example.org"]["ed25519:2"] = pdu["signatures"]["example.org"]["ed25519:1"]
    assert verify_event_report(room_version, pdu, keys)["signatures_ok"] is False


def test_report_ignores_convenience_event_id() -> None:
    room_version = get_room_version("11")
    pdu = _built("11")
    plain = verify_event_report(room_version, pdu, KEYS)
    with_id = verify_event_report(room_version, {**pdu, "event_id": "$fake"}, KEYS)
    assert with_id == plain and plain["signatures_ok"] and plain["content_hash_ok"]


def test_report_on_v2_needs_event_id_signer() -> None:
    room_version = get_room_version("2")
    pdu = _built("2")
    pdu["event_id"] = "$localpart1:other.org"  # event ID domain now needs its own signature
    assert verify_event_report(room_version, pdu, KEYS)["signatures_ok"] is False


def test_sign_event_keeps_other_signatures_and_needs_hashes() -> None:
    room_version = get_room_version("12")
    pdu = _built("12")
    cosigned = sign_event(pdu, room_version, "other.org", OTHER_KEY)
    assert set(cosigned["signatures"]) == {"example.org", "other.org"}
    assert cosigned["signatures"]["example.org"] == pdu["signatures"]["example.org"]
    other_verify_key = get_verify_key(OTHER_KEY)
    verify_event_signature(cosigned, room_version, "other.org", "ed25519:1", other_verify_key)

    unhashed = {k: v for k, v in pdu.items() if k != "hashes"}
    with pytest.raises(InvalidEvent):
        sign_event(unhashed, room_version, "example.org", KEY)


def test_sign_event_refuses_non_canonical_values_in_strict_versions() -> None:
    pdu = add_content_hash({**_built("12"), "depth": 2**53, "signatures": {}})
    with pytest.raises(InvalidEvent):
        sign_event(pdu, get_room_version("12"), "example.org", KEY)
    sign_event(pdu, get_room_version("5"), "example.org", KEY)


def test_signature_survives_redaction() -> None:
    """Spec: the check "should succeed whether we have been sent the full event or a
    redacted copy"."""
    room_version = get_room_version("11")
    report = verify_event_report(room_version, _built("11"), KEYS)
    redacted_report = verify_event_report(room_version, report["redacted"], KEYS)
    assert redacted_report["signatures_ok"] is True
    assert redacted_report["content_hash_ok"] is False
    assert redacted_report["event_id"] == report["event_id"]


# --- required signers --------------------------------------------------------------------

REQUIRED_SIGNERS_TABLE: list[tuple[str, dict[str, Any], set[str]]] = [
    ("10", {"sender": "@a:s1.org", "type": "m.room.message", "content": {}}, {"s1.org"}),
    (
        "2",
        {"sender": "@a:s1.org", "event_id": "$x:s2.org", "type": "m.room.message", "content": {}},
        {"s1.org", "s2.org"},
    ),
    (
        "2",
        {"sender": "@a:s1.org", "event_id": "$x:s1.org", "type": "m.room.message", "content": {}},
        {"s1.org"},
    ),
    (
        "4",
        {"sender": "@a:s1.org", "event_id": "$x:s2.org", "type": "m.room.message", "content": {}},
        {"s1.org"},
    ),
    (
        "8",
        {
            "sender": "@a:s1.org",
            "type": "m.room.member",
            "state_key": "@a:s1.org",
            "content": {"membership": "join", "join_authorised_via_users_server": "@b:s3.org"},
        },
        {"s1.org", "s3.org"},
    ),
    (
        "7",
        {
            "sender": "@a:s1.org",
            "type": "m.room.member",
            "state_key": "@a:s1.org",
            "content": {"membership": "join", "join_authorised_via_users_server": "@b:s3.org"},
        },
        {"s1.org"},
    ),
    (
        "12",
        {
            "sender": "@a:s1.org",
            "type": "m.room.member",
            "state_key": "@a:s1.org",
            "content": {"membership": "leave", "join_authorised_via_users_server": "@b:s3.org"},
        },
        {"s1.org"},
    ),
    (
        "12",
        {
            "sender": "@a:s1.org",
            "type": "m.room.member",
            "state_key": "@c:s4.org",
            "content": {"membership": "invite", "third_party_invite": {"signed": {}}},
        },
        set(),
    ),
    (
        "2",
        {
            "sender": "@a:s1.org",
            "event_id": "$x:s2.org",
            "type": "m.room.member",
            "state_key": "@c:s4.org",
            "content": {"membership": "invite", "third_party_invite": {"signed": {}}},
        },
        {"s2.org"},
    ),
    ("12", {"sender": "@a:s1.org:8448", "type": "m.room.message", "content": {}}, {"s1.org:8448"}),
]


@pytest.mark.parametrize(("version_id", "pdu", "expected"), REQUIRED_SIGNERS_TABLE)
def test_required_signers(version_id: str, pdu: dict[str, Any], expected: set[str]) -> None:
    assert required_signers(pdu, get_room_version(version_id)) == expected


def test_restricted_join_round_trip_needs_authorising_server() -> None:
    room_version = get_room_version("9")
    kwargs = make_event_kwargs(
        "9",
        type="m.room.member",
        state_key="@alice:example.org",
        content={"membership": "join", "join_authorised_via_users_server": "@bob:resident.org"},
    )
    pdu = dict(build_event(room_version, **kwargs).pdu)
    resident_key = fixed_signing_key(7)
    keys = {**KEYS, "resident.org": {"ed25519:1": public_key_b64(resident_key)}}
    assert verify_event_report(room_version, pdu, keys)["signatures_ok"] is False
    cosigned = sign_event(pdu, room_version, "resident.org", resident_key)
    assert verify_event_report(room_version, cosigned, keys)["signatures_ok"] is True


def test_key_material_that_is_not_a_key_fails_closed() -> None:
    room_version = get_room_version("12")
    pdu = _built("12")
    bad_keys = {"example.org": {"ed25519:1": encode_base64(b"short")}}
    assert verify_event_report(room_version, pdu, bad_keys)["signatures_ok"] is False
