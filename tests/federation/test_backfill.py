"""Backfill (spec: server-server "Backfilling and retrieving missing events"): a local user
paging back past our join to a room hosted by a forged peer gets the older history, fetched
with /backfill, checked like any PDU (signatures, hashes, auth) and served in order before
the join, never as new events in an incremental /sync."""

from __future__ import annotations

import urllib.parse
from typing import Any, Iterator

import httpx
import pytest

from tests.federation.conftest import OURS, FedApp
from tests.federation.forged_rooms import RemoteRoom, send_transaction
from tests.federation.peers import ForgedPeer, make_signing_key

V3 = "/_matrix/client/v3"
CAROL = "@carol:remote.test"
ALICE = f"@alice:{OURS}"
HISTORY = 70  # more than one /backfill answer (50): the oldest answer needs /state


class Joined:
    def __init__(self, fed: FedApp, room: RemoteRoom, headers: dict[str, str]) -> None:
        self.fed = fed
        self.room = room
        self.headers = headers
        self.requests: list[str] = []

    def get(self, path: str, **params: Any) -> Any:
        response = self.fed.client.get(V3 + path, params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def page_back(self, limit: int = 10) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        params: dict[str, Any] = {"dir": "b", "limit": limit}
        for _ in range(40):
            page = self.get(f"/rooms/{urllib.parse.quote(self.room.room_id)}/messages", **params)
            events += page["chunk"]
            if "end" not in page:
                break
            params["from"] = page["end"]
        return events


def _serve(joined: Joined) -> None:
    """The peer's side: /backfill, /state and /event_auth from the forged room."""
    room, network = joined.room, joined.fed.network
    base = "/_matrix/federation/v1"

    def backfill(request: httpx.Request) -> httpx.Response:
        joined.requests.append("backfill")
        pdus = room.backfill(request.url.params.get_list("v"), int(request.url.params["limit"]))
        return httpx.Response(200, json={"origin": "remote.test", "origin_server_ts": 0, "pdus": pdus})

    def state(request: httpx.Request) -> httpx.Response:
        joined.requests.append("state")
        ids = sorted(room.state_before(request.url.params["event_id"]).values())
        return httpx.Response(200, json={"pdus": [room.pdu(e) for e in ids], "auth_chain": room.auth_chain(ids)})

    network.handlers[("remote.test", f"{base}/backfill/{room.room_id}")] = backfill
    network.handlers[("remote.test", f"{base}/state/{room.room_id}")] = state
    for event in room.events:
        network.handlers[("remote.test", f"{base}/event_auth/{room.room_id}/{event.event_id}")] = (
            lambda request, e=event.event_id: httpx.Response(200, json={"auth_chain": room.auth_chain([e])})
        )


def _join(fed: FedApp, peer: ForgedPeer, room: RemoteRoom) -> Joined:
    """Alice (ours) joins the peer's room: the room actor gets the send_join answer."""
    body = {"username": "alice", "password": "pw pw pw 1", "auth": {"type": "m.login.dummy"}}
    token = fed.client.post(f"{V3}/register", json=body).json()["access_token"]
    state_ids = sorted(room.state.values())
    join = room.add(ALICE, "m.room.member", {"membership": "join"}, ALICE, key=fed.env.signing_key, server=OURS)
    stub = fed.env.ROOMS.get(fed.env.ROOMS.id_from_name(room.room_id))
    fed.call(stub.join_remote_room, room.version.identifier, dict(join.pdu),
             [room.pdu(e) for e in state_ids], room.auth_chain([*state_ids, join.event_id]), "remote.test")
    joined = Joined(fed, room, {"Authorization": f"Bearer {token}"})
    _serve(joined)
    return joined


@pytest.fixture
def history(fed: FedApp, peer: ForgedPeer) -> Iterator[Joined]:
    room = RemoteRoom(peer, CAROL)
    for i in range(HISTORY):
        room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": f"old {i}"})
    yield _join(fed, peer, room)


def _bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"].get("body", "<redacted>") for e in events if e["type"] == "m.room.message"]


def test_paging_back_fetches_history_in_order(history: Joined) -> None:
    events = history.page_back()
    assert _bodies(events) == [f"old {i}" for i in reversed(range(HISTORY))]
    # Then the room's first events, the create event last.
    assert events[0]["type"] == "m.room.member" and events[0]["state_key"] == ALICE
    assert [e["type"] for e in events[-5:]] == [
        "m.room.history_visibility", "m.room.join_rules", "m.room.power_levels", "m.room.member", "m.room.create"]
    assert history.requests.count("backfill") >= 2 and "state" in history.requests
    # A second walk is served locally: the history now reaches the create event.
    count = len(history.requests)
    assert _bodies(history.page_back(limit=25)) == _bodies(events)
    assert len(history.requests) == count


def test_backfilled_events_are_not_new_to_incremental_sync(history: Joined) -> None:
    since = history.get("/sync")["next_batch"]
    history.page_back()
    after = history.get("/sync", since=since, timeout=0)
    timeline = after.get("rooms", {}).get("join", {}).get(history.room.room_id, {}).get("timeline", {})
    assert timeline.get("events", []) == []


def test_backfilled_state_is_served_with_the_state_at_each_event(history: Joined) -> None:
    events = history.page_back()
    oldest_message = next(e for e in reversed(events) if e["type"] == "m.room.message")
    context = history.get(
        f"/rooms/{urllib.parse.quote(history.room.room_id)}/context/{urllib.parse.quote(oldest_message['event_id'])}",
        limit=4,
    )
    # The state at that point: Carol joined, Alice not yet.
    members = {e["state_key"]: e["content"]["membership"] for e in context["state"] if e["type"] == "m.room.member"}
    assert members.get(CAROL) == "join"
    assert [e["type"] for e in context["events_before"]] == ["m.room.history_visibility", "m.room.join_rules"]


def test_bad_events_in_backfill_are_dropped_rejected_or_redacted(fed: FedApp, peer: ForgedPeer) -> None:
    room = RemoteRoom(peer, CAROL)
    room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": "fine 1"})
    intruder = room.add("@intruder:remote.test", "m.room.message", {"msgtype": "m.text", "body": "not a member"})
    tampered = room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": "signed text"})
    badly_signed = room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": "bad signature"},
                            key=make_signing_key(peer.signing_key.version))
    room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": "fine 2"})
    joined = _join(fed, peer, room)
    original_pdu = room.pdu
    room.pdu = lambda event_id: (  # type: ignore[method-assign]
        {**original_pdu(event_id), "content": {"msgtype": "m.text", "body": "changed text"}}
        if event_id == tampered.event_id else original_pdu(event_id))
    events = joined.page_back()
    assert _bodies(events) == ["fine 2", "<redacted>", "fine 1"]
    rows = {e: fed.call(fed.env.DB.prepare("SELECT rejected_reason FROM events WHERE event_id = ?").bind(e).first)
            for e in (intruder.event_id, badly_signed.event_id)}
    assert rows[badly_signed.event_id] is None  # dropped: not stored
    assert rows[intruder.event_id] is not None and rows[intruder.event_id]["rejected_reason"]


