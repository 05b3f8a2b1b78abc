"""``GET /capabilities``. Spec: client-server API "Capabilities negotiation"
(capabilities.yaml): passwords and the two standard profile fields can be changed,
third-party identifiers cannot; room versions come from ``durable.room_versions``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from durable.room_versions import KNOWN_ROOM_VERSIONS
from workers.auth import require_user
from workers.client import client_routes


async def capabilities(request: Request, env: Any) -> dict[str, Any]:
    await require_user(request, env)
    return {
        "capabilities": {
            "m.change_password": {"enabled": True},
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.3pid_changes": {"enabled": False},
            "m.room_versions": {
                "default": env.config.default_room_version,
                "available": {version: "stable" for version in KNOWN_ROOM_VERSIONS},
            },
        }
    }


routes = client_routes("/capabilities", capabilities, ["GET"])
