"""The create rule, the v12 room-ID rule, m.federate, aliases (v2-v5), "sender must be
joined", event-type levels, `@` state keys and the v1/v2 redaction rule."""

from __future__ import annotations

from typing import Any

import pytest

from durable.auth import check_auth_rules, check_create_event
from durable.errors import AuthError
from durable.events.event import Event
from tests.durable.auth.factories import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CAROL,
    DAVE,
    Room,
    standard_room,
    versions,
)
from tests.durable.auth.helpers import Row, Scenario, assert_auth, expand

# --- m.room.create -------------------------------------------------------------------------


def _create(version: str, content: dict[str, Any] | None = None, drop: tuple[str, ...] = (),
            **fields: Any) -> Event:
    room = Room(version)
    pdu = dict(room.create.pdu)
    pdu["content"] = {**room.create.content, **(content or {})}
    for key in drop:
        pdu.pop(key, None)
        pdu["content"].pop(key, None)
    pdu.update(fields)
    return Event(pdu, room.version, room.create.event_id)


@pytest.mark.parametrize(
    ("version", "event_kwargs", "expected"),
    [pytest.param(v, {}, None, id=f"valid-v{v}") for v in ALL_VERSIONS]
    + [pytest.param(v, {"prev_events": ["$x"]}, "has prev_events", id=f"prev-events-v{v}") for v in ALL_VERSIONS]
    + [pytest.param(v, {"room_id": "!room:b.example"}, "room_id domain", id=f"room-domain-v{v}")
       for v in versions(until="11")]
    + [pytest.param(v, {"room_id": "!room"}, "room_id domain", id=f"room-no-domain-v{v}")
       for v in versions(until="11")]
    + [pytest.param("12", {"room_id": "!CreateEventHashForTests0123456789abcdefABCDE"}, "has a room_id",
                    id="room-id-present-v12")]
    + [pytest.param(v, {"content": {"room_version": "99"}}, "not a recognised version", id=f"unknown-version-v{v}")
       for v in ALL_VERSIONS]
    + [pytest.param(v, {"content": {"room_version": 10}}, "not a recognised version", id=f"int-version-v{v}")
       for v in ALL_VERSIONS]
    + [pytest.param(v, {"drop": ("room_version",)}, None, id=f"no-room-version-v{v}") for v in ALL_VERSIONS]
    # v1-v10 need content.creator; v11 drops it.
    + [pytest.param(v, {"drop": ("creator",)}, "no creator", id=f"no-creator-v{v}") for v in versions(until="10")]
    + [pytest.param(v, {"drop": ("creator",)}, None, id=f"no-creator-v{v}") for v in versions(since="11")]
    # v12: additional_creators must be an array of valid user IDs.
    + [
        pytest.param("12", {"content": {"additional_creators": [BOB, CAROL]}}, None, id="additional-creators-v12"),
        pytest.param("12", {"content": {"additional_creators": []}}, None, id="additional-creators-empty-v12"),
        pytest.param("12", {"content": {"additional_creators": BOB}}, "additional_creators", id="not-array-v12"),
        pytest.param("12", {"content": {"additional_creators": [BOB, 5]}}, "additional_creators", id="not-str-v12"),
        pytest.param("12", {"content": {"additional_creators": ["bob"]}}, "additional_creators", id="no-sigil-v12"),
        pytest.param("12", {"content": {"additional_creators": ["@bob"]}}, "additional_creators", id="no-server-v12"),
        pytest.param("11", {"content": {"additional_creators": "junk"}}, None, id="ignored-before-v12"),
    ],
)
def test_create_rule(version: str, event_kwargs: dict[str, Any], expected: str | None) -> None:
    event = _create(version, **event_kwargs)
    if expected is None:
        check_create_event(event)
        check_auth_rules(event, {})
    else:
        with pytest.raises(AuthError, match=expected):
            check_auth_rules(event, {})


# --- everything after the create rule ------------------------------------------------------


def _message(sender: str = BOB, **room_kwargs: Any) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, members=(BOB,), **room_kwargs)
        return room, room.make("m.room.message", sender, {"body": "hi"})

    return scenario


def _no_create(v: str) -> tuple[Room, Event]:
    room = standard_room(v, members=(BOB,))
    del room.state[("m.room.create", "")]
    return room, room.make("m.room.message", BOB, {"body": "hi"})


def _other_room_id(v: str) -> tuple[Room, Event]:
    room = standard_room(v, members=(BOB,))
    return room, room.make("m.room.message", BOB, {"body": "hi"}, extra={"room_id": "!Other"})


def _rejected_create(v: str) -> tuple[Room, Event]:
    room = standard_room(v, members=(BOB,))
    room.state[("m.room.create", "")] = Event(room.create.pdu, room.version, room.create.event_id, "bad")
    return room, room.make("m.room.message", BOB, {"body": "hi"})


def _federate_false(user: str) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, create_content={"m.federate": False})
        return room, room.make("m.room.member", user, {"membership": "join"}, user)

    return scenario


