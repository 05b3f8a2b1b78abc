"""Discovery: ``/_matrix/client/versions`` and the ``.well-known`` documents.

Spec: client-server API "Server discovery" and "API Versions"; server-server API
"Resolving server names" (``/.well-known/matrix/server``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.routing import route

# Spec versions whose client-server features this server implements (see README).
SUPPORTED_SPEC_VERSIONS = [
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6",
    "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12",
]


async def versions(request: Request, env: Any) -> dict[str, Any]:
    return {"versions": SUPPORTED_SPEC_VERSIONS, "unstable_features": {}}


async def well_known_client(request: Request, env: Any) -> dict[str, Any]:
    return {"m.homeserver": {"base_url": env.config.public_baseurl}}


async def well_known_server(request: Request, env: Any) -> dict[str, Any]:
    return {"m.server": env.config.federation_address}


routes: list[Route] = [
    route("/_matrix/client/versions", versions, ["GET"]),
    route("/.well-known/matrix/client", well_known_client, ["GET"]),
    route("/.well-known/matrix/server", well_known_server, ["GET"]),
]
