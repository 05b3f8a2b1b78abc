"""Auth chains and auth difference (rooms v2 "Auth chain", "Auth difference")."""

from __future__ import annotations

import pytest

from durable.state_res.auth_chain import AuthGraph, auth_difference

from .tables import graph

#   C <- A1 <- A2 <- A3         (arrows point from an event to its auth events)
#        ^      ^
#        B1     B2 <- B3
EDGES = {
    "C": [],
    "A1": ["C"],
    "A2": ["A1", "C"],
    "A3": ["A2"],
    "B1": ["A1"],
    "B2": ["A2", "B1"],
    "B3": ["B2"],
}
EVENTS = graph(EDGES)


def _chain_callable(events: dict) -> object:
    walker = AuthGraph(events.get)
    return lambda event_id: walker.chain_of(event_id)


@pytest.fixture(params=["walk", "cached"])
def auth_graph(request: pytest.FixtureRequest) -> AuthGraph:
    if request.param == "walk":
        return AuthGraph(EVENTS.get)
    return AuthGraph(EVENTS.get, _chain_callable(EVENTS))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event_id, chain",
    [("C", set()), ("A1", {"C"}), ("A3", {"A2", "A1", "C"}), ("B3", {"B2", "B1", "A2", "A1", "C"})],
)
def test_chain_of(auth_graph: AuthGraph, event_id: str, chain: set[str]) -> None:
    assert auth_graph.chain_of(event_id) == chain


def test_closure_includes_sources(auth_graph: AuthGraph) -> None:
    assert auth_graph.closure(["A2", "B1"]) == {"A2", "A1", "B1", "C"}


def test_missing_events_are_left_out() -> None:
    events = graph({"X": ["GONE", "C"], "C": []})
    auth_graph = AuthGraph(events.get)
    assert auth_graph.parents("X") == ("C",)
    assert auth_graph.chain_of("X") == {"C"}
    assert auth_graph.closure(["GONE", "X"]) == {"X", "C"}


def test_find_in_closure(auth_graph: AuthGraph) -> None:
    assert auth_graph.find_in_closure(["B3"], {"B1", "A3"}, set()) == {"B1"}
    assert auth_graph.find_in_closure(["B1", "A1"], {"B1", "A3"}, set()) == {"B1"}
    assert auth_graph.find_in_closure(["B3"], set(), set()) == set()


def test_find_in_closure_walk_stops_at_barrier() -> None:
    walker = AuthGraph(EVENTS.get)
    assert walker.find_in_closure(["B3"], {"A1"}, {"B2"}) == set()
    assert walker.find_in_closure(["B3"], {"A1"}, set()) == {"A1"}


K1, K2, K3 = ("k", "1"), ("k", "2"), ("k", "3")


def test_auth_difference_excludes_events_under_unconflicted_state(auth_graph: AuthGraph) -> None:
    # K1 is conflicted (A3 vs B1). A2 lies only in the chain of A3 and B1 only in its own
    # set, but the unconflicted event B3 (in both sets) has both in its chain, so they are
    # in every full auth chain.
    sets = [{K1: "A3", K2: "B3"}, {K1: "B1", K2: "B3"}]
    assert auth_difference(sets, {K2: "B3"}, [K1], auth_graph) == set()
    # Without B3, A2 would be in the difference.
    assert auth_difference([{K1: "A3"}, {K1: "B1"}], {}, [K1], auth_graph) == {"A2"}


def test_auth_difference_less_the_conflicted_set(auth_graph: AuthGraph) -> None:
    sets = [{K1: "A3"}, {K1: "B1"}]
    # C(S1) = {A3, A2, A1, C}, C(S2) = {B1, A1, C}: the difference is {A3, A2, B1}, of
    # which A3 and B1 are conflicted.
    assert auth_difference(sets, {}, [K1], auth_graph) == {"A2"}


def test_auth_difference_three_sets(auth_graph: AuthGraph) -> None:
    sets = [{K1: "A1"}, {K1: "A2"}, {K3: "B1"}]
    # C1 = {A1, C}; C2 = {A2, A1, C}; C3 = {B1, A1, C}: all of the difference is conflicted.
    assert auth_difference(sets, {}, [K1, K3], auth_graph) == set()
    sets = [{K1: "A3"}, {K1: "A1"}, {K3: "B2"}]
    # C1 = {A3, A2, A1, C}; C2 = {A1, C}; C3 = {B2, A2, B1, A1, C}
    assert auth_difference(sets, {}, [K1, K3], auth_graph) == {"A2", "B1"}


def test_auth_difference_without_difference(auth_graph: AuthGraph) -> None:
    sets = [{K1: "A3", K2: "A2"}, {K1: "A2", K2: "A3"}]
    assert auth_difference(sets, {}, [K1, K2], auth_graph) == set()
