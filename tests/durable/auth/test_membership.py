"""m.room.member rules: join, invite, leave/kick, ban, knock, per room version."""

from __future__ import annotations

import pytest

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

MEMBER = "m.room.member"


def _first_join(user: str, creator_field: str | None = None) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = Room(v, create_content={"creator": creator_field} if creator_field else None)
        return room, room.make(MEMBER, user, {"membership": "join"}, user, prev_events=[room.create.event_id])

    return scenario


def _join(join_rule: str, prior: str | None = None, **content: object) -> Scenario:
    """BOB joins a room with ``join_rule``; ``prior`` is his membership before."""

    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, join_rule, members=(CAROL,), users={CAROL: 50})
        if prior == "invite":
            room.member(BOB, "invite", sender=ALICE)
        elif prior == "ban":
            room.member(BOB, "ban", sender=ALICE)
        return room, room.make(MEMBER, BOB, {"membership": "join", **content}, BOB)

    return scenario


def _restricted(join_rule: str, authoriser: str | None, invite_level: int = 0, signed: bool = True) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, join_rule, members=(CAROL,), users={CAROL: 50}, invite=invite_level)
        content: dict[str, object] = {"membership": "join"}
        signatures: dict[str, object] = {"b.example": {"ed25519:1": "sig"}}
        if authoriser is not None:
            content["join_authorised_via_users_server"] = authoriser
            if signed:
                signatures[authoriser.partition(":")[2]] = {"ed25519:1": "sig"}
        return room, room.make(MEMBER, BOB, content, BOB, signatures=signatures)

    return scenario


def _join_other_sender(v: str) -> tuple[Room, Event]:
    room = standard_room(v, "public", members=(CAROL,))
    return room, room.make(MEMBER, CAROL, {"membership": "join"}, BOB)


JOIN_ROWS: list[Row] = [
    ("creator-first-join", ALL_VERSIONS, _first_join(ALICE), None),
    ("non-creator-first-join", ALL_VERSIONS, _first_join(BOB), "sender is not invited"),
    # v1-v10: the creator is content.creator; v11+: the create event's sender.
    ("creator-field-names-creator", versions(until="10"), _first_join(BOB, creator_field=BOB), None),
    ("creator-field-ignored", versions(since="11"), _first_join(BOB, creator_field=BOB), "not invited"),
    ("sender-is-creator-field-other", versions(until="10"), _first_join(ALICE, creator_field=BOB), "not invited"),
    ("sender-is-creator", versions(since="11"), _first_join(ALICE, creator_field=BOB), None),
    ("sender-not-state-key", ALL_VERSIONS, _join_other_sender, "sender does not match state_key"),
    ("public", ALL_VERSIONS, _join("public"), None),
    ("banned-public", ALL_VERSIONS, _join("public", prior="ban"), "sender is banned"),
    ("invite-rule-uninvited", ALL_VERSIONS, _join("invite"), "not invited"),
    ("invite-rule-invited", ALL_VERSIONS, _join("invite", prior="invite"), None),
    ("private-rule", ALL_VERSIONS, _join("private", prior="invite"), "does not allow joining"),
    ("knock-rule-before-v7", versions(until="6"), _join("knock", prior="invite"), "does not allow joining"),
    ("knock-rule-invited", versions(since="7"), _join("knock", prior="invite"), None),
    ("knock-rule-uninvited", versions(since="7"), _join("knock"), "not invited"),
    # restricted: unknown before v8.
    ("restricted-before-v8", versions(until="7"), _restricted("restricted", CAROL), "does not allow joining"),
    ("restricted-invited", versions(since="8"), _join("restricted", prior="invite"), None),
    ("restricted-authorised", versions(since="8"), _restricted("restricted", CAROL), None),
    ("restricted-no-authoriser", versions(since="8"), _restricted("restricted", None), "no join_authorised"),
    ("restricted-authoriser-not-joined", versions(since="8"), _restricted("restricted", DAVE), "not joined"),
    ("restricted-authoriser-cannot-invite", versions(since="8"), _restricted("restricted", CAROL, invite_level=60),
     "cannot invite"),
    ("restricted-authoriser-server-unsigned", versions(since="8"), _restricted("restricted", CAROL, signed=False),
     "not signed by the server"),
    # knock_restricted: unknown before v10.
    ("knock-restricted-before-v10", versions(until="9"), _restricted("knock_restricted", CAROL),
     "does not allow joining"),
    ("knock-restricted-authorised", versions(since="10"), _restricted("knock_restricted", CAROL), None),
    ("knock-restricted-invited", versions(since="10"), _join("knock_restricted", prior="invite"), None),
    ("knock-restricted-no-authoriser", versions(since="10"), _restricted("knock_restricted", None),
     "no join_authorised"),
]


