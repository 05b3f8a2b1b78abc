"""``/timestamp_to_event`` over local history, with history visibility applied."""

from __future__ import annotations

import time
from typing import Any

from tests.workers.client_extras.conftest import V1, V3, ExtrasHarness


def ts_of(hs: ExtrasHarness, headers: dict[str, str], room: str, event_id: str) -> int:
    return int(hs.get(headers, f"{V3}/rooms/{room}/event/{event_id}").json()["origin_server_ts"])


def lookup(hs: ExtrasHarness, headers: dict[str, str], room: str, **params: Any) -> Any:
    return hs.get(headers, f"{V1}/rooms/{room}/timestamp_to_event", **params)


def spaced_messages(hs: ExtrasHarness, headers: dict[str, str], room: str, n: int, prefix: str) -> list[str]:
    out = []
    for i in range(n):
        time.sleep(0.005)
        out.append(hs.message(headers, room, f"{prefix}{i}", f"{prefix}{i}"))
    return out


def test_closest_event_each_way(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    room = hs.create_room(alice)
    m = spaced_messages(hs, alice, room, 3, "m")
    t = [ts_of(hs, alice, room, e) for e in m]
    assert t[0] < t[1] < t[2]
    found = lookup(hs, alice, room, ts=t[1], dir="f").json()
    assert found == {"event_id": m[1], "origin_server_ts": t[1]}
    assert lookup(hs, alice, room, ts=t[1] + 1, dir="f").json()["event_id"] == m[2]
    assert lookup(hs, alice, room, ts=t[1] + 1, dir="b").json()["event_id"] == m[1]
    assert lookup(hs, alice, room, ts=t[2] + 10_000, dir="b").json()["event_id"] == m[2]
    late = lookup(hs, alice, room, ts=t[2] + 10_000, dir="f")
    assert late.status_code == 404 and late.json()["errcode"] == "M_NOT_FOUND"


def test_history_visibility_applies(hs: ExtrasHarness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = hs.create_room(alice, preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
    ])
    before = spaced_messages(hs, alice, room, 2, "before")
    time.sleep(0.005)
    hs.join(bob, room)
    after = spaced_messages(hs, alice, room, 1, "after")
    first_ts = ts_of(hs, alice, room, before[0])
    # alice sees the first message; bob, who joined later with `joined` visibility, starts at his join
    assert lookup(hs, alice, room, ts=first_ts, dir="f").json()["event_id"] == before[0]
    bobs = lookup(hs, bob, room, ts=first_ts, dir="f").json()
    assert bobs["event_id"] not in before
    # backwards from the second message: the messages are hidden; the visibility change is
    # not (it is judged by the state before it too, when history was still `shared`)
    backwards = lookup(hs, bob, room, ts=ts_of(hs, alice, room, before[1]), dir="b").json()
    assert backwards["event_id"] not in before
    shown = hs.get(alice, f"{V3}/rooms/{room}/event/{backwards['event_id']}").json()
    assert shown["type"] == "m.room.history_visibility"
    # after leaving, what follows the leave is out of reach
    hs.leave(bob, room)
    later = spaced_messages(hs, alice, room, 1, "later")
    later_ts = ts_of(hs, alice, room, later[0])
    assert lookup(hs, alice, room, ts=later_ts, dir="f").json()["event_id"] == later[0]
    assert lookup(hs, bob, room, ts=later_ts, dir="f").status_code == 404
    assert lookup(hs, bob, room, ts=ts_of(hs, alice, room, after[0]), dir="f").json()["event_id"] == after[0]


def test_refusals(hs: ExtrasHarness) -> None:
    alice, eve = hs.user("alice"), hs.user("eve")
    room = hs.create_room(alice)
    assert lookup(hs, alice, room, dir="f").json()["errcode"] == "M_MISSING_PARAM"
    assert lookup(hs, alice, room, ts="1").json()["errcode"] == "M_MISSING_PARAM"
    assert lookup(hs, alice, room, ts="soon", dir="f").json()["errcode"] == "M_INVALID_PARAM"
    assert lookup(hs, alice, room, ts="1", dir="up").json()["errcode"] == "M_INVALID_PARAM"
    outsider = lookup(hs, eve, room, ts="1", dir="f")
    assert outsider.status_code == 403 and outsider.json()["errcode"] == "M_FORBIDDEN"
    assert lookup(hs, {}, room, ts="1", dir="f").status_code == 401
