"""What can go wrong when this server talks to another one.

Spec: server-server API "API standards" (every response is a JSON object; errors carry an
``errcode``). A remote server's error is carried here so that callers can decide what to do
with it, but it is never relayed to a client as is (STYLE.md, "Errors"): workers turn these
exceptions into their own ``MatrixError`` (``as_client_error``).
"""

from __future__ import annotations

from workers.errors import Codes, MatrixError


class FederationError(Exception):
    """A request to ``destination`` did not give a usable answer."""

    def __init__(self, destination: str, message: str) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination
        self.message = message


class DestinationRefused(FederationError):
    """We will not send to this destination: a bad server name, or it resolves only to
    addresses refused by the IP range policy (loopback, private, configured deny list)."""


class FederationUnavailable(FederationError):
    """The destination could not be reached or answered something that is not JSON:
    DNS failure, connection refused, TLS failure, timeout, a body that is too large."""


class ResponseTooLarge(FederationUnavailable):
    """The destination's answer was longer than the caller allows (``max_bytes``)."""

    def __init__(self, destination: str, max_bytes: int) -> None:
        super().__init__(destination, f"response larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


class RemoteServerError(FederationError):
    """The destination answered with a non-2xx status. ``errcode`` and ``remote_message``
    are what it said (``M_UNKNOWN`` and the status line when it gave no Matrix error)."""

    def __init__(
        self, destination: str, status: int, errcode: str, remote_message: str
    ) -> None:
        super().__init__(destination, f"HTTP {status} {errcode}: {remote_message[:200]}")
        self.status = status
        self.errcode = errcode
        self.remote_message = remote_message

    @property
    def retryable(self) -> bool:
        """Whether sending the same request later may succeed (5xx, 408, 429)."""
        return self.status >= 500 or self.status in (408, 429)


def as_client_error(exc: FederationError) -> MatrixError:
    """The error a local client sees when a federation request it caused failed.

    A remote 404 ``M_NOT_FOUND`` stays a 404 (the thing does not exist there); everything
    else is this server failing to get an answer: 502 ``M_UNKNOWN`` with our own message,
    naming the destination but not echoing the remote text.
    """
    if isinstance(exc, RemoteServerError) and exc.status == 404 and exc.errcode == Codes.NOT_FOUND.value:
        return MatrixError(404, Codes.NOT_FOUND, f"Not found on {exc.destination}")
    if isinstance(exc, DestinationRefused):
        return MatrixError(502, Codes.UNKNOWN, f"Will not contact {exc.destination}")
    return MatrixError(502, Codes.UNKNOWN, f"Failed to get an answer from {exc.destination}")
