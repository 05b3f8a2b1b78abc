"""Load the state-res test data in tests/spec_data (scenarios and ruma fixtures)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from durable.events.event import Event, StateKey
from durable.room_versions import V10, RoomVersion, StateResAlgorithm, get_room_version
from durable.state_res import resolve_state

SPEC_DATA = Path(__file__).resolve().parents[2] / "spec_data"
SCENARIOS_FILE = SPEC_DATA / "stateres-scenarios.json"
RUMA = SPEC_DATA / "stateres-fixtures" / "ruma"

# The Synapse-derived scenarios use the auth rules of room versions 2-10 and were reproduced
# under both algorithms; v2.1 is paired with the v10 rules here (a test-only room version).
V10_WITH_V2_1 = dataclasses.replace(V10, identifier="10+v2.1", state_res=StateResAlgorithm.V2_1)

StateMap = dict[StateKey, str]


# --- scenarios ----------------------------------------------------------------------------
def load_scenarios() -> dict[str, Any]:
    return json.loads(SCENARIOS_FILE.read_text())


def scenario_events(scenario: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Event]:
    events: dict[str, Event] = {}
    for row in scenario["events"]:
        pdu: dict[str, Any] = {
            "room_id": "!test:example.com",
            "sender": row["sender"],
            "type": row["type"],
            "content": row["content"],
            "origin_server_ts": row["ts"],
            "prev_events": list(row["prev"]),
            "auth_events": list(row["auth"]),
            "depth": 1,
        }
        if row["state_key"] is not None:
            pdu["state_key"] = row["state_key"]
        events[row["id"]] = Event(pdu, room_version, row["id"])
    return events


# --- ruma fixtures ------------------------------------------------------------------------
def load_pdus(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())


def events_from_pdus(pdus: Iterable[Mapping[str, Any]]) -> tuple[RoomVersion, dict[str, Event]]:
    """Events keyed by ID; the room version comes from the first create event's content."""
    pdus = list(pdus)
    create = next(p for p in pdus if p["type"] == "m.room.create")
    room_version = get_room_version(create["content"].get("room_version", "1"))
    events = {}
    for pdu in pdus:
        body = {k: v for k, v in pdu.items() if k != "event_id"}
        events[pdu["event_id"]] = Event(body, room_version, pdu["event_id"])
    return room_version, events


def snapshot_state(name: str) -> StateMap:
    text = (RUMA / "snapshots" / f"{name}@resolved_state.snap").read_text()
    body = text.split("---", 2)[2]
    return {(row["type"], row["state_key"]): row["event_id"] for row in json.loads(body)}


def resolve_iteratively(room_version: RoomVersion, events: Mapping[str, Event], order: list[str]) -> StateMap:
    """ruma's method 1: walk prev_events forward; the state before each PDU is the resolution
    of the states after its prev_events, the state after it the resolution of
    {before, before + PDU}; the end state resolves the states after every leaf."""
    after: dict[str, StateMap] = {}
    referenced: set[str] = set()
    for event_id in _topological(events, order):
        event = events[event_id]
        prev = [p for p in event.prev_event_ids if p in after]
        referenced.update(prev)
        if not prev:
            before: StateMap = {}
        elif len(prev) == 1:
            before = after[prev[0]]
        else:
            before = resolve_state(room_version, [after[p] for p in prev], events.get)
        with_event = dict(before)
        with_event[event.key] = event_id
        after[event_id] = resolve_state(room_version, [before, with_event], events.get)
    leaves = [e for e in order if e not in referenced]
    return resolve_state(room_version, [after[leaf] for leaf in leaves], events.get)


def _topological(events: Mapping[str, Event], order: list[str]) -> list[str]:
    done: set[str] = set()
    result: list[str] = []
    position = {e: i for i, e in enumerate(order)}
    while len(result) < len(order):
        for event_id in sorted(set(order) - done, key=position.__getitem__):
            if all(p in done or p not in position for p in events[event_id].prev_event_ids):
                done.add(event_id)
                result.append(event_id)
                break
        else:
            raise AssertionError("prev_events cycle in fixture")
    return result
