"""Unconflicted state map and conflicted state set (rooms v2 "Definitions")."""

from __future__ import annotations

from durable.state_res.conflicts import split_state

PL = ("m.room.power_levels", "")
JR = ("m.room.join_rules", "")
TOPIC = ("m.room.topic", "")


def test_same_value_everywhere_is_unconflicted() -> None:
    split = split_state([{PL: "$p", JR: "$j"}, {PL: "$p", JR: "$j2"}])
    assert split.unconflicted == {PL: "$p"}
    assert split.conflicted_by_key == {JR: frozenset({"$j", "$j2"})}
    assert split.conflicted_ids == {"$j", "$j2"}


def test_key_missing_from_one_set_is_conflicted() -> None:
    split = split_state([{PL: "$p"}, {PL: "$p", TOPIC: "$t"}])
    assert split.unconflicted == {PL: "$p"}
    assert split.conflicted_ids == {"$t"}
    split = split_state([{PL: "$p", TOPIC: "$t"}, {PL: "$p"}])
    assert split.conflicted_ids == {"$t"}


def test_same_event_under_a_key_in_some_sets_only() -> None:
    split = split_state([{TOPIC: "$t"}, {TOPIC: "$t"}, {}])
    assert split.unconflicted == {}
    assert split.conflicted_by_key == {TOPIC: frozenset({"$t"})}


def test_single_and_no_state_sets() -> None:
    assert split_state([{PL: "$p"}]).unconflicted == {PL: "$p"}
    assert split_state([]).unconflicted == {}
    assert split_state([]).conflicted_ids == set()