def _aliases(sender: str, state_key: str | None, joined: bool = False) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, members=(BOB,) if joined else ())
        return room, room.make("m.room.aliases", sender, {"aliases": ["#a:b.example"]}, state_key)

    return scenario


def _state(event_type: str, sender: str, state_key: str = "", **room_kwargs: Any) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, members=(BOB, CAROL), **room_kwargs)
        return room, room.make(event_type, sender, {"x": 1}, state_key)

    return scenario


def _redaction(sender: str, redacts: str, **room_kwargs: Any) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, members=(BOB,), **room_kwargs)
        content: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if room.version.updated_redaction_rules:
            content["redacts"] = redacts
        else:
            extra["redacts"] = redacts
        return room, room.make("m.room.redaction", sender, content, extra=extra)

    return scenario


ROWS: list[Row] = [
    ("message-from-member", ALL_VERSIONS, _message(), None),
    ("message-from-non-member", ALL_VERSIONS, _message(sender=CAROL), "sender is not joined"),
    ("message-below-events-default", ALL_VERSIONS, _message(events_default=10), "required level for 'm.room.message'"),
    ("message-event-level", ALL_VERSIONS, _message(events={"m.room.message": 1}), "required level"),
    ("creator-message-high-level", ALL_VERSIONS, _message(sender=ALICE, events={"m.room.message": 100}), None),
    ("no-create-in-state", ALL_VERSIONS, _no_create, "no m.room.create event"),
    # v12 rule 2: the room ID is the create event's ID.
    ("room-id-not-create-id", ["12"], _other_room_id, "room_id: not the event ID of the m.room.create"),
    ("create-rejected", ["12"], _rejected_create, "the m.room.create event was rejected"),
    # m.federate: false keeps out other servers.
    ("federate-false-other-server", ALL_VERSIONS, _federate_false(BOB), "m.federate is false"),
    ("federate-false-same-server", ALL_VERSIONS, _federate_false(DAVE), None),
    # m.room.aliases: a special rule in v1-v5 (even non-members), ordinary state from v6.
    ("aliases-own-server", versions(until="5"), _aliases(BOB, "b.example"), None),
    ("aliases-other-server", versions(until="5"), _aliases(BOB, "a.example"), "sender's domain does not match"),
    ("aliases-no-state-key", versions(until="5"), _aliases(BOB, None), "aliases: no state_key"),
    ("aliases-non-member", versions(since="6"), _aliases(BOB, "b.example"), "sender is not joined"),
    ("aliases-member-below-state-default", versions(since="6"), _aliases(BOB, "b.example", joined=True),
     "required level for 'm.room.aliases'"),
    ("aliases-creator", versions(since="6"), _aliases(ALICE, "b.example"), None),
    # State events: state_default and events[type].
    ("state-below-state-default", ALL_VERSIONS, _state("m.room.topic", BOB), "required level for 'm.room.topic'"),
    ("state-at-state-default", ALL_VERSIONS, _state("m.room.topic", BOB, users={BOB: 50}), None),
    ("state-type-level", ALL_VERSIONS, _state("m.room.topic", BOB, events={"m.room.topic": 0}), None),
    ("state-type-level-above", ALL_VERSIONS, _state("m.room.name", BOB, users={BOB: 50},
                                                    events={"m.room.name": 60}), "required level"),
    # A state_key starting with "@" must be the sender.
    ("own-user-state-key", ALL_VERSIONS, _state("m.custom", BOB, BOB, state_default=0), None),
    ("other-user-state-key", ALL_VERSIONS, _state("m.custom", BOB, CAROL, state_default=0),
     "state_key starts with '@'"),
    ("creator-other-user-state-key", ALL_VERSIONS, _state("m.custom", ALICE, CAROL), "state_key starts with '@'"),
    # Redactions: v1-v2 check the redact level or the event ID domain; v3+ leave it to
    # "handling redactions" and only apply the event-type level.
    ("redact-same-domain", ["2"], _redaction(BOB, "$99:b.example"), None),
    ("redact-other-domain", ["2"], _redaction(BOB, "$99:a.example"), "redaction: below the redact level"),
    ("redact-with-redact-level", ["2"], _redaction(BOB, "$99:a.example", users={BOB: 50}), None),
    ("redact-anything", versions(since="3"), _redaction(BOB, "$other"), None),
    ("redact-below-type-level", ALL_VERSIONS, _redaction(BOB, "$other", events={"m.room.redaction": 10}),
     "required level for 'm.room.redaction'"),
    # third_party_invite events need the invite level (and a joined sender).
    ("third-party-invite-event", ALL_VERSIONS, _state("m.room.third_party_invite", BOB, "tok"), None),
    ("third-party-invite-event-below", ALL_VERSIONS, _state("m.room.third_party_invite", BOB, "tok", invite=10),
     "below the invite level"),
]


@pytest.mark.parametrize(("version", "scenario", "expected"), expand(ROWS))
def test_rules(version: str, scenario: Scenario, expected: str | None) -> None:
    room, event = scenario(version)
    assert_auth(room, event, expected)
