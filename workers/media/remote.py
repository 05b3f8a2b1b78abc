"""Another server's media, fetched over federation for a local user and cached here.

Spec: server-server API "Content Repository": media of ``mxc://{ServerName}/{MediaID}`` is
downloaded from ``ServerName`` through ``GET /_matrix/federation/v1/media/download/{MediaID}``
(signed, answered ``multipart/mixed``, see ``multipart``); only when that answers 404
``M_UNRECOGNIZED`` (a server older than v1.11) does a server fall back to the deprecated
``GET /_matrix/media/v3/download/{ServerName}/{MediaID}``, with ``allow_remote=false``.

Choices here, following Synapse's behaviour where the spec is silent:
- the bytes are kept in the MEDIA bucket under ``remote/{origin}/{media_id}/...`` and the
  metadata in D1 (``media`` row of the origin's name with ``fetched_ts`` set), then served
  from there: the origin is asked once;
- a copy larger than ``max_upload_size`` is refused with 502 ``M_TOO_LARGE`` and nothing is
  kept;
- thumbnails are rendered here from the cached original (``thumbnail``), not fetched;
- a ``Location`` (redirect) part is not followed: 502;
- failures never relay the origin's words: its 404 is 404 ``M_NOT_FOUND``, its 504
  ``M_NOT_YET_UPLOADED`` stays 504, anything else (unreachable, refused by the IP policy,
  malformed answer, 5xx) is 502 ``M_UNKNOWN``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any

from d1 import media as media_db
from workers.errors import Codes, MatrixError
from workers.federation.client import RawResponse, encode_path, federation_client
from workers.federation.errors import (
    FederationError,
    RemoteServerError,
    ResponseTooLarge,
    as_client_error,
)
from workers.media.headers import sanitise_content_type, sanitise_filename
from workers.media.multipart import MediaPart, MultipartError, parse_media_answer
from workers.media.repository import now_ms

log = logging.getLogger(__name__)

FEDERATION_DOWNLOAD = "/_matrix/federation/v1/media/download/{}"
LEGACY_DOWNLOAD = "/_matrix/media/v3/download/{}/{}"
# Room for the multipart framing and the metadata part around the media bytes.
MULTIPART_ALLOWANCE = 64 * 1024


def legacy_remote_refused() -> MatrixError:
    """The unauthenticated endpoints serve no remote media (see ``download``)."""
    return MatrixError(
        404, Codes.NOT_FOUND,
        "Remote media is only served through the authenticated /_matrix/client/v1/media endpoints",
    )


def remote_too_large(limit: int) -> MatrixError:
    return MatrixError(502, Codes.TOO_LARGE, f"Remote media is larger than the limit of {limit} bytes")


def fetch_failed(origin: str) -> MatrixError:
    return MatrixError(502, Codes.UNKNOWN, f"Failed to fetch media from {origin}")


def client_error_for(exc: FederationError) -> MatrixError:
    """What a local user sees when fetching remote media failed (never the remote text)."""
    if isinstance(exc, ResponseTooLarge):
        return MatrixError(502, Codes.TOO_LARGE, f"Remote media from {exc.destination} is too large")
    if isinstance(exc, RemoteServerError):
        if exc.status == 404:
            return MatrixError(404, Codes.NOT_FOUND, f"Media not found on {exc.destination}")
        if exc.status == 504 and exc.errcode == Codes.NOT_YET_UPLOADED.value:
            return MatrixError(504, Codes.NOT_YET_UPLOADED, "Content has not yet been uploaded")
        if exc.errcode == Codes.TOO_LARGE.value:
            return MatrixError(502, Codes.TOO_LARGE, f"Remote media from {exc.destination} is too large")
    return as_client_error(exc)


async def _ask_origin(env: Any, origin: str, media_id: str, timeout_ms: int) -> MediaPart:
    """The media part of the origin's answer: the federation endpoint first, the
    deprecated one only when the origin does not know the federation endpoint."""
    client = federation_client(env)
    limit: int = env.config.max_upload_size
    # The origin may wait up to timeout_ms for a pending upload before answering.
    timeout = client.timeout + timeout_ms / 1000
    try:
        try:
            answer = await client.get_bytes(
                origin, encode_path(FEDERATION_DOWNLOAD, media_id), {"timeout_ms": timeout_ms},
                max_bytes=limit + MULTIPART_ALLOWANCE, timeout=timeout,
            )
            return _media_part(origin, answer)
        except RemoteServerError as exc:
            if exc.status != 404 or exc.errcode != Codes.UNRECOGNIZED.value:
                raise
        log.info("%s has no federation media endpoint; trying /_matrix/media/v3", origin)
        answer = await client.get_bytes(
            origin, encode_path(LEGACY_DOWNLOAD, origin, media_id),
            {"allow_remote": "false", "timeout_ms": timeout_ms},
            max_bytes=limit, authenticated=False, timeout=timeout,
        )
        return MediaPart(
            content_type=answer.headers.get("content-type"),
            content_disposition=answer.headers.get("content-disposition"),
            location=None,
            body=answer.body,
        )
    except FederationError as exc:
        log.warning("fetching mxc://%s/%s failed: %s", origin, media_id, exc)
        raise client_error_for(exc) from None


def _media_part(origin: str, answer: RawResponse) -> MediaPart:
    try:
        media = parse_media_answer(answer.headers.get("content-type"), answer.body).media
    except MultipartError as exc:
        log.warning("media answer from %s is malformed: %s", origin, exc)
        raise fetch_failed(origin) from None
    if media.location is not None:
        log.warning("media answer from %s redirects to %s; redirects are not followed", origin, media.location)
        raise fetch_failed(origin)
    return media


async def _fetch_and_cache(
    env: Any, origin: str, media_id: str, timeout_ms: int, replaces_blob_key: str | None = None
) -> dict[str, Any]:
    """Fetch the media from its origin, keep it, and return its ``media`` row."""
    media = await _ask_origin(env, origin, media_id, timeout_ms)
    limit: int = env.config.max_upload_size
    if len(media.body) > limit:
        raise remote_too_large(limit)
    content_type = sanitise_content_type(media.content_type)
    blob_key = f"remote/{origin}/{media_id}/{secrets.token_hex(6)}"
    await env.MEDIA.put(
        blob_key, media.body,
        http_metadata={"contentType": content_type} if content_type else {},
        custom_metadata={"origin": origin},
    )
    stored = await media_db.store_remote(
        env.DB, origin=origin, media_id=media_id, content_type=content_type,
        upload_name=sanitise_filename(media.filename), size=len(media.body),
        sha256=hashlib.sha256(media.body).hexdigest(), blob_key=blob_key, now_ms=now_ms(),
        replaces_blob_key=replaces_blob_key,
    )
    if not stored:
        # A concurrent request cached it first: keep theirs.
        await env.MEDIA.delete(blob_key)
    row = await media_db.get_cached_remote(env.DB, origin, media_id)
    if row is None:
        log.error("cached copy of mxc://%s/%s vanished right after it was stored", origin, media_id)
        raise fetch_failed(origin)
    return row


async def remote_media(env: Any, origin: str, media_id: str, timeout_ms: int) -> dict[str, Any]:
    """The ``media`` row of the cached copy of ``mxc://origin/media_id``, fetching it from
    the origin first when it is not cached; 404 when quarantined."""
    row = await media_db.get_cached_remote(env.DB, origin, media_id)
    if row is None:
        row = await _fetch_and_cache(env, origin, media_id, timeout_ms)
    if row["quarantined"]:
        raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
    return row


async def remote_media_bytes(
    env: Any, row: dict[str, Any], timeout_ms: int
) -> tuple[dict[str, Any], bytes]:
    """``(row, bytes)`` of a cached copy; when its object is gone from the bucket, the
    media is fetched from the origin again (remote media never changes)."""
    stored = await env.MEDIA.get(row["blob_key"])
    if stored is not None:
        return row, stored.body
    log.warning("cached object %s is missing; fetching it again", row["blob_key"])
    row = await _fetch_and_cache(
        env, row["server_name"], row["media_id"], timeout_ms, replaces_blob_key=row["blob_key"]
    )
    stored = await env.MEDIA.get(row["blob_key"])
    if stored is None:
        raise fetch_failed(row["server_name"])
    return row, stored.body
