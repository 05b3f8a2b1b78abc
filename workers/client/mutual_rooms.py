"""``GET /_matrix/client/v1/mutual_rooms``: the rooms the caller shares with another user.

Spec: client-server API, "Mutual Rooms" module (added in v1.19). The answer lists the rooms
where both the caller and ``user_id`` are joined, with ``count`` the total over all batches.
A ``user_id`` that is missing, not a user ID, non-compliant (appendices, "Historical User
IDs") or the caller's own is 400 ``M_INVALID_PARAM``; a valid ID of a user nobody knows
gets an empty list. A long answer comes in batches: ``next_batch`` is an opaque token the
client passes back as ``from``, and a token the server cannot read is 400 as well.

Batches follow room IDs in sorted order and the token names the last room of a batch, so a
token never expires; a room joined after it was made shows up only when its ID sorts after
it (the spec lets servers omit such rooms).
"""

from __future__ import annotations

import binascii
from typing import Any

from starlette.requests import Request
from starlette.routing import Route
from unpaddedbase64 import decode_base64, encode_base64

from d1.mutual_rooms import mutual_joined_rooms
from workers.auth import require_user, split_user_id
from workers.client.v1_routes import client_v1_routes
from workers.errors import invalid_param

# Rooms per answer.
BATCH_SIZE = 100
# Appendices, "Room IDs": a room ID is at most 255 bytes long.
MAX_ROOM_ID_BYTES = 255


def _compliant_user_id(raw: str | None, own_user_id: str) -> str:
    """``user_id`` as given, or 400 ``M_INVALID_PARAM``: absent, not a user ID, with a
    localpart that is empty or outside U+0021..U+007E (non-compliant), or the caller's own."""
    if raw is None or raw == "":
        raise invalid_param("Query parameter 'user_id' is required")
    localpart, _server_name = split_user_id(raw)
    if not localpart or any(not "\x21" <= c <= "\x7e" for c in localpart):
        raise invalid_param(f"{raw!r} is not a compliant user ID")
    if raw == own_user_id:
        raise invalid_param("You cannot request a list of shared rooms with yourself")
    return raw


def batch_token(last_room_id: str) -> str:
    """The ``next_batch`` token resuming after ``last_room_id``."""
    return encode_base64(last_room_id.encode("utf-8"), urlsafe=True)


def room_after_token(token: str) -> str:
    """The room ID a ``batch_token`` names, or 400 ``M_INVALID_PARAM`` for anything else
    (re-encoding must give the token back, so stray characters are not skipped over)."""
    try:
        room_id = decode_base64(token).decode("utf-8")
    except (ValueError, binascii.Error):
        raise invalid_param("Invalid 'from' token") from None
    if (
        not room_id.startswith("!")
        or len(room_id.encode("utf-8")) > MAX_ROOM_ID_BYTES
        or batch_token(room_id) != token
    ):
        raise invalid_param("Invalid 'from' token")
    return room_id


async def get_mutual_rooms(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    other = _compliant_user_id(request.query_params.get("user_id"), requester.user_id)
    token = request.query_params.get("from")
    after = room_after_token(token) if token else None
    page = await mutual_joined_rooms(env.DB, requester.user_id, other, after, BATCH_SIZE)
    body: dict[str, Any] = {"joined": page.room_ids, "count": page.count}
    if page.more:
        body["next_batch"] = batch_token(page.room_ids[-1])
    return body


routes: list[Route] = [*client_v1_routes("/mutual_rooms", get_mutual_rooms, ["GET"])]
