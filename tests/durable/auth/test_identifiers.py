"""User ID validation and domain parsing used by the auth rules."""

from __future__ import annotations

import pytest

from durable.auth import domain_of, is_valid_user_id


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ("@alice:example.org", "example.org"),
        ("@alice:example.org:8448", "example.org:8448"),
        ("!room:[1234:5678::abcd]:5678", "[1234:5678::abcd]:5678"),
        ("$event:b.example", "b.example"),
        ("!HashOnlyRoomId", None),
    ],
)
def test_domain_of(identifier: str, expected: str | None) -> None:
    assert domain_of(identifier) == expected


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        ("@alice:example.org", True),
        ("@alice:example.org:8448", True),
        ("@alice:1.2.3.4", True),
        ("@alice:[1234:5678::abcd]:5678", True),
        ("@Alice Smith:example.org", True),  # historical localparts are accepted
        ("@:example.org", True),  # even an empty one
        ("alice:example.org", False),
        ("@alice", False),
        ("@alice:", False),
        ("@alice:exa mple.org", False),
        ("@alice:example.org:port", False),
        ("@al\x00ice:example.org", False),
        ("@" + "a" * 250 + ":example.org", False),  # over 255 bytes
        ("@\ud800:example.org", False),
        (42, False),
    ],
)
def test_is_valid_user_id(user_id: object, expected: bool) -> None:
    assert is_valid_user_id(user_id) is expected
