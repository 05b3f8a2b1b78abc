"""State resolution v1 (room version 1): table-driven cases.

Each case lists extra events on top of a small room (alice created it and holds power 100;
bob joined with power 0; the join rule is public) and the state sets to resolve; it names the
expected event at the keys it is about, and every other key must keep its unconflicted value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from durable.events.event import Event, StateKey
from durable.room_versions import V1, V2, StateResAlgorithm, get_room_version
from durable.state_res import resolve_state
from durable.state_res.v1 import order_highest_first, resolve_state_v1, split_state_v1

ROOM = "!room:example.com"
ALICE, BOB, CAROL, DAVE = (f"@{n}:example.com" for n in ("alice", "bob", "carol", "dave"))
CREATE, PL, JR, TOPIC, NAME = (
    ("m.room.create", ""),
    ("m.room.power_levels", ""),
    ("m.room.join_rules", ""),
    ("m.room.topic", ""),
    ("m.room.name", ""),
)


def member(user: str) -> StateKey:
    return ("m.room.member", user)


def ev(
    event_id: str,
    type: str,  # noqa: A002
    state_key: str,
    sender: str,
    content: dict[str, Any],
    depth: int,
    rejected: bool = False,
) -> Event:
    pdu = {
        "event_id": event_id,
        "room_id": ROOM,
        "type": type,
        "state_key": state_key,
        "sender": sender,
        "content": content,
        "depth": depth,
        "origin_server_ts": depth,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "x"},
        "signatures": {},
    }
    return Event(pdu, V1, event_id, rejected_reason="test" if rejected else None)


def pl(event_id: str, sender: str, users: dict[str, int], depth: int, **extra: Any) -> Event:
    return ev(event_id, "m.room.power_levels", "", sender, {"users": users, **extra}, depth)


def mem(event_id: str, user: str, membership: str, depth: int, sender: str | None = None) -> Event:
    return ev(event_id, "m.room.member", user, sender or user, {"membership": membership}, depth)


def topic(event_id: str, sender: str, depth: int, rejected: bool = False) -> Event:
    return ev(event_id, "m.room.topic", "", sender, {"topic": event_id}, depth, rejected)


BASE_EVENTS = [
    ev("$create", "m.room.create", "", ALICE, {"creator": ALICE}, 1),
    mem("$alice", ALICE, "join", 2),
    pl("$pl0", ALICE, {ALICE: 100}, 3),
    ev("$jr0", "m.room.join_rules", "", ALICE, {"join_rule": "public"}, 4),
    mem("$bob", BOB, "join", 5),
]
BASE: dict[StateKey, str] = {e.key: e.event_id for e in BASE_EVENTS}


@dataclass
class Case:
    name: str
    events: list[Event]
    # Each state set: BASE overlaid with these keys (None removes the key).
    sets: list[dict[StateKey, str | None]]
    expected: dict[StateKey, str | None]  # None: the key is absent from the result
    base: dict[StateKey, str] = field(default_factory=lambda: dict(BASE))


def _state(base: dict[StateKey, str], overlay: dict[StateKey, str | None]) -> dict[StateKey, str]:
    state = dict(base)
    for key, value in overlay.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


CASES = [
    Case(
        "power levels: the later event is refused in R (bob below 100), the earlier one stays",
        [pl("$pl_a", ALICE, {ALICE: 100, BOB: 50}, 6), pl("$pl_b", BOB, {ALICE: 100, BOB: 100}, 7)],
        [{PL: "$pl_a"}, {PL: "$pl_b"}],
        {PL: "$pl_a"},
    ),
    Case(
        "power levels: the later event is allowed in R with the earlier one, so it wins",
        [pl("$pl_a", ALICE, {ALICE: 100, BOB: 100}, 6), pl("$pl_b", BOB, {ALICE: 100, BOB: 100, CAROL: 5}, 7)],
        [{PL: "$pl_a"}, {PL: "$pl_b"}],
        {PL: "$pl_b"},
    ),
    Case(
        "power levels: the first one is taken unchecked (R would refuse it), and the next is "
        "checked with it in R",
        [pl("$pl_a", BOB, {ALICE: 100, BOB: 100}, 6), pl("$pl_b", BOB, {ALICE: 100, BOB: 100, CAROL: 1}, 7)],
        [{PL: "$pl_a"}, {PL: "$pl_b"}],
        {PL: "$pl_b"},
    ),
    Case(
        "power levels: the pass stops at the first refusal, later allowed events are not reached",
        [
            pl("$pl_a", ALICE, {ALICE: 100}, 6),
            pl("$pl_b", BOB, {ALICE: 100, BOB: 100}, 7),
            pl("$pl_c", ALICE, {ALICE: 100, CAROL: 10}, 8),
        ],
        [{PL: "$pl_a"}, {PL: "$pl_b"}, {PL: "$pl_c"}],
        {PL: "$pl_a"},
    ),
    Case(
        "power levels: equal depth sorts by descending sha1, so the lower sha1 comes last and wins",
        # sha1("$pl_x:example.com") = f82f..., sha1("$pl_y:example.com") = 98cd...
        [pl("$pl_x:example.com", ALICE, {ALICE: 100, BOB: 1}, 6),
         pl("$pl_y:example.com", ALICE, {ALICE: 100, BOB: 2}, 6)],
        [{PL: "$pl_x:example.com"}, {PL: "$pl_y:example.com"}],
        {PL: "$pl_y:example.com"},
    ),
    Case(
        "join rules: bob's later change is refused (level 0 < 50), alice's earlier one stays",
        [
            ev("$jr_a", "m.room.join_rules", "", ALICE, {"join_rule": "invite"}, 6),
            ev("$jr_b", "m.room.join_rules", "", BOB, {"join_rule": "public"}, 7),
        ],
        [{JR: "$jr_a"}, {JR: "$jr_b"}],
        {JR: "$jr_a"},
    ),
    Case(
        "join rules: the resolved power levels are in R when join rules are checked",
        [
            pl("$pl_a", ALICE, {ALICE: 100, BOB: 50}, 6),
            pl("$pl_b", ALICE, {ALICE: 100}, 5),
            ev("$jr_a", "m.room.join_rules", "", ALICE, {"join_rule": "invite"}, 6),
            ev("$jr_b", "m.room.join_rules", "", BOB, {"join_rule": "public"}, 7),
        ],
        [{PL: "$pl_a", JR: "$jr_a"}, {PL: "$pl_b", JR: "$jr_b"}],
        {PL: "$pl_a", JR: "$jr_b"},
    ),
    Case(
        "members: a ban sorted first makes the later join fail; each key is resolved on its own",
        [
            mem("$carol_ban", CAROL, "ban", 7, sender=ALICE),
            mem("$carol_join", CAROL, "join", 8),
            mem("$dave_join", DAVE, "join", 6),
            mem("$dave_leave", DAVE, "leave", 9),
        ],
        [{member(CAROL): "$carol_ban", member(DAVE): "$dave_join"},
         {member(CAROL): "$carol_join", member(DAVE): "$dave_leave"}],
        {member(CAROL): "$carol_ban", member(DAVE): "$dave_leave"},
    ),
    Case(
        "members: a join sorted first, then a ban alice may issue: the ban wins",
        [mem("$carol_join", CAROL, "join", 7), mem("$carol_ban", CAROL, "ban", 8, sender=ALICE)],
        [{member(CAROL): "$carol_join"}, {member(CAROL): "$carol_ban"}],
        {member(CAROL): "$carol_ban"},
    ),
    Case(
        "members: a ban by bob (level 0) after carol's join is refused: carol stays joined",
        [mem("$carol_join", CAROL, "join", 7), mem("$carol_ban", CAROL, "ban", 8, sender=BOB)],
        [{member(CAROL): "$carol_join"}, {member(CAROL): "$carol_ban"}],
        {member(CAROL): "$carol_join"},
    ),
    Case(
        "members: the resolved join rules are in R (public again: carol's later join is allowed)",
        [
            ev("$jr_invite", "m.room.join_rules", "", ALICE, {"join_rule": "invite"}, 4),
            ev("$jr_public", "m.room.join_rules", "", ALICE, {"join_rule": "public"}, 9),
            mem("$carol_leave", CAROL, "leave", 7, sender=ALICE),
            mem("$carol_join", CAROL, "join", 8),
        ],
        [{JR: "$jr_public", member(CAROL): "$carol_leave"}, {member(CAROL): "$carol_join"}],
        {JR: "$jr_public", member(CAROL): "$carol_join"},
        base={**BASE, JR: "$jr_invite"},
    ),
    Case(
        "members: keys are resolved independently, against R as it was before the member pass "
        "(carol's resolved join does not let her kick dave)",
        [
            pl("$pl_c", ALICE, {ALICE: 100, CAROL: 50}, 3),
            mem("$carol_leave", CAROL, "leave", 6),
            mem("$carol_join", CAROL, "join", 9),
            mem("$dave_join", DAVE, "join", 7),
            mem("$dave_kick", DAVE, "leave", 8, sender=CAROL),
        ],
        [{member(CAROL): "$carol_leave", member(DAVE): "$dave_join"},
         {member(CAROL): "$carol_join", member(DAVE): "$dave_kick"}],
        {member(CAROL): "$carol_join", member(DAVE): "$dave_join"},
        base={**BASE, PL: "$pl_c"},
    ),
    Case(
        "other types: the highest depth wins when allowed",
        [topic("$t_a", ALICE, 6), topic("$t_b", ALICE, 9), topic("$t_c", ALICE, 7)],
        [{TOPIC: "$t_a"}, {TOPIC: "$t_b"}, {TOPIC: "$t_c"}],
        {TOPIC: "$t_b"},
    ),
    Case(
        "other types: equal depth, the lowest sha1 wins",
        # sha1("$topic_x:example.com") = 473d..., sha1("$topic_y:example.com") = 3cc6...
        [topic("$topic_x:example.com", ALICE, 6), topic("$topic_y:example.com", ALICE, 6)],
        [{TOPIC: "$topic_x:example.com"}, {TOPIC: "$topic_y:example.com"}],
        {TOPIC: "$topic_y:example.com"},
    ),
    Case(
        "other types: a candidate refused in R (bob below the topic level 50) is skipped",
        [topic("$t_alice", ALICE, 6), topic("$t_bob", BOB, 9)],
        [{TOPIC: "$t_alice"}, {TOPIC: "$t_bob"}],
        {TOPIC: "$t_alice"},
    ),
    Case(
        "other types: R holds the resolved power levels (bob raised to 50 may set the topic)",
        [pl("$pl_a", ALICE, {ALICE: 100, BOB: 50}, 8), pl("$pl_b", ALICE, {ALICE: 100, BOB: 1}, 7),
         topic("$t_alice", ALICE, 6), topic("$t_bob", BOB, 9)],
        [{PL: "$pl_a", TOPIC: "$t_alice"}, {PL: "$pl_b", TOPIC: "$t_bob"}],
        {PL: "$pl_a", TOPIC: "$t_bob"},
    ),
    Case(
        "other types: every candidate refused: the last in order (lowest depth) is kept",
        [topic("$t_bob1", BOB, 6), topic("$t_bob2", BOB, 9)],
        [{TOPIC: "$t_bob1"}, {TOPIC: "$t_bob2"}],
        {TOPIC: "$t_bob1"},
    ),
    Case(
        "other types: a sender who left in a resolved member conflict is refused",
        [mem("$bob_leave", BOB, "leave", 9), ev("$n_bob", "m.room.name", "", BOB, {"name": "b"}, 10),
         ev("$n_alice", "m.room.name", "", ALICE, {"name": "a"}, 6),
         pl("$pl_a", ALICE, {ALICE: 100, BOB: 50}, 6)],
        [{member(BOB): "$bob_leave", NAME: "$n_alice", PL: "$pl_a"}, {NAME: "$n_bob", PL: "$pl_a"}],
        {member(BOB): "$bob_leave", NAME: "$n_alice", PL: "$pl_a"},
    ),
    Case(
        "unconflicted keys are kept, and a key missing from some sets is no conflict",
        [topic("$t_bob", BOB, 6), ev("$n", "m.room.name", "", ALICE, {"name": "n"}, 7),
         topic("$t_a", ALICE, 8), topic("$t_b", ALICE, 9)],
        [{TOPIC: "$t_bob", NAME: "$n"}, {NAME: "$n", member(BOB): None}],
        {TOPIC: "$t_bob", NAME: "$n", member(BOB): "$bob"},
    ),
    Case(
        "a rejected or unknown candidate takes no part; a key left with one candidate takes it",
        [topic("$t_rejected", ALICE, 9, rejected=True), topic("$t_ok", ALICE, 6)],
        [{TOPIC: "$t_rejected"}, {TOPIC: "$t_ok"}, {TOPIC: "$t_unknown"}],
        {TOPIC: "$t_ok"},
    ),
    Case(
        "a key left with no known candidate is dropped",
        [topic("$t_rejected", ALICE, 9, rejected=True)],
        [{TOPIC: "$t_rejected"}, {TOPIC: "$t_unknown"}],
        {TOPIC: None},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_v1_resolution(case: Case) -> None:
    events = {e.event_id: e for e in [*BASE_EVENTS, *case.events]}
    state_sets = [_state(case.base, overlay) for overlay in case.sets]
    resolved = resolve_state(V1, state_sets, events.get)
    for key, expected in case.expected.items():
        assert resolved.get(key) == expected, key
    touched = {key for overlay in case.sets for key in overlay} | set(case.expected)
    for key, event_id in case.base.items():
        if key not in touched:
            assert resolved[key] == event_id, key


def test_sha1_facts_used_by_the_tables() -> None:
    def sha1(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    assert sha1("$pl_y:example.com") < sha1("$pl_x:example.com")
    assert sha1("$topic_y:example.com") < sha1("$topic_x:example.com")


def test_order_highest_first() -> None:
    events = [topic("$topic_x:example.com", ALICE, 6), topic("$topic_y:example.com", ALICE, 6),
              topic("$deep", ALICE, 7), topic("$shallow", ALICE, 2)]
    ordered = [e.event_id for e in order_highest_first(events)]
    assert ordered == ["$deep", "$topic_y:example.com", "$topic_x:example.com", "$shallow"]


def test_split_state_v1() -> None:
    sets = [{TOPIC: "$a", NAME: "$n", CREATE: "$c"}, {TOPIC: "$b", CREATE: "$c"}, {TOPIC: "$a"}]
    unconflicted, conflicted = split_state_v1(sets)
    assert unconflicted == {NAME: "$n", CREATE: "$c"}
    assert conflicted == {TOPIC: frozenset({"$a", "$b"})}


def test_edge_inputs() -> None:
    events = {e.event_id: e for e in BASE_EVENTS}
    assert resolve_state_v1(V1, [], events.get) == {}
    assert resolve_state(V1, [BASE], events.get) == BASE
    assert resolve_state(V1, [BASE, dict(BASE)], events.get) == BASE


def test_room_version_1_is_version_2_with_state_res_v1() -> None:
    assert get_room_version("1") is V1
    assert V1.state_res is StateResAlgorithm.V1
    differing = [f for f in V1.__dataclass_fields__ if getattr(V1, f) != getattr(V2, f)]
    assert sorted(differing) == ["identifier", "state_res"]
