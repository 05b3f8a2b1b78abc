"""Properties of resolve_state: independent of the order of the state sets and of dict
order; the cached auth-chain path agrees with the walking one; unconflicted state survives."""

from __future__ import annotations

import random
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.events.event import Event, StateKey
from durable.room_versions import V10
from durable.state_res import resolve_state
from durable.state_res.auth_chain import AuthGraph
from durable.state_res.conflicts import split_state

from .fixtures import RUMA, V10_WITH_V2_1, events_from_pdus, load_pdus, load_scenarios, scenario_events
from .test_resolve_ruma import BATCH_TESTS, MSC4297_TESTS, msc4297_case

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _room(files: list[str]) -> tuple:
    pdus = [p for f in files for p in load_pdus(RUMA / "fixtures" / f)]
    return events_from_pdus(pdus)


ROOMS = {name: _room(files) for name, files in BATCH_TESTS.items()}
ROOMS.update({name: msc4297_case(name)[:2] for name in MSC4297_TESTS})
for _name, _scenario in load_scenarios()["scenarios"].items():
    for _version in (V10, V10_WITH_V2_1):
        _events = scenario_events(_scenario, _version)
        ROOMS[f"{_name}@{_version.identifier}"] = (
            _version,
            {event_id: e for event_id, e in _events.items() if e.is_state()},
        )


@st.composite
def forks(draw: st.DrawFn) -> tuple:
    """A room from the fixtures and 2-4 state maps, each taking, for each key, one of the
    room's events with that key or leaving the key out."""
    name = draw(st.sampled_from(sorted(ROOMS)))
    room_version, events = ROOMS[name]
    by_key: dict[StateKey, list[str]] = defaultdict(list)
    for event_id, event in events.items():
        by_key[event.key].append(event_id)
    count = draw(st.integers(min_value=2, max_value=4))
    state_sets = []
    for _ in range(count):
        state: dict[StateKey, str] = {}
        for key in sorted(by_key):
            choice = draw(st.sampled_from([None, *sorted(by_key[key])]))
            if choice is not None:
                state[key] = choice
        state_sets.append(state)
    return room_version, events, state_sets


def _shuffled(state_sets: list[dict], rng: random.Random) -> list[dict]:
    shuffled = []
    for state in state_sets:
        items = list(state.items())
        rng.shuffle(items)
        shuffled.append(dict(items))
    rng.shuffle(shuffled)
    return shuffled


@SETTINGS
@given(forks(), st.randoms(use_true_random=False))
def test_order_of_state_sets_and_keys_does_not_matter(fork: tuple, rng: random.Random) -> None:
    room_version, events, state_sets = fork
    expected = resolve_state(room_version, state_sets, events.get)
    assert resolve_state(room_version, _shuffled(state_sets, rng), events.get) == expected


@SETTINGS
@given(forks())
def test_cached_auth_chains_give_the_same_result(fork: tuple) -> None:
    room_version, events, state_sets = fork
    walker = AuthGraph(events.get)
    chains = {event_id: walker.chain_of(event_id) for event_id in events}
    walked = resolve_state(room_version, state_sets, events.get)
    assert resolve_state(room_version, state_sets, events.get, chains.__getitem__) == walked


@SETTINGS
@given(forks())
def test_unconflicted_state_survives_and_values_come_from_the_room(fork: tuple) -> None:
    room_version, events, state_sets = fork
    resolved = resolve_state(room_version, state_sets, events.get)
    unconflicted = split_state(state_sets).unconflicted
    assert {k: resolved[k] for k in unconflicted} == unconflicted
    assert all(events[v].key == k for k, v in resolved.items())


@SETTINGS
@given(forks())
def test_resolving_one_state_or_identical_states_changes_nothing(fork: tuple) -> None:
    room_version, events, state_sets = fork
    state = state_sets[0]
    assert resolve_state(room_version, [state], events.get) == state
    assert resolve_state(room_version, [state, dict(state)], events.get) == state


def test_event_ids_not_in_the_room_are_ignored_but_unconflicted_ones_kept() -> None:
    room_version, events = ROOMS["minimal_public_chat"]
    known: dict[str, Event] = dict(events)
    create_key = ("m.room.create", "")
    create_id = next(e for e, ev in events.items() if ev.key == create_key)
    topic = ("m.room.topic", "")
    sets = [{create_key: create_id, topic: "$unknown"}, {create_key: create_id}]
    assert resolve_state(room_version, sets, known.get) == {create_key: create_id}
    sets = [{create_key: create_id, topic: "$unknown"}, {create_key: create_id, topic: "$unknown"}]
    assert resolve_state(room_version, sets, known.get) == {create_key: create_id, topic: "$unknown"}
