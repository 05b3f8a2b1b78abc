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
