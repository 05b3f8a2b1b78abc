"""Presence over federation that goes stale, as on Synapse (durable/presence.py): a remote
user whose server sends nothing about them for the federation timeout goes offline (a
presence change our users' syncs see, never sent back out), a newer update starts the
timeout again, and our users who are not offline have their presence sent again every
ping interval. The server runs with timeouts of a second or so (30 and 25 min by default)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from starlette.testclient import TestClient

from d1 import ephemeral as ephemeral_db
from local_runtime.config import load_config
from local_runtime.server import build_app
from tests.federation.conftest import OURS, FedApp
from tests.federation.e2ee_support import LocalUser, peer_joins, q, send_edus, sent_edus
from tests.federation.peers import ForgedPeer, PeerNetwork, client_for

BOB = "@bob:remote.test"
TIMEOUT_MS = 1_500
PING_MS = 400


@pytest.fixture
def fed(tmp_path: Path, network: PeerNetwork) -> Iterator[FedApp]:
    config = load_config(data_dir=str(tmp_path), server_name=OURS,
                         presence_federation_timeout_ms=TIMEOUT_MS, presence_federation_ping_ms=PING_MS)
    with TestClient(build_app(config)) as client:
        app = FedApp(client, network)
        real = app.env.FEDERATION
        app.env.FEDERATION = client_for(app.env, network)
        app.call(real.close)
        yield app


@pytest.fixture
def alice(fed: FedApp, peer: ForgedPeer) -> LocalUser:
    """alice (ours) and bob (of the peer) in a room of ours; alice has synced."""
    user = LocalUser(fed, "alice")
    room_id = user.create_room()
    peer_joins(fed, peer, room_id, BOB)
    user.sync()
    return user


def _push(user_id: str, presence: str, status_msg: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {"user_id": user_id, "presence": presence, "last_active_ago": 0,
                              "currently_active": presence == "online"}
    if status_msg is not None:
        update["status_msg"] = status_msg
    return {"edu_type": "m.presence", "content": {"push": [update]}}


def _presence_of(body: dict[str, Any], user_id: str) -> list[str]:
    return [e["content"]["presence"] for e in body["presence"]["events"] if e["sender"] == user_id]


def _stored(fed: FedApp, user_id: str) -> dict[str, Any]:
    """The user's stored presence row."""
    row = fed.call(ephemeral_db.get_presence, fed.env.DB, user_id)
    assert row is not None
    return row


def _actor(fed: FedApp, user_id: str) -> dict[str, Any]:
    return fed.call(fed.env.PRESENCE.get_by_name(user_id).status)


def _wait_for(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.03)


def _pushes_about(peer: ForgedPeer, user_id: str) -> list[dict[str, Any]]:
    return [p for c in sent_edus(peer, "m.presence") for p in c["push"] if p["user_id"] == user_id]


def test_remote_presence_goes_offline_when_its_server_goes_quiet(
    fed: FedApp, peer: ForgedPeer, alice: LocalUser
) -> None:
    send_edus(fed, peer, [_push(BOB, "online", "here")])
    received = time.monotonic()
    assert _presence_of(alice.sync(), BOB) == ["online"]
    actor = _actor(fed, BOB)
    assert actor["alarm_ms"] == actor["updated_ts"] + TIMEOUT_MS
    # A long poll of alice is woken by the timeout, with bob offline (his message kept).
    seen: list[str] = []
    while not seen:
        assert time.monotonic() - received < 10, "bob never went offline"
        body = alice.ok("GET", "/sync", since=alice.since, timeout=5_000)
        alice.since = body["next_batch"]
        seen = _presence_of(body, BOB)
    assert seen == ["offline"]
    assert time.monotonic() - received >= TIMEOUT_MS / 1000 - 0.05
    row = _stored(fed, BOB)
    assert (row["state"], row["status_msg"]) == ("offline", "here")
    assert _actor(fed, BOB)["alarm_ms"] is None  # offline: nothing more to time out
    # We do not speak for bob: his timeout is not sent to other servers.
    time.sleep(0.2)
    assert _pushes_about(peer, BOB) == []


def test_a_newer_update_starts_the_timeout_again(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    send_edus(fed, peer, [_push(BOB, "online")])
    first = _actor(fed, BOB)
    assert _presence_of(alice.sync(), BOB) == ["online"]
    time.sleep(TIMEOUT_MS / 2000)
    send_edus(fed, peer, [_push(BOB, "online")])  # the same presence, sent again (a ping)
    second = _actor(fed, BOB)
    assert second["updated_ts"] > first["updated_ts"]
    assert second["alarm_ms"] == second["updated_ts"] + TIMEOUT_MS
    # A repeat is no presence change for our users.
    assert _presence_of(alice.sync(), BOB) == []
    # Past the first update's deadline bob is still online ...
    time.sleep(max(0.0, (first["alarm_ms"] + 200) / 1000 - time.time()))
    assert _stored(fed, BOB)["state"] == "online"
    # ... and goes offline at the second's.
    _wait_for(lambda: _stored(fed, BOB)["state"] == "offline")
    assert time.time() * 1000 >= second["alarm_ms"]
    assert _presence_of(alice.sync(), BOB) == ["offline"]


def test_remote_offline_has_no_timeout(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    send_edus(fed, peer, [_push(BOB, "online")])
    assert _actor(fed, BOB)["alarm_ms"] is not None
    send_edus(fed, peer, [_push(BOB, "offline")])
    assert _actor(fed, BOB)["alarm_ms"] is None
    assert _presence_of(alice.sync(), BOB) == ["offline"]


def test_our_online_users_presence_is_sent_again_every_ping_interval(
    fed: FedApp, peer: ForgedPeer, alice: LocalUser
) -> None:
    _wait_for(lambda: len(_pushes_about(peer, alice.user_id)) >= 3)
    pushes = _pushes_about(peer, alice.user_id)
    assert [p["presence"] for p in pushes[:3]] == ["online"] * 3  # the change, then pings
    federated = _actor(fed, alice.user_id)["federated_ts"]
    assert federated is not None and federated <= time.time() * 1000
    # Offline: sent once, then no more pings.
    alice.ok("PUT", f"/presence/{q(alice.user_id)}/status", {"presence": "offline"})
    _wait_for(lambda: _pushes_about(peer, alice.user_id)[-1]["presence"] == "offline")
    count = len(_pushes_about(peer, alice.user_id))
    time.sleep(3 * PING_MS / 1000)
    assert len(_pushes_about(peer, alice.user_id)) == count


def test_remote_presence_is_read_through_the_client_api(fed: FedApp, peer: ForgedPeer, alice: LocalUser) -> None:
    """GET /presence/{userId}/status answers for a remote user as for ours: what their
    server last sent, to users sharing a room with them."""
    send_edus(fed, peer, [_push(BOB, "online", "here")])
    body = alice.ok("GET", f"/presence/{q(BOB)}/status")
    assert (body["presence"], body["status_msg"], body["currently_active"]) == ("online", "here", True)
    # A remote user we have heard nothing of, sharing a room: offline.
    peer_joins(fed, peer, alice.create_room(), "@carol:remote.test")
    assert alice.ok("GET", f"/presence/{q('@carol:remote.test')}/status")["presence"] == "offline"
    # Someone sharing no room with bob may not see his presence.
    dave = LocalUser(fed, "dave")
    refused = dave.request("GET", f"/presence/{q(BOB)}/status")
    assert refused.status_code == 403 and refused.json()["errcode"] == "M_FORBIDDEN"