def _redaction(room: RemoteRoom, sender: str, target: str, **signer: Any) -> Any:
    content: dict[str, Any] = {"reason": "oops"}
    if room.version.updated_redaction_rules:
        content["redacts"] = target
        return room.add(sender, "m.room.redaction", content, **signer)
    raise AssertionError("the forged rooms here are v12")


def test_backfilled_redactions_apply_in_either_order(fed: FedApp, peer: ForgedPeer) -> None:
    """A redaction backfilled after its target (same answer) and before it (an earlier
    answer: history comes newest first) both redact it; one by a server without the power
    to redact another server's event does not."""
    other = fed.network.add(ForgedPeer("other.test"))
    dave = "@dave:other.test"
    room = RemoteRoom(peer, CAROL)
    room.add(dave, "m.room.member", {"membership": "join"}, dave, key=other.signing_key, server="other.test")
    early = room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": "early secret"})
    for i in range(55):  # the redaction of `early` is in the first /backfill answer, `early` in the second
        room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": f"filler {i}"})
    by_dave = room.add(dave, "m.room.message", {"msgtype": "m.text", "body": "dave's"}, key=other.signing_key,
                       server="other.test")
    carols = room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": "carol's"})
    _redaction(room, CAROL, early.event_id)
    _redaction(room, CAROL, by_dave.event_id)  # carol (the creator) has the power
    _redaction(room, dave, carols.event_id, key=other.signing_key, server="other.test")  # dave has not
    joined = _join(fed, peer, room)
    bodies = _bodies(joined.page_back())
    assert "early secret" not in bodies and "dave's" not in bodies
    assert "carol's" in bodies
    assert bodies.count("<redacted>") == 2
    assert joined.requests.count("backfill") >= 2


