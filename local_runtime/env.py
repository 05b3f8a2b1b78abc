"""Builds the bindings (``env``) the workers and actors use, named as in wrangler.toml.example.

- ``env.DB``: the D1 database (d1.D1Database)
- ``env.CACHE``: the KV namespace used as a cache (kv.KVNamespace)
- one Durable Object namespace per entry of ``DURABLE_OBJECT_CLASSES`` (e.g. ``env.ROOMS``)
- ``env.config``: the ServerConfig; ``env.SERVER_NAME``: the server name as a plain var
- ``env.NOTIFIER``: wakes long-polling syncs (local_runtime.notifier)
- ``env.MEDIA``: the media bucket, an R2-like blob store (local_runtime.blob_store)
- ``env.MEDIA_UPLOAD_LIMITER``: per-user rate limit of media uploads (local_runtime.rate_limiter)
- ``env.MESSAGE_LIMITER``, ``env.LOGIN_LIMITER``, ``env.REGISTRATION_LIMITER``: client rate
  limits per user (messages) and per client address (login, registration); None when off
- ``env.server_keys``: verify keys of servers (ours, and remote ones via federation)
- ``env.hooks``: what account changes mean for rooms (workers/hooks.py)
- ``env.signing_key``: the server's Ed25519 key, loaded from D1 at start
- ``env.FEDERATION``: the federation client (workers.federation.client), made at start
- ``env.DESTINATIONS``: the outbound federation queues, one actor per remote server
- ``env.PUSHERS``: push delivery, one actor per user with pushers (durable/pusher.py), woken
  by ``env.push_dispatcher`` (workers/push/dispatcher.py)
- ``env.PRESENCE``: presence timers, one actor per local user (durable/presence.py)
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from d1 import D1Database, apply_migrations
from d1.server_keys import load_or_create_signing_key
from kv.local_cache import LocalCache
from kv.namespace import KVNamespace
from local_runtime.blob_store import BlobStore
from local_runtime.config import ServerConfig
from local_runtime.durable_objects import DurableObjectNamespace
from local_runtime.notifier import Notifier
from workers.federation.client import FederationClient
from local_runtime.server_keys import ServerKeys
from workers.auth import TOKEN_CACHE_SECONDS
from workers.hooks import Hooks
from workers.push.dispatcher import PushDispatcher
from local_runtime.rate_limiter import RateLimiter

log = logging.getLogger(__name__)

# Binding name -> "module:Class", as declared in wrangler.toml.example.
DURABLE_OBJECT_CLASSES: dict[str, str] = {
    "ROOMS": "durable.room:RoomActor",
    "TYPING": "durable.typing:TypingActor",
    "DESTINATIONS": "durable.destination:DestinationActor",
    "PUSHERS": "durable.pusher:PusherActor",
    "PRESENCE": "durable.presence:PresenceActor",
}


def _limiter(per_second: float, burst: int) -> RateLimiter | None:
    """A token bucket, or None when the limit is configured off (0)."""
    return RateLimiter(per_second, burst) if per_second > 0 and burst > 0 else None


class Env:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.SERVER_NAME = config.server_name
        data = config.data_path
        data.mkdir(parents=True, exist_ok=True)
        self.DB = D1Database(data / config.bindings.DB)
        self.CACHE = KVNamespace(data / config.bindings.CACHE)
        self.NOTIFIER = Notifier()
        # In-process caches of hot D1 reads (kv.local_cache): a valid token's row for a few
        # seconds (workers.auth), the version of a room this server is in for good
        # (workers.room_access).
        self.TOKEN_CACHE = LocalCache(ttl=TOKEN_CACHE_SECONDS)
        self.ROOM_VERSIONS = LocalCache(ttl=None)
        self.server_keys = ServerKeys(self)
        self.hooks = Hooks(self)
        self.push_dispatcher = PushDispatcher(self)
        self.MEDIA = BlobStore(data / config.bindings.MEDIA)
        self.MEDIA_UPLOAD_LIMITER = RateLimiter(
            config.media_upload_per_second, config.media_upload_burst
        )
        self.MESSAGE_LIMITER = _limiter(config.rc_message_per_second, config.rc_message_burst)
        self.LOGIN_LIMITER = _limiter(config.rc_login_per_second, config.rc_login_burst)
        self.REGISTRATION_LIMITER = _limiter(
            config.rc_registration_per_second, config.rc_registration_burst
        )
        self.signing_key: Any = None
        self.FEDERATION: Any = None
        self.namespaces: dict[str, DurableObjectNamespace] = {}
        for binding, target in DURABLE_OBJECT_CLASSES.items():
            module_name, class_name = target.split(":")
            cls = getattr(importlib.import_module(module_name), class_name)
            namespace = DurableObjectNamespace(
                binding, cls, self, data / config.bindings.DURABLE,
                idle_seconds=config.actor_idle_seconds,
            )
            self.namespaces[binding] = namespace
            setattr(self, binding, namespace)

    async def start(self) -> None:
        applied = await apply_migrations(self.DB)
        if applied:
            log.info("database migrations applied: %s", ", ".join(applied))
        self.signing_key = await load_or_create_signing_key(self.DB)
        if self.FEDERATION is None:  # tests may install their own client first
            self.FEDERATION = FederationClient.from_config(self.config, self.signing_key, self.CACHE)
        for namespace in self.namespaces.values():
            await namespace.start()
        self.push_dispatcher.start()

    async def close(self) -> None:
        await self.push_dispatcher.stop()
        for namespace in self.namespaces.values():
            await namespace.close()
        if self.FEDERATION is not None:
            await self.FEDERATION.close()
        self.CACHE.close()
        self.DB.close()
