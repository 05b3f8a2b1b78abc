"""The five Synapse-derived scenarios of stateres-scenarios.json, under v2.0 and v2.1."""

from __future__ import annotations

from typing import Any

import pytest

from durable.errors import AuthError
from durable.events.event import Event
from durable.room_versions import V10, RoomVersion
from durable.state_res import iterative, resolve_state
from durable.state_res.resolve import ResolutionTrace, _resolve

from .fixtures import V10_WITH_V2_1, StateMap, load_scenarios, scenario_events

SCENARIOS = load_scenarios()["scenarios"]
ALGORITHMS = {"v2_0": V10, "v2_1": V10_WITH_V2_1}
CASES = [(name, algo) for name in SCENARIOS for algo in ALGORITHMS]


def _states_at(events: dict[str, Event], room_version: RoomVersion) -> dict[str, StateMap]:
    """The state after each event, walking the DAG parents first (every branch event is
    accepted in its own branch; only END merges two branches)."""
    after: dict[str, StateMap] = {}
    pending = list(events)
    while pending:
        for event_id in pending:
            event = events[event_id]
            if all(p in after for p in event.prev_event_ids):
                break
        else:
            raise AssertionError("cycle")
        pending.remove(event_id)
        prev_states = [after[p] for p in event.prev_event_ids]
        if not prev_states:
            state: StateMap = {}
        elif len(prev_states) == 1:
            state = dict(prev_states[0])
        else:
            state = resolve_state(room_version, prev_states, events.get)
        if event.is_state():
            state[event.key] = event_id
        after[event_id] = state
    return after


def _branch_states(scenario: dict[str, Any], after: dict[str, StateMap]) -> list[StateMap]:
    end_prev = next(e for e in scenario["events"] if e["id"] == "END")["prev"]
    return [after[p] for p in end_prev]


@pytest.mark.parametrize("name, algorithm", CASES)
def test_expected_state_at_end(name: str, algorithm: str) -> None:
    scenario = SCENARIOS[name]
    room_version = ALGORITHMS[algorithm]
    events = scenario_events(scenario, room_version)
    after = _states_at(events, room_version)
    start, end = after["START"], after["END"]
    changed = {v for k, v in end.items() if start.get(k) != v}
    assert changed == set(scenario["expected_changed_state"])
    assert set(start) <= set(end)


@pytest.mark.parametrize("name, algorithm", CASES)
def test_resolution_steps_match_trace(name: str, algorithm: str) -> None:
    scenario = SCENARIOS[name]
    room_version = ALGORITHMS[algorithm]
    expected = scenario[f"resolution_at_END_{algorithm}"]
    events = scenario_events(scenario, room_version)
    states = _branch_states(scenario, _states_at(events, room_version))
    trace = ResolutionTrace()
    _resolve(room_version, states, events.get, None, trace)
    assert trace.conflicted == set(expected["conflicted"])
    assert trace.auth_difference == set(expected["auth_diff"]) - trace.conflicted
    # The trace lists only what the subgraph adds to the conflicted set and auth difference.
    added = trace.subgraph - trace.conflicted - trace.auth_difference
    assert added == set(expected["subgraph"])
    assert trace.power_sorted == expected["power_sorted"]
    assert trace.others_sorted == expected["others_sorted"]


# The trace's one disagreement with our auth rules. In v2.1 the checks start from an empty
# state, and Alice's first join IMA (prev_events [CREATE], auth_events [CREATE]) is checked
# against the create event alone; the trace rejects it, but the member rule "the only previous
# event is the m.room.create event and the state_key is the creator: allow" admits it. The
# resolved state is the same either way (MA replaces IMA).
KNOWN_TRACE_DIFFERENCES = {("ban_vs_pl", "v2_1", "IMA"): True}


@pytest.mark.parametrize("name, algorithm", CASES)
def test_auth_check_outcomes_match_trace(
    name: str, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = SCENARIOS[name]
    room_version = ALGORITHMS[algorithm]
    events = scenario_events(scenario, room_version)
    states = _branch_states(scenario, _states_at(events, room_version))
    outcomes: list[tuple[str, bool]] = []
    real_check = iterative.check_auth_rules

    def recording_check(event: Event, auth_state: Any) -> None:
        try:
            real_check(event, auth_state)
        except AuthError:
            outcomes.append((event.event_id, False))
            raise
        outcomes.append((event.event_id, True))

    monkeypatch.setattr(iterative, "check_auth_rules", recording_check)
    resolve_state(room_version, states, events.get)
    expected = [
        (event_id, KNOWN_TRACE_DIFFERENCES.get((name, algorithm, event_id), outcome == "accepted"))
        for event_id, outcome in scenario[f"resolution_at_END_{algorithm}"]["checks"]
    ]
    assert outcomes == expected
