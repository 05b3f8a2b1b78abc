"""The redaction algorithm, version by version (the "Redactions" section of each room version)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from durable.events import redact
from durable.room_versions import KNOWN_ROOM_VERSIONS, get_room_version

ALL = list(KNOWN_ROOM_VERSIONS)  # "1".."12"


def versions(first: str, last: str) -> list[str]:
    return ALL[ALL.index(first) : ALL.index(last) + 1]


BASE_KEYS = {
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
}
PRE_V11_EXTRA = {"origin", "membership", "prev_state"}

FULL_PDU: dict[str, Any] = {
    "event_id": "$abc:example.org",
    "type": "m.room.message",
    "room_id": "!room:example.org",
    "sender": "@alice:example.org",
    "state_key": "",
    "content": {"body": "hello"},
    "hashes": {"sha256": "aGFzaA"},
    "signatures": {"example.org": {"ed25519:1": "c2ln"}},
    "depth": 7,
    "prev_events": ["$p"],
    "auth_events": ["$a"],
    "origin": "example.org",
    "origin_server_ts": 1234,
    "membership": "join",
    "prev_state": [],
    "unsigned": {"age": 5},
    "redacts": "$target",
    "age_ts": 99,
    "custom_key": {"x": 1},
}

TOP_LEVEL_EXPECTED: dict[str, set[str]] = {
    **{v: BASE_KEYS | PRE_V11_EXTRA | {"event_id"} for v in versions("1", "2")},
    **{v: BASE_KEYS | PRE_V11_EXTRA for v in versions("3", "10")},
    **{v: BASE_KEYS for v in versions("11", "12")},
}


@pytest.mark.parametrize("version_id", ALL)
def test_top_level_keys(version_id: str) -> None:
    redacted = redact(FULL_PDU, get_room_version(version_id))
    assert set(redacted) == TOP_LEVEL_EXPECTED[version_id]
    assert "unsigned" not in redacted
    assert redacted["content"] == {}


MEMBER = {
    "membership": "join",
    "displayname": "Alice",
    "avatar_url": "mxc://x/y",
    "join_authorised_via_users_server": "@bob:other.org",
    "third_party_invite": {"display_name": "a...@e.org", "signed": {"mxid": "@alice:e.org"}},
}
CREATE = {
    "creator": "@alice:example.org",
    "room_version": "9",
    "m.federate": False,
    "additional_creators": ["@bob:other.org"],
}
JOIN_RULES = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1}
POWER_LEVELS = {
    "ban": 50,
    "events": {"m.room.name": 50},
    "events_default": 0,
    "invite": 0,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users": {"@alice:example.org": 100},
    "users_default": 0,
    "notifications": {"room": 50},
}
PL_PRE_V11 = {k: v for k, v in POWER_LEVELS.items() if k not in ("invite", "notifications")}

# (event type, content, {room versions: expected redacted content})
CONTENT_TABLE: list[tuple[str, dict[str, Any], dict[tuple[str, ...], dict[str, Any]]]] = [
    (
        "m.room.member",
        MEMBER,
        {
            tuple(versions("1", "8")): {"membership": "join"},
            tuple(versions("9", "10")): {
                "membership": "join",
                "join_authorised_via_users_server": "@bob:other.org",
            },
            tuple(versions("11", "12")): {
                "membership": "join",
                "join_authorised_via_users_server": "@bob:other.org",
                "third_party_invite": {"signed": {"mxid": "@alice:e.org"}},
            },
        },
    ),
    (
        "m.room.create",
        CREATE,
        {
            tuple(versions("1", "10")): {"creator": "@alice:example.org"},
            tuple(versions("11", "12")): CREATE,
        },
    ),
    (
        "m.room.join_rules",
        JOIN_RULES,
        {
            tuple(versions("1", "7")): {"join_rule": "restricted"},
            tuple(versions("8", "12")): {"join_rule": "restricted", "allow": JOIN_RULES["allow"]},
        },
    ),
    (
        "m.room.power_levels",
        POWER_LEVELS,
        {
            tuple(versions("1", "10")): PL_PRE_V11,
            tuple(versions("11", "12")): {**PL_PRE_V11, "invite": 0},
        },
    ),
    (
        "m.room.history_visibility",
        {"history_visibility": "shared", "x": 1},
        {tuple(ALL): {"history_visibility": "shared"}},
    ),
    (
        "m.room.aliases",
        {"aliases": ["#a:example.org"], "x": 1},
        {
            tuple(versions("1", "5")): {"aliases": ["#a:example.org"]},
            tuple(versions("6", "12")): {},
        },
    ),
    (
        "m.room.redaction",
        {"redacts": "$target", "reason": "spam"},
        {tuple(versions("1", "10")): {}, tuple(versions("11", "12")): {"redacts": "$target"}},
    ),
    ("m.room.message", {"body": "hi", "msgtype": "m.text"}, {tuple(ALL): {}}),
    ("m.room.topic", {"topic": "t"}, {tuple(ALL): {}}),
    ("m.room.name", {"name": "n"}, {tuple(ALL): {}}),
]


def _content_cases() -> list[Any]:
    cases = []
    for event_type, content, by_versions in CONTENT_TABLE:
        covered = [v for group in by_versions for v in group]
        assert sorted(covered, key=ALL.index) == ALL, event_type  # the table covers v1..v12
        for group, expected in by_versions.items():
            for version_id in group:
                case_id = f"{event_type}-v{version_id}"
                cases.append(pytest.param(event_type, content, version_id, expected, id=case_id))
    return cases


@pytest.mark.parametrize(("event_type", "content", "version_id", "expected"), _content_cases())
def test_content_keys(
    event_type: str, content: dict[str, Any], version_id: str, expected: dict[str, Any]
) -> None:
    pdu = {**FULL_PDU, "type": event_type, "content": copy.deepcopy(content)}
    assert redact(pdu, get_room_version(version_id))["content"] == expected


def test_v11_member_third_party_invite_without_signed_is_dropped() -> None:
    pdu = {
        **FULL_PDU,
        "type": "m.room.member",
        "content": {"membership": "invite", "third_party_invite": {"display_name": "x"}},
    }
    assert redact(pdu, get_room_version("11"))["content"] == {"membership": "invite"}


@pytest.mark.parametrize("version_id", ALL)
def test_non_object_content_becomes_empty(version_id: str) -> None:
    pdu = {**FULL_PDU, "type": "m.room.member", "content": ["not", "an", "object"]}
    assert redact(pdu, get_room_version(version_id))["content"] == {}


def test_missing_content_stays_missing() -> None:
    pdu = {k: v for k, v in FULL_PDU.items() if k != "content"}
    assert "content" not in redact(pdu, get_room_version("12"))


def test_redact_is_idempotent_and_does_not_touch_input() -> None:
    original = {**FULL_PDU, "type": "m.room.power_levels", "content": copy.deepcopy(POWER_LEVELS)}
    snapshot = copy.deepcopy(original)
    for version in KNOWN_ROOM_VERSIONS.values():
        once = redact(original, version)
        assert redact(once, version) == once
        once["content"]["users"]["@mallory:example.org"] = 100  # no aliasing with the input
    assert original == snapshot
