"""Media metadata (tables ``media`` and ``media_thumbnails``); bytes live in ``env.MEDIA``.

Spec: client-server API "Content repository". A row is written only after its bytes are
in the bucket, so a row never points at a missing object; an interrupted upload leaves at
most an unreferenced object, never a half one.
"""

from __future__ import annotations

from typing import Any

from d1.database import D1Database

_MEDIA_COLUMNS = (
    "server_name, media_id, user_id, content_type, upload_name, size, sha256, blob_key,"
    " created_ts, uploaded_ts, unused_expires_ts, quarantined"
)


async def insert_uploaded(
    db: D1Database,
    *,
    server_name: str,
    media_id: str,
    user_id: str,
    content_type: str | None,
    upload_name: str | None,
    size: int,
    sha256: str,
    blob_key: str,
    now_ms: int,
) -> None:
    """Record media whose bytes are already stored (POST /upload)."""
    await db.prepare(
        f"INSERT INTO media ({_MEDIA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0)"
    ).bind(
        server_name, media_id, user_id, content_type, upload_name, size, sha256, blob_key,
        now_ms, now_ms,
    ).run()


async def insert_pending(
    db: D1Database, *, server_name: str, media_id: str, user_id: str, now_ms: int,
    expires_ms: int,
) -> None:
    """Reserve an mxc:// URI whose content comes later (POST /create)."""
    await db.prepare(
        "INSERT INTO media (server_name, media_id, user_id, created_ts, unused_expires_ts)"
        " VALUES (?, ?, ?, ?, ?)"
    ).bind(server_name, media_id, user_id, now_ms, expires_ms).run()


async def complete_pending(
    db: D1Database,
    *,
    server_name: str,
    media_id: str,
    content_type: str | None,
    upload_name: str | None,
    size: int,
    sha256: str,
    blob_key: str,
    now_ms: int,
) -> bool:
    """Attach content to a pending URI; False when it was uploaded meanwhile (or expired)."""
    result = await db.prepare(
        "UPDATE media SET content_type = ?, upload_name = ?, size = ?, sha256 = ?,"
        " blob_key = ?, uploaded_ts = ?, unused_expires_ts = NULL"
        " WHERE server_name = ? AND media_id = ? AND uploaded_ts IS NULL"
        " AND unused_expires_ts > ?"
    ).bind(
        content_type, upload_name, size, sha256, blob_key, now_ms, server_name, media_id, now_ms
    ).run()
    return bool(result.meta.get("changes"))


async def get_media(db: D1Database, server_name: str, media_id: str) -> dict[str, Any] | None:
    return await db.prepare(
        f"SELECT {_MEDIA_COLUMNS} FROM media WHERE server_name = ? AND media_id = ?"
    ).bind(server_name, media_id).first()


async def count_pending(db: D1Database, user_id: str, now_ms: int) -> int:
    """Created URIs of ``user_id`` still waiting for content and not expired."""
    return int(
        await db.prepare(
            "SELECT COUNT(*) AS n FROM media WHERE user_id = ? AND uploaded_ts IS NULL"
            " AND unused_expires_ts > ?"
        ).bind(user_id, now_ms).first("n")
    )


async def get_thumbnail(
    db: D1Database, server_name: str, media_id: str, width: int, height: int, method: str,
    animated: bool,
) -> dict[str, Any] | None:
    return await db.prepare(
        "SELECT content_type, actual_width, actual_height, size, blob_key FROM media_thumbnails"
        " WHERE server_name = ? AND media_id = ? AND width = ? AND height = ? AND method = ?"
        " AND animated = ?"
    ).bind(server_name, media_id, width, height, method, int(animated)).first()


async def insert_thumbnail(
    db: D1Database,
    *,
    server_name: str,
    media_id: str,
    width: int,
    height: int,
    method: str,
    animated: bool,
    content_type: str,
    actual_width: int,
    actual_height: int,
    size: int,
    blob_key: str,
    now_ms: int,
) -> None:
    """Record a generated thumbnail; a concurrent twin already recorded is kept."""
    await db.prepare(
        "INSERT INTO media_thumbnails (server_name, media_id, width, height, method, animated,"
        " content_type, actual_width, actual_height, size, blob_key, created_ts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ).bind(
        server_name, media_id, width, height, method, int(animated), content_type,
        actual_width, actual_height, size, blob_key, now_ms,
    ).run()


# --- remote media (another server's, cached here) --------------------------------------------


async def get_cached_remote(
    db: D1Database, origin: str, media_id: str
) -> dict[str, Any] | None:
    """The cached copy of ``mxc://origin/media_id``, or None when it was never fetched."""
    return await db.prepare(
        f"SELECT {_MEDIA_COLUMNS}, fetched_ts FROM media"
        " WHERE server_name = ? AND media_id = ? AND fetched_ts IS NOT NULL"
    ).bind(origin, media_id).first()


async def store_remote(
    db: D1Database,
    *,
    origin: str,
    media_id: str,
    content_type: str | None,
    upload_name: str | None,
    size: int,
    sha256: str,
    blob_key: str,
    now_ms: int,
    replaces_blob_key: str | None = None,
) -> bool:
    """Record fetched bytes already in the bucket under ``blob_key``.

    Without ``replaces_blob_key`` this adds the row, unless a concurrent fetch of the same
    media added it first; with it, it points the row at the new object only if the row
    still names ``replaces_blob_key`` (whose object was lost). False when another request
    won: the caller drops its own object and reads the row again.
    """
    if replaces_blob_key is None:
        result = await db.prepare(
            f"INSERT INTO media ({_MEDIA_COLUMNS}, fetched_ts)"
            " VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?) ON CONFLICT DO NOTHING"
        ).bind(
            origin, media_id, content_type, upload_name, size, sha256, blob_key, now_ms,
            now_ms, now_ms,
        ).run()
    else:
        result = await db.prepare(
            "UPDATE media SET content_type = ?, upload_name = ?, size = ?, sha256 = ?,"
            " blob_key = ?, fetched_ts = ? WHERE server_name = ? AND media_id = ?"
            " AND blob_key = ?"
        ).bind(
            content_type, upload_name, size, sha256, blob_key, now_ms, origin, media_id,
            replaces_blob_key,
        ).run()
    return bool(result.meta.get("changes"))
