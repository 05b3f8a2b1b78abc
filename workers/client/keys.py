"""Key management: ``/keys/upload``, ``/keys/query``, ``/keys/claim``, ``/keys/changes``,
``/keys/device_signing/upload`` and ``/keys/signatures/upload``.

Spec: client-server API "End-to-End Encryption", "Key management API" and "Cross-signing".
- Upload: device keys must carry a valid self-signature by the device's Ed25519 key; a
  device's identity keys never change (new keys need a new device), one-time keys are never
  overwritten with a different key, and a device has one fallback key per algorithm.
- Claim: each one-time key is handed out once (claims run in one write transaction); a
  device with none left hands out its fallback key, which is then marked used.
- Query and claim answer for local users from D1 and for remote users through their
  servers (workers.federation.remote_keys: cached device lists, per-server requests in
  parallel within the request's ``timeout``, unreachable servers in ``failures``).
- A change of device keys or cross-signing keys is a device-list change: users sharing a
  room with the owner see it in ``/sync`` ``device_lists.changed``, and servers sharing a
  room get an ``m.device_list_update`` or ``m.signing_key_update`` EDU
  (workers.federation.e2ee_out).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from starlette.requests import Request
from starlette.responses import Response

from d1 import device_lists
from d1 import devices as devices_db
from d1 import e2e_keys
from d1 import to_device as to_device_db
from workers.auth import Requester, is_local_user, is_valid_user_id, require_user
from workers.client import client_routes
from workers.client.key_checks import (
    CROSS_SIGNING_USAGES,
    INVALID_SIGNATURE,
    bad_signature,
    check_device_keys,
    cross_signing_public_key,
    invalid,
    merge_signatures,
    split_key_id,
    strip_signed,
    verify_signature,
)
from workers.client.uia import PASSWORD_FLOWS, authenticate
from workers.errors import Codes, MatrixError
from workers.federation import e2ee_out
from workers.federation.remote_keys import claim_remote_keys, query_remote_keys, request_timeout_s
from workers.routing import check_stored_size, read_json_object
from workers.sync.tokens import StreamToken

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
# Older clients read this count even when it is zero.
DEFAULT_COUNTED_ALGORITHM = "signed_curve25519"
FALLBACK_FIELDS = ("fallback_keys", "org.matrix.msc2732.fallback_keys")


# --- device-list changes -------------------------------------------------------------------


async def announce_device_list_change(env: Any, user_ids: Iterable[str]) -> None:
    """Record a device-list change of each user and wake the syncs that should hear of it
    (the users themselves and everyone in their rooms)."""
    users = set(user_ids)
    if not users:
        return
    await env.DB.batch(device_lists.mark_changed(env.DB, users))
    keys = set(users)
    for user_id in users:
        keys.update(await device_lists.joined_rooms(env.DB, user_id))
    env.NOTIFIER.notify(sorted(keys))


async def on_devices_deleted(env: Any, user_id: str, device_ids: list[str]) -> None:
    """Drop the deleted devices' keys and to-device inboxes; a device list change for the
    owner. Installed as the ``devices_deleted`` hook (see workers.client)."""
    statements = []
    for device_id in device_ids:
        statements += e2e_keys.delete_device_keys(env.DB, user_id, device_id)
        statements += to_device_db.delete_inbox(env.DB, user_id, device_id)
    if statements:
        await env.DB.batch(statements)
    if device_ids:
        await announce_device_list_change(env, [user_id])
        await e2ee_out.device_list_changed(env, user_id, device_ids, deleted=True)


# --- /keys/upload --------------------------------------------------------------------------


def _counts(counts: dict[str, int]) -> dict[str, int]:
    return {DEFAULT_COUNTED_ALGORITHM: 0, **counts}


async def upload_keys(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    user_id, device_id = requester.user_id, requester.device_id
    if device_id is None:
        raise invalid("Keys can only be uploaded by an access token bound to a device")
    db = env.DB
    statements = []
    device_list_changed = False

    if body.get("device_keys") is not None:
        keys = check_device_keys(body["device_keys"], user_id, device_id)
        check_stored_size(keys, "device_keys")
        existing = await e2e_keys.get_device_keys(db, user_id, device_id)
        if existing is not None and existing.get("keys") != keys["keys"]:
            raise invalid(
                "This device already has different identity keys; log in as a new device"
                " to use new keys"
            )
        if existing != keys:
            statements.append(e2e_keys.set_device_keys(db, user_id, device_id, keys))
            device_list_changed = True

    one_time = body.get("one_time_keys")
    if one_time is not None:
        if not isinstance(one_time, dict):
            raise MatrixError(400, Codes.BAD_JSON, "one_time_keys must be an object")
        parsed = {split_key_id(name): key for name, key in one_time.items()}
        stored = await e2e_keys.one_time_keys_with_ids(db, user_id, device_id, parsed)
        for (algorithm, key_id), key in parsed.items():
            if not isinstance(key, (str, dict)):
                raise MatrixError(400, Codes.BAD_JSON, "one-time keys must be strings or objects")
            check_stored_size(key, "A one-time key")
            if (algorithm, key_id) in stored:
                if stored[(algorithm, key_id)] != key:
                    raise invalid(f"One-time key {algorithm}:{key_id} already exists with another value")
                continue
            statements.append(e2e_keys.add_one_time_key(db, user_id, device_id, algorithm, key_id, key))

    for field in FALLBACK_FIELDS:
        fallback = body.get(field)
        if fallback is None:
            continue
        if not isinstance(fallback, dict):
            raise MatrixError(400, Codes.BAD_JSON, f"{field} must be an object")
        parsed = {split_key_id(name): key for name, key in fallback.items()}
        algorithms = [algorithm for algorithm, _ in parsed]
        if len(algorithms) != len(set(algorithms)):
            raise invalid("At most one fallback key per algorithm")
        current = await e2e_keys.fallback_keys(db, user_id, device_id)
        for (algorithm, key_id), key in parsed.items():
            if not isinstance(key, (str, dict)):
                raise MatrixError(400, Codes.BAD_JSON, "fallback keys must be strings or objects")
            check_stored_size(key, "A fallback key")
            old = current.get(algorithm)
            if old is not None and old["key_id"] == key_id and old["key"] == key:
                continue  # the same key again: keep its used flag
            statements.append(e2e_keys.set_fallback_key(db, user_id, device_id, algorithm, key_id, key))
        break

    if statements:
        await db.batch(statements)
    if device_list_changed:
        await announce_device_list_change(env, [user_id])
        await e2ee_out.device_list_changed(env, user_id, [device_id])
    counts = await e2e_keys.one_time_key_counts(db, user_id, device_id)
    return {"one_time_key_counts": _counts(counts)}


# --- /keys/query ---------------------------------------------------------------------------


def _visible_master_signatures(
    sigs: dict[str, dict[str, str]], owner: str, requester: str
) -> dict[str, dict[str, str]]:
    """Signatures on a master key shown to ``requester``: the owner's own, and the
    requester's (a user-signing signature is seen only by the user who made it)."""
    return {signer: s for signer, s in sigs.items() if signer in (owner, requester)}


