"""Conflicted state subgraph (rooms v12 "Conflicted state subgraph")."""

from __future__ import annotations

from durable.state_res.auth_chain import AuthGraph
from durable.state_res.subgraph import conflicted_state_subgraph

from .tables import graph

#  C <- M1 <- M2 <- M3 <- M4        and a side branch S1 <- S2 from M1
EDGES = {
    "C": [],
    "M1": ["C"],
    "M2": ["M1"],
    "M3": ["M2"],
    "M4": ["M3"],
    "S1": ["M1"],
    "S2": ["S1"],
}


def _subgraph(conflicted: set[str], edges: dict[str, list[str]] = EDGES) -> set[str]:
    return conflicted_state_subgraph(conflicted, AuthGraph(graph(edges).get))


def test_path_between_two_conflicted_events() -> None:
    assert _subgraph({"M4", "M1"}) == {"M4", "M3", "M2", "M1"}


def test_no_path_between_branches() -> None:
    # M3 and S2 share ancestors but neither reaches the other.
    assert _subgraph({"M3", "S2"}) == set()


def test_paths_through_common_ancestor_only_when_it_is_conflicted() -> None:
    assert _subgraph({"M3", "S2", "M1"}) == {"M3", "M2", "M1", "S2", "S1"}


def test_single_conflicted_event() -> None:
    assert _subgraph({"M2"}) == set()


def test_diamond() -> None:
    edges = {"R": [], "L": ["R"], "Q": ["R"], "T": ["L", "Q"], "U": ["R"]}
    assert _subgraph({"T", "R"}, edges) == {"T", "L", "Q", "R"}
    assert _subgraph({"T", "U"}, edges) == set()
