"""The room actor's receipt checks for PDUs from another server (a forged peer made here)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from signedjson.key import generate_signing_key, get_verify_key

from durable.auth import auth_types_for_event
from durable.events import build_event
from durable.room_versions import get_room_version
from tests.workers.rooms.conftest import SERVER, Harness, hs  # noqa: F401  (fixture)

REMOTE = "remote.test"
BOB = f"@bob:{REMOTE}"
REMOTE_KEY = generate_signing_key("r1")


class FakeKeys:
    """Our key plus the forged peer's; anything else is unknown."""

    def __init__(self, env: Any) -> None:
        self.env = env

    async def get_verify_key(self, server: str, key_id: str, at_ts: int | None) -> Any:
        if server == REMOTE and key_id == "ed25519:r1":
            return get_verify_key(REMOTE_KEY)
        if server == SERVER and key_id == f"ed25519:{self.env.signing_key.version}":
            return get_verify_key(self.env.signing_key)
        raise LookupError(f"unknown key {server} {key_id}")


class Peer:
    def __init__(self, hs: Harness, room_id: str) -> None:
        self.hs = hs
        self.room_id = room_id
        self.stub = hs.env.ROOMS.get(hs.env.ROOMS.id_from_name(room_id))
        hs.env.server_keys = FakeKeys(hs.env)

    def event(self, type: str, content: dict[str, Any], state_key: str | None = None,
              prev: list[str] | None = None, sender: str = BOB, key: Any = REMOTE_KEY,
              ts: int = 1_700_000_000_000, auth_state: dict[Any, str] | None = None) -> dict[str, Any]:
        summary = self.hs.summary(self.room_id)
        version = get_room_version(summary["room_version"])
        state = {(t, k): e for t, k, e in summary["state"]}
        state.update(auth_state or {})
        auth = [state[k] for k in auth_types_for_event(version, type, state_key, sender, content) if k in state]
        prev = summary["extremities"] if prev is None else prev
        depth = summary["depth"] + 1
        event = build_event(
            version, room_id=self.room_id, sender=sender, type=type, content=content, state_key=state_key,
            prev_event_ids=prev, auth_event_ids=auth, depth=depth, origin_server_ts=ts,
            server_name=sender.split(":", 1)[1], signing_key=key,
        )
        return dict(event.pdu)

    def receive(self, pdu: dict[str, Any]) -> dict[str, Any]:
        return self.hs.call(self.stub.receive_pdu, REMOTE, pdu)

    def row(self, event_id: str) -> dict[str, Any] | None:
        async def fetch() -> Any:
            return await self.hs.env.DB.prepare("SELECT * FROM events WHERE event_id = ?").bind(event_id).first()
        return self.hs.call(fetch)


@pytest.fixture(params=["10", "12"])
def peer(hs: Harness, request: pytest.FixtureRequest) -> Peer:
    alice = hs.user("alice")
    room_id = hs.create_room(alice, preset="public_chat", room_version=request.param)
    return Peer(hs, room_id)


def join(peer: Peer) -> str:
    result = peer.receive(peer.event("m.room.member", {"membership": "join"}, BOB))
    assert result["outcome"] == "accepted", result
    return result["event_id"]


def test_remote_join_and_message_are_accepted(peer: Peer) -> None:
    join_id = join(peer)
    assert peer.hs.state_content(peer.room_id, "m.room.member", BOB)["membership"] == "join"
    result = peer.receive(peer.event("m.room.message", {"msgtype": "m.text", "body": "hi"}))
    assert result["outcome"] == "accepted"
    assert peer.hs.summary(peer.room_id)["extremities"] == [result["event_id"]]
    assert peer.receive(peer.event("m.room.message", {"body": "x"}, prev=[join_id]))["outcome"] == "accepted"
    assert len(peer.hs.summary(peer.room_id)["extremities"]) == 2  # a fork
    # Our next event merges the fork.
    alice = {"Authorization": "Bearer tok_alice"}
    merged = peer.hs.send(alice, peer.room_id, {"body": "merge"}, "m1").json()["event_id"]
    assert peer.hs.summary(peer.room_id)["extremities"] == [merged]
    assert len(json.loads(peer.row(merged)["json"])["prev_events"]) == 2
    assert peer.receive(peer.event("m.room.message", {"body": "dup"}, prev=[join_id], ts=5))["outcome"] == "accepted"


