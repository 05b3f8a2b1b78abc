"""Uploads: ``POST /_matrix/media/v3/upload``, ``POST /_matrix/media/v1/create`` and
``PUT /_matrix/media/v3/upload/{serverName}/{mediaId}``.

Spec: client-server API "Content repository" (content-repo.yaml):
- upload returns the new ``content_uri``; the ``Content-Type`` header and the ``filename``
  query parameter are kept and given back on download;
- create reserves an ``mxc://`` URI for content that comes later, with
  ``unused_expires_at``; a user may hold only a few such pending URIs (429
  ``M_LIMIT_EXCEEDED`` beyond, as the spec recommends);
- the PUT fills a created URI: 404 ``M_NOT_FOUND`` for a URI not created here or expired,
  403 ``M_FORBIDDEN`` for another user's, 409 ``M_CANNOT_OVERWRITE_MEDIA`` once it has content.
Bytes go to the bucket before the D1 row is written, so a refused or failed upload never
leaves a row without content.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from d1 import media as media_db
from workers.auth import require_user
from workers.errors import Codes, MatrixError
from workers.media.ids import checked_ref, mxc_uri, new_media_id
from workers.media.repository import (
    check_rate_limit,
    notify_key,
    now_ms,
    store_request_body,
)
from workers.routing import route

log = logging.getLogger(__name__)

LEGACY_MEDIA_PREFIXES = ("/_matrix/media/v3", "/_matrix/media/r0")


async def upload(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    await check_rate_limit(env, requester.user_id)
    server_name = env.config.server_name
    media_id = new_media_id()
    stored = await store_request_body(request, env, media_id, requester.user_id)
    try:
        await media_db.insert_uploaded(
            env.DB, server_name=server_name, media_id=media_id, user_id=requester.user_id,
            content_type=stored.content_type, upload_name=stored.upload_name,
            size=stored.size, sha256=stored.sha256, blob_key=stored.blob_key, now_ms=now_ms(),
        )
    except BaseException:
        await env.MEDIA.delete(stored.blob_key)
        raise
    return {"content_uri": mxc_uri(server_name, media_id)}


async def create(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    await check_rate_limit(env, requester.user_id)
    now = now_ms()
    limit = env.config.max_pending_media_uploads
    if await media_db.count_pending(env.DB, requester.user_id, now) >= limit:
        raise MatrixError(
            429, Codes.LIMIT_EXCEEDED,
            f"Too many pending media uploads (at most {limit}); upload or wait for them to expire",
            retry_after_ms=60_000,
        )
    server_name = env.config.server_name
    media_id = new_media_id()
    expires = now + env.config.unused_media_expiry_ms
    await media_db.insert_pending(
        env.DB, server_name=server_name, media_id=media_id, user_id=requester.user_id,
        now_ms=now, expires_ms=expires,
    )
    return {"content_uri": mxc_uri(server_name, media_id), "unused_expires_at": expires}


async def upload_to_created(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    server_name, media_id = checked_ref(
        request.path_params["server_name"], request.path_params["media_id"]
    )
    if server_name != env.config.server_name:
        raise MatrixError(404, Codes.NOT_FOUND, "Media IDs of other servers cannot be uploaded to")
    row = await media_db.get_media(env.DB, server_name, media_id)
    if row is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Unknown media ID")
    if row["user_id"] != requester.user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "This media ID was created by another user")
    if row["uploaded_ts"] is not None:
        raise MatrixError(409, Codes.CANNOT_OVERWRITE_MEDIA, "Media already uploaded")
    if row["unused_expires_ts"] is not None and row["unused_expires_ts"] <= now_ms():
        raise MatrixError(404, Codes.NOT_FOUND, "This media ID has expired")
    await check_rate_limit(env, requester.user_id)
    stored = await store_request_body(request, env, media_id, requester.user_id)
    try:
        done = await media_db.complete_pending(
            env.DB, server_name=server_name, media_id=media_id,
            content_type=stored.content_type, upload_name=stored.upload_name,
            size=stored.size, sha256=stored.sha256, blob_key=stored.blob_key, now_ms=now_ms(),
        )
    except BaseException:
        await env.MEDIA.delete(stored.blob_key)
        raise
    if not done:
        # Another upload to the same URI won, or the URI expired while this one ran.
        await env.MEDIA.delete(stored.blob_key)
        row = await media_db.get_media(env.DB, server_name, media_id)
        if row is not None and row["uploaded_ts"] is not None:
            raise MatrixError(409, Codes.CANNOT_OVERWRITE_MEDIA, "Media already uploaded")
        raise MatrixError(404, Codes.NOT_FOUND, "This media ID has expired")
    env.NOTIFIER.notify([notify_key(server_name, media_id)])
    return {}


routes = [
    *(route(prefix + "/upload", upload, ["POST"]) for prefix in LEGACY_MEDIA_PREFIXES),
    *(
        route(prefix + "/upload/{server_name}/{media_id}", upload_to_created, ["PUT"])
        for prefix in LEGACY_MEDIA_PREFIXES
    ),
    route("/_matrix/media/v1/create", create, ["POST"]),
]
