"""Room version 1 rooms shared with a real Synapse. Synapse creates one, our user joins over
federation, both sides talk, and state changes (topics, made in turn and then at the same
time on each side) converge on both servers, which both resolve forks by state resolution v1.
Then the other way: a Synapse user joins a v1 room created here.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tests.federation.local_server import LocalServer
from tests.federation.synapse_peer import SynapsePeer
# The module-scoped alice (ours) and bob (Synapse's) of the other room interop tests.
from tests.federation.test_synapse_rooms import User, _q, alice, bob, eventually  # noqa: F401,F811

pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=1, reruns_delay=2)]


def _state(user: User, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any] | None:
    response = user.get(f"/rooms/{_q(room_id)}/state/{event_type}/{_q(state_key)}")
    return response.json() if response.status_code == 200 else None


def _topic(user: User, room_id: str) -> str | None:
    content = _state(user, room_id, "m.room.topic")
    return content.get("topic") if content else None


def _set_topic(user: User, room_id: str, topic: str) -> httpx.Response:
    return user.put(f"/rooms/{_q(room_id)}/state/m.room.topic/", {"topic": topic})


def test_a_synapse_v1_room_is_joined_used_and_converges(
    synapse: SynapsePeer, alice: User, bob: User
) -> None:
    created = bob.post("/createRoom", {"preset": "public_chat", "room_version": "1", "name": "v1"})
    assert created.status_code == 200, created.text
    room_id = created.json()["room_id"]
    assert (_state(bob, room_id, "m.room.create") or {}).get("room_version") == "1"

    joined = alice.post(f"/join/{_q(room_id)}", server_name=synapse.server_name)
    assert joined.status_code == 200, joined.text
    eventually(lambda: (_state(bob, room_id, "m.room.member", alice.user_id) or {}).get("membership") == "join",
               "alice's join seen by Synapse")
    create = _state(alice, room_id, "m.room.create") or {}
    assert create.get("room_version") == "1" and create.get("creator") == bob.user_id
    assert (_state(alice, room_id, "m.room.name") or {}).get("name") == "v1"

    assert alice.send(room_id, "hello from matrix-edge (v1)").status_code == 200
    bob.wait_for_message(room_id, "hello from matrix-edge (v1)")
    assert bob.send(room_id, "hello from synapse (v1)").status_code == 200
    alice.wait_for_message(room_id, "hello from synapse (v1)")

    # Alice may not set the topic until bob gives her power (checked on our side by the v1 rules).
    assert _set_topic(alice, room_id, "too early").status_code == 403
    levels = _state(bob, room_id, "m.room.power_levels")
    assert levels is not None
    levels["users"][alice.user_id] = 50
    assert bob.put(f"/rooms/{_q(room_id)}/state/m.room.power_levels/", levels).status_code == 200
    eventually(lambda: ((_state(alice, room_id, "m.room.power_levels") or {}).get("users") or {}).get(alice.user_id)
               == 50, "alice's new power level on our side")

    # Topic changes in turn, one from each side.
    assert _set_topic(alice, room_id, "set on matrix-edge").status_code == 200
    eventually(lambda: _topic(bob, room_id) == "set on matrix-edge", "our topic on Synapse")
    assert _set_topic(bob, room_id, "set on synapse").status_code == 200
    eventually(lambda: _topic(alice, room_id) == "set on synapse", "Synapse's topic on our side")

    # Topic changes at the same time: a fork that each server resolves with state res v1.
    answers: dict[str, int] = {}

    def put(user: User, text: str) -> None:
        answers[text] = _set_topic(user, room_id, text).status_code

    threads = [threading.Thread(target=put, args=(alice, "concurrent edge")),
               threading.Thread(target=put, args=(bob, "concurrent synapse"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == {"concurrent edge": 200, "concurrent synapse": 200}
    # A message from each side merges the forward extremities each server holds.
    assert alice.send(room_id, "merge from edge").status_code == 200
    assert bob.send(room_id, "merge from synapse").status_code == 200
    alice.wait_for_message(room_id, "merge from synapse")
    bob.wait_for_message(room_id, "merge from edge")

    def converged() -> str | None:
        ours, theirs = _topic(alice, room_id), _topic(bob, room_id)
        return ours if ours == theirs and ours in ("concurrent edge", "concurrent synapse") else None

    eventually(converged, "the same topic on both servers")
    members = alice.get(f"/rooms/{_q(room_id)}/joined_members").json()["joined"]
    assert set(members) == {alice.user_id, bob.user_id}


def test_a_synapse_user_joins_our_v1_room(ours: LocalServer, alice: User, bob: User) -> None:
    created = alice.post("/createRoom", {"preset": "public_chat", "room_version": "1", "name": "ours v1"})
    assert created.status_code == 200, created.text
    room_id = created.json()["room_id"]
    joined = bob.post(f"/join/{_q(room_id)}", server_name=ours.server_name)
    assert joined.status_code == 200, joined.text
    assert (_state(bob, room_id, "m.room.create") or {}).get("room_version") == "1"
    eventually(lambda: (_state(alice, room_id, "m.room.member", bob.user_id) or {}).get("membership") == "join",
               "bob's join on our side")
    assert bob.send(room_id, "synapse in our v1 room").status_code == 200
    alice.wait_for_message(room_id, "synapse in our v1 room")
    assert alice.send(room_id, "welcome to v1").status_code == 200
    bob.wait_for_message(room_id, "welcome to v1")
    assert _set_topic(alice, room_id, "our v1 topic").status_code == 200
    eventually(lambda: _topic(bob, room_id) == "our v1 topic", "our topic on Synapse")
