"""Thread membership over relation hops (spec: "Receipts", "Threaded read receipts": an
event is in a thread when it is an ``m.thread`` reply or, following its relationships,
a parent is; at most 3 hops)."""

from __future__ import annotations

from typing import Any, Mapping

from tests.workers.push.test_unread import PER_THREAD, counts, group_room, in_thread, send, thread_counts
from tests.workers.sync.harness import Harness
from workers.push.threads import MAIN_THREAD, thread_of


def rel(rel_type: str, event_id: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": rel_type, "event_id": event_id}}


EVENTS: dict[str, Mapping[str, Any]] = {
    "$root": {"body": "root"},
    "$reply": rel("m.thread", "$root"),
    "$edit": rel("m.replace", "$reply"),
    "$ref_edit": rel("m.reference", "$edit"),
    "$ref_ref_edit": rel("m.reference", "$ref_edit"),
    "$on_root": rel("m.annotation", "$root"),
    "$reply_only": {"m.relates_to": {"m.in_reply_to": {"event_id": "$reply"}}},
    "$loop_a": rel("m.reference", "$loop_b"),
    "$loop_b": rel("m.reference", "$loop_a"),
}


async def load(event_id: str) -> Mapping[str, Any] | None:
    return EVENTS.get(event_id)


async def test_hops() -> None:
    assert await thread_of(EVENTS["$reply"], load) == "$root"  # 1 hop
    assert await thread_of(EVENTS["$edit"], load) == "$root"  # 2 hops
    assert await thread_of(EVENTS["$ref_edit"], load) == "$root"  # 3 hops
    assert await thread_of(EVENTS["$ref_ref_edit"], load) == MAIN_THREAD  # 4: beyond the limit
    assert await thread_of(EVENTS["$ref_ref_edit"], load, max_hops=4) == "$root"


async def test_main_timeline() -> None:
    assert await thread_of(EVENTS["$root"], load) == MAIN_THREAD
    assert await thread_of(EVENTS["$on_root"], load) == MAIN_THREAD  # related to a root
    assert await thread_of(EVENTS["$reply_only"], load) == MAIN_THREAD  # no rel_type
    assert await thread_of(rel("m.reference", "$unknown"), load) == MAIN_THREAD
    assert await thread_of(EVENTS["$loop_a"], load) == MAIN_THREAD
    assert await thread_of({"m.relates_to": {"rel_type": "m.thread", "event_id": 5}}, load) == MAIN_THREAD


def test_events_related_to_thread_replies_count_in_their_thread(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    root = bob.send(room, "root")
    reply = in_thread(bob, room, root, "reply")
    note = send(bob, room, {"msgtype": "m.text", "body": "about the reply", **rel("m.reference", reply)})
    send(bob, room, {"msgtype": "m.text", "body": "about that", **rel("m.reference", note)})
    body = alice.sync(filter=PER_THREAD)
    assert counts(body, room) == {"notification_count": 1, "highlight_count": 0}  # the root
    assert thread_counts(body, room) == {root: {"notification_count": 3, "highlight_count": 0}}
