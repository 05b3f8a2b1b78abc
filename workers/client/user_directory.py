"""``POST /user_directory/search``.

Spec: client-server API "User directory". As Synapse does by default, the results are the
users who share a room with the requester, plus users in rooms whose join rule is public;
matched case-insensitively against the user ID and the display name.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.auth import require_user
from workers.errors import bad_json, invalid_param
from workers.routing import client_routes, read_json_object

MAX_LIMIT = 50
# Longer than any user ID (255 bytes) or display name: SQLite refuses very long LIKE patterns.
MAX_TERM_LENGTH = 1000


async def search(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    body = await read_json_object(request)
    term = body.get("search_term")
    if not isinstance(term, str):
        raise bad_json("search_term must be a string")
    if len(term) > MAX_TERM_LENGTH:
        raise invalid_param(f"search_term must be at most {MAX_TERM_LENGTH} characters")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise bad_json("limit must be a non-negative integer")
    limit = min(limit, MAX_LIMIT)
    pattern = "%" + term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = (
        await env.DB.prepare(
            "WITH visible_rooms AS ("
            "  SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = ?"
            "   AND membership = 'join'"
            "  UNION"
            "  SELECT c.room_id FROM current_state c JOIN events e ON e.event_id = c.event_id"
            "   WHERE c.type = 'm.room.join_rules' AND c.state_key = ''"
            "   AND json_extract(e.json, '$.content.join_rule') = 'public'"
            "), visible_users AS ("
            "  SELECT DISTINCT c.state_key AS user_id FROM current_state c"
            "   JOIN visible_rooms v ON v.room_id = c.room_id"
            "   WHERE c.type = 'm.room.member' AND c.membership = 'join'"
            ")"
            " SELECT v.user_id, p.displayname, p.avatar_url,"
            "  (SELECT json_extract(e.json, '$.content.displayname') FROM current_state c"
            "    JOIN events e ON e.event_id = c.event_id"
            "    WHERE c.type = 'm.room.member' AND c.state_key = v.user_id AND c.membership = 'join'"
            "    LIMIT 1) AS room_displayname"
            " FROM visible_users v LEFT JOIN profiles p ON p.user_id = v.user_id"
            " WHERE lower(v.user_id) LIKE ? ESCAPE '\\'"
            "  OR lower(coalesce(p.displayname, '')) LIKE ? ESCAPE '\\'"
            " ORDER BY v.user_id LIMIT ?"
        ).bind(requester.user_id, pattern, pattern, limit + 1).all()
    ).results
    results = []
    for row in rows[:limit]:
        entry: dict[str, Any] = {"user_id": row["user_id"]}
        displayname = row["displayname"] or row["room_displayname"]
        if displayname:
            entry["display_name"] = displayname
        if row["avatar_url"]:
            entry["avatar_url"] = row["avatar_url"]
        results.append(entry)
    return {"results": results, "limited": len(rows) > limit}


routes: list[Route] = [*client_routes("/user_directory/search", search, ["POST"])]
