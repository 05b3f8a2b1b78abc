"""Presence that goes stale: offline after the sync timeout, unavailable when idle, back
online on a sync or activity, explicit states kept, the change seen by other users'
/sync (waking their long polls) and sent over federation, and the timer kept across a
restart. Timeouts are a few hundred ms here (30 s and 5 min by default)."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from tests.workers.e2ee.harness import Device, Harness
from tests.workers.presence.conftest import Servers
from workers.client import ephemeral


def _presence(viewer: Device, user: Device) -> dict[str, Any]:
    return viewer.ok("GET", f"/presence/{user.user_id}/status")


def _wait_for(check: Callable[[], bool], seconds: float = 3.0) -> float:
    """Poll ``check`` until true; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError("condition not reached in time")
        time.sleep(0.03)
    return time.monotonic() - started


def _pair(hs: Harness) -> tuple[Device, Device, str]:
    alice, bob = hs.device("alice"), hs.device("bob")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    return alice, bob, room


def _presence_events(sync: dict[str, Any], user: Device) -> list[str]:
    return [e["content"]["presence"] for e in sync["presence"]["events"] if e["sender"] == user.user_id]


def test_offline_after_the_sync_timeout_wakes_other_syncs(servers: Servers) -> None:
    hs = servers.start(sync_timeout_ms=300)
    alice, bob, _ = _pair(hs)
    alice.sync()
    assert _presence(bob, alice)["presence"] == "online"
    since = bob.sync(set_presence="offline")["next_batch"]
    started = time.monotonic()
    got = bob.sync(since, set_presence="offline", timeout=10_000)  # a long poll, woken
    took = time.monotonic() - started
    assert _presence_events(got, alice) == ["offline"]
    assert took < 3
    content = _presence(bob, alice)
    assert content["presence"] == "offline" and content["currently_active"] is False
    # The sync timeout plus its padding (a third) at most, from alice's last sync.
    assert 0.2 <= took


def test_syncing_keeps_the_user_online_and_a_sync_brings_them_back(servers: Servers) -> None:
    hs = servers.start(sync_timeout_ms=300)
    alice, bob, _ = _pair(hs)
    for _ in range(8):  # 0.8 s of syncing, well past one timeout
        alice.sync()
        time.sleep(0.1)
    assert _presence(bob, alice)["presence"] == "online"
    _wait_for(lambda: _presence(bob, alice)["presence"] == "offline")
    since = bob.sync(set_presence="offline")["next_batch"]
    alice.sync()
    assert _presence(bob, alice)["presence"] == "online"
    assert _presence_events(bob.sync(since, set_presence="offline"), alice) == ["online"]


def test_a_long_poll_keeps_the_user_online_while_it_waits(servers: Servers) -> None:
    hs = servers.start(sync_timeout_ms=200)
    alice, bob, _ = _pair(hs)
    since = alice.sync()["next_batch"]
    alice.sync(since, timeout=700)  # nothing arrives: waits 0.7 s, over three timeouts
    assert _presence(bob, alice)["presence"] == "online"


def test_idle_user_becomes_unavailable_and_activity_brings_them_back(servers: Servers) -> None:
    hs = servers.start(sync_timeout_ms=5_000, idle_ms=300)
    alice, bob, room = _pair(hs)
    alice.sync()
    content = _presence(bob, alice)
    assert content["presence"] == "online" and content["currently_active"] is True
    since = bob.sync(set_presence="offline")["next_batch"]
    # Syncing keeps alice online but is not activity: she goes idle.
    _wait_for(lambda: alice.sync() is not None and _presence(bob, alice)["presence"] == "unavailable")
    assert _presence_events(bob.sync(since, set_presence="offline"), alice) == ["unavailable"]
    alice.sync()
    assert _presence(bob, alice)["presence"] == "unavailable"
    alice.send(room, "back")
    content = _presence(bob, alice)
    assert content["presence"] == "online" and content["currently_active"] is True


def test_receipts_and_typing_count_as_activity(servers: Servers) -> None:
    hs = servers.start(sync_timeout_ms=5_000, idle_ms=300)
    alice, bob, room = _pair(hs)
    event = bob.send(room, "hi")
    alice.sync()
    _wait_for(lambda: _presence(bob, alice)["presence"] == "unavailable")
    alice.ok("POST", f"/rooms/{room}/receipt/m.read/{event}", {})
    assert _presence(bob, alice)["presence"] == "online"
    _wait_for(lambda: _presence(bob, alice)["presence"] == "unavailable")
    alice.ok("PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 1000})
    assert _presence(bob, alice)["presence"] == "online"


def test_explicit_states_are_respected(servers: Servers) -> None:
    hs = servers.start(sync_timeout_ms=300, idle_ms=200)
    alice, bob, _ = _pair(hs)
    alice.ok("PUT", f"/presence/{alice.user_id}/status", {"presence": "unavailable", "status_msg": "away"})
    for _ in range(4):  # online syncs do not undo a chosen unavailable
        alice.sync()
        time.sleep(0.1)
    content = _presence(bob, alice)
    assert (content["presence"], content["status_msg"]) == ("unavailable", "away")
    # Once the client is gone, even a chosen state goes offline; the message stays.
    _wait_for(lambda: _presence(bob, alice)["presence"] == "offline")
    assert _presence(bob, alice)["status_msg"] == "away"
    # A chosen offline has no timer, and offline syncs leave it alone.
    alice.sync()
    alice.ok("PUT", f"/presence/{alice.user_id}/status", {"presence": "offline"})
    alice.sync(set_presence="offline")
    time.sleep(0.5)
    assert _presence(bob, alice)["presence"] == "offline"
    status = hs.call(hs.env.PRESENCE.get_by_name(alice.user_id).status)
    assert status["alarm_ms"] is None and status["source"] == "explicit"


def test_sync_set_presence_unavailable_then_online(servers: Servers) -> None:
    hs = servers.start(sync_timeout_ms=2_000)
    alice, bob, _ = _pair(hs)
    alice.sync(set_presence="unavailable")
    assert _presence(bob, alice)["presence"] == "unavailable"
    alice.sync()  # the client is back in focus
    assert _presence(bob, alice)["presence"] == "online"


def test_the_timeout_is_sent_over_federation(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, str]] = []

    async def record(env: Any, user_id: str, row: Any) -> None:
        sent.append((user_id, row["state"]))

    monkeypatch.setattr(ephemeral.e2ee_out, "presence_changed", record)
    hs = servers.start(sync_timeout_ms=300)
    alice, bob, _ = _pair(hs)
    alice.sync()
    _wait_for(lambda: (alice.user_id, "offline") in sent)
    assert sent[0] == (alice.user_id, "online")


def test_the_timer_survives_a_restart(servers: Servers) -> None:
    hs = servers.start(sync_timeout_ms=1_000)
    alice, bob, _ = _pair(hs)
    alice.sync()
    status = hs.call(hs.env.PRESENCE.get_by_name(alice.user_id).status)
    assert status["alarm_ms"] is not None and status["alarm_ms"] > time.time() * 1000
    servers.stop(hs)

    hs = servers.start(sync_timeout_ms=1_000)
    bob = hs.device("bob", "DEV2")
    assert _presence(bob, alice)["presence"] == "online"
    # Nobody calls alice's actor: the alarm re-armed at start does the work.
    _wait_for(lambda: _presence(bob, alice)["presence"] == "offline")
