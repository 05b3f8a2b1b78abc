"""The presence timer rules (durable/presence_rules.py), with the clock as an argument."""

from __future__ import annotations

from types import SimpleNamespace

from durable import presence_rules as rules

T = rules.PresenceTimers(sync_timeout_ms=30_000, idle_ms=300_000)


def test_defaults_are_synapses() -> None:
    assert rules.timers_from_config(SimpleNamespace()) == T
    configured = rules.timers_from_config(SimpleNamespace(presence_sync_timeout_ms=5, presence_idle_ms=7))
    assert (configured.sync_timeout_ms, configured.idle_ms) == (5, 7)


def test_sync_online() -> None:
    assert rules.on_sync(None, None, "online") == ("online", "sync")
    assert rules.on_sync("offline", "timeout", "online") == ("online", "sync")
    assert rules.on_sync("offline", "explicit", "online") == ("online", "sync")
    assert rules.on_sync("unavailable", "sync", "online") == ("online", "sync")
    assert rules.on_sync("unavailable", "idle", "online") is None
    assert rules.on_sync("unavailable", "explicit", "online") is None
    assert rules.on_sync("online", "sync", "online") is None


def test_sync_unavailable() -> None:
    assert rules.on_sync("online", "sync", "unavailable") == ("unavailable", "sync")
    assert rules.on_sync(None, None, "unavailable") == ("unavailable", "sync")
    assert rules.on_sync("unavailable", "explicit", "unavailable") is None


def test_activity_ends_idleness_only() -> None:
    assert rules.on_activity("unavailable", "idle") == ("online", "sync")
    assert rules.on_activity("unavailable", "explicit") is None
    assert rules.on_activity("offline", "timeout") is None
    assert rules.on_activity("online", "sync") is None


def test_timer() -> None:
    now = 1_000_000
    assert rules.on_timer("online", now - 1000, now + 1, now, T) is None
    assert rules.on_timer("online", now - 1000, now, now, T) == ("offline", "timeout")
    assert rules.on_timer("unavailable", now, now - 1, now, T) == ("offline", "timeout")
    assert rules.on_timer("online", now - 300_000, now + 5, now, T) == ("unavailable", "idle")
    assert rules.on_timer("unavailable", now - 900_000, now + 5, now, T) is None
    assert rules.on_timer("offline", 0, 0, now, T) is None


def test_next_deadline() -> None:
    assert rules.next_deadline("online", 1000, 50_000, T) == 50_000
    assert rules.next_deadline("online", 1000, 900_000, T) == 301_000
    assert rules.next_deadline("unavailable", 1000, 900_000, T) == 900_000
    assert rules.next_deadline("offline", 1000, 900_000, T) is None


def test_federation_defaults_are_synapses() -> None:
    assert (T.federation_timeout_ms, T.federation_ping_ms) == (30 * 60_000, 25 * 60_000)
    assert T.federation_ping_ms < T.federation_timeout_ms  # a ping arrives before the timeout
    configured = rules.timers_from_config(
        SimpleNamespace(presence_federation_timeout_ms=11, presence_federation_ping_ms=13)
    )
    assert (configured.federation_timeout_ms, configured.federation_ping_ms) == (11, 13)


def test_remote_user_goes_offline_after_the_federation_timeout() -> None:
    updated = 1_000_000
    timeout = T.federation_timeout_ms
    for state in ("online", "unavailable"):
        assert rules.on_remote_timer(state, updated, updated + timeout - 1, T) is None
        assert rules.on_remote_timer(state, updated, updated + timeout, T) == ("offline", "timeout")
        assert rules.remote_deadline(state, updated, T) == updated + timeout
    # Already offline: nothing times out.
    assert rules.on_remote_timer("offline", updated, updated + 10 * timeout, T) is None
    assert rules.remote_deadline("offline", updated, T) is None


def test_a_newer_update_moves_the_remote_deadline() -> None:
    first, second = 1_000_000, 1_000_000 + 20 * 60_000
    at = first + T.federation_timeout_ms  # the first update's deadline
    assert rules.on_remote_timer("online", first, at, T) == ("offline", "timeout")
    assert rules.on_remote_timer("online", second, at, T) is None
    assert rules.remote_deadline("online", second, T) == second + T.federation_timeout_ms


def test_local_presence_is_sent_again_every_ping_interval() -> None:
    sent = 1_000_000
    ping = T.federation_ping_ms
    for state in ("online", "unavailable"):
        assert not rules.ping_due(state, sent, sent + ping - 1, T)
        assert rules.ping_due(state, sent, sent + ping, T)
        assert rules.next_ping(state, sent, T) == sent + ping
    assert not rules.ping_due("offline", sent, sent + 10 * ping, T)
    assert rules.next_ping("offline", sent, T) is None
