"""Publishing our keys and answering key queries as a notary.

Spec: server-server API "Retrieving server keys":
- ``GET /_matrix/key/v2/server``: our ``verify_keys`` (the current key), ``old_verify_keys``
  (retired keys with their ``expired_ts``) and a ``valid_until_ts`` in the future, signed with
  the current key. Responses should not expire within the hour; ours are valid for a day.
- ``GET /_matrix/key/v2/query/{serverName}`` and ``POST /_matrix/key/v2/query``: the queried
  servers' own key responses, countersigned by us. A cached response is served if it is valid
  until at least ``minimum_valid_until_ts`` (default: now) and holds the requested key IDs;
  otherwise the server is asked again, and if it cannot be reached the last cached response
  is served (so old events can still be checked), or nothing.
These endpoints need no authentication.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any, Iterable

from signedjson.key import get_verify_key
from signedjson.sign import sign_json
from starlette.requests import Request
from starlette.routing import Route
from unpaddedbase64 import encode_base64

from durable.events.identifiers import is_valid_server_name
from workers.errors import bad_json, invalid_param
from workers.federation.client import now_ms
from workers.federation.key_store import KeyStoreError, cached_key_response, fetch_server_keys
from workers.routing import read_json_object, route

log = logging.getLogger(__name__)

OWN_KEYS_VALID_MS = 24 * 3600 * 1000
MAX_NOTARY_SERVERS = 100


async def own_server_keys(env: Any) -> dict[str, Any]:
    """Our signed key response (keys.yaml)."""
    key = env.signing_key
    key_id = f"{key.alg}:{key.version}"
    old_rows = (
        await env.DB.prepare(
            "SELECT key_id, public_key, expired_ts FROM server_signing_keys"
            " WHERE expired_ts IS NOT NULL AND key_id != ?"
        ).bind(key_id).all()
    ).results
    body: dict[str, Any] = {
        "server_name": env.config.server_name,
        "verify_keys": {key_id: {"key": encode_base64(get_verify_key(key).encode())}},
        "old_verify_keys": {
            row["key_id"]: {"key": row["public_key"], "expired_ts": row["expired_ts"]}
            for row in old_rows
        },
        "valid_until_ts": now_ms() + OWN_KEYS_VALID_MS,
    }
    return sign_json(body, env.config.server_name, key)


async def get_server_keys(request: Request, env: Any) -> dict[str, Any]:
    return await own_server_keys(env)


def _holds(response: dict[str, Any], key_ids: Iterable[str]) -> bool:
    listed = set(response.get("verify_keys", {})) | set(response.get("old_verify_keys", {}))
    return all(key_id in listed for key_id in key_ids)


async def notary_keys(
    env: Any, server_name: str, minimum_valid_until_ts: int, key_ids: Iterable[str] = ()
) -> dict[str, Any] | None:
    """``server_name``'s key response countersigned by us, or None when we have none."""
    if server_name == env.config.server_name:
        return await own_server_keys(env)
    key_ids = list(key_ids)
    response = await cached_key_response(env, server_name)
    if (
        response is None
        or response.get("valid_until_ts", 0) < minimum_valid_until_ts
        or not _holds(response, key_ids)
    ):
        try:
            response = await fetch_server_keys(env, server_name)
        except KeyStoreError as exc:
            log.info("notary: %s; serving %s", exc, "the cached keys" if response else "nothing")
    if response is None:
        return None
    return sign_json(copy.deepcopy(response), env.config.server_name, env.signing_key)


def _timestamp(value: Any, name: str) -> int:
    if value is None:
        return now_ms()
    if isinstance(value, str):
        if not value.lstrip("-").isdigit():
            raise invalid_param(f"{name} must be an integer")
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise bad_json(f"{name} must be an integer")


async def query_one(request: Request, env: Any) -> dict[str, Any]:
    server_name = request.path_params["serverName"]
    if not is_valid_server_name(server_name):
        raise invalid_param(f"{server_name!r} is not a server name")
    minimum = _timestamp(request.query_params.get("minimum_valid_until_ts"), "minimum_valid_until_ts")
    response = await notary_keys(env, server_name, minimum)
    return {"server_keys": [response] if response is not None else []}


async def query_many(request: Request, env: Any) -> dict[str, Any]:
    body = await read_json_object(request)
    server_keys = body.get("server_keys")
    if not isinstance(server_keys, dict):
        raise bad_json("server_keys must be an object")
    if len(server_keys) > MAX_NOTARY_SERVERS:
        raise invalid_param(f"at most {MAX_NOTARY_SERVERS} servers per query")
    jobs = []
    for server_name, criteria in server_keys.items():
        if not isinstance(server_name, str) or not is_valid_server_name(server_name):
            continue
        if not isinstance(criteria, dict):
            raise bad_json("each server's criteria must be an object")
        asked = [
            _timestamp(c["minimum_valid_until_ts"], "minimum_valid_until_ts")
            for c in criteria.values()
            if isinstance(c, dict) and c.get("minimum_valid_until_ts") is not None
        ]
        minimum = max(asked) if asked else now_ms()
        jobs.append(notary_keys(env, server_name, minimum, criteria.keys()))
    results = await asyncio.gather(*jobs)
    return {"server_keys": [r for r in results if r is not None]}


routes: list[Route] = [
    route("/_matrix/key/v2/server", get_server_keys, ["GET"]),
    # The key ID path segment is deprecated (ignored by servers); some senders still use it.
    route("/_matrix/key/v2/server/{keyId}", get_server_keys, ["GET"]),
    route("/_matrix/key/v2/query/{serverName}", query_one, ["GET"]),
    route("/_matrix/key/v2/query", query_many, ["POST"]),
]
