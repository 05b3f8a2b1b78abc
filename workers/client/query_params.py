"""Query parameters shared by the v1 read endpoints (relations, threads, hierarchy)."""

from __future__ import annotations

from starlette.requests import Request

from workers.errors import invalid_param

# Stream positions and timestamps are stored as SQLite INTEGERs (signed 64-bit).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def int64_value(raw: str, name: str) -> int:
    """``raw`` as a signed 64-bit integer; 400 ``M_INVALID_PARAM`` for anything else (a
    number past that range can name no stored position or timestamp)."""
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"Query parameter {name!r} must be an integer") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise invalid_param(f"Query parameter {name!r} is out of range")
    return value


def int_param(
    request: Request, name: str, default: int, maximum: int, *, minimum: int = 0
) -> int:
    """An integer query parameter, at least ``minimum`` (400 ``M_INVALID_PARAM`` below it or
    when not an integer), clamped to ``maximum``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"Query parameter {name!r} must be an integer") from None
    if value < minimum:
        raise invalid_param(f"Query parameter {name!r} must be at least {minimum}")
    return min(value, maximum)


def bool_param(request: Request, name: str) -> bool | None:
    """``true``/``false`` (None when absent); anything else is 400 ``M_INVALID_PARAM``."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw in ("true", "false"):
        return raw == "true"
    raise invalid_param(f"Query parameter {name!r} must be 'true' or 'false'")


def direction_param(request: Request, default: str) -> bool:
    """``dir``: True for ``b`` (backwards), False for ``f``."""
    direction = request.query_params.get("dir", default)
    if direction not in ("b", "f"):
        raise invalid_param("dir must be 'b' or 'f'")
    return direction == "b"