async def query_local_user(env: Any, requester: str, user_id: str, device_ids: list[str]) -> JsonDict:
    """{"device_keys", "master_key", "self_signing_key", "user_signing_key"} of a local user
    (absent parts are None), with uploaded signatures merged in."""
    db = env.DB
    devices = await e2e_keys.device_keys_of_user(db, user_id)
    if device_ids:
        devices = {d: k for d, k in devices.items() if d in device_ids}
    signatures = await e2e_keys.signatures_for(db, user_id)
    devices = {d: merge_signatures(k, signatures.get(d, {})) for d, k in devices.items()}
    cross = await e2e_keys.cross_signing_keys(db, user_id)
    out: JsonDict = {"device_keys": devices, "master_key": None, "self_signing_key": None,
                     "user_signing_key": None}
    if "master" in cross:
        master = cross["master"]
        extra = _visible_master_signatures(signatures.get(master["public_key"], {}), user_id, requester)
        out["master_key"] = merge_signatures(master["key"], extra)
    if "self_signing" in cross:
        out["self_signing_key"] = cross["self_signing"]["key"]
    if "user_signing" in cross and user_id == requester:
        out["user_signing_key"] = cross["user_signing"]["key"]
    return out


async def query_keys(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    body = await read_json_object(request)
    wanted = body.get("device_keys")
    if not isinstance(wanted, dict):
        raise MatrixError(400, Codes.BAD_JSON, "device_keys must be an object")
    result: JsonDict = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {},
                        "user_signing_keys": {}, "failures": {}}
    remote: dict[str, list[str]] = {}
    for user_id, device_ids in wanted.items():
        if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
            raise MatrixError(400, Codes.BAD_JSON, "device_keys values must be lists of device IDs")
        if not is_valid_user_id(user_id):
            raise invalid(f"Invalid user ID {user_id!r}")
        if not is_local_user(env, user_id):
            remote[user_id] = device_ids
            continue
        found = await query_local_user(env, requester.user_id, user_id, device_ids)
        result["device_keys"][user_id] = found["device_keys"]
        for part, field in (("master_key", "master_keys"), ("self_signing_key", "self_signing_keys"),
                            ("user_signing_key", "user_signing_keys")):
            if found[part] is not None:
                result[field][user_id] = found[part]
    if remote:
        found_remote, result["failures"] = await query_remote_keys(
            env, remote, request_timeout_s(body.get("timeout"))
        )
        for field, values in found_remote.items():
            result[field].update(values)
    return result


