"""Building signed events of our own, for every room version."""

from __future__ import annotations

import json
import re

import pytest
from signedjson.key import get_verify_key

from durable.errors import InvalidEvent
from durable.events import (
    add_content_hash,
    build_event,
    canonical_json,
    check_content_hash,
    compute_event_id,
    reference_hash_entry,
    sign_event,
    validate_pdu,
    verify_event_signature,
)
from durable.room_versions import KNOWN_ROOM_VERSIONS, get_room_version

from .conftest import fixed_signing_key, make_event_kwargs

ALL = list(KNOWN_ROOM_VERSIONS)
V3_PLUS = [v for v in ALL if not get_room_version(v).event_id_in_event]


@pytest.mark.parametrize("version_id", ALL)
def test_built_event_is_valid_hashed_and_signed(version_id: str) -> None:
    room_version = get_room_version(version_id)
    event = build_event(room_version, **make_event_kwargs(version_id))
    validate_pdu(dict(event.pdu), room_version)
    assert check_content_hash(event.pdu)
    verify_event_signature(
        event.pdu, room_version, "example.org", "ed25519:1", get_verify_key(fixed_signing_key(1))
    )
    assert set(event.pdu["signatures"]) == {"example.org"}
    assert event.type == "m.room.message"
    assert event.content == {"body": "hello", "msgtype": "m.text"}
    assert event.depth == 5 and event.origin_server_ts == 1_700_000_000_000
    assert "origin" not in event.pdu and "unsigned" not in event.pdu


def test_v2_event_id_and_edge_pairs() -> None:
    room_version = get_room_version("2")
    event = build_event(room_version, **make_event_kwargs("2"))
    assert event.event_id == "$localpart1:example.org" == event.pdu["event_id"]
    expected_hash = reference_hash_entry(
        {"event_id": "$prev:example.org", "type": "x", "content": {}}, room_version
    )
    assert event.pdu["prev_events"] == [["$prev:example.org", expected_hash]]
    assert event.prev_event_ids == ["$prev:example.org"]
    assert event.auth_event_ids == ["$auth:example.org"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}", expected_hash["sha256"])


@pytest.mark.parametrize("missing", ["event_id_localpart", "get_event_hashes"])
def test_v2_needs_localpart_and_hashes(missing: str) -> None:
    kwargs = make_event_kwargs("2")
    del kwargs[missing]
    with pytest.raises(ValueError):
        build_event(get_room_version("2"), **kwargs)


@pytest.mark.parametrize("version_id", V3_PLUS)
def test_v3_plus_has_no_event_id_and_plain_edges(version_id: str) -> None:
    event = build_event(get_room_version(version_id), **make_event_kwargs(version_id))
    assert "event_id" not in event.pdu
    assert event.pdu["prev_events"] == ["$prev"] and event.pdu["auth_events"] == ["$auth"]
    assert event.event_id.startswith("$") and ":" not in event.event_id


@pytest.mark.parametrize("version_id", ALL)
def test_redacts_placement(version_id: str) -> None:
    room_version = get_room_version(version_id)
    kwargs = make_event_kwargs(
        version_id, type="m.room.redaction", content={"reason": "spam"}, redacts="$target"
    )
    event = build_event(room_version, **kwargs)
    assert event.redacts == "$target"
    if room_version.updated_redaction_rules:
        assert event.pdu["content"] == {"reason": "spam", "redacts": "$target"}
        assert "redacts" not in event.pdu
    else:
        assert event.pdu["redacts"] == "$target"
        assert event.pdu["content"] == {"reason": "spam"}


def test_v12_create_event_has_no_room_id() -> None:
    room_version = get_room_version("12")
    kwargs = make_event_kwargs(
        "12",
        room_id=None,
        type="m.room.create",
        state_key="",
        content={"room_version": "12"},
        prev_event_ids=[],
        auth_event_ids=[],
        depth=1,
    )
    event = build_event(room_version, **kwargs)
    assert "room_id" not in event.pdu
    assert event.room_id == "!" + event.event_id[1:]


def test_v12_create_refuses_a_room_id() -> None:
    kwargs = make_event_kwargs(
        "12", type="m.room.create", state_key="", content={}, prev_event_ids=[], auth_event_ids=[]
    )
    with pytest.raises(ValueError):
        build_event(get_room_version("12"), **kwargs)


@pytest.mark.parametrize("version_id", ["11", "12"])
def test_room_id_required_otherwise(version_id: str) -> None:
    # A v11 create event and a v12 message both need a room_id.
    kwargs = make_event_kwargs(version_id, room_id=None)
    if version_id == "11":
        kwargs.update(type="m.room.create", state_key="", content={})
    with pytest.raises(ValueError):
        build_event(get_room_version(version_id), **kwargs)


