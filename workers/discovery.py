"""Discovery: ``/_matrix/client/versions`` and the ``.well-known`` documents.

Spec: client-server API "Server discovery" and "API Versions"; server-server API
"Resolving server names" (``/.well-known/matrix/server``); client-server API "Well-known URIs"
(``/.well-known/matrix/support``, from the configuration). Every answer gets the CORS headers
the app adds to all responses, as the spec asks of ``.well-known`` documents.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.errors import not_found
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


async def well_known_support(request: Request, env: Any) -> dict[str, Any]:
    """The configured ``contacts`` and ``support_page``; 404 ``M_NOT_FOUND`` when neither is
    configured (the spec's "no server support information available")."""
    config = env.config
    if not config.support_contacts and not config.support_page:
        raise not_found("No support information is configured for this server")
    body: dict[str, Any] = {}
    if config.support_contacts:
        body["contacts"] = [contact.to_json() for contact in config.support_contacts]
    if config.support_page:
        body["support_page"] = config.support_page
    return body


routes: list[Route] = [
    route("/_matrix/client/versions", versions, ["GET"]),
    route("/.well-known/matrix/client", well_known_client, ["GET"]),
    route("/.well-known/matrix/server", well_known_server, ["GET"]),
    route("/.well-known/matrix/support", well_known_support, ["GET"]),
]
