"""State resolution v1 agrees with Synapse's implementation (installed from PyPI as the
federation test peer): v1 rooms must converge on our servers and on Synapse's.

The table cases, and 40 random forks of each table room (2-4 state maps that take each key's
events, an unknown event ID, or nothing), are resolved by ``resolve_state`` here and by
Synapse's ``synapse.state.v1`` in a separate process (``synapse_v1_oracle.py``). Rejected
events are withheld from Synapse, whose event store does not hand them to state resolution.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from durable.events.event import Event, StateKey
from durable.room_versions import V1
from durable.state_res import resolve_state

from .test_v1 import BASE_EVENTS, CASES, ROOM, _state

pytest.importorskip("synapse")

ORACLE = Path(__file__).with_name("synapse_v1_oracle.py")
Fork = list[dict[StateKey, str]]


def _random_forks(events: dict[str, Event], rng: random.Random, count: int) -> list[Fork]:
    by_key: dict[StateKey, list[str]] = {}
    for event_id, event in events.items():
        by_key.setdefault(event.key, []).append(event_id)
    forks = []
    for _ in range(count):
        fork = []
        for _ in range(rng.randint(2, 4)):
            state = {}
            for key in sorted(by_key):
                choice = rng.choice([None, "$unknown", *sorted(by_key[key])])
                if choice is not None:
                    state[key] = choice
            fork.append(state)
        forks.append(fork)
    return forks


def _synapse(rooms: list[tuple[dict[str, Event], list[Fork]]]) -> list[list[dict[StateKey, str]]]:
    request = {
        "room_id": ROOM,
        "rooms": [
            {
                "events": [e.pdu for e in events.values() if e.rejected_reason is None],
                "forks": [[[[t, k, e] for (t, k), e in state.items()] for state in fork] for fork in forks],
            }
            for events, forks in rooms
        ],
    }
    done = subprocess.run(
        [sys.executable, str(ORACLE)], input=json.dumps(request), capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [[{(t, k): e for t, k, e in answer} for answer in room] for room in json.loads(done.stdout)]


def test_v1_agrees_with_synapse() -> None:
    rng = random.Random(20240501)
    rooms = []
    for case in CASES:
        events = {e.event_id: e for e in [*BASE_EVENTS, *case.events]}
        forks = [[_state(case.base, overlay) for overlay in case.sets], *_random_forks(events, rng, 40)]
        rooms.append((events, forks))
    theirs = _synapse(rooms)
    checked = 0
    for case, (events, forks), answers in zip(CASES, rooms, theirs, strict=True):
        for fork, expected in zip(forks, answers, strict=True):
            assert resolve_state(V1, fork, events.get) == expected, (case.name, fork)
            checked += 1
    assert checked == len(CASES) * 41
