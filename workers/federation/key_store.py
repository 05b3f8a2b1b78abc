"""Remote servers' signing keys: fetched from the origin, verified, stored in D1 (the truth)
and cached in KV.

Spec: server-server API "Retrieving server keys" / "Publishing Keys" and keys.yaml:
- a ``/_matrix/key/v2/server`` response must be signed by the server with (at least one of)
  the keys it lists in ``verify_keys``; every such signature must verify;
- ``verify_keys`` are valid until ``valid_until_ts``, which a server MUST cap at 7 days after
  it learnt them; ``old_verify_keys`` only until their ``expired_ts`` (and only for events);
- whether a key's validity period matters depends on the room version: from room version 5
  (``RoomVersion.enforce_key_validity``) a key is usable only for events whose
  ``origin_server_ts`` is within it; before, validity is ignored. Request authentication
  always uses the current time.

This server fetches keys directly from the origin (no notary of its own choosing).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Iterable

from nacl.signing import VerifyKey
from signedjson.key import decode_verify_key_base64
from signedjson.key import get_verify_key as public_key_of
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import encode_base64

from durable.room_versions import RoomVersion
from workers.federation.client import federation_client, now_ms
from workers.federation.errors import FederationError

log = logging.getLogger(__name__)

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
KV_TTL_SECONDS = 3600
REFETCH_INTERVAL_SECONDS = 60  # at most one origin fetch per server per minute
KEY_KV_PREFIX = "fed:key:"
FETCHED_KV_PREFIX = "fed:keyfetch:"
SERVER_KEYS_PATH = "/_matrix/key/v2/server"


class KeyStoreError(LookupError):
    """A key could not be obtained or a key response is invalid."""


class KeyResponseError(KeyStoreError):
    """A ``/_matrix/key/v2/server`` response failed the checks; the message says which."""


class KeyNotFound(KeyStoreError):
    """No key with that ID, valid at the requested time, is known or could be fetched."""


@dataclass(frozen=True)
class StoredKey:
    server_name: str
    key_id: str
    verify_key: str  # unpadded base64
    valid_until_ts: int  # effective limit (see the migration)
    expired_ts: int | None = None

    def usable_at(self, at_ts: int | None) -> bool:
        """Whether the key may verify a signature made at ``at_ts`` (None: any time)."""
        if at_ts is None:
            return True
        if self.expired_ts is not None and at_ts >= self.expired_ts:
            return False
        return at_ts <= self.valid_until_ts

    def decoded(self) -> VerifyKey:
        algorithm, _, version = self.key_id.partition(":")
        return decode_verify_key_base64(algorithm, version, self.verify_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.verify_key,
            "valid_until_ts": self.valid_until_ts,
            "expired_ts": self.expired_ts,
        }


def verify_server_keys_response(
    response: Any, server_name: str, now: int
) -> list[StoredKey]:
    """Check a ``/_matrix/key/v2/server`` response for ``server_name`` and return its keys.

    Checks: a JSON object for ``server_name``; ``verify_keys`` an object of ``{"key"}``
    entries decodable as ed25519 keys; ``valid_until_ts`` an integer; at least one signature
    by ``server_name`` under a key of ``verify_keys`` and every such signature verifying.
    ``old_verify_keys`` entries need ``key`` and ``expired_ts``. Current keys get
    ``valid_until_ts`` capped at ``now`` + 7 days. Raises KeyResponseError.
    """
    if not isinstance(response, dict):
        raise KeyResponseError("key response is not a JSON object")
    if response.get("server_name") != server_name:
        raise KeyResponseError(f"key response is for {response.get('server_name')!r}, not {server_name!r}")
    valid_until = response.get("valid_until_ts")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool):
        raise KeyResponseError("valid_until_ts is missing or not an integer")
    verify_keys = response.get("verify_keys")
    if not isinstance(verify_keys, dict) or not verify_keys:
        raise KeyResponseError("verify_keys is missing or empty")
    effective_until = min(valid_until, now + SEVEN_DAYS_MS)
    keys: dict[str, StoredKey] = {}
    decoded: dict[str, VerifyKey] = {}
    for key_id, entry in verify_keys.items():
        key_b64 = entry.get("key") if isinstance(entry, dict) else None
        algorithm, _, version = key_id.partition(":")
        if not isinstance(key_b64, str) or algorithm != "ed25519" or not version:
            continue  # unknown algorithms are skipped, as for signatures
        try:
            decoded[key_id] = decode_verify_key_base64(algorithm, version, key_b64)
        except (ValueError, TypeError) as exc:  # bad base64 or a key of the wrong length
            raise KeyResponseError(f"verify key {key_id} cannot be decoded: {exc}") from None
        keys[key_id] = StoredKey(server_name, key_id, key_b64, effective_until)
    if not decoded:
        raise KeyResponseError("no ed25519 key in verify_keys")
    signatures = response.get("signatures")
    own = signatures.get(server_name) if isinstance(signatures, dict) else None
    if not isinstance(own, dict):
        raise KeyResponseError("key response is not signed by its server")
    checked = 0
    for key_id in own:
        if key_id not in decoded:
            continue
        try:
            verify_signed_json(response, server_name, decoded[key_id])
        except SignatureVerifyException:
            raise KeyResponseError(f"signature under {key_id} does not verify") from None
        checked += 1
    if checked == 0:
        raise KeyResponseError("key response is not signed with any of its verify_keys")
    old = response.get("old_verify_keys", {})
    if isinstance(old, dict):
        for key_id, entry in old.items():
            if key_id in keys or not isinstance(entry, dict):
                continue
            key_b64, expired = entry.get("key"), entry.get("expired_ts")
            if not isinstance(key_b64, str) or not isinstance(expired, int) or isinstance(expired, bool):
                continue
            if not key_id.startswith("ed25519:"):
                continue
            keys[key_id] = StoredKey(server_name, key_id, key_b64, expired, expired)
    return list(keys.values())


# --- storage ----------------------------------------------------------------------------------
def _kv_key(server_name: str, key_id: str) -> str:
    return f"{KEY_KV_PREFIX}{server_name}|{key_id}"


async def _cache_key(env: Any, key: StoredKey) -> None:
    await env.CACHE.put(
        _kv_key(key.server_name, key.key_id), json.dumps(key.to_json()), expiration_ttl=KV_TTL_SECONDS
    )


async def _lookup(env: Any, server_name: str, key_id: str) -> StoredKey | None:
    cached = await env.CACHE.get(_kv_key(server_name, key_id), type="json")
    if isinstance(cached, dict) and isinstance(cached.get("key"), str):
        return StoredKey(
            server_name, key_id, cached["key"], int(cached["valid_until_ts"]), cached.get("expired_ts")
        )
    row = await env.DB.prepare(
        "SELECT verify_key, valid_until_ts, expired_ts FROM remote_server_keys"
        " WHERE server_name = ? AND key_id = ?"
    ).bind(server_name, key_id).first()
    if row is None:
        return None
    key = StoredKey(server_name, key_id, row["verify_key"], row["valid_until_ts"], row["expired_ts"])
    await _cache_key(env, key)
    return key


async def store_server_keys(
    env: Any, server_name: str, response: Mapping[str, Any], keys: Iterable[StoredKey], fetched: int
) -> None:
    """Persist verified keys and the response they came from (one D1 batch), then cache.

    A key already known keeps the later of its stored and new validity, so a response that
    no longer lists an older key does not shorten what was learnt before.
    """
    keys = list(keys)
    statements = [
        env.DB.prepare(
            "INSERT INTO remote_server_keys"
            " (server_name, key_id, verify_key, valid_until_ts, expired_ts, fetched_ts)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (server_name, key_id) DO UPDATE SET"
            "  verify_key = excluded.verify_key,"
            "  valid_until_ts = CASE WHEN excluded.expired_ts IS NOT NULL THEN excluded.valid_until_ts"
            "    ELSE MAX(valid_until_ts, excluded.valid_until_ts) END,"
            "  expired_ts = excluded.expired_ts,"
            "  fetched_ts = excluded.fetched_ts"
        ).bind(k.server_name, k.key_id, k.verify_key, k.valid_until_ts, k.expired_ts, fetched)
        for k in keys
    ]
    statements.append(
        env.DB.prepare(
            "INSERT OR REPLACE INTO remote_server_key_responses"
            " (server_name, response_json, valid_until_ts, fetched_ts) VALUES (?, ?, ?, ?)"
        ).bind(server_name, json.dumps(response), int(response["valid_until_ts"]), fetched)
    )
    await env.DB.batch(statements)
    for key in keys:
        await env.CACHE.delete(_kv_key(server_name, key.key_id))


async def cached_key_response(env: Any, server_name: str) -> dict[str, Any] | None:
    """The latest self-signed key response stored for ``server_name``, or None."""
    row = await env.DB.prepare(
        "SELECT response_json FROM remote_server_key_responses WHERE server_name = ?"
    ).bind(server_name).first()
    return None if row is None else json.loads(row["response_json"])


# --- fetching ---------------------------------------------------------------------------------
async def fetch_server_keys(env: Any, server_name: str) -> dict[str, Any]:
    """Fetch ``server_name``'s keys from the server itself, verify and store them; return the
    verified response. Raises KeyStoreError (unreachable, or an invalid response)."""
    try:
        response = await federation_client(env).get_json(
            server_name, SERVER_KEYS_PATH, authenticated=False
        )
    except FederationError as exc:
        raise KeyStoreError(f"cannot fetch keys of {server_name}: {exc.message}") from None
    fetched = now_ms()
    keys = verify_server_keys_response(response, server_name, fetched)
    await store_server_keys(env, server_name, response, keys, fetched)
    log.info("fetched %d keys of %s", len(keys), server_name)
    return response


async def _own_key(env: Any, key_id: str, at_ts: int | None) -> VerifyKey:
    current = env.signing_key
    if f"{current.alg}:{current.version}" == key_id:
        return public_key_of(current)
    row = await env.DB.prepare(
        "SELECT public_key, expired_ts FROM server_signing_keys WHERE key_id = ?"
    ).bind(key_id).first()
    if row is None or (at_ts is not None and row["expired_ts"] is not None and at_ts >= row["expired_ts"]):
        raise KeyNotFound(f"no key {key_id} of this server valid at {at_ts}")
    algorithm, _, version = key_id.partition(":")
    return decode_verify_key_base64(algorithm, version, row["public_key"])


async def get_verify_key(env: Any, server_name: str, key_id: str, at_ts: int | None) -> VerifyKey:
    """The public key ``key_id`` of ``server_name``, usable at ``at_ts`` (ms; None: ignore
    validity, as room versions 1-4 do).

    Looks in KV, then D1; when the key is unknown or no longer valid at ``at_ts``, fetches the
    server's keys from the server itself (at most once a minute per server) and looks again.
    Our own keys come from ``env.signing_key`` and ``server_signing_keys``. Raises KeyNotFound.
    """
    if server_name == env.config.server_name:
        return await _own_key(env, key_id, at_ts)
    known = await _lookup(env, server_name, key_id)
    if known is not None and known.usable_at(at_ts):
        return known.decoded()
    marker = FETCHED_KV_PREFIX + server_name
    if await env.CACHE.get(marker) is None:
        await env.CACHE.put(marker, "1", expiration_ttl=REFETCH_INTERVAL_SECONDS)
        try:
            await fetch_server_keys(env, server_name)
        except KeyStoreError as exc:
            log.info("key %s of %s: %s", key_id, server_name, exc)
        known = await _lookup(env, server_name, key_id)
        if known is not None and known.usable_at(at_ts):
            return known.decoded()
    if known is not None:
        raise KeyNotFound(f"key {key_id} of {server_name} is not valid at {at_ts}")
    raise KeyNotFound(f"unknown key {key_id} of {server_name}")


async def keys_for_pdu(
    env: Any, pdu: Mapping[str, Any], room_version: RoomVersion
) -> dict[str, dict[str, str]]:
    """The keys to check ``pdu``'s signatures with, in the shape ``verify_event_report``
    takes (server name -> key ID -> unpadded base64).

    For every ed25519 key ID in the PDU's ``signatures``: the key, if it can be obtained and
    is usable at the event's ``origin_server_ts`` (from room version 5) or at all (before).
    Keys that cannot be obtained are left out (the report then fails the signature check
    for a required signer).
    """
    at_ts: int | None = None
    if room_version.enforce_key_validity:
        ts = pdu.get("origin_server_ts")
        at_ts = ts if isinstance(ts, int) and not isinstance(ts, bool) else 0
    keys: dict[str, dict[str, str]] = {}
    signatures = pdu.get("signatures")
    if not isinstance(signatures, Mapping):
        return keys
    for server, by_key in signatures.items():
        if not isinstance(server, str) or not isinstance(by_key, Mapping):
            continue
        for key_id in by_key:
            if not isinstance(key_id, str) or not key_id.startswith("ed25519:"):
                continue
            try:
                key = await get_verify_key(env, server, key_id, at_ts)
            except KeyStoreError:
                continue
            keys.setdefault(server, {})[key_id] = encode_base64(key.encode())
    return keys