def _invite(sender: str = ALICE, target: str = BOB, target_prior: str | None = None, invite_level: int = 0,
            sender_joined: bool = True) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, "public", members=(CAROL, DAVE), invite=invite_level)
        if target_prior == "join":
            room.member(target, "join")
        elif target_prior == "ban":
            room.member(target, "ban", sender=ALICE)
        if not sender_joined:
            room.member(sender, "leave")
        return room, room.make(MEMBER, sender, {"membership": "invite"}, target)

    return scenario


INVITE_ROWS: list[Row] = [
    ("invite", ALL_VERSIONS, _invite(), None),
    ("invite-by-member-level-0", ALL_VERSIONS, _invite(sender=CAROL), None),
    ("invite-sender-not-joined", ALL_VERSIONS, _invite(sender=CAROL, sender_joined=False), "sender is not joined"),
    ("invite-target-joined", ALL_VERSIONS, _invite(target_prior="join"), "target is already join"),
    ("invite-target-banned", ALL_VERSIONS, _invite(target_prior="ban"), "target is already ban"),
    ("invite-below-invite-level", ALL_VERSIONS, _invite(sender=CAROL, invite_level=50), "below the invite level"),
]


def _self_leave(prior: str | None) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, "public", members=(CAROL,))
        if prior == "join":
            room.member(BOB, "join")
        elif prior == "invite":
            room.member(BOB, "invite", sender=ALICE)
        elif prior == "ban":
            room.member(BOB, "ban", sender=ALICE)
        elif prior == "knock":
            room.force(MEMBER, BOB, {"membership": "knock"}, BOB)
        return room, room.make(MEMBER, BOB, {"membership": "leave"}, BOB)

    return scenario


def _kick(sender: str, target: str, users: dict[str, int], target_prior: str = "join", sender_joined: bool = True,
          **levels: int) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, "public", members=(BOB, CAROL, DAVE), users=users, **levels)
        if target_prior == "ban":
            room.member(target, "ban", sender=ALICE)
        if not sender_joined:
            room.member(sender, "leave")
        return room, room.make(MEMBER, sender, {"membership": "leave"}, target)

    return scenario


def _ban(sender: str, target: str, users: dict[str, int], sender_joined: bool = True, **levels: int) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, "public", members=(BOB, CAROL, DAVE), users=users, **levels)
        if not sender_joined:
            room.member(sender, "leave")
        return room, room.make(MEMBER, sender, {"membership": "ban"}, target)

    return scenario


LEAVE_BAN_ROWS: list[Row] = [
    ("leave-from-join", ALL_VERSIONS, _self_leave("join"), None),
    ("leave-rejects-invite", ALL_VERSIONS, _self_leave("invite"), None),
    ("leave-from-nothing", ALL_VERSIONS, _self_leave(None), "cannot leave from membership None"),
    ("leave-from-ban", ALL_VERSIONS, _self_leave("ban"), "cannot leave from membership 'ban'"),
    ("leave-from-knock-before-v7", versions(until="6"), _self_leave("knock"), "cannot leave"),
    ("leave-from-knock", versions(since="7"), _self_leave("knock"), None),
    ("kick", ALL_VERSIONS, _kick(CAROL, BOB, {CAROL: 50}), None),
    ("kick-below-kick-level", ALL_VERSIONS, _kick(CAROL, BOB, {CAROL: 40}), "below the kick level"),
    ("kick-equal-target", ALL_VERSIONS, _kick(CAROL, BOB, {CAROL: 50, BOB: 50}), "target's level is not below"),
    ("kick-sender-not-joined", ALL_VERSIONS, _kick(CAROL, BOB, {CAROL: 50}, sender_joined=False),
     "sender is not joined"),
    ("unban-below-ban-level", ALL_VERSIONS, _kick(CAROL, BOB, {CAROL: 60}, target_prior="ban", ban=80),
     "below the ban level"),
    ("unban", ALL_VERSIONS, _kick(CAROL, BOB, {CAROL: 80}, target_prior="ban", ban=80), None),
    ("ban", ALL_VERSIONS, _ban(CAROL, BOB, {CAROL: 50}), None),
    ("ban-below-ban-level", ALL_VERSIONS, _ban(CAROL, BOB, {CAROL: 50}, ban=60), "below the ban level"),
    ("ban-equal-target", ALL_VERSIONS, _ban(CAROL, BOB, {CAROL: 50, BOB: 50}), "target's level is not below"),
    ("ban-sender-not-joined", ALL_VERSIONS, _ban(CAROL, BOB, {CAROL: 50}, sender_joined=False),
     "sender is not joined"),
    # Before v12 the creator (100) cannot kick a user at 100; a v12 creator (infinite) can.
    ("creator-kicks-level-100", versions(until="11"), _kick(ALICE, BOB, {BOB: 100}), "target's level is not below"),
    ("creator-kicks-level-100", ["12"], _kick(ALICE, BOB, {BOB: 100}), None),
    ("level-100-kicks-creator", ["12"], _kick(BOB, ALICE, {BOB: 100}), "target's level is not below"),
]


