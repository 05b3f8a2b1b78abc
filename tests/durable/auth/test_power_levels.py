"""Reading power levels, and the m.room.power_levels change rule, per room version."""

from __future__ import annotations

from typing import Any

import pytest

from durable.auth import (
    creators,
    event_power_level,
    get_power_levels_content,
    parse_level,
    user_power_level,
)
from durable.events.event import Event
from durable.room_versions import get_room_version
from tests.durable.auth.factories import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CAROL,
    DAVE,
    Room,
    default_users,
    versions,
)
from tests.durable.auth.helpers import Row, Scenario, assert_auth, expand

PL = "m.room.power_levels"


@pytest.mark.parametrize(
    ("value", "version", "expected"),
    [
        (50, "10", 50),
        ("50", "9", 50),
        ("50", "10", None),
        (" +007 ", "2", 7),
        ("-100", "9", -100),
        ("000100", "5", 100),
        ("5.5", "2", None),
        ("1e3", "2", None),
        ("", "2", None),
        ("١٢", "2", None),  # non-ASCII digits are not base-10 integers here
        (50.57, "5", 50),
        (-1.9, "2", -1),
        (50.57, "6", None),
        (float("inf"), "2", None),
        (float("nan"), "2", None),
        (True, "2", None),
        (True, "10", None),
        (None, "2", None),
        ([50], "2", None),
    ],
)
def test_parse_level(value: object, version: str, expected: int | None) -> None:
    assert parse_level(value, get_room_version(version)) == expected


def _pl_event(room: Room, content: dict[str, Any]) -> Event:
    return room.make(PL, ALICE, content, "")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_user_power_level_without_power_levels_event(version: str) -> None:
    room = Room(version, create_content={"additional_creators": [CAROL]} if version == "12" else None)
    if room.version.privileged_creators:
        assert user_power_level(ALICE, None, room.create) == float("inf")
        assert user_power_level(CAROL, None, room.create) == float("inf")
    else:
        assert user_power_level(ALICE, None, room.create) == 100
        assert user_power_level(CAROL, None, room.create) == 0
    assert user_power_level(BOB, None, room.create) == 0


@pytest.mark.parametrize(
    ("version", "expected_alice", "expected_bob"),
    [("10", 0, 100), ("11", 100, 0), ("12", float("inf"), 0)],
)
def test_creator_is_content_creator_until_v10_then_sender(
    version: str, expected_alice: float, expected_bob: int
) -> None:
    room = Room(version, create_content={"creator": BOB})
    assert user_power_level(ALICE, None, room.create) == expected_alice
    assert user_power_level(BOB, None, room.create) == expected_bob


@pytest.mark.parametrize(
    ("version", "content", "user", "expected"),
    [
        ("10", {"users": {BOB: 75}}, BOB, 75),
        ("10", {"users": {BOB: 75}, "users_default": 5}, CAROL, 5),
        ("10", {"users": {}}, CAROL, 0),
        ("9", {"users": {BOB: "75"}}, BOB, 75),
        ("10", {"users": {BOB: "75"}, "users_default": 3}, BOB, 3),  # strings ignored from v10
        ("9", {"users_default": " 20 "}, BOB, 20),
        ("11", {"users": {ALICE: 10}}, ALICE, 10),  # before v12 the PL event rules the creator too
        ("12", {"users": {ALICE: 10}}, ALICE, float("inf")),
    ],
)
def test_user_power_level_with_event(version: str, content: dict[str, Any], user: str, expected: float) -> None:
    room = Room(version)
    assert user_power_level(user, _pl_event(room, content), room.create) == expected


@pytest.mark.parametrize(
    ("version", "content", "event_type", "state_key", "expected"),
    [
        ("10", None, "m.room.message", None, 0),
        ("10", None, "m.room.topic", "", 50),
        ("10", {}, "m.room.topic", "", 50),
        ("10", {"state_default": 20}, "m.room.topic", "", 20),
        ("10", {"events_default": 7}, "m.room.message", None, 7),
        ("10", {"events": {"m.room.message": 30}}, "m.room.message", None, 30),
        ("10", {"events": {"m.room.message": 30}}, "m.room.message", "", 30),
        ("9", {"events": {"m.room.message": "30"}}, "m.room.message", None, 30),
        ("10", {"events": {"m.room.message": "30"}, "events_default": 1}, "m.room.message", None, 1),
    ],
)
def test_event_power_level(
    version: str, content: dict[str, Any] | None, event_type: str, state_key: str | None, expected: int
) -> None:
    room = Room(version)
    power_levels = None if content is None else _pl_event(room, content)
    assert event_power_level(event_type, state_key, power_levels) == expected


