"""Canonical JSON: strict from room version 6, lenient before (appendices, "Canonical JSON")."""

from __future__ import annotations

from typing import Any

import pytest

from durable.errors import InvalidEvent
from durable.events import canonical_json, parse_json
from durable.room_versions import KNOWN_ROOM_VERSIONS, V5, V6, V12

LENIENT = [v for v in KNOWN_ROOM_VERSIONS.values() if not v.strict_canonicaljson]
STRICT = [v for v in KNOWN_ROOM_VERSIONS.values() if v.strict_canonicaljson]


def test_version_split() -> None:
    assert [v.identifier for v in LENIENT] == ["1", "2", "3", "4", "5"]
    assert [v.identifier for v in STRICT] == ["6", "7", "8", "9", "10", "11", "12"]


# (value, allowed in lenient versions, allowed in strict versions)
CASES: list[tuple[str, Any, bool, bool]] = [
    ("max safe int", {"a": 2**53 - 1}, True, True),
    ("min safe int", {"a": -(2**53) + 1}, True, True),
    ("int above range", {"a": 2**53}, True, False),
    ("int below range", {"a": -(2**53)}, True, False),
    ("huge int nested", {"a": [{"b": 2**64}]}, True, False),
    ("float", {"a": 1.5}, True, False),
    ("integral float", {"a": 1.0}, True, False),
    ("nan", {"a": float("nan")}, False, False),
    ("infinity", {"a": float("inf")}, False, False),
    ("non-string key", {1: "a"}, False, False),
    ("lone surrogate", {"a": "\ud800"}, False, False),
    ("set", {"a": {1, 2}}, False, False),
    ("bytes", {"a": b"x"}, False, False),
    ("booleans and null", {"a": True, "b": False, "c": None}, True, True),
    ("unicode", {"日": "本"}, True, True),
]


@pytest.mark.parametrize(
    ("name", "value", "lenient_ok", "strict_ok"), CASES, ids=[c[0] for c in CASES]
)
def test_strict_and_lenient(name: str, value: Any, lenient_ok: bool, strict_ok: bool) -> None:
    for room_version, ok in ((V5, lenient_ok), (V6, strict_ok), (V12, strict_ok)):
        if ok:
            assert isinstance(canonical_json(value, room_version), bytes)
        else:
            with pytest.raises(InvalidEvent):
                canonical_json(value, room_version)


def test_encoding_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}, V12) == '{"a":[1,"é"],"b":1}'.encode()


def test_deep_nesting_is_invalid_not_a_crash() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(InvalidEvent):
        canonical_json(value, V12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-0", 0),
        ("1e10", 10_000_000_000),
        ("-0.0", 0),
        ("1.5", 1.5),
        ("12345678901234567890.0", 12345678901234567890),
    ],
)
def test_parse_json_numbers(text: str, expected: Any) -> None:
    parsed = parse_json(text)
    assert parsed == expected and type(parsed) is type(expected)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "{", "", '{"a": -Infinity}', b"\xff"])
def test_parse_json_refuses(text: str | bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_json(text)
