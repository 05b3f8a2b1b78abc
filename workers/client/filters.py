"""Filters: ``POST /user/{userId}/filter`` and ``GET /user/{userId}/filter/{filterId}``.

Spec: client-server API "Filtering" (filter.yaml). The definition is stored as given (it
must be a JSON object); sync applies it. Filter IDs are decimal strings, per user.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from d1 import filters as filters_db
from workers.auth import require_user
from workers.client import client_routes
from workers.errors import Codes, MatrixError
from workers.routing import read_json_object


async def _owner(request: Request, env: Any) -> str:
    requester = await require_user(request, env)
    if requester.user_id != request.path_params["user_id"]:
        raise MatrixError(403, Codes.FORBIDDEN, "Cannot use another user's filters")
    return requester.user_id


async def create_filter(request: Request, env: Any) -> dict[str, Any]:
    user_id = await _owner(request, env)
    definition = await read_json_object(request)
    filter_id = await filters_db.add_filter(env.DB, user_id, definition)
    return {"filter_id": str(filter_id)}


async def get_filter(request: Request, env: Any) -> dict[str, Any]:
    user_id = await _owner(request, env)
    raw = request.path_params["filter_id"]
    definition = (
        await filters_db.get_filter(env.DB, user_id, int(raw)) if raw.isdecimal() and len(raw) <= 18 else None
    )
    if definition is None:
        raise MatrixError(404, Codes.NOT_FOUND, "No such filter")
    return definition


routes = [
    *client_routes("/user/{user_id}/filter", create_filter, ["POST"]),
    *client_routes("/user/{user_id}/filter/{filter_id}", get_filter, ["GET"]),
]
