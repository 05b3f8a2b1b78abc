"""Auth events selection and the rules about an event's auth_events list."""

from __future__ import annotations

from typing import Any

import pytest

from durable.auth import auth_types_for_event, check_auth_events_list, check_event_auth
from durable.errors import AuthError
from durable.events.event import Event
from durable.room_versions import get_room_version
from tests.durable.auth.factories import ALICE, ALL_VERSIONS, BOB, CAROL, Room, standard_room, versions

CREATE = ("m.room.create", "")
PL = ("m.room.power_levels", "")
JR = ("m.room.join_rules", "")


def _member(user: str) -> tuple[str, str]:
    return ("m.room.member", user)


def _with_create(version: str, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return keys if get_room_version(version).room_id_is_create_event_hash else [CREATE, *keys]


SIGNED_3PID = {"signed": {"mxid": BOB, "token": "tok", "signatures": {}}}

SELECTION_CASES: list[tuple[str, str, str | None, str, dict[str, Any], list[tuple[str, str]]]] = [
    # (name, type, state_key, sender, content, expected keys without the create event)
    ("message", "m.room.message", None, BOB, {"body": "x"}, [PL, _member(BOB)]),
    ("state", "m.room.topic", "", BOB, {"topic": "x"}, [PL, _member(BOB)]),
    ("self-join", "m.room.member", BOB, BOB, {"membership": "join"}, [PL, _member(BOB), JR]),
    ("invite", "m.room.member", BOB, ALICE, {"membership": "invite"}, [PL, _member(ALICE), _member(BOB), JR]),
    ("knock", "m.room.member", BOB, BOB, {"membership": "knock"}, [PL, _member(BOB), JR]),
    ("leave", "m.room.member", BOB, BOB, {"membership": "leave"}, [PL, _member(BOB)]),
    ("kick", "m.room.member", BOB, ALICE, {"membership": "leave"}, [PL, _member(ALICE), _member(BOB)]),
    ("ban", "m.room.member", BOB, ALICE, {"membership": "ban"}, [PL, _member(ALICE), _member(BOB)]),
    ("3pid-invite", "m.room.member", BOB, ALICE, {"membership": "invite", "third_party_invite": SIGNED_3PID},
     [PL, _member(ALICE), _member(BOB), JR, ("m.room.third_party_invite", "tok")]),
    ("3pid-no-token", "m.room.member", BOB, ALICE, {"membership": "invite", "third_party_invite": {"signed": {}}},
     [PL, _member(ALICE), _member(BOB), JR]),
    ("3pid-on-join-ignored", "m.room.member", BOB, BOB, {"membership": "join", "third_party_invite": SIGNED_3PID},
     [PL, _member(BOB), JR]),
    ("no-membership", "m.room.member", BOB, BOB, {}, [PL, _member(BOB)]),
]


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize(
    ("event_type", "state_key", "sender", "content", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in SELECTION_CASES],
)
def test_auth_types_for_event(
    version: str, event_type: str, state_key: str | None, sender: str, content: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    room_version = get_room_version(version)
    assert auth_types_for_event(room_version, event_type, state_key, sender, content) == _with_create(version, expected)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_auth_types_for_create_event_is_empty(version: str) -> None:
    assert auth_types_for_event(get_room_version(version), "m.room.create", "", ALICE, {}) == []


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_auth_types_restricted_join_authoriser(version: str) -> None:
    content = {"membership": "join", "join_authorised_via_users_server": CAROL}
    keys = auth_types_for_event(get_room_version(version), "m.room.member", BOB, BOB, content)
    expected = [PL, _member(BOB), JR]
    if get_room_version(version).restricted_join_rule:
        expected.append(_member(CAROL))
    assert keys == _with_create(version, expected)
    # Only for joins.
    leave = {"membership": "leave", "join_authorised_via_users_server": CAROL}
    assert _member(CAROL) not in auth_types_for_event(get_room_version(version), "m.room.member", BOB, BOB, leave)


# --- the list rules ------------------------------------------------------------------------


def _room_and_message(version: str) -> tuple[Room, Event]:
    room = standard_room(version, members=(BOB,))
    return room, room.make("m.room.message", BOB, {"body": "hi"})


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_valid_list_returns_state_map(version: str) -> None:
    room, event = _room_and_message(version)
    auth_state = check_auth_events_list(event, room.auth_events_of(event))
    assert auth_state == {CREATE: room.create, PL: room.state[PL], _member(BOB): room.state[_member(BOB)]}
    check_event_auth(event, room.auth_events_of(event))


def _duplicate(room: Room, event: Event) -> list[Event]:
    other_pl = room.make("m.room.power_levels", ALICE, {"users": {}}, "")
    return [*room.auth_events_of(event), other_pl]


def _unexpected(room: Room, event: Event) -> list[Event]:
    return [*room.auth_events_of(event), room.state[JR]]


def _other_room(room: Room, event: Event) -> list[Event]:
    member = room.state[_member(BOB)]
    foreign = Event({**member.pdu, "room_id": "!elsewhere:b.example"}, room.version, member.event_id)
    return [foreign if e.event_id == member.event_id else e for e in room.auth_events_of(event)]


def _rejected(room: Room, event: Event) -> list[Event]:
    member = room.state[_member(BOB)]
    rejected = Event(member.pdu, room.version, member.event_id, rejected_reason="auth")
    return [rejected if e.event_id == member.event_id else e for e in room.auth_events_of(event)]


def _not_state(room: Room, event: Event) -> list[Event]:
    message = room.make("m.room.message", BOB, {"body": "earlier"})
    return [*room.auth_events_of(event), message]


def _no_create(room: Room, event: Event) -> list[Event]:
    return [e for e in room.auth_events_of(event) if e.type != "m.room.create"]


LIST_CASES = [
    ("duplicate", _duplicate, "duplicate entries for ('m.room.power_levels', '')"),
    ("unexpected-type", _unexpected, "('m.room.join_rules', '') is not selected"),
    ("other-room", _other_room, "belongs to another room"),
    ("rejected-entry", _rejected, "was rejected"),
    ("not-a-state-event", _not_state, "is not a state event"),
]


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize(("build", "reason"), [pytest.param(b, r, id=n) for n, b, r in LIST_CASES])
def test_list_rule_rejections(version: str, build: Any, reason: str) -> None:
    room, event = _room_and_message(version)
    with pytest.raises(AuthError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_auth_events_list(event, build(room, event))


@pytest.mark.parametrize("version", versions(until="11"))
def test_missing_create_rejected_before_v12(version: str) -> None:
    room, event = _room_and_message(version)
    with pytest.raises(AuthError, match="no m.room.create event"):
        check_auth_events_list(event, _no_create(room, event))


def test_v12_create_not_passed_leaves_rules_to_reject() -> None:
    """v12 has no "create among the entries" list rule; the state rules then need it."""
    room, event = _room_and_message("12")
    auth_state = check_auth_events_list(event, _no_create(room, event))
    assert CREATE not in auth_state
    with pytest.raises(AuthError, match="no m.room.create event"):
        check_event_auth(event, _no_create(room, event))


def test_v12_create_listed_in_pdu_rejected() -> None:
    room = standard_room("12", members=(BOB,))
    ids = [room.create.event_id, room.state[PL].event_id, room.state[_member(BOB)].event_id]
    event = room.make("m.room.message", BOB, {"body": "hi"}, auth_event_ids=ids)
    with pytest.raises(AuthError, match="lists the m.room.create event"):
        check_auth_events_list(event, room.auth_events_of(event))
    # Even when the caller does not pass the create event along.
    without_create = [e for e in room.auth_events_of(event) if e.type != "m.room.create"]
    with pytest.raises(AuthError, match="lists the m.room.create event"):
        check_auth_events_list(event, without_create)


def test_v12_create_of_another_room_rejected() -> None:
    room, event = _room_and_message("12")
    other = Room("12")
    foreign_create = Event(other.create.pdu, other.version, "$AnotherCreateEvent")
    auth_events = [foreign_create if e.type == "m.room.create" else e for e in room.auth_events_of(event)]
    with pytest.raises(AuthError, match="belongs to another room"):
        check_auth_events_list(event, auth_events)


def test_v12_rejected_create_rejected() -> None:
    room, event = _room_and_message("12")
    rejected = Event(room.create.pdu, room.version, room.create.event_id, rejected_reason="bad")
    auth_events = [rejected if e.type == "m.room.create" else e for e in room.auth_events_of(event)]
    with pytest.raises(AuthError, match="was rejected"):
        check_auth_events_list(event, auth_events)


@pytest.mark.parametrize("version", ["2", "11", "12"])
def test_pre_v12_create_must_be_selected_v12_create_must_not(version: str) -> None:
    """Before v12 the selection includes the create event; in v12 it does not."""
    keys = auth_types_for_event(get_room_version(version), "m.room.message", None, BOB, {})
    assert (CREATE in keys) is (version != "12")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_create_event_skips_list_rules(version: str) -> None:
    room = Room(version)
    assert check_auth_events_list(room.create, []) == {}
    check_event_auth(room.create, [])


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_restricted_join_authoriser_member_is_accepted_in_list(version: str) -> None:
    room = standard_room(version, "restricted", members=(CAROL,), users={CAROL: 50})
    content = {"membership": "join", "join_authorised_via_users_server": CAROL}
    signatures = {"b.example": {"ed25519:1": "s"}, "c.example": {"ed25519:1": "s"}}
    event = room.make("m.room.member", BOB, content, BOB, signatures=signatures)
    listed = [*room.auth_events_of(event)]
    if room.version.restricted_join_rule:
        assert room.state[_member(CAROL)] in listed
        check_event_auth(event, listed)
    else:
        # Not selected before v8: listing CAROL's membership is an unexpected entry.
        with pytest.raises(AuthError, match="is not selected"):
            check_auth_events_list(event, [*listed, room.state[_member(CAROL)]])
