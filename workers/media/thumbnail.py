"""Thumbnails: ``GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}``
(authenticated) and the deprecated ``GET /_matrix/media/v3/thumbnail/...`` (no token).

Spec: client-server API "Thumbnails" and authed-content-repo.yaml:
- ``width`` and ``height`` are required positive integers, ``method`` is ``crop`` or
  ``scale`` (``scale`` when absent), ``animated`` asks for an animated thumbnail when the
  original moves (never one unless it is ``true``);
- 400 when the content cannot be thumbnailed, 413 ``M_TOO_LARGE`` when it is too large to;
- the response is ``inline`` with a thumbnail filename.
Each (media, size, method, animated) is rendered once and kept in the bucket and D1.
Thumbnails of another server's media are rendered here from the cached original (fetched
once over federation by ``remote``), so one fetch serves every size; the deprecated
unauthenticated endpoint never fetches remote media (404).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from d1 import media as media_db
from workers.auth import require_user
from workers.errors import Codes, MatrixError
from workers.media import remote, thumbnailer
from workers.media.download import AUTHENTICATED_PREFIX, LEGACY_PREFIXES, legacy_frozen
from workers.media.headers import base_type, media_headers
from workers.media.ids import checked_ref
from workers.media.repository import local_media, now_ms, parse_timeout_ms
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


def thumbnail_filename(content_type: str) -> str:
    return f"thumbnail.{_EXTENSIONS.get(content_type, 'png')}"


def _thumbnail_response(data: bytes, content_type: str) -> Response:
    return Response(data, headers=media_headers(content_type, thumbnail_filename(content_type)))


def cannot_thumbnail() -> MatrixError:
    return MatrixError(400, Codes.UNKNOWN, "Cannot generate thumbnails for the requested content")


@dataclass(frozen=True)
class ThumbnailRequest:
    """What a thumbnail request asks for (its query parameters, checked)."""

    width: int
    height: int
    method: str
    animated: bool


def parse_thumbnail_request(request: Request) -> ThumbnailRequest:
    width, height = _dimension(request, "width"), _dimension(request, "height")
    method = request.query_params.get("method", "scale")
    if method not in thumbnailer.METHODS:
        raise MatrixError(400, Codes.INVALID_PARAM, "method must be crop or scale")
    return ThumbnailRequest(width, height, method, _animated(request))


def thumbnail_blob_key(server_name: str, media_id: str, key: thumbnailer.Target, animated: bool,
                       local: bool) -> str:
    """Where a rendered thumbnail is kept: under ``thumbnails/`` for our media, under the
    origin's name for cached remote media (media IDs of two servers may be equal)."""
    name = f"{key.width}x{key.height}-{key.method}{'-animated' if animated else ''}"
    if local:
        return f"thumbnails/{media_id}/{name}"
    return f"remote/{server_name}/{media_id}/thumbnails/{name}"


async def local_original(env: Any, row: dict[str, Any]) -> bytes:
    original = await env.MEDIA.get(row["blob_key"])
    if original is None:
        log.error("media object %s is missing", row["blob_key"])
        raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
    return original.body


async def make_thumbnail(
    env: Any, server_name: str, media_id: str, row: dict[str, Any], wanted: ThumbnailRequest,
    load_original: Callable[[], Awaitable[bytes]],
) -> tuple[bytes, str]:
    """``(bytes, content type)`` of the thumbnail ``wanted`` of the media ``row`` (local, or
    a cached copy of remote media), rendered from ``load_original()`` once and kept."""
    original_type = base_type(row["content_type"])
    if original_type not in thumbnailer.THUMBNAILABLE_TYPES:
        raise cannot_thumbnail()
    wants_animation = wanted.animated and original_type in ANIMATABLE_TYPES
    # The cache key is the request's class: its preset size (or own size), method and
    # whether animation was asked of an image type that can move.
    key = thumbnailer.choose_target(wanted.width, wanted.height, wanted.method)
    known = await media_db.get_thumbnail(
        env.DB, server_name, media_id, key.width, key.height, key.method, wants_animation
    )
    if known is not None:
        cached = await env.MEDIA.get(known["blob_key"])
        if cached is not None:
            return cached.body, known["content_type"]
        log.warning("thumbnail object %s is missing; rendering it again", known["blob_key"])

    original = await load_original()
    max_pixels = env.config.max_thumbnail_pixels
    try:
        info = await asyncio.to_thread(thumbnailer.image_info, original, max_pixels)
    except thumbnailer.TooManyPixels:
        raise MatrixError(413, Codes.TOO_LARGE, "Content is too large to thumbnail") from None
    except thumbnailer.ThumbnailError:
        raise cannot_thumbnail() from None
    animated = wants_animation and info.frames > 1
    target = key
    if info.width <= wanted.width and info.height <= wanted.height:
        # Smaller than asked: the original itself, unless it would move when it must not.
        if original_type in thumbnailer.THUMBNAIL_RESPONSE_TYPES and (animated or info.frames == 1):
            return original, original_type
        target = thumbnailer.Target(info.width, info.height, "scale")
    try:
        thumb = await asyncio.to_thread(
            thumbnailer.render, original, target, animated=animated, max_pixels=max_pixels
        )
    except thumbnailer.ThumbnailError:
        raise cannot_thumbnail() from None
    blob_key = thumbnail_blob_key(
        server_name, media_id, key, wants_animation, local=server_name == env.config.server_name
    )
    await env.MEDIA.put(blob_key, thumb.data, http_metadata={"contentType": thumb.content_type})
    await media_db.insert_thumbnail(
        env.DB, server_name=server_name, media_id=media_id, width=key.width,
        height=key.height, method=key.method, animated=wants_animation,
        content_type=thumb.content_type, actual_width=thumb.width, actual_height=thumb.height,
        size=len(thumb.data), blob_key=blob_key, now_ms=now_ms(),
    )
    return thumb.data, thumb.content_type


async def serve_thumbnail(request: Request, env: Any, *, fetch_remote: bool) -> Response:
    """A thumbnail of local media, or of remote media when ``fetch_remote`` (authenticated
    requests only; see ``remote``). Thumbnails of remote media are rendered here from the
    cached original, as for local media."""
    server_name, media_id = checked_ref(
        request.path_params["server_name"], request.path_params["media_id"]
    )
    wanted = parse_thumbnail_request(request)
    timeout_ms = parse_timeout_ms(request)
    if server_name == env.config.server_name:
        row = await local_media(env, media_id, timeout_ms)

        async def load_original() -> bytes:
            return await local_original(env, row)
    else:
        if not fetch_remote:
            raise remote.legacy_remote_refused()
        row = await remote.remote_media(env, server_name, media_id, timeout_ms)

        async def load_original() -> bytes:
            return (await remote.remote_media_bytes(env, row, timeout_ms))[1]
    data, content_type = await make_thumbnail(env, server_name, media_id, row, wanted, load_original)
    return _thumbnail_response(data, content_type)


async def thumbnail(request: Request, env: Any) -> Response:
    await require_user(request, env)
    return await serve_thumbnail(request, env, fetch_remote=True)


async def legacy_thumbnail(request: Request, env: Any) -> Response:
    if not env.config.enable_legacy_media:
        raise legacy_frozen()
    return await serve_thumbnail(request, env, fetch_remote=False)


_PATH = "/thumbnail/{server_name}/{media_id}"

routes = [
    route(AUTHENTICATED_PREFIX + _PATH, thumbnail, ["GET"]),
    *(route(prefix + _PATH, legacy_thumbnail, ["GET"]) for prefix in LEGACY_PREFIXES),
]
