"""Our users' devices and keys for other servers: ``GET /_matrix/federation/v1/user/devices/
{userId}``, ``POST /_matrix/federation/v1/user/keys/query`` and ``POST .../user/keys/claim``.

Spec: server-server API "Device Management" (user_devices.yaml: the user "must be a user
local to the receiving homeserver"; the answer's ``stream_id`` is the version that later
``m.device_list_update`` EDUs build on) and "End-to-End Encryption" (user_keys.yaml:
"Requested users must be local to the receiving homeserver"; each one-time key is handed
out at most once). Every request needs X-Matrix (401 without).

Refusals: ``/user/devices`` of a user of another server is 403 ``M_FORBIDDEN``, of an
unknown local user 404 ``M_NOT_FOUND``. In query and claim, users of other servers are left
out of the answer (as the client API leaves out unknown users). Device display names are not
shared over federation (Synapse's default too): they can say more about a person than the
keys need to.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1 import e2e_keys
from d1.accounts import user_exists
from d1.remote_devices import outbound_stream_id
from workers.auth import is_local_user, is_valid_user_id
from workers.errors import bad_json, forbidden, not_found
from workers.federation.auth import require_server
from workers.federation.local_keys import cross_signing_keys, device_keys
from workers.federation.server.common import FEDERATION_V1
from workers.routing import read_json_object, route

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]


async def local_keys(env: Any, user_id: str, device_ids: list[str]) -> JsonDict:
    """``{"device_keys", "master_key"?, "self_signing_key"?}`` of a local user, as another
    server may see them."""
    return {"device_keys": await device_keys(env.DB, user_id, device_ids),
            **await cross_signing_keys(env.DB, user_id)}


async def user_devices(request: Request, env: Any) -> JsonDict:
    await require_server(request, env)
    user_id = request.path_params["user_id"]
    if not is_local_user(env, user_id):
        raise forbidden(f"{user_id} is not a user of this server")
    if not await user_exists(env.DB, user_id):
        raise not_found(f"Unknown user {user_id}")
    found = await local_keys(env, user_id, [])
    body: JsonDict = {
        "user_id": user_id,
        "stream_id": await outbound_stream_id(env.DB, user_id),
        "devices": [{"device_id": d, "keys": k} for d, k in found["device_keys"].items()],
    }
    for part in ("master_key", "self_signing_key"):
        if part in found:
            body[part] = found[part]
    return body


def _local_users(env: Any, wanted: dict[str, Any], origin: str, what: str) -> list[str]:
    users = []
    for user_id in wanted:
        if is_valid_user_id(user_id) and is_local_user(env, user_id):
            users.append(user_id)
        else:
            log.info("%s asked %s for %s, not a user of this server: left out", origin, what, user_id)
    return users


async def query_user_keys(request: Request, env: Any) -> JsonDict:
    origin = await require_server(request, env)
    body = await read_json_object(request)
    wanted = body.get("device_keys")
    if not isinstance(wanted, dict):
        raise bad_json("device_keys must be an object")
    result: JsonDict = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
    for user_id in _local_users(env, wanted, origin, "keys"):
        device_ids = wanted[user_id]
        if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
            raise bad_json("device_keys values must be lists of device IDs")
        found = await local_keys(env, user_id, device_ids)
        result["device_keys"][user_id] = found["device_keys"]
        for part, field in (("master_key", "master_keys"), ("self_signing_key", "self_signing_keys")):
            if part in found:
                result[field][user_id] = found[part]
    return result


async def claim_user_keys(request: Request, env: Any) -> JsonDict:
    origin = await require_server(request, env)
    body = await read_json_object(request)
    wanted = body.get("one_time_keys")
    if not isinstance(wanted, dict):
        raise bad_json("one_time_keys must be an object")
    claims: list[e2e_keys.Claim] = []
    for user_id in _local_users(env, wanted, origin, "one-time keys"):
        devices = wanted[user_id]
        if not isinstance(devices, dict) or not all(isinstance(a, str) for a in devices.values()):
            raise bad_json("one_time_keys values must map devices to algorithms")
        claims += [(user_id, device_id, algorithm) for device_id, algorithm in devices.items()]
    claimed = await e2e_keys.claim_keys(env.DB, claims)
    if claimed:
        # The owners' devices learn their new counts (and a used fallback key) from /sync.
        env.NOTIFIER.notify(sorted(claimed))
    return {"one_time_keys": claimed}


routes: list[Route] = [
    route(FEDERATION_V1 + "/user/devices/{user_id}", user_devices, ["GET"]),
    route(FEDERATION_V1 + "/user/keys/query", query_user_keys, ["POST"]),
    route(FEDERATION_V1 + "/user/keys/claim", claim_user_keys, ["POST"]),
]
