"""ruma-state-res resolution fixtures (data in tests/spec_data/stateres-fixtures/ruma).

Each batch test is resolved three ways, as ruma does, and all must match the snapshot:
iteratively along prev_events, batched by file, and atomically (one state map per PDU).
"""

from __future__ import annotations

import json

import pytest

from durable.state_res import resolve_state

from .fixtures import RUMA, StateMap, events_from_pdus, load_pdus, resolve_iteratively, snapshot_state

BATCH_TESTS = {
    "minimal_private_chat": ["bootstrap-private-chat.json"],
    "minimal_public_chat": ["bootstrap-public-chat.json"],
    "origin_server_ts_tiebreak": ["bootstrap-private-chat.json", "origin-server-ts-tiebreak.json"],
    "ban_vs_power_levels": [
        "bootstrap-public-chat.json",
        "ban-vs-power-levels-alice.json",
        "ban-vs-power-levels-bob.json",
    ],
    "topic_vs_power_levels": [
        "bootstrap-public-chat.json",
        "topic-vs-power-levels-alice.json",
        "topic-vs-power-levels-bob.json",
    ],
    "power_levels_admin_vs_mod": [
        "bootstrap-public-chat.json",
        "power-levels-admin-vs-mod-alice.json",
        "power-levels-admin-vs-mod-bob.json",
    ],
    "topic_vs_ban": [
        "bootstrap-public-chat.json",
        "topic-vs-ban-common.json",
        "topic-vs-ban-alice.json",
        "topic-vs-ban-bob.json",
    ],
    "join_rules_vs_join": [
        "bootstrap-public-chat.json",
        "join-rules-vs-join-common.json",
        "join-rules-vs-join-alice.json",
        "join-rules-vs-join-ella.json",
    ],
    "concurrent_joins": [
        "bootstrap-public-chat.json",
        "concurrent-joins-charlie.json",
        "concurrent-joins-ella.json",
    ],
}

MSC4297_TESTS = {
    "msc4297_problem_a_state_res_v2_0": ("MSC4297-problem-A", "pdus-v11.json", ["state-bob.json", "state-charlie.json"]),
    "msc4297_problem_a_state_res_v2_1": ("MSC4297-problem-A", "pdus-v12.json", ["state-bob.json", "state-charlie.json"]),
    "msc4297_problem_b_state_res_v2_0": ("MSC4297-problem-B", "pdus-v11.json", ["state-eve.json", "state-zara.json"]),
    "msc4297_problem_b_state_res_v2_1": ("MSC4297-problem-B", "pdus-v12.json", ["state-eve.json", "state-zara.json"]),
}


def _files(name: str) -> list[list[dict]]:
    return [load_pdus(RUMA / "fixtures" / f) for f in BATCH_TESTS[name]]


@pytest.mark.parametrize("name", BATCH_TESTS)
def test_iteratively(name: str) -> None:
    files = _files(name)
    room_version, events = events_from_pdus(p for f in files for p in f)
    order = [p["event_id"] for f in files for p in f]
    assert resolve_iteratively(room_version, events, order) == snapshot_state(name)


@pytest.mark.parametrize("name", BATCH_TESTS)
def test_batched_by_file(name: str) -> None:
    files = _files(name)
    room_version, events = events_from_pdus(p for f in files for p in f)
    state: StateMap = {}
    for pdus in files:
        singles = [{events[p["event_id"]].key: p["event_id"]} for p in pdus]
        state = resolve_state(room_version, [state, *singles], events.get)
    assert state == snapshot_state(name)


@pytest.mark.parametrize("name", BATCH_TESTS)
def test_atomically(name: str) -> None:
    files = _files(name)
    room_version, events = events_from_pdus(p for f in files for p in f)
    singles = [{e.key: event_id} for event_id, e in events.items()]
    assert resolve_state(room_version, singles, events.get) == snapshot_state(name)


def msc4297_case(name: str) -> tuple:
    folder, pdus_file, state_files = MSC4297_TESTS[name]
    room_version, events = events_from_pdus(load_pdus(RUMA / "fixtures" / folder / pdus_file))
    state_sets = [
        {events[e].key: e for e in json.loads((RUMA / "fixtures" / folder / f).read_text())}
        for f in state_files
    ]
    return room_version, events, state_sets


@pytest.mark.parametrize("name", MSC4297_TESTS)
def test_msc4297(name: str) -> None:
    room_version, events, state_sets = msc4297_case(name)
    expected_algorithm = "v2.1" if name.endswith("v2_1") else "v2"
    assert room_version.state_res.value == expected_algorithm
    assert resolve_state(room_version, state_sets, events.get) == snapshot_state(name)


def test_msc4297_v2_0_and_v2_1_disagree() -> None:
    """The point of MSC4297: the same forks resolve differently under v2.0 and v2.1."""
    for problem in ("a", "b"):
        old = snapshot_state(f"msc4297_problem_{problem}_state_res_v2_0")
        new = snapshot_state(f"msc4297_problem_{problem}_state_res_v2_1")
        assert old != new
