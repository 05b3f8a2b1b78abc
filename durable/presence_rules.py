"""How presence moves on its own: the pure rules the presence actor applies, for local users
and for remote users whose presence reaches us over federation.

Spec: client-server API module "Presence": a user is ``online``, ``unavailable`` (idle: away
from the device for a while) or ``offline`` (the client is gone). The spec leaves the
detection to the server; these rules follow what Synapse does, as users of a homeserver
expect it:

- A client keeps its user ``online`` by syncing; once the last sync (or explicit presence
  set) is more than the sync timeout in the past, the user goes ``offline``.
- An ``online`` user with no activity (sending, receipts, typing, setting presence) for
  the idle time goes ``unavailable``; activity brings such an idle user back ``online``.
  A sync alone keeps the user online but is not activity.
- A state the user chose (``PUT /presence``, or a sync's ``set_presence=unavailable``) is
  not undone by a later ``set_presence=online`` sync, except that ``offline`` is left by
  syncing again (the client is back). Timers never turn ``offline`` into anything else.

Presence over federation (server-server API "Presence": ``m.presence`` EDUs, and nothing
else, carry it) has no end of its own either, so, as Synapse does:

- A remote user not ``offline`` goes ``offline`` once no update for them has arrived for
  the federation timeout (their server is gone, or lost them).
- So that other servers do not time ours out, the presence of a local user who is not
  ``offline`` is sent again once the ping interval (shorter than the timeout) has passed
  since it was last sent.

Each function takes the clock as an argument and returns the new ``(state, source)`` or
None when nothing changes. ``source`` says why the state is what it is: ``explicit`` (the
user set it), ``sync`` (a sync's ``set_presence``), ``idle`` (the idle timer) or
``timeout`` (the sync timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ONLINE = "online"
UNAVAILABLE = "unavailable"
OFFLINE = "offline"

EXPLICIT = "explicit"
SYNC = "sync"
IDLE = "idle"
TIMEOUT = "timeout"

Change = tuple[str, str] | None


@dataclass(frozen=True)
class PresenceTimers:
    """Synapse's SYNC_ONLINE_TIMEOUT (30 s), IDLE_TIMER (5 min), FEDERATION_TIMEOUT (30 min)
    and FEDERATION_PING_INTERVAL (25 min) by default."""

    sync_timeout_ms: int = 30_000
    idle_ms: int = 5 * 60_000
    federation_timeout_ms: int = 30 * 60_000
    federation_ping_ms: int = 25 * 60_000


def timers_from_config(config: Any) -> PresenceTimers:
    """The timeouts a server configures (``presence_sync_timeout_ms``,
    ``presence_idle_ms``, ``presence_federation_timeout_ms``,
    ``presence_federation_ping_ms``), Synapse's where it sets none."""
    default = PresenceTimers()
    return PresenceTimers(
        sync_timeout_ms=int(getattr(config, "presence_sync_timeout_ms", default.sync_timeout_ms)),
        idle_ms=int(getattr(config, "presence_idle_ms", default.idle_ms)),
        federation_timeout_ms=int(
            getattr(config, "presence_federation_timeout_ms", default.federation_timeout_ms)
        ),
        federation_ping_ms=int(getattr(config, "presence_federation_ping_ms", default.federation_ping_ms)),
    )


def on_sync(state: str | None, source: str | None, requested: str) -> Change:
    """A sync with ``set_presence`` ``online`` or ``unavailable`` (``offline`` syncs do not
    touch presence). ``online`` brings back a user who is offline (or has no presence yet)
    and ends an ``unavailable`` that an earlier sync asked for; an idle or explicit
    ``unavailable`` stays. ``unavailable`` is taken as asked."""
    if requested == UNAVAILABLE:
        return None if state == UNAVAILABLE else (UNAVAILABLE, SYNC)
    if state is None or state == OFFLINE or (state == UNAVAILABLE and source == SYNC):
        return (ONLINE, SYNC)
    return None


def on_activity(state: str | None, source: str | None) -> Change:
    """Activity ends idleness: an ``unavailable`` set by the idle timer becomes ``online``.
    Other states stay (an offline user acting without syncing stays offline)."""
    if state == UNAVAILABLE and source == IDLE:
        return (ONLINE, SYNC)
    return None


def on_timer(
    state: str, last_active_ts: int, online_until: int, now: int, timers: PresenceTimers
) -> Change:
    """What the clock does at ``now``: past ``online_until`` a user not offline goes
    ``offline``; an ``online`` user idle for ``timers.idle_ms`` goes ``unavailable``."""
    if state == OFFLINE:
        return None
    if now >= online_until:
        return (OFFLINE, TIMEOUT)
    if state == ONLINE and now - last_active_ts >= timers.idle_ms:
        return (UNAVAILABLE, IDLE)
    return None


def next_deadline(
    state: str, last_active_ts: int, online_until: int, timers: PresenceTimers
) -> int | None:
    """When the clock may next change the state (ms), or None if it never will."""
    if state == OFFLINE:
        return None
    if state == ONLINE:
        return min(online_until, last_active_ts + timers.idle_ms)
    return online_until


# --- presence over federation ----------------------------------------------------------------


def on_remote_timer(state: str, last_update_ts: int, now: int, timers: PresenceTimers) -> Change:
    """A remote user whose server sent nothing about them since ``last_update_ts`` for the
    federation timeout goes ``offline``; one already ``offline`` stays as is."""
    if state == OFFLINE or now - last_update_ts < timers.federation_timeout_ms:
        return None
    return (OFFLINE, TIMEOUT)


def remote_deadline(state: str, last_update_ts: int, timers: PresenceTimers) -> int | None:
    """When a remote user's presence times out (ms), or None if it never will (offline)."""
    if state == OFFLINE:
        return None
    return last_update_ts + timers.federation_timeout_ms


def ping_due(state: str, last_sent_ts: int, now: int, timers: PresenceTimers) -> bool:
    """Whether a local user's presence is to be sent again at ``now``: they are not
    ``offline`` and it was last sent a ping interval ago or more."""
    return state != OFFLINE and now - last_sent_ts >= timers.federation_ping_ms


def next_ping(state: str, last_sent_ts: int, timers: PresenceTimers) -> int | None:
    """When a local user's presence is next due to be sent again (ms), or None (offline)."""
    if state == OFFLINE:
        return None
    return last_sent_ts + timers.federation_ping_ms
