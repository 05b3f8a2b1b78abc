"""``matrix-edge spec resolve-state`` on room version 1 input (state resolution v1)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from local_runtime.spec_commands import main

ROOM = "!r:example.com"
ALICE, BOB = "@alice:example.com", "@bob:example.com"


def _pdu(event_id: str, type_: str, sender: str, content: dict[str, Any], depth: int,
         auth: list[str], state_key: str = "") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room_id": ROOM,
        "type": type_,
        "state_key": state_key,
        "sender": sender,
        "content": content,
        "depth": depth,
        "origin_server_ts": 1000 + depth,
        "prev_events": [],
        "auth_events": [[a, {"sha256": "aGFzaA"}] for a in auth],  # v1/v2 [id, hashes] pairs
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {},
    }


EVENTS = [
    _pdu("$create:example.com", "m.room.create", ALICE, {"creator": ALICE, "room_version": "1"}, 1, []),
    _pdu("$alice:example.com", "m.room.member", ALICE, {"membership": "join"}, 2,
         ["$create:example.com"], ALICE),
    _pdu("$pl:example.com", "m.room.power_levels", ALICE, {"users": {ALICE: 100}}, 3,
         ["$create:example.com", "$alice:example.com"]),
    _pdu("$jr:example.com", "m.room.join_rules", ALICE, {"join_rule": "public"}, 4,
         ["$create:example.com", "$alice:example.com", "$pl:example.com"]),
    _pdu("$bob:example.com", "m.room.member", BOB, {"membership": "join"}, 5,
         ["$create:example.com", "$pl:example.com", "$jr:example.com"], BOB),
    # Conflicting power levels: alice's (depth 6) sorts first; bob's later one (depth 7) needs
    # level 100 in R and is refused.
    _pdu("$pl_alice:example.com", "m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 50}}, 6,
         ["$create:example.com", "$alice:example.com", "$pl:example.com"]),
    _pdu("$pl_bob:example.com", "m.room.power_levels", BOB, {"users": {ALICE: 100, BOB: 100}}, 7,
         ["$create:example.com", "$bob:example.com", "$pl:example.com"]),
    # Conflicting topics: bob's is the deeper, and allowed with alice's power levels (bob at 50).
    _pdu("$topic_alice:example.com", "m.room.topic", ALICE, {"topic": "a"}, 8,
         ["$create:example.com", "$alice:example.com", "$pl:example.com"]),
    _pdu("$topic_bob:example.com", "m.room.topic", BOB, {"topic": "b"}, 9,
         ["$create:example.com", "$bob:example.com", "$pl_bob:example.com"]),
    # Only in one state set: no conflict in v1.
    _pdu("$name:example.com", "m.room.name", ALICE, {"name": "n"}, 10,
         ["$create:example.com", "$alice:example.com", "$pl:example.com"]),
]
BASE = ["$create:example.com", "$alice:example.com", "$jr:example.com", "$bob:example.com"]


def run(request: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["resolve-state"], io.StringIO(json.dumps(request)), out, err)
    return status, out.getvalue(), err.getvalue()


def test_resolve_state_room_version_1() -> None:
    request = {
        "room_version": "1",
        "state_sets": [
            [*BASE, "$pl_alice:example.com", "$topic_alice:example.com", "$name:example.com"],
            [*BASE, "$pl_bob:example.com", "$topic_bob:example.com"],
        ],
        "events": EVENTS,
    }
    status, out, err = run(request)
    assert (status, err) == (0, "")
    assert json.loads(out) == {
        "state": [
            ["m.room.create", "", "$create:example.com"],
            ["m.room.join_rules", "", "$jr:example.com"],
            ["m.room.member", ALICE, "$alice:example.com"],
            ["m.room.member", BOB, "$bob:example.com"],
            ["m.room.name", "", "$name:example.com"],
            ["m.room.power_levels", "", "$pl_alice:example.com"],
            ["m.room.topic", "", "$topic_bob:example.com"],
        ]
    }


def test_resolve_state_room_version_1_refuses_a_depth_that_is_not_an_integer() -> None:
    events = [dict(EVENTS[0], depth="1")]
    status, out, err = run({"room_version": "1", "state_sets": [], "events": events})
    assert status == 2 and out == ""
    assert "depth that is not an integer" in err


@pytest.mark.parametrize("version", ["1", "2"])
def test_version_1_and_2_agree_without_conflicts(version: str) -> None:
    request = {"room_version": version, "state_sets": [BASE, BASE], "events": EVENTS}
    status, out, _ = run(request)
    assert status == 0
    assert len(json.loads(out)["state"]) == len(BASE)
