"""Our media for other servers: ``GET /_matrix/federation/v1/media/download/{mediaId}`` and
``GET /_matrix/federation/v1/media/thumbnail/{mediaId}``.

Spec: server-server API "Content Repository" (content_repository.yaml):
- both need a signed request (X-Matrix, "Request Authentication"); 401 otherwise;
- ``mediaId`` names media of this server (the mxc:// server name is ours by construction,
  so another server's cached media is never served on from here);
- ``timeout_ms`` waits for a pending upload as on the client endpoints, then 504
  ``M_NOT_YET_UPLOADED``; the thumbnail endpoint takes ``width``, ``height``, ``method`` and
  ``animated`` as the client one does, with the same 400 and 413 refusals;
- the answer is ``multipart/mixed``: an empty JSON metadata object, then the bytes with
  their Content-Type and Content-Disposition (``multipart``). The bytes are always inline;
  no ``Location`` redirect part is ever sent.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from workers.errors import Codes, MatrixError
from workers.federation.auth import require_server
from workers.media.headers import media_headers
from workers.media.ids import is_valid_media_id
from workers.media.multipart import encode_media_answer
from workers.media.repository import local_media, parse_timeout_ms
from workers.media.thumbnail import (
    local_original,
    make_thumbnail,
    parse_thumbnail_request,
    thumbnail_filename,
)
from workers.routing import route

log = logging.getLogger(__name__)

PREFIX = "/_matrix/federation/v1/media"


def part_headers(content_type: str | None, filename: str | None) -> dict[str, str]:
    """Content-Type and Content-Disposition of the media part, as a download carries them
    (the browser guards of a download are for browsers, not for servers)."""
    headers = media_headers(content_type, filename)
    return {name: headers[name] for name in ("Content-Type", "Content-Disposition")}


def multipart_response(data: bytes, headers: dict[str, str]) -> Response:
    content_type, body = encode_media_answer(data, headers)
    return Response(body, headers={"Content-Type": content_type})


def _media_id(request: Request) -> str:
    media_id = request.path_params["media_id"]
    if not is_valid_media_id(media_id):
        raise MatrixError(404, Codes.NOT_FOUND, "Not a valid media ID")
    return media_id


async def federation_download(request: Request, env: Any) -> Response:
    await require_server(request, env)
    media_id = _media_id(request)
    row = await local_media(env, media_id, parse_timeout_ms(request))
    data = await local_original(env, row)
    return multipart_response(data, part_headers(row["content_type"], row["upload_name"]))


async def federation_thumbnail(request: Request, env: Any) -> Response:
    await require_server(request, env)
    media_id = _media_id(request)
    wanted = parse_thumbnail_request(request)
    row = await local_media(env, media_id, parse_timeout_ms(request))

    async def load_original() -> bytes:
        return await local_original(env, row)

    data, content_type = await make_thumbnail(
        env, env.config.server_name, media_id, row, wanted, load_original
    )
    return multipart_response(data, part_headers(content_type, thumbnail_filename(content_type)))


routes = [
    route(PREFIX + "/download/{media_id}", federation_download, ["GET"]),
    route(PREFIX + "/thumbnail/{media_id}", federation_thumbnail, ["GET"]),
]
