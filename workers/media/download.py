"""Downloads: ``GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]``
(authenticated) and the deprecated ``GET /_matrix/media/v3/download/...`` (no token).

Spec: client-server API "Content repository" (authed-content-repo.yaml, content-repo.yaml):
- the response carries the upload's Content-Type (``application/octet-stream`` when none
  was given) and a Content-Disposition with the upload's ``filename`` (or the one in the
  path), ``inline`` only for the types in "Serving inline content";
- a created URI without content waits up to ``timeout_ms``, then 504 ``M_NOT_YET_UPLOADED``;
- servers SHOULD freeze the unauthenticated endpoints: with ``enable_legacy_media`` false
  they answer 404 ``M_NOT_FOUND`` for every media; with it on they still serve only local
  media (another server's media is fetched only for an authenticated user, so anonymous
  callers can neither make this server fetch content nor read what users had it fetch).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from workers.auth import require_user
from workers.errors import Codes, MatrixError
from workers.media import remote
from workers.media.headers import media_headers, sanitise_filename
from workers.media.ids import checked_ref
from workers.media.repository import local_media, parse_timeout_ms
from workers.routing import route

log = logging.getLogger(__name__)

AUTHENTICATED_PREFIX = "/_matrix/client/v1/media"
LEGACY_PREFIXES = ("/_matrix/media/v3", "/_matrix/media/r0")


def legacy_frozen() -> MatrixError:
    return MatrixError(
        404, Codes.NOT_FOUND,
        "Unauthenticated media access is disabled on this server; use /_matrix/client/v1/media",
    )


async def serve_download(request: Request, env: Any, *, fetch_remote: bool) -> Response:
    """Local media, or another server's when ``fetch_remote`` (authenticated requests
    only): fetched over federation once, then served from the local cache (``remote``)."""
    server_name, media_id = checked_ref(
        request.path_params["server_name"], request.path_params["media_id"]
    )
    timeout_ms = parse_timeout_ms(request)
    if server_name == env.config.server_name:
        row = await local_media(env, media_id, timeout_ms)
        stored = await env.MEDIA.get(row["blob_key"])
        if stored is None:
            log.error("media %s/%s has no object %s in the bucket", server_name, media_id, row["blob_key"])
            raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
        data = stored.body
    elif not fetch_remote:
        raise remote.legacy_remote_refused()
    else:
        row = await remote.remote_media(env, server_name, media_id, timeout_ms)
        row, data = await remote.remote_media_bytes(env, row, timeout_ms)
    if "file_name" in request.path_params:
        filename = sanitise_filename(request.path_params["file_name"])
    else:
        filename = row["upload_name"]
    return Response(data, headers=media_headers(row["content_type"], filename))


async def download(request: Request, env: Any) -> Response:
    await require_user(request, env)
    return await serve_download(request, env, fetch_remote=True)


async def legacy_download(request: Request, env: Any) -> Response:
    if not env.config.enable_legacy_media:
        raise legacy_frozen()
    return await serve_download(request, env, fetch_remote=False)


_PATHS = ("/download/{server_name}/{media_id}", "/download/{server_name}/{media_id}/{file_name}")

routes = [
    *(route(AUTHENTICATED_PREFIX + path, download, ["GET"]) for path in _PATHS),
    *(
        route(prefix + path, legacy_download, ["GET"])
        for prefix in LEGACY_PREFIXES
        for path in _PATHS
    ),
]