def _knock(join_rule: str, prior: str | None = None, sender: str = BOB) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, join_rule, members=(CAROL,))
        if prior == "ban":
            room.member(BOB, "ban", sender=ALICE)
        elif prior == "invite":
            room.member(BOB, "invite", sender=ALICE)
        return room, room.make(MEMBER, sender, {"membership": "knock"}, BOB)

    return scenario


KNOCK_ROWS: list[Row] = [
    ("knock-before-v7", versions(until="6"), _knock("knock"), "unknown membership 'knock'"),
    ("knock", versions(since="7"), _knock("knock"), None),
    ("knock-public-room", versions(since="7"), _knock("public"), "does not allow knocking"),
    ("knock-invite-room", versions(since="7"), _knock("invite"), "does not allow knocking"),
    ("knock-for-someone-else", versions(since="7"), _knock("knock", sender=CAROL), "sender does not match"),
    ("knock-when-banned", versions(since="7"), _knock("knock", prior="ban"), "banned, invited or joined"),
    ("knock-when-invited", versions(since="7"), _knock("knock", prior="invite"), "banned, invited or joined"),
    ("knock-restricted-before-v10", versions(since="7", until="9"), _knock("knock_restricted"), "does not allow knocking"),
    ("knock-restricted", versions(since="10"), _knock("knock_restricted"), None),
]


def _bad_member(content: dict[str, object], state_key: str | None = BOB) -> Scenario:
    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, "public")
        return room, room.make(MEMBER, BOB, content, state_key)

    return scenario


def _authoriser_on_leave(signed: bool) -> Scenario:
    """``join_authorised_via_users_server`` is checked on any membership (v8+)."""

    def scenario(v: str) -> tuple[Room, Event]:
        room = standard_room(v, "public", members=(BOB, CAROL))
        signatures: dict[str, object] = {"b.example": {"ed25519:1": "sig"}}
        if signed:
            signatures["c.example"] = {"ed25519:1": "sig"}
        content = {"membership": "leave", "join_authorised_via_users_server": CAROL}
        return room, room.make(MEMBER, BOB, content, BOB, signatures=signatures)

    return scenario


SHAPE_ROWS: list[Row] = [
    ("no-membership", ALL_VERSIONS, _bad_member({}), "no content.membership"),
    ("no-state-key", ALL_VERSIONS, _bad_member({"membership": "join"}, state_key=None), "no state_key"),
    ("unknown-membership", ALL_VERSIONS, _bad_member({"membership": "foo"}), "unknown membership 'foo'"),
    ("non-string-membership", ALL_VERSIONS, _bad_member({"membership": ["join"]}), "unknown membership"),
    ("authoriser-ignored-before-v8", versions(until="7"), _authoriser_on_leave(signed=False), None),
    ("authoriser-unsigned-on-leave", versions(since="8"), _authoriser_on_leave(signed=False), "not signed"),
    ("authoriser-signed-on-leave", versions(since="8"), _authoriser_on_leave(signed=True), None),
]


@pytest.mark.parametrize(
    ("version", "scenario", "expected"),
    expand(JOIN_ROWS + INVITE_ROWS + LEAVE_BAN_ROWS + KNOCK_ROWS + SHAPE_ROWS),
)
def test_member_rules(version: str, scenario: Scenario, expected: str | None) -> None:
    room, event = scenario(version)
    assert_auth(room, event, expected)


def _v12_additional_creators() -> Room:
    room = standard_room("12", "public", members=(BOB, CAROL), users={BOB: 100},
                         create_content={"additional_creators": [CAROL]})
    return room


@pytest.mark.parametrize(
    ("sender", "membership", "target", "expected"),
    [
        pytest.param(CAROL, "ban", BOB, None, id="additional-creator-bans-level-100"),
        pytest.param(BOB, "leave", CAROL, "target's level is not below", id="level-100-cannot-kick-additional-creator"),
        pytest.param(ALICE, "ban", CAROL, "target's level is not below", id="creator-cannot-ban-other-creator"),
        pytest.param(CAROL, "leave", ALICE, "target's level is not below", id="creator-cannot-kick-other-creator"),
    ],
)
def test_v12_additional_creators_have_infinite_power(
    sender: str, membership: str, target: str, expected: str | None
) -> None:
    room = _v12_additional_creators()
    event = room.make(MEMBER, sender, {"membership": membership}, target)
    assert_auth(room, event, expected)
