"""Remote users' keys for our clients: ``/keys/query`` and ``/keys/claim`` for users of other
servers, and the cache of remote device lists that keeps ``/keys/query`` fast.

Spec: client-server API "Key management API" (remote servers are asked within the request's
``timeout``; "If any remote homeservers could not be reached, they are recorded" in
``failures``, keyed by server name) and server-server API "Device Management" ("When a
server wishes to determine a remote user's device list for the first time, it should
populate a local cache"; later ``m.device_list_update`` EDUs keep it current, and an EDU
whose ``prev_id`` is unknown means the list must be fetched again).

Caching follows Synapse: the list of a remote user who shares a room with one of our users
is fetched once with ``GET /user/devices/{userId}`` (which carries the ``stream_id`` EDUs
build on) and then served from D1; users sharing no room are asked with
``POST /user/keys/query`` every time and not cached. Requests go out per server, in
parallel. Whatever a server answers is checked: only the users we asked it about, only key
objects naming the right user and device.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from d1 import remote_devices
from d1.remote_devices import CachedDeviceList, RemoteDevice
from d1.room_servers import servers_sharing_rooms
from workers.auth import now_ms
from workers.federation.client import encode_path, federation_client
from workers.federation.errors import FederationError, RemoteServerError

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
DEFAULT_TIMEOUT_MS = 10_000
MAX_TIMEOUT_MS = 60_000
CROSS_SIGNING_PARTS = (("master_key", "master_keys"), ("self_signing_key", "self_signing_keys"))


class BadAnswer(FederationError):
    """The remote server answered, but not with what the spec says it should."""


def request_timeout_s(timeout_ms: Any) -> float:
    """The request's ``timeout`` (ms) in seconds: 10 s when absent or not a non-negative
    integer, at most a minute."""
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms < 0:
        timeout_ms = DEFAULT_TIMEOUT_MS
    return min(timeout_ms, MAX_TIMEOUT_MS) / 1000


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1]


def failure(exc: BaseException) -> JsonDict:
    """A ``failures`` entry: our own words, never the remote server's."""
    if isinstance(exc, RemoteServerError):
        return {"status": exc.status, "message": f"{exc.destination} refused the request"}
    if isinstance(exc, asyncio.TimeoutError):
        return {"status": 503, "message": "The server did not answer in time"}
    return {"status": 503, "message": "The server could not be reached"}


async def _per_server(
    servers: list[str], work: Callable[[str], Awaitable[None]], timeout_s: float
) -> dict[str, JsonDict]:
    """Run ``work(server)`` for every server at once, each within the timeout; the
    failures entry of each server that failed."""

    async def guarded(server: str) -> tuple[str, BaseException | None]:
        try:
            await asyncio.wait_for(work(server), timeout_s)
        except (FederationError, asyncio.TimeoutError) as exc:
            log.info("keys from %s: %s", server, exc)
            return server, exc
        return server, None

    outcomes = await asyncio.gather(*(guarded(s) for s in servers))
    return {server: failure(exc) for server, exc in outcomes if exc is not None}


# --- checking what remote servers send -----------------------------------------------------


def checked_device_keys(keys: Any, user_id: str, device_id: str) -> JsonDict | None:
    """``keys`` if they are device keys of this user and device, else None."""
    if (
        isinstance(keys, dict)
        and keys.get("user_id") == user_id
        and keys.get("device_id") == device_id
        and isinstance(keys.get("keys"), dict)
    ):
        return keys
    return None


def checked_cross_signing_key(key: Any, user_id: str, usage: str) -> JsonDict | None:
    if (
        isinstance(key, dict)
        and key.get("user_id") == user_id
        and isinstance(key.get("usage"), list)
        and usage in key["usage"]
        and isinstance(key.get("keys"), dict)
    ):
        return key
    return None


def parse_user_devices(body: Any, user_id: str) -> CachedDeviceList:
    """A ``/user/devices`` answer as a cache entry (BadAnswer when it is not about
    ``user_id`` or has no integer ``stream_id``)."""
    server = server_of(user_id)
    if not isinstance(body, dict) or body.get("user_id") != user_id:
        raise BadAnswer(server, f"/user/devices answer is not about {user_id}")
    stream_id = body.get("stream_id")
    if not isinstance(stream_id, int) or isinstance(stream_id, bool):
        raise BadAnswer(server, "/user/devices answer has no integer stream_id")
    devices: dict[str, RemoteDevice] = {}
    for entry in body.get("devices") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("device_id"), str):
            continue
        device_id = entry["device_id"]
        name = entry.get("device_display_name")
        devices[device_id] = RemoteDevice(
            device_id, name if isinstance(name, str) else None,
            checked_device_keys(entry.get("keys"), user_id, device_id),
        )
    return CachedDeviceList(
        user_id=user_id,
        stream_id=stream_id,
        master_key=checked_cross_signing_key(body.get("master_key"), user_id, "master"),
        self_signing_key=checked_cross_signing_key(body.get("self_signing_key"), user_id, "self_signing"),
        devices=devices,
    )


# --- the cache -----------------------------------------------------------------------------


async def shares_room_with_us(env: Any, user_id: str) -> bool:
    """Whether a remote user is joined to a room one of our users is joined to."""
    return env.config.server_name in await servers_sharing_rooms(env.DB, user_id)


