"""One error type for every refusal: an HTTP status, a Matrix errcode and a message.

Spec: https://spec.matrix.org/v1.19/client-server-api/#standard-error-response
Every error the server sends is ``{"errcode": "M_...", "error": "..."}`` plus any extra
fields the spec defines for that error (``retry_after_ms``, ``soft_logout``, ...).
"""

from __future__ import annotations

import enum
from typing import Any


class Codes(str, enum.Enum):
    FORBIDDEN = "M_FORBIDDEN"
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
    MISSING_TOKEN = "M_MISSING_TOKEN"
    USER_LOCKED = "M_USER_LOCKED"
    USER_SUSPENDED = "M_USER_SUSPENDED"
    USER_DEACTIVATED = "M_USER_DEACTIVATED"
    BAD_JSON = "M_BAD_JSON"
    NOT_JSON = "M_NOT_JSON"
    NOT_FOUND = "M_NOT_FOUND"
    LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
    UNRECOGNIZED = "M_UNRECOGNIZED"
    UNKNOWN = "M_UNKNOWN"
    UNAUTHORIZED = "M_UNAUTHORIZED"
    USER_IN_USE = "M_USER_IN_USE"
    INVALID_USERNAME = "M_INVALID_USERNAME"
    ROOM_IN_USE = "M_ROOM_IN_USE"
    INVALID_ROOM_STATE = "M_INVALID_ROOM_STATE"
    UNSUPPORTED_ROOM_VERSION = "M_UNSUPPORTED_ROOM_VERSION"
    INCOMPATIBLE_ROOM_VERSION = "M_INCOMPATIBLE_ROOM_VERSION"
    BAD_STATE = "M_BAD_STATE"
    GUEST_ACCESS_FORBIDDEN = "M_GUEST_ACCESS_FORBIDDEN"
    MISSING_PARAM = "M_MISSING_PARAM"
    INVALID_PARAM = "M_INVALID_PARAM"
    TOO_LARGE = "M_TOO_LARGE"
    EXCLUSIVE = "M_EXCLUSIVE"
    WEAK_PASSWORD = "M_WEAK_PASSWORD"
    SERVER_NOT_TRUSTED = "M_SERVER_NOT_TRUSTED"
    THREEPID_NOT_FOUND = "M_THREEPID_NOT_FOUND"
    THREEPID_IN_USE = "M_THREEPID_IN_USE"
    CANNOT_LEAVE_SERVER_NOTICE_ROOM = "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
    NOT_YET_UPLOADED = "M_NOT_YET_UPLOADED"
    CANNOT_OVERWRITE_MEDIA = "M_CANNOT_OVERWRITE_MEDIA"
    UNKNOWN_POS = "M_UNKNOWN_POS"


class MatrixError(Exception):
    """A refusal with the spec's status and errcode. Raise it anywhere below a worker."""

    def __init__(
        self, status: int, errcode: Codes | str, message: str, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode.value if isinstance(errcode, Codes) else errcode
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}

    def __repr__(self) -> str:
        return f"MatrixError({self.status}, {self.errcode}, {self.message!r})"


def unrecognized(message: str = "Unrecognized request") -> MatrixError:
    return MatrixError(404, Codes.UNRECOGNIZED, message)


def forbidden(message: str) -> MatrixError:
    return MatrixError(403, Codes.FORBIDDEN, message)


def not_found(message: str) -> MatrixError:
    return MatrixError(404, Codes.NOT_FOUND, message)


def bad_json(message: str) -> MatrixError:
    return MatrixError(400, Codes.BAD_JSON, message)


def missing_param(message: str) -> MatrixError:
    return MatrixError(400, Codes.MISSING_PARAM, message)


def invalid_param(message: str) -> MatrixError:
    return MatrixError(400, Codes.INVALID_PARAM, message)
