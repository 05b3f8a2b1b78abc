"""Identifier grammar needed by the event format checks.

Spec: appendices, "Identifier Grammar": "Server Name", "User Identifiers" (including
"Historical User IDs"), "Room IDs" and "Event IDs".
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_IDENTIFIER_BYTES = 255

# server_name = hostname [ ":" port ]; hostname = IPv4 / "[" IPv6 "]" / dns-name.
# dns-name (1*255 of DIGIT / ALPHA / "-" / ".") already covers the IPv4 dotted quad.
_SERVER_NAME = re.compile(r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.\-]{1,255})(?::[0-9]{1,5})?")


def is_valid_server_name(server_name: str) -> bool:
    """Spec: "Server Name": a hostname (DNS name, IPv4 or bracketed IPv6) and optional port."""
    return _SERVER_NAME.fullmatch(server_name) is not None


def is_valid_user_id(user_id: object) -> bool:
    """A user ID that servers must accept in events.

    Spec: "User Identifiers" and "Historical User IDs": ``@localpart:server_name``, at most
    255 bytes. Servers must accept historical localparts: any code points except ``:`` and NUL,
    including the empty string, so only those two characters are refused in the localpart.
    """
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        return False
    return _is_valid_user_id(user_id)


@lru_cache(maxsize=4096)  # the same senders come back event after event
def _is_valid_user_id(user_id: str) -> bool:
    if len(user_id.encode("utf-8", "surrogatepass")) > MAX_IDENTIFIER_BYTES:
        return False
    localpart, sep, server_name = user_id[1:].partition(":")
    if not sep or "\x00" in localpart:
        return False
    if any("\ud800" <= ch <= "\udfff" for ch in localpart):
        return False
    return is_valid_server_name(server_name)


def server_name_of(identifier: str) -> str | None:
    """The domain of ``&localpart:domain`` (user IDs, v1/v2 event IDs, pre-v12 room IDs), split
    at the first colon since localparts never contain one; None when there is no domain."""
    _, sep, domain = identifier.partition(":")
    return domain if sep and domain else None


def byte_length(value: str) -> int:
    """Size in bytes of a string as UTF-8 (lone surrogates counted as 3 bytes)."""
    return len(value.encode("utf-8", "surrogatepass"))