def test_get_power_levels_content_normalises() -> None:
    room = Room("9")
    event = _pl_event(room, {"ban": "60", "users": {BOB: " 10", CAROL: "x"}, "events": {"m.room.name": "+5"},
                             "notifications": {"room": "20"}})
    assert get_power_levels_content(event) == {
        "ban": 60, "events_default": 0, "invite": 0, "kick": 50, "redact": 50, "state_default": 50,
        "users_default": 0, "users": {BOB: 10}, "events": {"m.room.name": 5}, "notifications": {"room": 20},
    }


@pytest.mark.parametrize(("version", "users"), [("11", {ALICE: 100}), ("12", {})])
def test_get_power_levels_content_without_event(version: str, users: dict[str, int]) -> None:
    room = Room(version)
    content = get_power_levels_content(None, room.create)
    assert content["users"] == users
    assert content["state_default"] == 50 and content["events_default"] == 0 and content["invite"] == 0
    assert content["notifications"] == {"room": 50}


@pytest.mark.parametrize(
    ("version", "create_content", "expected"),
    [
        ("2", None, {ALICE}),
        ("10", {"creator": BOB}, {BOB}),
        ("11", {"creator": BOB}, {ALICE}),
        ("12", {"additional_creators": [BOB, CAROL]}, {ALICE, BOB, CAROL}),
        ("11", {"additional_creators": [BOB]}, {ALICE}),
    ],
)
def test_creators(version: str, create_content: dict[str, Any] | None, expected: set[str]) -> None:
    assert creators(Room(version, create_content=create_content).create) == expected


# --- the change rule -----------------------------------------------------------------------

def _first_pl(content: dict[str, Any], create_content: dict[str, Any] | None = None) -> Scenario:
    """The first power levels event, sent by the creator right after joining."""

    def scenario(v: str) -> tuple[Room, Event]:
        room = Room(v, create_content=create_content)
        room.member(ALICE, "join")
        return room, room.make(PL, ALICE, content, "")

    return scenario


def _change(
    new: dict[str, Any], old: dict[str, Any] | None = None, sender: str = BOB, sender_level: int = 50
) -> Scenario:
    """BOB (at ``sender_level``) replaces the power levels ``old`` with ``new``; the
    creator's entry (before v12) is kept in both."""

    def scenario(v: str) -> tuple[Room, Event]:
        room = Room(v)
        room.member(ALICE, "join")
        base = dict(old or {})
        base["users"] = {**default_users(room, **{BOB: sender_level}), **base.get("users", {})}
        room.power_levels(**base)
        room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        for user in (BOB, CAROL, DAVE):
            room.member(user, "join")
        content = dict(new)
        content["users"] = {**default_users(room, **{BOB: sender_level}), **new.get("users", {})}
        return room, room.make(PL, sender, content, "")

    return scenario


SHAPE_ROWS: list[Row] = [
    ("first-pl", ALL_VERSIONS, _first_pl({"users": {BOB: 50}}), None),
    ("first-pl-no-users", ALL_VERSIONS, _first_pl({"ban": 10}), None),
    ("string-top-level", versions(until="9"), _first_pl({"ban": "50"}), None),
    ("string-top-level", versions(since="10"), _first_pl({"ban": "50"}), "'ban' is not an integer"),
    ("bool-top-level", versions(since="10"), _first_pl({"kick": True}), "'kick' is not an integer"),
    ("string-events-value", versions(until="9"), _first_pl({"events": {"m.room.name": "50"}}), None),
    ("string-events-value", versions(since="10"), _first_pl({"events": {"m.room.name": "50"}}),
     "'events' is not an object of integers"),
    ("events-not-object", versions(since="10"), _first_pl({"events": [1]}), "'events' is not an object"),
    ("notifications-string", versions(since="10"), _first_pl({"notifications": {"room": "50"}}),
     "'notifications' is not an object of integers"),
    ("string-user-level", versions(until="9"), _first_pl({"users": {BOB: "50"}}), None),
    ("string-user-level", versions(since="10"), _first_pl({"users": {BOB: "50"}}), "is not an integer"),
    ("float-user-level", versions(until="5"), _first_pl({"users": {BOB: 50.5}}), None),
    ("float-user-level", versions(since="6"), _first_pl({"users": {BOB: 50.5}}), "is not an integer"),
    ("garbage-user-level", ALL_VERSIONS, _first_pl({"users": {BOB: "fifty"}}), "is not an integer"),
    ("users-not-object", ALL_VERSIONS, _first_pl({"users": [BOB]}), "'users' is not an object"),
    ("users-key-not-user-id", ALL_VERSIONS, _first_pl({"users": {"bob": 50}}), "is not a valid user ID"),
    ("users-key-bad-server", ALL_VERSIONS, _first_pl({"users": {"@bob:bad server": 50}}), "is not a valid user ID"),
    ("users-historical-localpart", ALL_VERSIONS, _first_pl({"users": {"@Bob Smith:b.example": 50}}), None),
    # v12 rule 10.4: creators must not appear in users.
    ("creator-in-users", versions(until="11"), _first_pl({"users": {ALICE: 100}}), None),
    ("creator-in-users", ["12"], _first_pl({"users": {ALICE: 100}}), "room creator '@alice:a.example'"),
    ("additional-creator-in-users", ["12"],
     _first_pl({"users": {CAROL: 50}}, create_content={"additional_creators": [CAROL]}), "room creator"),
]

