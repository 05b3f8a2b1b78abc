"""Power events and the sender power level used by the power ordering."""

from __future__ import annotations

import math

import pytest

from durable.room_versions import V10, V12
from durable.state_res.power import is_power_event, sender_power_level

from .tables import event

ALICE, BOB = "@alice:example.com", "@bob:example.com"


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(type="m.room.power_levels"), True),
        (dict(type="m.room.join_rules"), True),
        (dict(type="m.room.member", state_key=BOB, content={"membership": "ban"}), True),
        (dict(type="m.room.member", state_key=BOB, content={"membership": "leave"}), True),  # kick
        (dict(type="m.room.member", state_key=ALICE, content={"membership": "leave"}), False),
        (dict(type="m.room.member", state_key=BOB, content={"membership": "invite"}), False),
        (dict(type="m.room.member", state_key=ALICE, content={"membership": "join"}), False),
        (dict(type="m.room.topic"), False),
        (dict(type="m.room.power_levels", state_key="x"), False),
    ],
)
def test_is_power_event(kwargs: dict, expected: bool) -> None:
    assert is_power_event(event("$e", sender=ALICE, **kwargs)) is expected


def _v10_events() -> dict:
    events = [
        event("$create", type="m.room.create", content={"creator": ALICE}),
        event("$pl", ["$create"], type="m.room.power_levels", content={"users": {ALICE: 100, BOB: 42}}),
        event("$bob_with_pl", ["$create", "$pl"], sender=BOB),
        event("$bob_no_pl", ["$create"], sender=BOB),
        event("$alice_no_pl", ["$create"], sender=ALICE),
        event("$no_create", [], sender=ALICE),
    ]
    return {e.event_id: e for e in events}


@pytest.mark.parametrize(
    "event_id, level",
    [("$bob_with_pl", 42), ("$bob_no_pl", 0), ("$alice_no_pl", 100), ("$no_create", 0)],
)
def test_sender_power_level_from_own_auth_events(event_id: str, level: int) -> None:
    events = _v10_events()
    assert sender_power_level(events[event_id], V10, events.get) == level


def test_v12_creators_are_infinite_without_listing_the_create_event() -> None:
    create = event("$create", type="m.room.create", content={"additional_creators": [BOB]},
                   room_version=V12, room_id=None)
    pl = event("$pl", [], type="m.room.power_levels", content={"users": {"@carol:example.com": 99}},
               room_version=V12, room_id="!create")
    events = {e.event_id: e for e in (create, pl)}
    for sender, level in ((ALICE, math.inf), (BOB, math.inf), ("@carol:example.com", 99)):
        e = event("$x", ["$pl"], sender=sender, room_version=V12, room_id="!create")
        assert sender_power_level(e, V12, events.get) == level
