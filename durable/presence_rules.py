"""How a local user's presence moves on its own: the pure rules the presence actor applies.

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
    """Synapse's SYNC_ONLINE_TIMEOUT (30 s) and IDLE_TIMER (5 min) by default."""

    sync_timeout_ms: int = 30_000
    idle_ms: int = 5 * 60_000


def timers_from_config(config: Any) -> PresenceTimers:
    """The timeouts a server configures (``presence_sync_timeout_ms``,
    ``presence_idle_ms``), Synapse's where it sets none."""
    default = PresenceTimers()
    return PresenceTimers(
        sync_timeout_ms=int(getattr(config, "presence_sync_timeout_ms", default.sync_timeout_ms)),
        idle_ms=int(getattr(config, "presence_idle_ms", default.idle_ms)),
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
