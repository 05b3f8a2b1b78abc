"""End-to-end encryption keys of local users: device keys, one-time keys, fallback keys,
cross-signing keys and the signatures uploaded for them.

Spec: client-server API "End-to-End Encryption" ("Key management API", "Cross-signing").
Claims of one-time keys run in one write transaction (``run_in_transaction``), so a key is
handed out exactly once however many claims race.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from d1.database import D1Database, PreparedStatement

JsonDict = dict[str, Any]
Claim = tuple[str, str, str]  # (user_id, device_id, algorithm)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- device keys ---------------------------------------------------------------------------


async def get_device_keys(db: D1Database, user_id: str, device_id: str) -> JsonDict | None:
    raw = await db.prepare(
        "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?"
    ).bind(user_id, device_id).first("key_json")
    return None if raw is None else json.loads(raw)


def set_device_keys(
    db: D1Database, user_id: str, device_id: str, keys: JsonDict
) -> PreparedStatement:
    return db.prepare(
        "INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json"
    ).bind(user_id, device_id, _dumps(keys))


async def device_keys_of_user(db: D1Database, user_id: str) -> dict[str, JsonDict]:
    """device_id -> uploaded device keys, with ``unsigned.device_display_name`` when the
    device has a name. Only devices that still exist are listed."""
    rows = (
        await db.prepare(
            "SELECT k.device_id, k.key_json, d.display_name FROM e2e_device_keys k"
            " JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id"
            " WHERE k.user_id = ? ORDER BY k.device_id"
        ).bind(user_id).all()
    ).results
    out: dict[str, JsonDict] = {}
    for row in rows:
        keys = json.loads(row["key_json"])
        if row["display_name"] is not None:
            keys["unsigned"] = {"device_display_name": row["display_name"]}
        out[row["device_id"]] = keys
    return out


# --- one-time and fallback keys ------------------------------------------------------------


async def one_time_keys_with_ids(
    db: D1Database, user_id: str, device_id: str, key_ids: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Any]:
    """The stored (algorithm, key_id) -> key among ``key_ids`` (to spot re-uploads)."""
    wanted = set(key_ids)
    if not wanted:
        return {}
    rows = (
        await db.prepare(
            "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys"
            " WHERE user_id = ? AND device_id = ?"
        ).bind(user_id, device_id).all()
    ).results
    return {
        (r["algorithm"], r["key_id"]): json.loads(r["key_json"])
        for r in rows
        if (r["algorithm"], r["key_id"]) in wanted
    }


def add_one_time_key(
    db: D1Database, user_id: str, device_id: str, algorithm: str, key_id: str, key: Any
) -> PreparedStatement:
    return db.prepare(
        "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ).bind(user_id, device_id, algorithm, key_id, _dumps(key))


async def one_time_key_counts(db: D1Database, user_id: str, device_id: str) -> dict[str, int]:
    """algorithm -> number of unclaimed one-time keys of the device."""
    rows = (
        await db.prepare(
            "SELECT algorithm, COUNT(*) AS n FROM e2e_one_time_keys"
            " WHERE user_id = ? AND device_id = ? GROUP BY algorithm"
        ).bind(user_id, device_id).all()
    ).results
    return {r["algorithm"]: int(r["n"]) for r in rows}


async def fallback_keys(db: D1Database, user_id: str, device_id: str) -> dict[str, JsonDict]:
    """algorithm -> {key_id, key, used} of the device's fallback keys."""
    rows = (
        await db.prepare(
            "SELECT algorithm, key_id, key_json, used FROM e2e_fallback_keys"
            " WHERE user_id = ? AND device_id = ?"
        ).bind(user_id, device_id).all()
    ).results
    return {
        r["algorithm"]: {"key_id": r["key_id"], "key": json.loads(r["key_json"]), "used": bool(r["used"])}
        for r in rows
    }


def set_fallback_key(
    db: D1Database, user_id: str, device_id: str, algorithm: str, key_id: str, key: Any
) -> PreparedStatement:
    """Store the device's fallback key for ``algorithm`` (unused), replacing any earlier one."""
    return db.prepare(
        "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)"
        " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET"
        " key_id = excluded.key_id, key_json = excluded.key_json, used = 0"
    ).bind(user_id, device_id, algorithm, key_id, _dumps(key))


