"""``GET /_matrix/client/v1/media/config`` and the deprecated ``/_matrix/media/v3/config``.

Spec: authed-content-repo.yaml / content-repo.yaml "Get the configuration for the content
repository": ``m.upload.size`` is the largest upload in bytes. Both need an access token.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from workers.auth import require_user
from workers.media.download import AUTHENTICATED_PREFIX, LEGACY_PREFIXES
from workers.routing import route


async def media_config(request: Request, env: Any) -> dict[str, Any]:
    await require_user(request, env)
    return {"m.upload.size": env.config.max_upload_size}


routes = [
    route(AUTHENTICATED_PREFIX + "/config", media_config, ["GET"]),
    *(route(prefix + "/config", media_config, ["GET"]) for prefix in LEGACY_PREFIXES),
]
