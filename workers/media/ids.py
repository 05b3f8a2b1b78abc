"""mxc:// URI parts: media IDs and server names, checked before any lookup.

Spec: client-server API "Matrix Content (mxc://) URIs" and its security considerations:
the media ID MUST only hold ``A-Za-z0-9``, ``_`` and ``-``, and the server name must be a
valid server name (appendix "Server Name"), which rules out directory traversal.
"""

from __future__ import annotations

import re
import secrets

from workers.errors import Codes, MatrixError

_MEDIA_ID = re.compile(r"[A-Za-z0-9_\-]{1,255}")
# Appendix "Server Name": hostname (IPv4 literal, [IPv6] literal or DNS name) and an
# optional port.
_SERVER_NAME = re.compile(
    r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.\-]{1,255})(?::[0-9]{1,5})?"
)


def new_media_id() -> str:
    """A fresh, unguessable media ID (URL-safe base64 alphabet, 24 characters)."""
    return secrets.token_urlsafe(18)


def is_valid_media_id(media_id: str) -> bool:
    return _MEDIA_ID.fullmatch(media_id) is not None


def is_valid_server_name(server_name: str) -> bool:
    return _SERVER_NAME.fullmatch(server_name) is not None


def checked_ref(server_name: str, media_id: str) -> tuple[str, str]:
    """The (server name, media ID) of a request path, or 404 when either is malformed:
    nothing can exist under a name we would never issue."""
    if not is_valid_server_name(server_name) or not is_valid_media_id(media_id):
        raise MatrixError(404, Codes.NOT_FOUND, "Not a valid mxc:// server name and media ID")
    return server_name, media_id


def mxc_uri(server_name: str, media_id: str) -> str:
    return f"mxc://{server_name}/{media_id}"
