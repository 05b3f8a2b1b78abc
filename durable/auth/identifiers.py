"""Small parsers for the identifiers the auth rules compare.

Spec: https://spec.matrix.org/v1.19/appendices/#identifier-grammar ("User Identifiers",
"Historical User IDs", "Server Name").
"""

from __future__ import annotations

import re

# server_name = hostname [ ":" port ]; hostname = IPv4address / "[" IPv6address "]" / dns-name
_SERVER_NAME = re.compile(
    r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(?::[0-9]{1,5})?",
    re.ASCII,
)


def domain_of(identifier: str) -> str | None:
    """The part after the first ``:`` of a sigil-prefixed ID (``@user:domain``,
    ``!room:domain``, ``$event:domain``), or None when there is no domain.

    Localparts never contain ``:``, so the first colon separates the domain (which may itself
    carry a ``:port``)."""
    _, sep, domain = identifier.partition(":")
    return domain if sep else None


def is_valid_server_name(name: str) -> bool:
    """The appendix's ``server_name`` grammar."""
    return _SERVER_NAME.fullmatch(name) is not None


def is_valid_user_id(user_id: object) -> bool:
    """The validation the spec applies to an event's ``sender``.

    Servers MUST accept historical user IDs: ``@`` + a localpart of any non-surrogate code
    points except ``:`` and NUL (possibly empty) + ``:`` + a server name, at most 255 bytes
    ("Historical User IDs")."""
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        return False
    try:
        if len(user_id.encode("utf-8")) > 255:
            return False
    except UnicodeEncodeError:  # a lone surrogate
        return False
    localpart, sep, server = user_id[1:].partition(":")
    if not sep or "\x00" in localpart:
        return False
    return is_valid_server_name(server)
