"""What the media endpoints share: taking an upload body into the bucket within the size
limit, the per-user rate limit, and finding local media (waiting for a pending upload).

Spec: client-server API "Content repository": uploads over the limit get 413
``M_TOO_LARGE``; too many requests 429 ``M_LIMIT_EXCEEDED`` with ``retry_after_ms``; a
download of a created but not yet uploaded URI waits up to ``timeout_ms`` (default 20 s,
capped by the server) and then answers 504 ``M_NOT_YET_UPLOADED``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from starlette.requests import Request

from d1 import media as media_db
from workers.errors import Codes, MatrixError
from workers.media.headers import sanitise_content_type, sanitise_filename

DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def too_large(limit: int) -> MatrixError:
    return MatrixError(413, Codes.TOO_LARGE, f"Upload is larger than the limit of {limit} bytes")


def notify_key(server_name: str, media_id: str) -> str:
    """The notifier key woken when the content of a pending URI arrives."""
    return f"media:{server_name}/{media_id}"


async def check_rate_limit(env: Any, user_id: str) -> None:
    outcome = await env.MEDIA_UPLOAD_LIMITER.limit(user_id)
    if not outcome.success:
        raise MatrixError(
            429, Codes.LIMIT_EXCEEDED, "Too many media uploads; slow down",
            retry_after_ms=outcome.retry_after_ms,
        )


@dataclass(frozen=True)
class StoredUpload:
    blob_key: str
    size: int
    sha256: str
    content_type: str | None
    upload_name: str | None


async def store_request_body(request: Request, env: Any, media_id: str, user_id: str) -> StoredUpload:
    """Stream the request body into the bucket, refusing it (and keeping nothing) when it
    passes ``max_upload_size``. The object key is new for every attempt, so two uploads
    racing for the same created URI never write over each other's bytes."""
    limit: int = env.config.max_upload_size
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    content_type = sanitise_content_type(request.headers.get("content-type"))
    upload_name = sanitise_filename(request.query_params.get("filename"))
    digest = hashlib.sha256()

    async def limited_body() -> AsyncIterator[bytes]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            digest.update(chunk)
            yield chunk

    blob_key = f"local/{media_id}/{secrets.token_hex(6)}"
    stored = await env.MEDIA.put(
        blob_key,
        limited_body(),
        http_metadata={"contentType": content_type} if content_type else {},
        custom_metadata={"user_id": user_id},
    )
    return StoredUpload(blob_key, stored.size, digest.hexdigest(), content_type, upload_name)


def parse_timeout_ms(request: Request) -> int:
    raw = request.query_params.get("timeout_ms")
    if raw is None:
        return DEFAULT_TIMEOUT_MS
    try:
        value = int(raw)
    except ValueError:
        raise MatrixError(400, Codes.INVALID_PARAM, "timeout_ms must be an integer") from None
    return max(0, min(value, MAX_TIMEOUT_MS))


async def local_media(env: Any, media_id: str, timeout_ms: int) -> dict[str, Any]:
    """The D1 row of local media that has content, waiting up to ``timeout_ms`` for a
    pending upload; 404 when unknown, expired or quarantined, 504 when still pending."""
    server_name = env.config.server_name
    key = notify_key(server_name, media_id)
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        since = env.NOTIFIER.position()
        row = await media_db.get_media(env.DB, server_name, media_id)
        if row is None or row["quarantined"]:
            raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
        if row["uploaded_ts"] is not None:
            return row
        if row["unused_expires_ts"] is not None and row["unused_expires_ts"] <= now_ms():
            raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not await env.NOTIFIER.wait([key], since, remaining):
            raise MatrixError(504, Codes.NOT_YET_UPLOADED, "Content has not yet been uploaded")

