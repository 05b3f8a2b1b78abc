"""Thumbnails: ``GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}``
(authenticated) and the deprecated ``GET /_matrix/media/v3/thumbnail/...`` (no token).

Spec: client-server API "Thumbnails" and authed-content-repo.yaml:
- ``width`` and ``height`` are required positive integers, ``method`` is ``crop`` or
  ``scale`` (``scale`` when absent), ``animated`` asks for an animated thumbnail when the
  original moves (never one unless it is ``true``);
- 400 when the content cannot be thumbnailed, 413 ``M_TOO_LARGE`` when it is too large to;
- the response is ``inline`` with a thumbnail filename.
Each (media, size, method, animated) is rendered once and kept in the bucket and D1.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from d1 import media as media_db
from workers.auth import require_user
from workers.errors import Codes, MatrixError
from workers.media import thumbnailer
from workers.media.download import AUTHENTICATED_PREFIX, LEGACY_PREFIXES, legacy_frozen
from workers.media.headers import base_type, media_headers
from workers.media.ids import checked_ref
from workers.media.repository import (
    local_media,
    now_ms,
    parse_timeout_ms,
    remote_media_not_fetched,
)
from workers.routing import route

log = logging.getLogger(__name__)

MAX_DIMENSION = 10_000
ANIMATABLE_TYPES = frozenset({"image/gif", "image/webp", "image/png", "image/apng"})
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
               "image/gif": "gif", "image/apng": "png"}


def _dimension(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing {name}")
    try:
        value = int(raw)
    except ValueError:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be an integer") from None
    if not 0 < value <= MAX_DIMENSION:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be between 1 and {MAX_DIMENSION}")
    return value


def _animated(request: Request) -> bool:
    raw = request.query_params.get("animated")
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise MatrixError(400, Codes.INVALID_PARAM, "animated must be true or false")


def _thumbnail_response(data: bytes, content_type: str) -> Response:
    filename = f"thumbnail.{_EXTENSIONS.get(content_type, 'png')}"
    return Response(data, headers=media_headers(content_type, filename))


def cannot_thumbnail() -> MatrixError:
    return MatrixError(400, Codes.UNKNOWN, "Cannot generate thumbnails for the requested content")


async def serve_thumbnail(request: Request, env: Any) -> Response:
    server_name, media_id = checked_ref(
        request.path_params["server_name"], request.path_params["media_id"]
    )
    width, height = _dimension(request, "width"), _dimension(request, "height")
    method = request.query_params.get("method", "scale")
    if method not in thumbnailer.METHODS:
        raise MatrixError(400, Codes.INVALID_PARAM, "method must be crop or scale")
    if server_name != env.config.server_name:
        raise remote_media_not_fetched(server_name)
    row = await local_media(env, media_id, parse_timeout_ms(request))
    original_type = base_type(row["content_type"])
    if original_type not in thumbnailer.THUMBNAILABLE_TYPES:
        raise cannot_thumbnail()
    wants_animation = _animated(request) and original_type in ANIMATABLE_TYPES
    # The cache key is the request's class: its preset size (or own size), method and
    # whether animation was asked of an image type that can move.
    key = thumbnailer.choose_target(width, height, method)
    known = await media_db.get_thumbnail(
        env.DB, server_name, media_id, key.width, key.height, key.method, wants_animation
    )
    if known is not None:
        cached = await env.MEDIA.get(known["blob_key"])
        if cached is not None:
            return _thumbnail_response(cached.body, known["content_type"])
        log.warning("thumbnail object %s is missing; rendering it again", known["blob_key"])

    original = await env.MEDIA.get(row["blob_key"])
    if original is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
    max_pixels = env.config.max_thumbnail_pixels
    try:
        info = await asyncio.to_thread(thumbnailer.image_info, original.body, max_pixels)
    except thumbnailer.TooManyPixels:
        raise MatrixError(413, Codes.TOO_LARGE, "Content is too large to thumbnail") from None
    except thumbnailer.ThumbnailError:
        raise cannot_thumbnail() from None
    animated = wants_animation and info.frames > 1
    target = key
    if info.width <= width and info.height <= height:
        # Smaller than asked: the original itself, unless it would move when it must not.
        if original_type in thumbnailer.THUMBNAIL_RESPONSE_TYPES and (animated or info.frames == 1):
            return _thumbnail_response(original.body, original_type)
        target = thumbnailer.Target(info.width, info.height, "scale")
    try:
        thumb = await asyncio.to_thread(
            thumbnailer.render, original.body, target, animated=animated, max_pixels=max_pixels
        )
    except thumbnailer.ThumbnailError:
        raise cannot_thumbnail() from None
    blob_key = (
        f"thumbnails/{media_id}/{key.width}x{key.height}-{key.method}"
        f"{'-animated' if wants_animation else ''}"
    )
    await env.MEDIA.put(blob_key, thumb.data, http_metadata={"contentType": thumb.content_type})
    await media_db.insert_thumbnail(
        env.DB, server_name=server_name, media_id=media_id, width=key.width,
        height=key.height, method=key.method, animated=wants_animation,
        content_type=thumb.content_type, actual_width=thumb.width, actual_height=thumb.height,
        size=len(thumb.data), blob_key=blob_key, now_ms=now_ms(),
    )
    return _thumbnail_response(thumb.data, thumb.content_type)


async def thumbnail(request: Request, env: Any) -> Response:
    await require_user(request, env)
    return await serve_thumbnail(request, env)


async def legacy_thumbnail(request: Request, env: Any) -> Response:
    if not env.config.enable_legacy_media:
        raise legacy_frozen()
    return await serve_thumbnail(request, env)


_PATH = "/thumbnail/{server_name}/{media_id}"

routes = [
    route(AUTHENTICATED_PREFIX + _PATH, thumbnail, ["GET"]),
    *(route(prefix + _PATH, legacy_thumbnail, ["GET"]) for prefix in LEGACY_PREFIXES),
]
