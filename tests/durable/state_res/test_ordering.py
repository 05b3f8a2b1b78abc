"""Reverse topological power ordering and mainline ordering, from small tables."""

from __future__ import annotations

import math

import pytest

from durable.state_res.ordering import (
    mainline,
    mainline_sort,
    power_sort_key,
    reverse_topological_power_sort,
)

# event_id: (auth parents, power level, origin_server_ts)
Table = dict[str, tuple[list[str], float, int]]


def _power_sort(table: Table, subset: list[str] | None = None) -> list[str]:
    return reverse_topological_power_sort(
        subset if subset is not None else list(table),
        lambda e: table[e][0],
        lambda e: power_sort_key(table[e][1], table[e][2], e),
    )


def test_parents_come_first_even_with_lower_power() -> None:
    table: Table = {"$low": ([], 0, 5), "$high": (["$low"], 100, 1)}
    assert _power_sort(table) == ["$low", "$high"]


@pytest.mark.parametrize(
    "table, expected",
    [
        # higher power first
        ({"$a": ([], 50, 1), "$b": ([], 100, 2)}, ["$b", "$a"]),
        # same power: smaller origin_server_ts first
        ({"$a": ([], 50, 2), "$b": ([], 50, 1)}, ["$b", "$a"]),
        # same power and ts: smaller event_id first
        ({"$b": ([], 50, 1), "$a": ([], 50, 1)}, ["$a", "$b"]),
        # infinite (v12 creator) above any integer
        ({"$a": ([], 2**53, 0), "$b": ([], math.inf, 9)}, ["$b", "$a"]),
    ],
)
def test_tie_breaks(table: Table, expected: list[str]) -> None:
    assert _power_sort(table) == expected


def test_kahn_picks_smallest_candidate_at_each_step() -> None:
    #   R <- X(power 10) <- Y(power 100)
    #   R <- Z(power 50)
    # After R, candidates X and Z: Z wins (50 > 10). Y only becomes a candidate after X.
    table: Table = {
        "$R": ([], 0, 0),
        "$X": (["$R"], 10, 1),
        "$Y": (["$X"], 100, 2),
        "$Z": (["$R"], 50, 3),
    }
    assert _power_sort(table) == ["$R", "$Z", "$X", "$Y"]


def test_edges_to_events_outside_the_set_are_ignored() -> None:
    table: Table = {"$out": ([], 0, 0), "$a": (["$out"], 0, 2), "$b": ([], 0, 1)}
    assert _power_sort(table, ["$a", "$b"]) == ["$b", "$a"]


def test_events_on_a_cycle_are_dropped() -> None:
    table: Table = {"$a": (["$b"], 0, 0), "$b": (["$a"], 0, 0), "$c": ([], 0, 0)}
    assert _power_sort(table) == ["$c"]


# --- mainline ------------------------------------------------------------------------------
# event_id: (power levels auth parent, origin_server_ts)
MAINLINE_TABLE: dict[str, tuple[str | None, int]] = {
    "$P0": (None, 0),  # the first power levels event
    "$P1": ("$P0", 10),
    "$P2": ("$P1", 20),  # the resolved power levels: mainline [P2, P1, P0]
    "$Q1": ("$P1", 15),  # a forked power levels event, not on the mainline
    "$t_p2": ("$P2", 30),  # cites P2: position 0
    "$t_p1": ("$P1", 25),  # position 1
    "$t_q1": ("$Q1", 5),  # walks Q1 -> P1: position 1
    "$t_p0": ("$P0", 40),  # position 2
    "$t_none": (None, 50),  # cites no power levels: position infinite
}


def _pl_parent(event_id: str) -> str | None:
    return MAINLINE_TABLE[event_id][0]


def _ts(event_id: str) -> int:
    return MAINLINE_TABLE[event_id][1]


def test_mainline_walk() -> None:
    assert mainline("$P2", _pl_parent) == ["$P2", "$P1", "$P0"]
    assert mainline(None, _pl_parent) == []


def test_mainline_sort_orders_by_position_then_ts() -> None:
    events = ["$t_p2", "$t_p1", "$t_q1", "$t_p0", "$t_none"]
    ordered = mainline_sort(events, "$P2", _pl_parent, _ts)
    # infinite first, then position 2, then position 1 (q1 at ts 5 before p1 at ts 25), then 0.
    assert ordered == ["$t_none", "$t_p0", "$t_q1", "$t_p1", "$t_p2"]


def test_mainline_beats_timestamps() -> None:
    # A later event citing an older power level sorts before an earlier one citing a newer one.
    table = {"$P0": (None, 0), "$P1": ("$P0", 1), "$late_old": ("$P0", 99), "$early_new": ("$P1", 2)}
    ordered = mainline_sort(["$early_new", "$late_old"], "$P1", lambda e: table[e][0], lambda e: table[e][1])
    assert ordered == ["$late_old", "$early_new"]


def test_mainline_sort_without_power_levels_uses_ts_then_id() -> None:
    ordered = mainline_sort(["$t_p2", "$t_p1", "$t_none"], None, _pl_parent, _ts)
    assert ordered == ["$t_p1", "$t_p2", "$t_none"]
    table = {"$b": (None, 1), "$a": (None, 1)}
    assert mainline_sort(["$b", "$a"], None, lambda e: table[e][0], lambda e: table[e][1]) == ["$a", "$b"]
