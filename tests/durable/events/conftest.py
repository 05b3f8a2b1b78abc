"""Shared data for the event-format tests: the spec's vectors and fixed signing keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from signedjson.key import decode_signing_key_base64, get_verify_key
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

VECTORS_PATH = Path(__file__).resolve().parents[2] / "spec_data" / "vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def fixed_signing_key(seed_byte: int, version: str = "1") -> SigningKey:
    """A deterministic ed25519 key (tests must not depend on randomness)."""
    return decode_signing_key_base64("ed25519", version, encode_base64(bytes([seed_byte]) * 32))


def public_key_b64(signing_key: SigningKey) -> str:
    return encode_base64(get_verify_key(signing_key).encode())


@pytest.fixture
def spec_signing_key() -> SigningKey:
    """The key of the spec's "Cryptographic Test Vectors" (server `domain`, `ed25519:1`)."""
    return decode_signing_key_base64("ed25519", "1", VECTORS["signing_key"]["seed_base64"])


def make_event_kwargs(room_version_id: str, **overrides: Any) -> dict[str, Any]:
    """Arguments for ``build_event`` giving a plain message in a room of ``room_version_id``."""
    from durable.events import reference_hash_entry
    from durable.room_versions import get_room_version

    room_version = get_room_version(room_version_id)
    kwargs: dict[str, Any] = dict(
        room_id="!room:example.org",
        sender="@alice:example.org",
        type="m.room.message",
        content={"body": "hello", "msgtype": "m.text"},
        prev_event_ids=["$prev:example.org"] if room_version.event_id_in_event else ["$prev"],
        auth_event_ids=["$auth:example.org"] if room_version.event_id_in_event else ["$auth"],
        depth=5,
        origin_server_ts=1_700_000_000_000,
        server_name="example.org",
        signing_key=fixed_signing_key(1),
    )
    if room_version.event_id_in_event:
        kwargs["event_id_localpart"] = "localpart1"
        # Any PDU works as the referenced event: the entry is its reference hash.
        kwargs["get_event_hashes"] = lambda event_id: reference_hash_entry(
            {"event_id": event_id, "type": "x", "content": {}}, room_version
        )
    kwargs.update(overrides)
    return kwargs
