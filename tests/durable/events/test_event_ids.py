"""Event ID formats per room version and the room version 12 room ID."""

from __future__ import annotations

import re
from typing import Any

import pytest

from durable.errors import InvalidEvent
from durable.events import (
    build_event,
    compute_event_id,
    event_from_pdu,
    room_id_for_create_event,
)
from durable.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion, get_room_version

from .conftest import make_event_kwargs

STANDARD_B64_43 = r"[A-Za-z0-9+/]{43}"
URLSAFE_B64_43 = r"[A-Za-z0-9\-_]{43}"


def _pdu(depth: int) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "content": {"body": "x"},
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {},
        "depth": depth,
        "prev_events": [],
        "auth_events": [],
        "origin_server_ts": 1,
    }


def test_v2_reads_event_id_from_pdu() -> None:
    v2 = get_room_version("2")
    assert compute_event_id({**_pdu(1), "event_id": "$abc:example.org"}, v2) == "$abc:example.org"
    with pytest.raises(InvalidEvent):
        compute_event_id(_pdu(1), v2)
    with pytest.raises(InvalidEvent):
        compute_event_id({**_pdu(1), "event_id": 5}, v2)


@pytest.mark.parametrize(
    ("version_id", "pattern"),
    [("3", STANDARD_B64_43)]
    + [(v, URLSAFE_B64_43) for v, rv in KNOWN_ROOM_VERSIONS.items() if rv.event_format is EventFormat.V3],
)
def test_hash_event_id_shape(version_id: str, pattern: str) -> None:
    event_id = compute_event_id(_pdu(1), get_room_version(version_id))
    assert re.fullmatch(r"\$" + pattern, event_id)


def test_v3_and_v4_differ_only_in_alphabet() -> None:
    """Find a PDU whose hash has `+` or `/` in standard base64: v4 spells them `-` and `_`."""
    v3, v4 = get_room_version("3"), get_room_version("4")
    for depth in range(1, 200):
        v3_id = compute_event_id(_pdu(depth), v3)
        if "+" in v3_id or "/" in v3_id:
            break
    else:
        pytest.fail("no hash with + or / found")
    v4_id = compute_event_id(_pdu(depth), v4)
    assert v4_id == v3_id.replace("+", "-").replace("/", "_")
    assert v4_id != v3_id


@pytest.mark.parametrize("version_id", [v for v, rv in KNOWN_ROOM_VERSIONS.items() if not rv.event_id_in_event])
def test_hash_id_ignores_unsigned_signatures_and_convenience_id(version_id: str) -> None:
    room_version = get_room_version(version_id)
    base = compute_event_id(_pdu(1), room_version)
    assert compute_event_id({**_pdu(1), "unsigned": {"age": 1}}, room_version) == base
    assert compute_event_id({**_pdu(1), "signatures": {"s": {"k": "v"}}}, room_version) == base
    assert compute_event_id({**_pdu(1), "event_id": "$whatever"}, room_version) == base
    # Redacted-away content does not change the ID; a new content hash does.
    assert compute_event_id({**_pdu(1), "content": {"body": "y"}}, room_version) == base
    assert compute_event_id({**_pdu(1), "hashes": {"sha256": "b3RoZXI"}}, room_version) != base
    assert compute_event_id(_pdu(2), room_version) != base


def test_v11_id_differs_from_v10_when_origin_present() -> None:
    """v11 redaction drops top-level `origin`, so the same PDU gets another ID."""
    pdu = {**_pdu(1), "origin": "example.org"}
    v10, v11 = get_room_version("10"), get_room_version("11")
    assert compute_event_id(pdu, v10) != compute_event_id(_pdu(1), v10)
    assert compute_event_id(pdu, v11) == compute_event_id(_pdu(1), v11)


def test_event_from_pdu_drops_convenience_event_id() -> None:
    room_version = get_room_version("10")
    event = event_from_pdu({**_pdu(1), "event_id": "$fake"}, room_version, rejected_reason="x")
    assert event.event_id == compute_event_id(_pdu(1), room_version)
    assert "event_id" not in event.pdu
    assert event.rejected_reason == "x"


def test_event_from_pdu_v2_keeps_event_id() -> None:
    event = event_from_pdu({**_pdu(1), "event_id": "$e:example.org"}, get_room_version("2"))
    assert event.event_id == "$e:example.org" == event.pdu["event_id"]


def _v12_create() -> dict[str, Any]:
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
    return dict(build_event(room_version, **kwargs).pdu)


def test_v12_room_id_derivation() -> None:
    v12 = get_room_version("12")
    create = _v12_create()
    event_id = compute_event_id(create, v12)
    room_id = room_id_for_create_event(create, v12)
    assert room_id == "!" + event_id[1:]
    assert re.fullmatch("!" + URLSAFE_B64_43, room_id)
    assert event_from_pdu(create, v12).room_id == room_id
    # An event in that room uses the derived room ID.
    message = build_event(v12, **make_event_kwargs("12", room_id=room_id, auth_event_ids=[]))
    assert message.room_id == room_id


@pytest.mark.parametrize(
    ("room_version", "pdu"),
    [
        (get_room_version("11"), {"type": "m.room.create", "state_key": "", "content": {}}),
        (get_room_version("12"), {"type": "m.room.message", "content": {}}),
        (get_room_version("12"), {"type": "m.room.create", "state_key": "x", "content": {}}),
        (get_room_version("12"), {"type": "m.room.create", "content": {}}),
    ],
)
def test_room_id_for_create_event_refusals(room_version: RoomVersion, pdu: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        room_id_for_create_event(pdu, room_version)
