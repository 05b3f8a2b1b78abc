"""Device lists across servers: the versions of our users' lists as other servers see them
(``device_list_outbound``) and our cache of remote users' lists (``remote_device_lists``,
``remote_devices``).

Spec: server-server API "Device Management": each ``m.device_list_update`` EDU a server
sends for a user carries a ``stream_id`` unique for that user and the ``prev_id`` of the
update before it; ``/user/devices`` answers with the ``stream_id`` of the list it returns,
so the receiver can apply later EDUs on top of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from d1.database import D1Database, PreparedStatement

JsonDict = dict[str, Any]


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _loads(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


# --- our users' lists as others see them ---------------------------------------------------


async def take_outbound_stream_ids(db: D1Database, user_id: str, count: int) -> tuple[int, list[int]]:
    """Take ``count`` new stream_ids for the user's device-list EDUs, atomically. Returns the
    stream_id before them (0 when the user never had one) and the new ones, in order."""
    if count < 1:
        raise ValueError("take at least one stream_id")
    results = await db.batch([
        db.prepare(
            "INSERT INTO device_list_outbound (user_id, stream_id) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET stream_id = stream_id + excluded.stream_id"
            " RETURNING stream_id"
        ).bind(user_id, count)
    ])
    last = int(results[0].results[0]["stream_id"])
    return last - count, list(range(last - count + 1, last + 1))


async def outbound_stream_id(db: D1Database, user_id: str) -> int:
    """The stream_id of the latest device-list EDU sent for the user (0: none yet)."""
    value = await db.prepare("SELECT stream_id FROM device_list_outbound WHERE user_id = ?").bind(
        user_id
    ).first("stream_id")
    return int(value or 0)


# --- the cache of remote users' lists ------------------------------------------------------


@dataclass
class RemoteDevice:
    device_id: str
    display_name: str | None
    keys: JsonDict | None


@dataclass
class CachedDeviceList:
    user_id: str
    stream_id: int
    master_key: JsonDict | None
    self_signing_key: JsonDict | None
    devices: dict[str, RemoteDevice] = field(default_factory=dict)


async def cached_list(db: D1Database, user_id: str) -> CachedDeviceList | None:
    """The cached device list of a remote user, or None when it is not cached."""
    head = await db.prepare(
        "SELECT stream_id, master_key, self_signing_key FROM remote_device_lists WHERE user_id = ?"
    ).bind(user_id).first()
    if head is None:
        return None
    rows = (
        await db.prepare(
            "SELECT device_id, display_name, keys_json FROM remote_devices WHERE user_id = ?"
            " ORDER BY device_id"
        ).bind(user_id).all()
    ).results
    return CachedDeviceList(
        user_id=user_id,
        stream_id=int(head["stream_id"]),
        master_key=_loads(head["master_key"]),
        self_signing_key=_loads(head["self_signing_key"]),
        devices={
            r["device_id"]: RemoteDevice(r["device_id"], r["display_name"], _loads(r["keys_json"]))
            for r in rows
        },
    )


def replace_list(
    db: D1Database,
    user_id: str,
    stream_id: int,
    devices: Iterable[RemoteDevice],
    master_key: JsonDict | None,
    self_signing_key: JsonDict | None,
    now_ms: int,
) -> list[PreparedStatement]:
    """Statements replacing the cached list of ``user_id`` with a full snapshot."""
    statements = [
        db.prepare("DELETE FROM remote_devices WHERE user_id = ?").bind(user_id),
        db.prepare(
            "INSERT INTO remote_device_lists (user_id, stream_id, master_key, self_signing_key,"
            " fetched_ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
            " stream_id = excluded.stream_id, master_key = excluded.master_key,"
            " self_signing_key = excluded.self_signing_key, fetched_ts = excluded.fetched_ts"
        ).bind(user_id, stream_id, _dumps(master_key), _dumps(self_signing_key), now_ms),
    ]
    for device in devices:
        statements.append(_put_device(db, user_id, device))
    return statements


def _put_device(db: D1Database, user_id: str, device: RemoteDevice) -> PreparedStatement:
    return db.prepare(
        "INSERT INTO remote_devices (user_id, device_id, display_name, keys_json) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = excluded.display_name,"
        " keys_json = excluded.keys_json"
    ).bind(user_id, device.device_id, device.display_name, _dumps(device.keys))


def apply_device_update(
    db: D1Database, user_id: str, stream_id: int, device: RemoteDevice, deleted: bool
) -> list[PreparedStatement]:
    """Statements applying one ``m.device_list_update`` to a cached list: the device is
    replaced (or deleted) and the list moves to ``stream_id``."""
    change = (
        db.prepare("DELETE FROM remote_devices WHERE user_id = ? AND device_id = ?").bind(
            user_id, device.device_id
        )
        if deleted
        else _put_device(db, user_id, device)
    )
    return [
        change,
        db.prepare("UPDATE remote_device_lists SET stream_id = ? WHERE user_id = ?").bind(
            stream_id, user_id
        ),
    ]


def set_cross_signing(
    db: D1Database, user_id: str, master_key: JsonDict | None, self_signing_key: JsonDict | None
) -> list[PreparedStatement]:
    """Statements replacing the cached master and/or self-signing key (None: keep)."""
    statements = []
    if master_key is not None:
        statements.append(
            db.prepare("UPDATE remote_device_lists SET master_key = ? WHERE user_id = ?").bind(
                _dumps(master_key), user_id
            )
        )
    if self_signing_key is not None:
        statements.append(
            db.prepare("UPDATE remote_device_lists SET self_signing_key = ? WHERE user_id = ?").bind(
                _dumps(self_signing_key), user_id
            )
        )
    return statements


def drop_list(db: D1Database, user_id: str) -> list[PreparedStatement]:
    """Statements forgetting the cached list (it is fetched again when next needed)."""
    return [
        db.prepare(f"DELETE FROM {table} WHERE user_id = ?").bind(user_id)
        for table in ("remote_devices", "remote_device_lists")
    ]
