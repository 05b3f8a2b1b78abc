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
