"""Rate limits on client requests: 429 ``M_LIMIT_EXCEEDED`` with ``retry_after_ms``.

Spec: client-server API "Rate limiting". The limiters are bindings (``env.*_LIMITER``,
token buckets from local_runtime.rate_limiter); a limit configured to 0 is off (binding None).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from workers.errors import Codes, MatrixError


async def enforce(limiter: Any, key: str, what: str) -> None:
    """Take one token for ``key`` or refuse with 429."""
    if limiter is None:
        return
    outcome = await limiter.limit(key)
    if not outcome.success:
        raise MatrixError(
            429, Codes.LIMIT_EXCEEDED, f"Too many {what}; slow down",
            retry_after_ms=outcome.retry_after_ms,
        )


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def limit_messages(request: Request, env: Any, user_id: str) -> None:
    await enforce(getattr(env, "MESSAGE_LIMITER", None), user_id, "messages")


async def limit_login(request: Request, env: Any) -> None:
    await enforce(getattr(env, "LOGIN_LIMITER", None), client_address(request), "login attempts")


async def limit_registration(request: Request, env: Any) -> None:
    await enforce(getattr(env, "REGISTRATION_LIMITER", None), client_address(request), "registrations")
