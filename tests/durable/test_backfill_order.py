"""The order of a backfilled batch: prev_events first, then depth; negative positions."""

from __future__ import annotations

from durable.backfill_order import backfill_positions, topological_order
from durable.events.event import Event
from durable.room_versions import get_room_version

V11 = get_room_version("11")


def _event(event_id: str, prevs: list[str], depth: int, ts: int = 0) -> Event:
    pdu = {"room_id": "!r:x", "sender": "@a:x", "type": "m.room.message", "content": {},
           "prev_events": prevs, "auth_events": [], "depth": depth, "origin_server_ts": ts,
           "hashes": {"sha256": "x"}, "signatures": {}}
    return Event(pdu, V11, event_id)


def test_prev_events_come_first_even_with_lying_depths() -> None:
    a = _event("$a", [], 5)
    b = _event("$b", ["$a"], 1)  # a depth lower than its prev's
    c = _event("$c", ["$b", "$unknown"], 2)
    assert [e.event_id for e in topological_order([c, b, a])] == ["$a", "$b", "$c"]


def test_ties_by_depth_then_timestamp_then_id() -> None:
    root = _event("$root", [], 1)
    events = [root, _event("$z", ["$root"], 2, ts=1), _event("$y", ["$root"], 2, ts=1),
              _event("$x", ["$root"], 2, ts=0), _event("$deep", ["$root"], 3)]
    assert [e.event_id for e in topological_order(events)] == ["$root", "$x", "$y", "$z", "$deep"]


def test_cycles_are_left_out() -> None:
    events = [_event("$a", ["$b"], 1), _event("$b", ["$a"], 2), _event("$c", [], 1)]
    assert [e.event_id for e in topological_order(events)] == ["$c"]


def test_positions_are_negative_and_below_everything() -> None:
    assert backfill_positions(3, None) == [-3, -2, -1]
    assert backfill_positions(3, 1) == [-3, -2, -1]
    assert backfill_positions(2, -3) == [-5, -4]
    assert backfill_positions(0, -3) == []
