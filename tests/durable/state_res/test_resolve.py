"""resolve_state edge cases: inputs, rejected events, dispatch on the algorithm."""

from __future__ import annotations

import dataclasses

import pytest

from durable.events.event import Event
from durable.room_versions import V10, StateResAlgorithm
from durable.state_res import resolve_state

from .fixtures import V10_WITH_V2_1
from .tables import event

ALICE, BOB = "@alice:example.com", "@bob:example.com"
CREATE_KEY, PL_KEY, JR_KEY = ("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", "")
TOPIC_KEY = ("m.room.topic", "")


def _room(room_version=V10, member_bob_rejected: bool = False) -> dict[str, Event]:
    def ev(*args, **kwargs) -> Event:
        return event(*args, room_version=room_version, **kwargs)

    events = [
        ev("$create", [], type="m.room.create", content={"creator": ALICE}, ts=0),
        ev("$ma", ["$create"], type="m.room.member", state_key=ALICE, content={"membership": "join"},
           ts=1, prev=["$create"]),
        ev("$pl", ["$create", "$ma"], type="m.room.power_levels",
           content={"users": {ALICE: 100, BOB: 50}}, ts=2),
        ev("$jr", ["$create", "$ma", "$pl"], type="m.room.join_rules", content={"join_rule": "public"}, ts=3),
        ev("$mb", ["$create", "$pl", "$jr"], type="m.room.member", state_key=BOB, sender=BOB,
           content={"membership": "join"}, ts=4),
        ev("$tb", ["$create", "$pl", "$mb"], sender=BOB, content={"topic": "bob's"}, ts=5),
    ]
    table = {e.event_id: e for e in events}
    if member_bob_rejected:
        mb = table["$mb"]
        table["$mb"] = Event(mb.pdu, mb.room_version, mb.event_id, rejected_reason="test")
    return table


def _base_state() -> dict:
    return {
        CREATE_KEY: "$create",
        ("m.room.member", ALICE): "$ma",
        PL_KEY: "$pl",
        JR_KEY: "$jr",
        ("m.room.member", BOB): "$mb",
    }


@pytest.mark.parametrize("room_version", [V10, V10_WITH_V2_1])
def test_conflicted_topic_is_authorised(room_version) -> None:
    events = _room(room_version)
    base = _base_state()
    resolved = resolve_state(room_version, [base, {**base, TOPIC_KEY: "$tb"}], events.get)
    assert resolved == {**base, TOPIC_KEY: "$tb"}


@pytest.mark.parametrize("room_version", [V10, V10_WITH_V2_1])
def test_rejected_auth_events_are_not_used(room_version) -> None:
    """Bob's join was rejected: his topic cannot use it as its auth event (nor as state)."""
    events = _room(room_version, member_bob_rejected=True)
    base = _base_state()
    resolved = resolve_state(room_version, [base, {**base, TOPIC_KEY: "$tb"}], events.get)
    assert resolved == base


@pytest.mark.parametrize("room_version", [V10, V10_WITH_V2_1])
def test_rejected_conflicted_event_is_checked_again(room_version) -> None:
    """Spec "Rejected events": an event rejected against the state at it is handled as usual,
    so if the resolved state allows it, it is applied."""
    events = _room(room_version)
    tb = events["$tb"]
    events["$tb"] = Event(tb.pdu, tb.room_version, tb.event_id, rejected_reason="soft")
    base = _base_state()
    resolved = resolve_state(room_version, [base, {**base, TOPIC_KEY: "$tb"}], events.get)
    assert resolved[TOPIC_KEY] == "$tb"


def test_no_state_sets() -> None:
    assert resolve_state(V10, [], lambda _: None) == {}


def test_state_res_v1_flag_dispatches_to_v1() -> None:
    # One fork, two algorithms: for v2 a key missing from one state set is conflicted, so
    # bob's topic is checked and dropped (bob is not in the state); for v1 such a key is not a
    # conflict and the topic is kept unchecked.
    v1_like = dataclasses.replace(V10, identifier="10+v1", state_res=StateResAlgorithm.V1)
    events = _room(V10, member_bob_rejected=True)
    base = {k: v for k, v in _base_state().items() if v != "$mb"}
    assert TOPIC_KEY not in resolve_state(V10, [base, {**base, TOPIC_KEY: "$tb"}], events.get)
    assert resolve_state(v1_like, [base, {**base, TOPIC_KEY: "$tb"}], events.get)[TOPIC_KEY] == "$tb"