def test_live_redaction_of_unheld_history_applies_when_backfilled(fed: FedApp, peer: ForgedPeer) -> None:
    room = RemoteRoom(peer, CAROL)
    old = room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": "said before alice came"})
    joined = _join(fed, peer, room)
    redaction = _redaction(room, CAROL, old.event_id)
    sent = send_transaction(fed, peer, [room.pdu(redaction.event_id)])
    assert sent.status_code == 200 and sent.json()["pdus"][redaction.event_id] == {}, sent.text
    assert _bodies(joined.page_back()) == ["<redacted>"]


def test_forward_messages_without_from_start_at_backfilled_history(history: Joined) -> None:
    history.page_back()
    room = urllib.parse.quote(history.room.room_id)
    page = history.get(f"/rooms/{room}/messages", dir="f", limit=6)
    assert [e["type"] for e in page["chunk"]] == [
        "m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules",
        "m.room.history_visibility", "m.room.message"]
    assert _bodies(history.get(f"/rooms/{room}/messages", dir="f", limit=3, **{"from": page["end"]})["chunk"]) == [
        "old 1", "old 2", "old 3"]


def test_no_more_requests_once_the_start_is_reached(history: Joined) -> None:
    history.page_back()
    count = len(history.requests)
    progress = history.fed.call(
        history.fed.env.DB.prepare("SELECT reached_start FROM backfill_progress WHERE room_id = ?")
        .bind(history.room.room_id).first)
    assert progress == {"reached_start": 1}
    history.page_back(limit=100)
    assert len(history.requests) == count


def test_backing_off_after_an_empty_answer(fed: FedApp, peer: ForgedPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer with nothing to give is not asked again at every /messages that reaches the
    top; after the back-off it is, and the back-off doubles."""
    room = RemoteRoom(peer, CAROL)
    room.add(CAROL, "m.room.message", {"msgtype": "m.text", "body": "unreachable history"})
    joined = _join(fed, peer, room)
    base = "/_matrix/federation/v1"

    def empty(request: httpx.Request) -> httpx.Response:
        joined.requests.append("backfill")
        return httpx.Response(200, json={"origin": "remote.test", "origin_server_ts": 0, "pdus": []})

    fed.network.handlers[("remote.test", f"{base}/backfill/{room.room_id}")] = empty
    clock = [1_000_000_000_000]
    monkeypatch.setattr("workers.federation.backfill.now_ms", lambda: clock[0])
    joined.page_back()
    joined.page_back()
    assert joined.requests.count("backfill") == 1
    clock[0] += 61_000  # past the first back-off (a minute)
    joined.page_back()
    joined.page_back()
    assert joined.requests.count("backfill") == 2
    clock[0] += 61_000  # the second back-off is two minutes
    joined.page_back()
    assert joined.requests.count("backfill") == 2
    clock[0] += 60_000
    # Once the peer has the history again, it is fetched and the back-off is over.
    _serve(joined)
    assert _bodies(joined.page_back()) == ["unreachable history"]
    assert joined.requests.count("backfill") == 3
