"""``GET /_matrix/federation/v1/version`` (spec: server-server API "Server implementation").

Unauthenticated: the name and version of this implementation.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.routing import route

SERVER_SOFTWARE = "matrix-edge"


def software_version() -> str:
    try:
        return metadata.version(SERVER_SOFTWARE)
    except metadata.PackageNotFoundError:
        return "unknown"


async def version(request: Request, env: Any) -> dict[str, Any]:
    return {"server": {"name": SERVER_SOFTWARE, "version": software_version()}}


routes: list[Route] = [route("/_matrix/federation/v1/version", version, ["GET"])]
