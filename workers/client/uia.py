"""User-interactive authentication (UIA) for /register, /account/password,
/account/deactivate, DELETE /devices/{id} and /delete_devices.

Spec: client-server API "User-Interactive Authentication API". A request without ``auth``
gets 401 with ``flows``, ``params`` and a ``session``; the client retries with
``auth: {type, session, ...}``; each successful stage is recorded in the session; when all
stages of one flow are complete the call proceeds. A failed stage gets the same 401 body
plus ``errcode``/``error`` (``M_FORBIDDEN`` for a wrong password). A session belongs to one
operation (method and path) and, for authenticated calls, to one user.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from d1 import ui_auth as ui_auth_db
from workers.auth import Requester, now_ms
from workers.client.credentials import check_password_login
from workers.errors import Codes, MatrixError
from workers.routing import MatrixJSONResponse

Flows = list[dict[str, list[str]]]

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"
DUMMY_FLOWS: Flows = [{"stages": [DUMMY]}]
PASSWORD_FLOWS: Flows = [{"stages": [PASSWORD]}]
SESSION_LIFETIME_MS = 30 * 60 * 1000


def _operation(request: Request) -> str:
    """Method and path without the API prefix, so v3 and r0 share sessions."""
    return f"{request.method} {request.url.path.split('/', 4)[-1]}"


def _challenge(
    flows: Flows,
    session_id: str,
    completed: list[str],
    error: tuple[Codes, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"flows": flows, "params": {}, "session": session_id}
    if completed:
        body["completed"] = completed
    if error is not None:
        body["errcode"], body["error"] = error[0].value, error[1]
    return MatrixJSONResponse(body, status_code=401)


async def _stage_passes(
    env: Any, stage: str, auth: dict[str, Any], requester: Requester | None
) -> bool:
    if stage == DUMMY:
        return True
    if stage == PASSWORD:
        user = await check_password_login(env, auth)
        # The password must be the requester's own: UIA re-confirms who is calling.
        return user is not None and (requester is None or user["user_id"] == requester.user_id)
    return False


async def authenticate(
    request: Request,
    env: Any,
    body: dict[str, Any],
    flows: Flows,
    requester: Requester | None,
) -> Response | None:
    """None when the request completed a flow (the session is then used up); otherwise the
    401 response the handler must return."""
    auth = body.get("auth")
    operation = _operation(request)
    user_id = requester.user_id if requester is not None else None
    now = now_ms()
    if auth is not None and not isinstance(auth, dict):
        raise MatrixError(400, Codes.BAD_JSON, "auth must be an object")
    if auth and not isinstance(auth.get("type", ""), str):
        raise MatrixError(400, Codes.BAD_JSON, "auth.type must be a string")
    session_id = auth.get("session") if auth else None
    if session_id is None:
        await ui_auth_db.delete_expired(env.DB, now - SESSION_LIFETIME_MS)
        session_id = secrets.token_urlsafe(24)
        await ui_auth_db.create_session(env.DB, session_id, operation, user_id, now)
        completed: list[str] = []
        if not auth:
            return _challenge(flows, session_id, completed)
    else:
        if not isinstance(session_id, str):
            raise MatrixError(400, Codes.BAD_JSON, "auth.session must be a string")
        session = await ui_auth_db.get_session(env.DB, session_id)
        if session is None or session["created_ts"] < now - SESSION_LIFETIME_MS:
            raise MatrixError(400, Codes.UNKNOWN, "Unknown or expired UIA session")
        if session["operation"] != operation or session["user_id"] != user_id:
            raise MatrixError(
                403, Codes.FORBIDDEN, "This UIA session belongs to a different request"
            )
        completed = session["completed"]

    stage = auth.get("type")
    if stage is not None and stage not in completed:
        offered = {s for flow in flows for s in flow["stages"]}
        if stage not in offered:
            return _challenge(
                flows, session_id, completed,
                (Codes.UNRECOGNIZED, f"Authentication type {stage!r} is not offered here"),
            )
        if not await _stage_passes(env, stage, auth, requester):
            return _challenge(flows, session_id, completed, (Codes.FORBIDDEN, "Invalid password"))
        completed = [*completed, stage]
        await ui_auth_db.set_completed(env.DB, session_id, completed)

    if any(flow["stages"] == completed[: len(flow["stages"])] for flow in flows):
        await ui_auth_db.delete_session(env.DB, session_id)
        return None
    return _challenge(flows, session_id, completed)