def test_unsigned_is_kept_outside_hash_and_signature() -> None:
    room_version = get_room_version("11")
    plain = build_event(room_version, **make_event_kwargs("11"))
    with_unsigned = build_event(room_version, **make_event_kwargs("11", unsigned={"age": 10}))
    assert with_unsigned.unsigned == {"age": 10}
    assert with_unsigned.event_id == plain.event_id
    assert with_unsigned.pdu["hashes"] == plain.pdu["hashes"]
    assert with_unsigned.pdu["signatures"] == plain.pdu["signatures"]


def test_state_event() -> None:
    event = build_event(
        get_room_version("10"),
        **make_event_kwargs("10", type="m.room.topic", state_key="", content={"topic": "t"}),
    )
    assert event.is_state() and event.key == ("m.room.topic", "")


def test_too_large_event_is_refused() -> None:
    kwargs = make_event_kwargs("11", content={"body": "x" * 70_000})
    with pytest.raises(InvalidEvent):
        build_event(get_room_version("11"), **kwargs)


def test_float_content_refused_in_strict_versions() -> None:
    with pytest.raises(InvalidEvent):
        build_event(get_room_version("6"), **make_event_kwargs("6", content={"n": 1.5}))
    build_event(get_room_version("5"), **make_event_kwargs("5", content={"n": 1.5}))


def test_key_id_follows_signing_key_version() -> None:
    key = fixed_signing_key(3, version="a_XyZ")
    event = build_event(get_room_version("12"), **make_event_kwargs("12", signing_key=key))
    assert list(event.pdu["signatures"]["example.org"]) == ["ed25519:a_XyZ"]


@pytest.mark.parametrize("version_id", ALL)
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"type": "m.room.member", "state_key": "@alice:example.org",
         "content": {"membership": "join", "displayname": "Alice"}},
        {"type": "m.room.redaction", "content": {"reason": "spam"}, "redacts": "$target"},
        {"unsigned": {"age": 5}},
    ],
)
def test_builder_matches_the_step_by_step_algorithms(version_id: str, overrides: dict) -> None:
    """The builder encodes the redacted event once for the signature and the event ID; the
    result is the same as adding the content hash, signing with signedjson and computing the
    event ID and the size each on their own."""
    room_version = get_room_version(version_id)
    event = build_event(room_version, **make_event_kwargs(version_id, **overrides))
    bare = {k: v for k, v in event.pdu.items() if k not in ("hashes", "signatures", "unsigned")}
    expected = sign_event(add_content_hash(bare), room_version, "example.org", fixed_signing_key(1))
    if "unsigned" in overrides:
        expected["unsigned"] = overrides["unsigned"]
    assert dict(event.pdu) == expected
    assert event.event_id == compute_event_id(expected, room_version)
    validate_pdu(expected, room_version)
    # The stored JSON text is the same event without unsigned.
    assert json.loads(event.json_text) == {k: v for k, v in expected.items() if k != "unsigned"}


def test_size_limit_counts_hashes_signatures_and_unsigned() -> None:
    room_version = get_room_version("12")
    probe = build_event(room_version, **make_event_kwargs("12", content={"body": ""}))
    overhead = len(canonical_json(dict(probe.pdu), room_version))
    fits = "x" * (65536 - overhead)
    event = build_event(room_version, **make_event_kwargs("12", content={"body": fits}))
    assert len(canonical_json(dict(event.pdu), room_version)) == 65536
    with pytest.raises(InvalidEvent, match="bytes"):
        build_event(room_version, **make_event_kwargs("12", content={"body": fits + "x"}))
    with pytest.raises(InvalidEvent, match="bytes"):
        build_event(room_version, **make_event_kwargs("12", content={"body": fits}, unsigned={"a": 1}))


def test_size_limit_counts_non_ascii_as_utf8_bytes() -> None:
    room_version = get_room_version("12")
    probe = build_event(room_version, **make_event_kwargs("12", content={"body": ""}))
    overhead = len(canonical_json(dict(probe.pdu), room_version))
    fits = "€" * ((65536 - overhead) // 3)  # three bytes each
    event = build_event(room_version, **make_event_kwargs("12", content={"body": fits}))
    assert len(event.json_text.encode()) <= 65536
    with pytest.raises(InvalidEvent, match="bytes"):
        build_event(room_version, **make_event_kwargs("12", content={"body": fits + "€€"}))