# --- /keys/claim ---------------------------------------------------------------------------


async def claim_keys(request: Request, env: Any) -> JsonDict:
    await require_user(request, env)
    body = await read_json_object(request)
    wanted = body.get("one_time_keys")
    if not isinstance(wanted, dict):
        raise MatrixError(400, Codes.BAD_JSON, "one_time_keys must be an object")
    claims: list[e2e_keys.Claim] = []
    remote: dict[str, dict[str, str]] = {}
    for user_id, devices in wanted.items():
        if not isinstance(devices, dict) or not all(isinstance(a, str) for a in devices.values()):
            raise MatrixError(400, Codes.BAD_JSON, "one_time_keys values must map devices to algorithms")
        if not is_valid_user_id(user_id):
            raise invalid(f"Invalid user ID {user_id!r}")
        if not is_local_user(env, user_id):
            remote[user_id] = devices
            continue
        claims += [(user_id, device_id, algorithm) for device_id, algorithm in devices.items()]
    claimed = await e2e_keys.claim_keys(env.DB, claims)
    if claimed:
        # The owners' devices learn their new counts (and a used fallback key) from /sync.
        env.NOTIFIER.notify(sorted(claimed))
    failures: JsonDict = {}
    if remote:
        claimed_remote, failures = await claim_remote_keys(env, remote, request_timeout_s(body.get("timeout")))
        claimed.update(claimed_remote)
    return {"one_time_keys": claimed, "failures": failures}


# --- /keys/changes -------------------------------------------------------------------------