async def unused_fallback_key_types(db: D1Database, user_id: str, device_id: str) -> list[str]:
    rows = (
        await db.prepare(
            "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ?"
            " AND used = 0 ORDER BY algorithm"
        ).bind(user_id, device_id).all()
    ).results
    return [r["algorithm"] for r in rows]


def _claim_in_transaction(conn: sqlite3.Connection, claims: list[Claim]) -> dict[str, dict[str, JsonDict]]:
    out: dict[str, dict[str, JsonDict]] = {}
    for user_id, device_id, algorithm in claims:
        row = conn.execute(
            "SELECT key_id, key_json FROM e2e_one_time_keys"
            " WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY key_id LIMIT 1",
            (user_id, device_id, algorithm),
        ).fetchone()
        if row is not None:
            conn.execute(
                "DELETE FROM e2e_one_time_keys"
                " WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?",
                (user_id, device_id, algorithm, row[0]),
            )
        else:
            row = conn.execute(
                "SELECT key_id, key_json FROM e2e_fallback_keys"
                " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                (user_id, device_id, algorithm),
            ).fetchone()
            if row is None:
                continue
            conn.execute(
                "UPDATE e2e_fallback_keys SET used = 1"
                " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                (user_id, device_id, algorithm),
            )
        out.setdefault(user_id, {}).setdefault(device_id, {})[f"{algorithm}:{row[0]}"] = json.loads(row[1])
    return out


async def claim_keys(db: D1Database, claims: list[Claim]) -> dict[str, dict[str, JsonDict]]:
    """Claim one key per (user, device, algorithm): a one-time key, deleted as it is handed
    out, or else the device's fallback key for the algorithm, then marked used. Returns
    user_id -> device_id -> {"<algorithm>:<key_id>": key}; pairs with no key are absent."""
    if not claims:
        return {}
    return await db.run_in_transaction(lambda conn: _claim_in_transaction(conn, claims))


# --- cross-signing keys and signatures -------------------------------------------------------


async def cross_signing_keys(db: D1Database, user_id: str) -> dict[str, JsonDict]:
    """usage -> {"public_key", "key"} for the user's current cross-signing keys."""
    rows = (
        await db.prepare(
            "SELECT usage, public_key, key_json FROM e2e_cross_signing_keys WHERE user_id = ?"
        ).bind(user_id).all()
    ).results
    return {r["usage"]: {"public_key": r["public_key"], "key": json.loads(r["key_json"])} for r in rows}


def set_cross_signing_key(
    db: D1Database, user_id: str, usage: str, public_key: str, key: JsonDict
) -> PreparedStatement:
    return db.prepare(
        "INSERT INTO e2e_cross_signing_keys (user_id, usage, public_key, key_json) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, usage) DO UPDATE SET public_key = excluded.public_key,"
        " key_json = excluded.key_json"
    ).bind(user_id, usage, public_key, _dumps(key))


def add_signature(
    db: D1Database,
    target_user_id: str,
    target_key_id: str,
    signer_user_id: str,
    signer_key_id: str,
    signature: str,
) -> PreparedStatement:
    return db.prepare(
        "INSERT INTO e2e_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id,"
        " signature) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET signature = excluded.signature"
    ).bind(target_user_id, target_key_id, signer_user_id, signer_key_id, signature)


async def signatures_for(db: D1Database, target_user_id: str) -> dict[str, dict[str, dict[str, str]]]:
    """target_key_id -> signer_user_id -> signer_key_id -> signature, for one target user."""
    rows = (
        await db.prepare(
            "SELECT target_key_id, signer_user_id, signer_key_id, signature FROM e2e_signatures"
            " WHERE target_user_id = ?"
        ).bind(target_user_id).all()
    ).results
    out: dict[str, dict[str, dict[str, str]]] = {}
    for r in rows:
        out.setdefault(r["target_key_id"], {}).setdefault(r["signer_user_id"], {})[
            r["signer_key_id"]
        ] = r["signature"]
    return out


# --- device deletion -----------------------------------------------------------------------


def delete_device_keys(db: D1Database, user_id: str, device_id: str) -> list[PreparedStatement]:
    """Statements removing every key of a device and the signatures made on it."""
    return [
        db.prepare(f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?").bind(user_id, device_id)
        for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys")
    ] + [
        db.prepare(
            "DELETE FROM e2e_signatures WHERE target_user_id = ? AND target_key_id = ?"
        ).bind(user_id, device_id)
    ]
