"""Domain errors raised by the pure spec algorithms.

They carry a reason but no HTTP status: the boundary decides what a refusal means (a client's
event gets 403 M_FORBIDDEN, a federated PDU is stored as rejected).
"""

from __future__ import annotations


class SpecError(Exception):
    """Base class: something the spec says is not allowed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidEvent(SpecError):
    """A PDU that is malformed for its room version (shape, types, sizes, hashes)."""


class AuthError(SpecError):
    """An event that fails the authorization rules of its room version."""


class SignatureError(SpecError):
    """A missing or invalid signature."""
