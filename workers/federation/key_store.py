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

Keys are fetched directly from the origin first. When that fails (unreachable, an error, an
invalid response, or no usable key of that ID), the notaries of the ``trusted_key_servers``
setting are asked in turn ("Querying Keys Through Another Server",
``POST /_matrix/key/v2/query``); none by default. A notary's entry is accepted only when it is
for the server asked about, passes every check above (it is the origin's own self-signed
response), is also signed by the notary, and holds the wanted key usable at the time asked;
it is then stored exactly as a direct answer is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Iterable, Protocol

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
NOTARY_QUERY_PATH = "/_matrix/key/v2/query"


class KeyStoreError(LookupError):
    """A key could not be obtained or a key response is invalid."""


class KeyResponseError(KeyStoreError):
    """A ``/_matrix/key/v2/server`` response failed the checks; the message says which."""


class KeyNotFound(KeyStoreError):
    """No key with that ID, valid at the requested time, is known or could be fetched."""


class Notary(Protocol):
    """A trusted key server as configured (``local_runtime.config.TrustedKeyServer``):
    its name and its ``(key ID, unpadded base64)`` public keys, or None when they are to be
    fetched from it."""

    @property
    def server_name(self) -> str: ...

    @property
    def verify_keys(self) -> tuple[tuple[str, str], ...] | None: ...


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
    check_signed_by(response, server_name, decoded)
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


def check_signed_by(response: Mapping[str, Any], signer: str, keys: Mapping[str, VerifyKey]) -> None:
    """Require ``response`` to carry at least one signature by ``signer`` under a key ID of
    ``keys``, and every such signature to verify (spec appendices, "Checking for a
    signature"). Signatures under other key IDs are ignored. Raises KeyResponseError."""
    signatures = response.get("signatures")
    own = signatures.get(signer) if isinstance(signatures, Mapping) else None
    if not isinstance(own, Mapping):
        raise KeyResponseError(f"key response is not signed by {signer}")
    checked = 0
    for key_id in own:
        if key_id not in keys:
            continue
        try:
            verify_signed_json(dict(response), signer, keys[key_id])
        except SignatureVerifyException:
            raise KeyResponseError(f"signature of {signer} under {key_id} does not verify") from None
        checked += 1
    if checked == 0:
        raise KeyResponseError(f"key response is not signed by {signer} with any of {', '.join(sorted(keys)) or 'no key'}")


def notary_key_ids(body: Any, server_name: str, notary_name: str) -> list[str]:
    """The ed25519 key IDs ``notary_name`` signed the entries for ``server_name`` of a
    ``/_matrix/key/v2/query`` answer with (to fetch when its keys are not configured)."""
    entries = body.get("server_keys") if isinstance(body, dict) else None
    found: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("server_name") != server_name:
            continue
        signatures = entry.get("signatures")
        by_notary = signatures.get(notary_name) if isinstance(signatures, dict) else None
        for key_id in by_notary if isinstance(by_notary, dict) else ():
            if key_id.startswith("ed25519:") and key_id not in found:
                found.append(key_id)
    return found


