"""History visibility for servers (spec: client-server "Room History Visibility", "Server
behaviour", applied to the requesting server as Synapse's filter_events_for_server does):
/event, /backfill and /get_missing_events serve an event whole only if a user of the
requesting server could see it, and in its redacted form otherwise."""

from __future__ import annotations

import json
from typing import Any

import pytest

from durable.events import event_from_pdu, redact
from durable.room_versions import get_room_version
from tests.federation.conftest import FedApp
from tests.federation.e2ee_support import LocalUser, federation_request, peer_joins, q
from tests.federation.forged_rooms import forge_in_our_room, room_summary, send_transaction
from tests.federation.peers import ForgedPeer

V1 = "/_matrix/federation/v1"
MALLORY = "@mallory:remote.test"
BOB = "@bob:other.test"


class Room:
    def __init__(self, fed: FedApp) -> None:
        self.fed = fed
        self.alice = LocalUser(fed, "alice")
        self.room_id = self.alice.create_room()
        self.version = get_room_version(room_summary(fed, self.room_id)["room_version"])
        self.txn = 0

    def visibility(self, value: str) -> str:
        path = f"/rooms/{q(self.room_id)}/state/m.room.history_visibility"
        return str(self.alice.ok("PUT", path, {"history_visibility": value})["event_id"])

    def say(self, body: str) -> str:
        self.txn += 1
        path = f"/rooms/{q(self.room_id)}/send/m.room.message/t{self.txn}"
        return str(self.alice.ok("PUT", path, {"msgtype": "m.text", "body": body})["event_id"])

    def stored_pdu(self, event_id: str) -> dict[str, Any]:
        row = self.fed.call(self.fed.env.DB.prepare("SELECT json FROM events WHERE event_id = ?").bind(event_id).first)
        return dict(json.loads(row["json"]))

    def by_id(self, pdus: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {event_from_pdu(p, self.version).event_id: p for p in pdus}

    def served_whole(self, pdus: dict[str, dict[str, Any]], event_id: str) -> bool:
        """True if served as stored, False if served redacted (anything else fails)."""
        stored = self.stored_pdu(event_id)
        if pdus[event_id] == stored:
            return True
        assert pdus[event_id] == redact(stored, self.version)
        return False


def get_event(fed: FedApp, peer: ForgedPeer, room: Room, event_id: str) -> dict[str, Any]:
    response = federation_request(fed, peer, "GET", f"{V1}/event/{q(event_id)}")
    assert response.status_code == 200, response.text
    [pdu] = response.json()["pdus"]
    return dict(pdu)


def backfill(fed: FedApp, peer: ForgedPeer, room: Room, latest: str) -> dict[str, dict[str, Any]]:
    response = federation_request(fed, peer, "GET", f"{V1}/backfill/{q(room.room_id)}",
                                  query={"v": [latest], "limit": "100"})
    assert response.status_code == 200, response.text
    return room.by_id(response.json()["pdus"])


@pytest.fixture
def other(fed: FedApp) -> ForgedPeer:
    return fed.network.add(ForgedPeer("other.test"))


def test_joined_visibility_hides_what_came_before_the_servers_join(fed: FedApp, peer: ForgedPeer) -> None:
    room = Room(fed)
    shared_before = room.say("said while shared")
    to_joined = room.visibility("joined")
    secret = room.say("said before mallory joined")
    peer_joins(fed, peer, room.room_id, MALLORY)
    after = room.say("said after mallory joined")

    assert get_event(fed, peer, room, after) == room.stored_pdu(after)
    redacted = get_event(fed, peer, room, secret)
    assert redacted == redact(room.stored_pdu(secret), room.version)
    assert redacted["content"] == {} and redacted["signatures"] and redacted["hashes"]

    pdus = backfill(fed, peer, room, after)
    create = next(e for e, p in pdus.items() if p["type"] == "m.room.create")
    join = next(e for e, p in pdus.items() if p.get("state_key") == MALLORY)
    whole = {e for e in pdus if room.served_whole(pdus, e)}
    # Before the change to "joined" history was shared, and mallory's server joined later;
    # the change itself is visible (the state before it allows); then nothing until the join.
    assert {shared_before, to_joined, create, after, join} <= whole
    assert secret not in whole

    # get_missing_events walks the same events.
    response = federation_request(fed, peer, "POST", f"{V1}/get_missing_events/{q(room.room_id)}",
                                  {"earliest_events": [], "latest_events": [after], "limit": 10})
    assert response.status_code == 200, response.text
    missing = room.by_id(response.json()["events"])
    assert secret in missing and not room.served_whole(missing, secret)
    assert room.served_whole(missing, join)


def test_shared_visibility_shows_earlier_history_to_a_server_that_joined(fed: FedApp, peer: ForgedPeer) -> None:
    room = Room(fed)
    before = room.say("said before mallory joined")
    peer_joins(fed, peer, room.room_id, MALLORY)
    assert get_event(fed, peer, room, before) == room.stored_pdu(before)


def test_invited_visibility_counts_from_the_invite(
    fed: FedApp, peer: ForgedPeer, other: ForgedPeer
) -> None:
    room = Room(fed)
    room.alice.ok("PUT", f"/rooms/{q(room.room_id)}/state/m.room.power_levels",
                  {**_power_levels(room), "invite": 0})
    room.visibility("invited")
    peer_joins(fed, peer, room.room_id, MALLORY)
    before_invite = room.say("before bob was invited")
    invite = forge_in_our_room(fed, peer, room.room_id, MALLORY, "m.room.member", {"membership": "invite"}, BOB)
    sent = send_transaction(fed, peer, [dict(invite.pdu)])
    assert sent.json()["pdus"][invite.event_id] == {}, sent.text
    while_invited = room.say("while bob was invited")
    peer_joins(fed, other, room.room_id, BOB)
    latest = room.say("after bob joined")

    pdus = backfill(fed, other, room, latest)
    assert room.served_whole(pdus, while_invited)
    assert room.served_whole(pdus, latest)
    assert not room.served_whole(pdus, before_invite)
    # The invite is bob's own member event: the state after it lets other.test see it.
    assert room.served_whole(pdus, invite.event_id)


def test_a_server_not_in_a_world_readable_room_sees_only_world_readable_history(
    fed: FedApp, other: ForgedPeer
) -> None:
    room = Room(fed)
    shared = room.say("shared, but other.test never joined")
    room.visibility("joined")
    joined_only = room.say("for members only")
    to_public = room.visibility("world_readable")
    public = room.say("for everyone")

    pdus = backfill(fed, other, room, public)
    assert room.served_whole(pdus, public) and room.served_whole(pdus, to_public)
    assert not room.served_whole(pdus, joined_only)
    assert not room.served_whole(pdus, shared)


def test_an_event_redacted_here_is_served_redacted(fed: FedApp, peer: ForgedPeer) -> None:
    room = Room(fed)
    peer_joins(fed, peer, room.room_id, MALLORY)
    said = room.say("regretted")
    room.alice.ok("PUT", f"/rooms/{q(room.room_id)}/redact/{q(said)}/r1", {})
    assert get_event(fed, peer, room, said) == redact(room.stored_pdu(said), room.version)


def _power_levels(room: Room) -> dict[str, Any]:
    return dict(room.alice.ok("GET", f"/rooms/{q(room.room_id)}/state/m.room.power_levels"))