async def resync_device_list(env: Any, user_id: str, timeout_s: float | None = None) -> CachedDeviceList:
    """Fetch a remote user's whole device list (``/user/devices``) into the cache."""
    body = await federation_client(env).get_json(
        server_of(user_id), encode_path("/_matrix/federation/v1/user/devices/{}", user_id),
        timeout=timeout_s,
    )
    fresh = parse_user_devices(body, user_id)
    await env.DB.batch(remote_devices.replace_list(
        env.DB, user_id, fresh.stream_id, fresh.devices.values(), fresh.master_key,
        fresh.self_signing_key, now_ms(),
    ))
    return fresh


def _from_cache(cached: CachedDeviceList, device_ids: list[str]) -> JsonDict:
    devices: dict[str, JsonDict] = {}
    for device_id, device in cached.devices.items():
        if device.keys is None or (device_ids and device_id not in device_ids):
            continue
        keys = dict(device.keys)
        if device.display_name is not None:
            keys["unsigned"] = {**(keys.get("unsigned") or {}), "device_display_name": device.display_name}
        devices[device_id] = keys
    out: JsonDict = {"device_keys": devices}
    if cached.master_key is not None:
        out["master_key"] = cached.master_key
    if cached.self_signing_key is not None:
        out["self_signing_key"] = cached.self_signing_key
    return out


# --- /keys/query ---------------------------------------------------------------------------


async def query_remote_keys(
    env: Any, wanted: dict[str, list[str]], timeout_s: float
) -> tuple[JsonDict, dict[str, JsonDict]]:
    """Keys of remote users (user -> device IDs, empty for all) as
    ``({"device_keys", "master_keys", "self_signing_keys"}, failures)``."""
    db = env.DB
    result: JsonDict = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}

    def add(user_id: str, found: JsonDict) -> None:
        result["device_keys"][user_id] = found["device_keys"]
        for part, field in CROSS_SIGNING_PARTS:
            if found.get(part) is not None:
                result[field][user_id] = found[part]

    to_resync: dict[str, list[str]] = {}
    to_query: dict[str, dict[str, list[str]]] = {}
    for user_id, device_ids in wanted.items():
        shared = await shares_room_with_us(env, user_id)
        cached = await remote_devices.cached_list(db, user_id)
        if cached is not None and shared:
            add(user_id, _from_cache(cached, device_ids))
            continue
        if cached is not None:  # no room shared any more: the EDUs that kept it current stopped
            await db.batch(remote_devices.drop_list(db, user_id))
        if shared:
            to_resync.setdefault(server_of(user_id), []).append(user_id)
        else:
            to_query.setdefault(server_of(user_id), {})[user_id] = device_ids

    async def ask(server: str) -> None:
        async def resync(user_id: str) -> None:
            add(user_id, _from_cache(await resync_device_list(env, user_id, timeout_s), wanted[user_id]))

        jobs = [resync(u) for u in to_resync.get(server, [])]
        if server in to_query:
            jobs.append(_query_server(env, server, to_query[server], timeout_s, add))
        await asyncio.gather(*jobs)

    servers = sorted(set(to_resync) | set(to_query))
    return result, await _per_server(servers, ask, timeout_s)


async def _query_server(
    env: Any, server: str, wanted: dict[str, list[str]], timeout_s: float,
    add: Callable[[str, JsonDict], None],
) -> None:
    body = await federation_client(env).post_json(
        server, "/_matrix/federation/v1/user/keys/query", {"device_keys": wanted}, timeout=timeout_s
    )
    if not isinstance(body, dict):
        raise BadAnswer(server, "user/keys/query answer is not an object")
    device_keys = body.get("device_keys") if isinstance(body.get("device_keys"), dict) else {}
    for user_id, device_ids in wanted.items():
        devices = device_keys.get(user_id)
        if not isinstance(devices, dict):
            continue
        found: JsonDict = {"device_keys": {
            d: keys for d, keys in devices.items()
            if checked_device_keys(keys, user_id, d) is not None and (not device_ids or d in device_ids)
        }}
        for part, field in CROSS_SIGNING_PARTS:
            section = body.get(field)
            if isinstance(section, dict):
                found[part] = checked_cross_signing_key(
                    section.get(user_id), user_id, "master" if part == "master_key" else "self_signing"
                )
        add(user_id, found)


# --- /keys/claim ---------------------------------------------------------------------------


async def claim_remote_keys(
    env: Any, wanted: dict[str, dict[str, str]], timeout_s: float
) -> tuple[dict[str, dict[str, JsonDict]], dict[str, JsonDict]]:
    """One-time keys of remote users' devices (user -> device -> algorithm) as
    ``(one_time_keys, failures)``."""
    by_server: dict[str, dict[str, dict[str, str]]] = {}
    for user_id, devices in wanted.items():
        by_server.setdefault(server_of(user_id), {})[user_id] = devices
    claimed: dict[str, dict[str, JsonDict]] = {}

    async def ask(server: str) -> None:
        asked = by_server[server]
        body = await federation_client(env).post_json(
            server, "/_matrix/federation/v1/user/keys/claim", {"one_time_keys": asked}, timeout=timeout_s
        )
        keys = body.get("one_time_keys") if isinstance(body, dict) else None
        if not isinstance(keys, dict):
            raise BadAnswer(server, "user/keys/claim answer has no one_time_keys object")
        for user_id, devices in asked.items():
            answer = keys.get(user_id)
            if not isinstance(answer, dict):
                continue
            for device_id, algorithm in devices.items():
                one = answer.get(device_id)
                if isinstance(one, dict) and one and all(
                    isinstance(k, str) and k.startswith(algorithm + ":") for k in one
                ):
                    claimed.setdefault(user_id, {})[device_id] = one

    return claimed, await _per_server(sorted(by_server), ask, timeout_s)