def test_bad_signature_is_dropped(peer: Peer) -> None:
    before = peer.hs.summary(peer.room_id)
    forged = peer.event("m.room.member", {"membership": "join"}, BOB, key=generate_signing_key("r1"))
    result = peer.receive(forged)
    assert result["outcome"] == "dropped" and "signature" in result["reason"]
    unsigned = peer.event("m.room.member", {"membership": "join"}, BOB)
    unsigned["signatures"] = {}
    assert peer.receive(unsigned)["outcome"] == "dropped"
    malformed = peer.event("m.room.member", {"membership": "join"}, BOB)
    malformed["depth"] = "deep"
    assert peer.receive(malformed)["outcome"] == "dropped"
    assert peer.hs.summary(peer.room_id) == before


def test_bad_content_hash_is_redacted_then_processed(peer: Peer) -> None:
    join(peer)
    pdu = peer.event("m.room.message", {"msgtype": "m.text", "body": "original"})
    pdu["content"] = {"msgtype": "m.text", "body": "tampered"}  # not covered by the signature
    result = peer.receive(pdu)
    assert result["outcome"] == "accepted"
    assert json.loads(peer.row(result["event_id"])["json"])["content"] == {}


def test_event_failing_auth_is_rejected_and_changes_nothing(peer: Peer) -> None:
    join(peer)
    before = peer.hs.summary(peer.room_id)
    result = peer.receive(peer.event("m.room.power_levels", {"users": {BOB: 100}}, ""))
    assert result["outcome"] == "rejected"
    assert peer.row(result["event_id"])["rejected_reason"]
    assert peer.hs.summary(peer.room_id) == before
    # A rejected event is never used as an auth event.
    citing = peer.event("m.room.message", {"body": "x"},
                        auth_state={("m.room.power_levels", ""): result["event_id"]})
    assert peer.receive(citing)["outcome"] == "rejected"
    # A user of that server who never joined cannot send either.
    outsider = peer.event("m.room.message", {"body": "x"}, sender=f"@eve:{REMOTE}")
    assert peer.receive(outsider)["outcome"] == "rejected"


def test_event_allowed_before_a_ban_is_soft_failed_after_it(peer: Peer) -> None:
    join_id = join(peer)
    alice = {"Authorization": "Bearer tok_alice"}
    assert peer.hs.post(alice, f"/rooms/{peer.room_id}/ban", {"user_id": BOB}).status_code == 200
    before = peer.hs.summary(peer.room_id)
    # Bob's server cites the state it saw before the ban: valid there, not now.
    sneaky = peer.event("m.room.message", {"body": "sneaky"}, prev=[join_id],
                        auth_state={("m.room.member", BOB): join_id})
    result = peer.receive(sneaky)
    assert result["outcome"] == "soft_failed"
    assert peer.row(result["event_id"])["soft_failed"] == 1
    assert peer.hs.summary(peer.room_id) == before


def test_unknown_prev_events_are_reported_missing(peer: Peer) -> None:
    join(peer)
    result = peer.receive(peer.event("m.room.message", {"body": "x"}, prev=["$unknown"]))
    assert result["outcome"] == "missing" and result["prev_events"] == ["$unknown"]
    assert peer.row(result["event_id"]) is None


def test_event_for_another_room_is_dropped(peer: Peer) -> None:
    pdu = peer.event("m.room.member", {"membership": "join"}, BOB)
    pdu["room_id"] = "!other:" + REMOTE
    assert peer.receive(pdu)["outcome"] == "dropped"
