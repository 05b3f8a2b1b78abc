"""Reporting content: ``POST /rooms/{roomId}/report/{eventId}``, ``/rooms/{roomId}/report``
and ``/users/{userId}/report``.

Spec: client-server API "Reporting Content". Reports are stored for the server's
administrators (table ``content_reports``) and answered with ``{}``.

- An event report needs the reporter to be joined to the room now (v1.8); an unknown event,
  an event of another room, or a reporter who is not joined is 404 ``M_NOT_FOUND``.
  ``reason`` is optional.
- A room report must not depend on the reporter's membership (v1.13); a room this server
  does not know is 404. ``reason`` is required (it may be empty).
- A user report must not depend on shared rooms (v1.14); a user this server does not know
  (no local account, no membership in any room here) is 404. ``reason`` is required.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.reports import insert_report
from d1.state import membership_of
from workers.auth import now_ms, require_user
from workers.client.history import TIMELINE_SQL
from workers.errors import bad_json, missing_param, not_found
from workers.routing import client_routes, read_json_object


def _reason(body: dict[str, Any], *, required: bool) -> str | None:
    if "reason" not in body:
        if required:
            raise missing_param("reason is required")
        return None
    reason = body["reason"]
    if not isinstance(reason, str):
        raise bad_json("reason must be a string")
    return reason


async def report_event(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    room_id = request.path_params["roomId"]
    event_id = request.path_params["eventId"]
    body = await read_json_object(request, allow_empty=True)
    reason = _reason(body, required=False)
    unknown = not_found("The event was not found or you are not joined to the room.")
    if await membership_of(env.DB, room_id, requester.user_id) != "join":
        raise unknown
    found = await env.DB.prepare(
        f"SELECT 1 FROM events WHERE event_id = ? AND room_id = ? AND {TIMELINE_SQL}"
    ).bind(event_id, room_id).first()
    if found is None:
        raise unknown
    await insert_report(env.DB, requester.user_id, room_id=room_id, event_id=event_id,
                        reason=reason, now_ms=now_ms())
    return {}


async def report_room(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    room_id = request.path_params["roomId"]
    reason = _reason(await read_json_object(request), required=True)
    known = await env.DB.prepare(
        "SELECT 1 FROM rooms WHERE room_id = ? UNION ALL"
        " SELECT 1 FROM remote_room_versions WHERE room_id = ?"
    ).bind(room_id, room_id).first()
    if known is None:
        raise not_found("The room was not found.")
    await insert_report(env.DB, requester.user_id, room_id=room_id, reason=reason, now_ms=now_ms())
    return {}


async def report_user(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    user_id = request.path_params["userId"]
    reason = _reason(await read_json_object(request), required=True)
    known = await env.DB.prepare(
        "SELECT 1 FROM users WHERE user_id = ? UNION ALL"
        " SELECT 1 FROM current_state WHERE type = 'm.room.member' AND state_key = ?"
    ).bind(user_id, user_id).first()
    if known is None:
        raise not_found("The user was not found.")
    await insert_report(env.DB, requester.user_id, reported_user_id=user_id, reason=reason, now_ms=now_ms())
    return {}


routes: list[Route] = [
    *client_routes("/rooms/{roomId}/report/{eventId}", report_event, ["POST"]),
    *client_routes("/rooms/{roomId}/report", report_room, ["POST"]),
    *client_routes("/users/{userId}/report", report_user, ["POST"]),
]