def verify_notary_response(
    body: Any,
    server_name: str,
    key_id: str,
    at_ts: int | None,
    notary_name: str,
    notary_keys: Mapping[str, VerifyKey],
    now: int,
) -> tuple[dict[str, Any], list[StoredKey]]:
    """Pick the entry for ``server_name`` of a notary's ``/_matrix/key/v2/query`` answer and
    return it (with only the origin's signatures, as stored for direct fetches) and its keys.

    Spec "Querying Keys Through Another Server": the notary returns the queried server's own
    key responses, which it signs in addition. An entry is accepted when it is for
    ``server_name``, passes ``verify_server_keys_response`` (shape, self-signature by the
    origin with a key it lists, ``valid_until_ts`` capped at ``now`` + 7 days), is signed by
    ``notary_name`` with one of ``notary_keys`` (every such signature verifying), and holds
    ``key_id`` usable at ``at_ts`` (a current key within its validity, or an old key before
    its ``expired_ts``). Of several accepted entries the one valid the longest wins. Raises
    KeyResponseError saying why each entry was refused.
    """
    entries = body.get("server_keys") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise KeyResponseError(f"the answer of {notary_name} has no server_keys list")
    refusals: list[str] = []
    best: tuple[dict[str, Any], list[StoredKey]] | None = None
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("server_name") != server_name:
            name = entry.get("server_name") if isinstance(entry, dict) else None
            refusals.append(f"an entry is for {name!r}")
            continue
        try:
            keys = verify_server_keys_response(entry, server_name, now)
            check_signed_by(entry, notary_name, notary_keys)
        except KeyResponseError as exc:
            refusals.append(str(exc))
            continue
        wanted = next((k for k in keys if k.key_id == key_id), None)
        if wanted is None or not wanted.usable_at(at_ts):
            refusals.append(f"an entry has no key {key_id} usable at {at_ts}")
            continue
        if best is None or entry["valid_until_ts"] > best[0]["valid_until_ts"]:
            best = (entry, keys)
    if best is None:
        reasons = "; ".join(refusals) or "no entries"
        raise KeyResponseError(f"{notary_name} gave no acceptable keys of {server_name}: {reasons}")
    entry, keys = best
    return dict(entry, signatures={server_name: entry["signatures"][server_name]}), keys


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


def _configured_keys(notary: Notary) -> dict[str, VerifyKey]:
    return {
        key_id: decode_verify_key_base64("ed25519", key_id.partition(":")[2], key)
        for key_id, key in notary.verify_keys or ()
    }


async def _notary_keys(env: Any, notary: Notary, body: Any, server_name: str) -> dict[str, VerifyKey]:
    """The notary's configured keys, or else those it signed with, fetched from it directly."""
    if notary.verify_keys is not None:
        return _configured_keys(notary)
    keys: dict[str, VerifyKey] = {}
    for key_id in notary_key_ids(body, server_name, notary.server_name):
        try:
            keys[key_id] = await _remote_key(env, notary.server_name, key_id, now_ms(), through_notaries=False)
        except KeyStoreError as exc:
            log.info("key %s of notary %s: %s", key_id, notary.server_name, exc)
    return keys


async def fetch_key_through_notary(
    env: Any, notary: Notary, server_name: str, key_id: str, at_ts: int | None
) -> list[StoredKey]:
    """Ask ``notary`` for ``server_name``'s key ``key_id`` (valid until at least ``at_ts``, or
    now when None), check its answer (``verify_notary_response``) and store the accepted
    response as a direct fetch is stored. Raises KeyStoreError."""
    minimum = at_ts if at_ts is not None else now_ms()
    query = {"server_keys": {server_name: {key_id: {"minimum_valid_until_ts": minimum}}}}
    try:
        body = await federation_client(env).post_json(notary.server_name, NOTARY_QUERY_PATH, query)
    except FederationError as exc:
        raise KeyStoreError(f"cannot query notary {notary.server_name}: {exc.message}") from None
    notary_keys = await _notary_keys(env, notary, body, server_name)
    fetched = now_ms()
    response, keys = verify_notary_response(
        body, server_name, key_id, at_ts, notary.server_name, notary_keys, fetched
    )
    await store_server_keys(env, server_name, response, keys, fetched)
    log.info("fetched %d keys of %s through %s", len(keys), server_name, notary.server_name)
    return keys


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
    server's keys from the server itself and, if that does not give the key, asks the
    configured notaries in turn (at most one such round a minute per server), then looks
    again. Our own keys come from ``env.signing_key`` and ``server_signing_keys``. Raises
    KeyNotFound.
    """
    if server_name == env.config.server_name:
        return await _own_key(env, key_id, at_ts)
    return await _remote_key(env, server_name, key_id, at_ts, through_notaries=True)


async def _remote_key(
    env: Any, server_name: str, key_id: str, at_ts: int | None, *, through_notaries: bool
) -> VerifyKey:
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
        notaries = env.config.trusted_key_servers if through_notaries else ()
        for notary in notaries:
            if notary.server_name == server_name:
                continue  # the server itself was just asked
            try:
                await fetch_key_through_notary(env, notary, server_name, key_id, at_ts)
            except KeyStoreError as exc:
                log.info("key %s of %s through %s: %s", key_id, server_name, notary.server_name, exc)
                continue
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