async def key_changes(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    start, end = request.query_params.get("from"), request.query_params.get("to")
    if start is None or end is None:
        raise MatrixError(400, Codes.MISSING_PARAM, "from and to are required")
    since = StreamToken.parse(start, param="from")
    upto = StreamToken.parse(end, param="to")
    return await device_lists.device_list_changes(
        env.DB, requester.user_id, since.device_lists, upto.device_lists, since.events, upto.events
    )


# --- /keys/device_signing/upload -----------------------------------------------------------

_FIELDS = {"master": "master_key", "self_signing": "self_signing_key", "user_signing": "user_signing_key"}


async def upload_cross_signing_keys(request: Request, env: Any) -> JsonDict | Response:
    requester = await require_user(request, env)
    body = await read_json_object(request)
    user_id = requester.user_id
    db = env.DB
    provided: dict[str, tuple[str, JsonDict]] = {}
    for usage in CROSS_SIGNING_USAGES:
        key = body.get(_FIELDS[usage])
        if key is not None:
            provided[usage] = (cross_signing_public_key(key, user_id, usage), key)
    existing = await e2e_keys.cross_signing_keys(db, user_id)

    # UIA unless there is no master key yet, or the request holds no new key.
    if "master" in existing and any(
        usage not in existing or existing[usage]["key"] != key for usage, (_, key) in provided.items()
    ):
        challenge = await authenticate(request, env, body, PASSWORD_FLOWS, requester)
        if challenge is not None:
            return challenge
    if not provided:
        return {}

    device_ids = {d["device_id"] for d in await devices_db.list_devices(db, user_id)}
    for usage, (public_key, _) in provided.items():
        if public_key in device_ids:
            raise MatrixError(403, Codes.FORBIDDEN, f"The {usage} key's ID is one of your device IDs")
    master_public = provided["master"][0] if "master" in provided else (
        existing["master"]["public_key"] if "master" in existing else None
    )
    for usage in ("self_signing", "user_signing"):
        if usage not in provided:
            continue
        if master_public is None:
            raise MatrixError(400, Codes.MISSING_PARAM, "No master key available to sign with")
        if not verify_signature(provided[usage][1], user_id, f"ed25519:{master_public}", master_public):
            raise bad_signature(f"The {usage} key is not signed by the master key")

    await db.batch([
        e2e_keys.set_cross_signing_key(db, user_id, usage, public_key, key)
        for usage, (public_key, key) in provided.items()
    ])
    await announce_device_list_change(env, [user_id])
    if "master" in provided or "self_signing" in provided:
        await e2ee_out.signing_keys_changed(env, user_id)
    return {}


# --- /keys/signatures/upload ---------------------------------------------------------------


class _Failure(Exception):
    def __init__(self, errcode: str, error: str) -> None:
        super().__init__(error)
        self.body = {"errcode": errcode, "error": error}


async def _signing_target(
    env: Any, requester: Requester, target_user: str, key_id: str
) -> tuple[JsonDict, dict[str, str]]:
    """The stored object a signature upload targets, and the signer key IDs (of the
    requester) allowed to sign it -> their public keys."""
    db = env.DB
    own = await e2e_keys.cross_signing_keys(db, requester.user_id)
    if target_user == requester.user_id:
        master = own.get("master")
        if master is not None and key_id == master["public_key"]:
            # The master key, signed by one of the user's devices.
            devices = await e2e_keys.device_keys_of_user(db, target_user)
            signers = {
                f"ed25519:{d}": keys["keys"][f"ed25519:{d}"]
                for d, keys in devices.items() if f"ed25519:{d}" in keys.get("keys", {})
            }
            return master["key"], signers
        device = await e2e_keys.get_device_keys(db, target_user, key_id)
        if device is None:
            raise _Failure(Codes.NOT_FOUND.value, f"No device {key_id} with keys")
        if "self_signing" not in own:
            raise _Failure(Codes.MISSING_PARAM.value, "Upload a self-signing key first")
        ssk = own["self_signing"]["public_key"]
        return device, {f"ed25519:{ssk}": ssk}
    # Another user's master key, signed by the requester's user-signing key.
    if not is_local_user(env, target_user):
        raise _Failure(Codes.INVALID_PARAM.value, "Signatures on remote users' keys are not supported yet")
    theirs = await e2e_keys.cross_signing_keys(db, target_user)
    if "master" not in theirs or theirs["master"]["public_key"] != key_id:
        raise _Failure(Codes.NOT_FOUND.value, f"{key_id} is not {target_user}'s master key")
    if "user_signing" not in own:
        raise _Failure(Codes.MISSING_PARAM.value, "Upload a user-signing key first")
    usk = own["user_signing"]["public_key"]
    return theirs["master"]["key"], {f"ed25519:{usk}": usk}


async def upload_signatures(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    body = await read_json_object(request)
    signer = requester.user_id
    failures: dict[str, dict[str, JsonDict]] = {}
    statements = []
    changed: set[str] = set()
    # Signed devices and master key of the signer's own, which other servers hear about.
    own_devices: set[str] = set()
    own_master = False
    for target_user, objects in body.items():
        if not isinstance(objects, dict):
            raise MatrixError(400, Codes.BAD_JSON, "Each user must map key IDs to signed objects")
        for key_id, signed in objects.items():
            try:
                if not isinstance(signed, dict):
                    raise _Failure(Codes.BAD_JSON.value, "The signed object must be an object")
                stored, allowed = await _signing_target(env, requester, target_user, key_id)
                if strip_signed(signed) != strip_signed(stored):
                    raise _Failure(Codes.INVALID_PARAM.value, "The signed object does not match the stored key")
                mine = signed.get("signatures", {}).get(signer, {})
                new = {k: v for k, v in mine.items() if k in allowed} if isinstance(mine, dict) else {}
                if not new:
                    raise _Failure(INVALID_SIGNATURE, "No signature by a key allowed to sign this object")
                for signer_key_id, signature in new.items():
                    candidate = {**strip_signed(stored), "signatures": {signer: {signer_key_id: signature}}}
                    if not isinstance(signature, str) or not verify_signature(
                        candidate, signer, signer_key_id, allowed[signer_key_id]
                    ):
                        raise _Failure(INVALID_SIGNATURE, "Invalid signature")
                    statements.append(
                        e2e_keys.add_signature(env.DB, target_user, key_id, signer, signer_key_id, signature)
                    )
                changed.add(target_user)
                if target_user == signer and "device_id" in stored:
                    own_devices.add(key_id)
                elif target_user == signer:
                    own_master = True
            except _Failure as failure:
                failures.setdefault(target_user, {})[key_id] = failure.body
    if statements:
        await env.DB.batch(statements)
    await announce_device_list_change(env, changed)
    await e2ee_out.device_list_changed(env, signer, own_devices)
    if own_master:
        await e2ee_out.signing_keys_changed(env, signer)
    return {"failures": failures}


routes = [
    *client_routes("/keys/upload", upload_keys, ["POST"]),
    *client_routes("/keys/query", query_keys, ["POST"]),
    *client_routes("/keys/claim", claim_keys, ["POST"]),
    *client_routes("/keys/changes", key_changes, ["GET"]),
    *client_routes("/keys/device_signing/upload", upload_cross_signing_keys, ["POST"]),
    *client_routes("/keys/signatures/upload", upload_signatures, ["POST"]),
]
