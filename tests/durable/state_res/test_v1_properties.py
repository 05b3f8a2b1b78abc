"""Properties of state resolution v1: the result depends neither on the order of the state
sets nor on dict order; unconflicted keys survive; every value comes from the inputs."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.events.event import Event, StateKey
from durable.room_versions import V1
from durable.state_res import resolve_state
from durable.state_res.v1 import split_state_v1

from .test_v1 import BASE_EVENTS, CASES
from .test_properties import _shuffled

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# One room per table case: the base events and the case's own.
ROOMS: dict[str, dict[str, Event]] = {
    case.name: {e.event_id: e for e in [*BASE_EVENTS, *case.events]} for case in CASES
}


@st.composite
def forks(draw: st.DrawFn) -> tuple[dict[str, Event], list[dict[StateKey, str]]]:
    """A room and 2-4 state maps, each taking, for each key, one of the room's events with
    that key (or an unknown event ID), or leaving the key out."""
    events = ROOMS[draw(st.sampled_from(sorted(ROOMS)))]
    by_key: dict[StateKey, list[str]] = {}
    for event_id, event in events.items():
        by_key.setdefault(event.key, []).append(event_id)
    state_sets = []
    for _ in range(draw(st.integers(min_value=2, max_value=4))):
        state: dict[StateKey, str] = {}
        for key in sorted(by_key):
            choice = draw(st.sampled_from([None, "$unknown", *sorted(by_key[key])]))
            if choice is not None:
                state[key] = choice
        state_sets.append(state)
    return events, state_sets


@SETTINGS
@given(forks(), st.randoms(use_true_random=False))
def test_order_of_state_sets_and_keys_does_not_matter(fork: tuple, rng: random.Random) -> None:
    events, state_sets = fork
    expected = resolve_state(V1, state_sets, events.get)
    assert resolve_state(V1, _shuffled(state_sets, rng), events.get) == expected


@SETTINGS
@given(forks())
def test_unconflicted_state_survives_and_values_come_from_the_inputs(fork: tuple) -> None:
    events, state_sets = fork
    resolved = resolve_state(V1, state_sets, events.get)
    unconflicted, conflicted = split_state_v1(state_sets)
    assert {k: resolved[k] for k in unconflicted} == unconflicted
    assert set(resolved) <= set(unconflicted) | set(conflicted)
    for key, event_id in resolved.items():
        assert any(state.get(key) == event_id for state in state_sets)


@SETTINGS
@given(forks())
def test_resolving_one_state_or_identical_states_changes_nothing(fork: tuple) -> None:
    events, state_sets = fork
    state = state_sets[0]
    assert resolve_state(V1, [state], events.get) == state
    assert resolve_state(V1, [state, dict(state)], events.get) == state