CHANGE_ROWS: list[Row] = [
    ("no-change", ALL_VERSIONS, _change({}), None),
    ("raise-ban-to-own-level", ALL_VERSIONS, _change({"ban": 50}, {"ban": 40}), None),
    ("raise-ban-above-own-level", ALL_VERSIONS, _change({"ban": 60}, {"ban": 40}), "cannot set 'ban' above"),
    ("lower-ban-from-above", ALL_VERSIONS, _change({"ban": 40}, {"ban": 60}), "cannot alter 'ban'"),
    ("remove-kick-from-above", ALL_VERSIONS, _change({}, {"kick": 60}), "cannot alter 'kick'"),
    ("add-invite-above", ALL_VERSIONS, _change({"invite": 51}), "cannot set 'invite' above"),
    ("add-users-default", ALL_VERSIONS, _change({"users_default": 10}), None),
    ("string-equal-is-no-change", versions(until="9"), _change({"ban": 60}, {"ban": "60"}), None),
    ("add-event-level-above", ALL_VERSIONS, _change({"events": {"m.room.name": 60}}), "cannot set events"),
    ("add-event-level", ALL_VERSIONS, _change({"events": {"m.room.name": 50}}), None),
    ("change-event-level-from-above", ALL_VERSIONS,
     _change({"events": {"m.room.name": 0}}, {"events": {"m.room.name": 60}}), "cannot change events"),
    ("remove-event-level-from-above", ALL_VERSIONS, _change({"events": {}}, {"events": {"m.room.name": 60}}),
     "cannot change events"),
    ("change-event-level-below", ALL_VERSIONS, _change({"events": {"m.room.name": 10}}, {"events": {"m.room.name": 40}}),
     None),
    # notifications are checked from v6.
    ("notifications-from-above", versions(until="5"),
     _change({"notifications": {"room": 0}}, {"notifications": {"room": 60}}), None),
    ("notifications-from-above", versions(since="6"),
     _change({"notifications": {"room": 0}}, {"notifications": {"room": 60}}), "cannot change notifications"),
    ("notifications-above", versions(until="5"), _change({"notifications": {"room": 70}}), None),
    ("notifications-above", versions(since="6"), _change({"notifications": {"room": 70}}),
     "cannot set notifications"),
    ("notifications-within", versions(since="6"), _change({"notifications": {"room": 20}}), None),
    ("promote-other-to-own-level", ALL_VERSIONS, _change({"users": {CAROL: 50}}), None),
    ("promote-other-above", ALL_VERSIONS, _change({"users": {CAROL: 51}}), "cannot raise '@carol:c.example'"),
    ("promote-self-above", ALL_VERSIONS, _change({"users": {BOB: 51}}), "cannot raise '@bob:b.example'"),
    ("demote-self", ALL_VERSIONS, _change({"users": {BOB: 10}}), None),
    ("demote-lower-user", ALL_VERSIONS, _change({"users": {CAROL: 0}}, {"users": {CAROL: 40}}), None),
    ("demote-equal-user", ALL_VERSIONS, _change({"users": {CAROL: 0}}, {"users": {CAROL: 50}}),
     "cannot change level of '@carol:c.example'"),
    ("remove-equal-user", ALL_VERSIONS, _change({}, {"users": {CAROL: 50}}), "cannot change level"),
    ("remove-lower-user", ALL_VERSIONS, _change({}, {"users": {CAROL: 49}}), None),
    # The event type's own required level (events["m.room.power_levels"]) comes first.
    ("below-required-level", ALL_VERSIONS, _change({}, {"events": {PL: 60}}), "required level for 'm.room.power_levels'"),
    # v12: creators have infinite power, so they may set anything.
    ("creator-sets-huge-levels", ["12"], _change({"ban": 10**9, "users": {CAROL: 10**9}}, sender=ALICE), None),
    ("creator-demotes-level-100", ["12"], _change({"users": {BOB: 0}}, sender=ALICE, sender_level=100), None),
    ("creator-demotes-level-100", versions(until="11"), _change({"users": {BOB: 0}}, sender=ALICE, sender_level=100),
     "cannot change level of '@bob:b.example'"),
]


@pytest.mark.parametrize(("version", "scenario", "expected"), expand(SHAPE_ROWS + CHANGE_ROWS))
def test_power_levels_rule(version: str, scenario: Scenario, expected: str | None) -> None:
    room, event = scenario(version)
    assert_auth(room, event, expected)
