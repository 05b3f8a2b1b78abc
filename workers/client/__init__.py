"""Client-server API workers for accounts: registration, login and tokens, account
management, devices, profiles, account data and tags, filters, push rules, capabilities.

Each module exposes ``routes``. ``client_routes`` mounts a handler under ``/_matrix/client/v3``
and, because older clients (matrix-nio, some bots) still call them there, under
``/_matrix/client/r0`` too.

Hook points for other parts of the server (all optional; looked up with ``getattr`` on
``env.hooks``, so an env without ``hooks`` works):

- ``await env.hooks.profile_changed(user_id)`` after a displayname or avatar_url change
  (the rooms code propagates it into m.room.member events);
- ``await env.hooks.devices_deleted(user_id, device_ids)`` after devices were deleted by
  logout, /devices or deactivation (the E2E code drops their keys);
- ``await env.hooks.user_deactivated(user_id)`` after an account was deactivated (the rooms
  code makes the user leave their rooms).
"""

from __future__ import annotations

from typing import Any

from workers.routing import CLIENT_PREFIXES, client_routes

__all__ = ["CLIENT_PREFIXES", "call_hook", "client_routes"]


async def call_hook(env: Any, name: str, *args: Any) -> None:
    """Await ``env.hooks.<name>(*args)`` when such a hook is installed."""
    hooks = getattr(env, "hooks", None)
    hook = getattr(hooks, name, None) if hooks is not None else None
    if hook is not None:
        await hook(*args)
