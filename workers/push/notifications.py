"""``GET /notifications``: the events the user was (or would have been) notified about.

Spec: client-server API "Listing Notifications" (notifications.yaml). Newest first, from the
same ``event_push_actions`` rows the unread counts use (the user's joined rooms are brought
up to date first). ``from`` is the ``next_token`` of an earlier page (a stream position:
results are strictly older); ``limit`` defaults to 50 (at most 100); ``only=highlight``
keeps the highlighted ones. ``read``: at or before the user's read receipt in that room.
``ts``: the event's ``origin_server_ts``. ``profile_tag`` is not produced (this server keeps
no per-device rule sets).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from d1 import push_actions as actions_db
from d1.device_lists import joined_rooms
from workers.auth import now_ms, require_user
from workers.client import client_routes
from workers.client.history import RoomReader
from workers.client.query_params import int64_value
from workers.errors import Codes, MatrixError
from workers.push.unread import ensure_evaluated

JsonDict = dict[str, Any]
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    return int64_value(raw, name)


async def get_notifications(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    user_id = requester.user_id
    before = _int_param(request, "from")
    limit = _int_param(request, "limit")
    limit = DEFAULT_LIMIT if limit is None else limit
    if limit < 0:
        raise MatrixError(400, Codes.INVALID_PARAM, "limit must not be negative")
    limit = min(limit, MAX_LIMIT)
    only = request.query_params.get("only")
    db = env.DB
    reader = RoomReader(db, user_id=user_id, device_id=requester.device_id, now_ms=now_ms())
    upto = int(await db.prepare("SELECT COALESCE(MAX(stream_ordering), 0) AS p FROM events").first("p") or 0)
    await ensure_evaluated(reader, user_id, sorted(await joined_rooms(db, user_id)), upto)
    rows = await actions_db.notifications_page(db, user_id, before, limit, only == "highlight")
    events = await reader.rows([r["event_id"] for r in rows])
    served = await reader.serialize(
        [events[r["event_id"]] for r in rows if r["event_id"] in events], include_room_id=False
    )
    by_id = {e["event_id"]: e for e in served}
    notifications = [
        {
            "actions": r["actions"], "event": by_id[r["event_id"]], "read": r["read"],
            "room_id": r["room_id"], "ts": r["ts"],
        }
        for r in rows if r["event_id"] in by_id
    ]
    body: JsonDict = {"notifications": notifications}
    if limit and len(rows) == limit:
        body["next_token"] = str(rows[-1]["stream_ordering"])
    return body


routes = [*client_routes("/notifications", get_notifications, ["GET"])]
