"""Downloads: ``GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]``
(authenticated) and the deprecated ``GET /_matrix/media/v3/download/...`` (no token).

Spec: client-server API "Content repository" (authed-content-repo.yaml, content-repo.yaml):
- the response carries the upload's Content-Type (``application/octet-stream`` when none
  was given) and a Content-Disposition with the upload's ``filename`` (or the one in the
  path), ``inline`` only for the types in "Serving inline content";
- a created URI without content waits up to ``timeout_ms``, then 504 ``M_NOT_YET_UPLOADED``;
- servers SHOULD freeze the unauthenticated endpoints: with ``enable_legacy_media`` false
  they answer 404 ``M_NOT_FOUND`` for every media.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from workers.auth import require_user
from workers.errors import Codes, MatrixError
from workers.media.headers import media_headers, sanitise_filename
from workers.media.ids import checked_ref
from workers.media.repository import local_media, parse_timeout_ms, remote_media_not_fetched
from workers.routing import route

log = logging.getLogger(__name__)

AUTHENTICATED_PREFIX = "/_matrix/client/v1/media"
LEGACY_PREFIXES = ("/_matrix/media/v3", "/_matrix/media/r0")


def legacy_frozen() -> MatrixError:
    return MatrixError(
        404, Codes.NOT_FOUND,
        "Unauthenticated media access is disabled on this server; use /_matrix/client/v1/media",
    )


async def serve_download(request: Request, env: Any) -> Response:
    server_name, media_id = checked_ref(
        request.path_params["server_name"], request.path_params["media_id"]
    )
    if server_name != env.config.server_name:
        raise remote_media_not_fetched(server_name)
    row = await local_media(env, media_id, parse_timeout_ms(request))
    stored = await env.MEDIA.get(row["blob_key"])
    if stored is None:
        log.error("media %s/%s has no object %s in the bucket", server_name, media_id, row["blob_key"])
        raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
    if "file_name" in request.path_params:
        filename = sanitise_filename(request.path_params["file_name"])
    else:
        filename = row["upload_name"]
    return Response(stored.body, headers=media_headers(row["content_type"], filename))


async def download(request: Request, env: Any) -> Response:
    await require_user(request, env)
    return await serve_download(request, env)


async def legacy_download(request: Request, env: Any) -> Response:
    if not env.config.enable_legacy_media:
        raise legacy_frozen()
    return await serve_download(request, env)


_PATHS = ("/download/{server_name}/{media_id}", "/download/{server_name}/{media_id}/{file_name}")

routes = [
    *(route(AUTHENTICATED_PREFIX + path, download, ["GET"]) for path in _PATHS),
    *(
        route(prefix + path, legacy_download, ["GET"])
        for prefix in LEGACY_PREFIXES
        for path in _PATHS
    ),
]
