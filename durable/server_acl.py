"""Server ACLs: whether a server may take part in a room, from its ``m.room.server_acl``.

Spec: client-server API "Server Access Control Lists (ACLs) for rooms" and the
``m.room.server_acl`` event; server-server API "Server Access Control Lists (ACLs)" says
where the answer is applied. The decision for one server name, in the event's order:

1. a server name that is an IP literal is denied when ``allow_ip_literals`` is ``false``
   (the flag counts as ``true`` when missing or not a boolean);
2. a name matching an entry of ``deny`` is denied;
3. a name matching an entry of ``allow`` is allowed;
4. anything else is denied (so a missing or empty ``allow`` lets no server in).

Entries are globs (appendices, "Glob-style matching": ``*`` is zero or more characters,
``?`` exactly one) over the server name without its port: ports are not supported in ACLs.
Host names are compared case-insensitively (DNS names are; Synapse does the same). A
``deny``/``allow`` that is not a list counts as empty, and entries that are not strings
are ignored, as Synapse does. With no ACL event in the room every server is allowed; that
is the caller's case (this module looks at an ACL's content only).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any, Mapping, Pattern

_IPV4_LITERAL = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_PORT = re.compile(r"[0-9]+")


def host_of(server_name: str) -> str:
    """``server_name`` without a trailing ``:port`` (a bracketed IPv6 literal keeps its
    brackets: ``[::1]:8448`` gives ``[::1]``)."""
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[: end + 1] if end != -1 else server_name
    host, sep, port = server_name.rpartition(":")
    if sep and ":" not in host and _PORT.fullmatch(port):
        return host
    return server_name


def is_ip_literal(host: str) -> bool:
    """Whether a host (port already removed) is an IPv4 or IPv6 address literal. The spec's
    server name grammar writes IPv6 in brackets; an unbracketed IPv6 address counts too."""
    if _IPV4_LITERAL.fullmatch(host):
        return True
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return isinstance(ipaddress.ip_address(bare), ipaddress.IPv6Address)
    except ValueError:
        return False


@functools.lru_cache(maxsize=1024)
def glob_regex(glob: str) -> Pattern[str]:
    """The compiled, anchored, case-insensitive regex of a glob: ``*`` and ``?`` are
    wildcards, every other character stands for itself."""
    parts = []
    for char in glob:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _entries(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, str)]


def _matches_any(host: str, globs: list[str]) -> bool:
    return any(glob_regex(glob).fullmatch(host) is not None for glob in globs)


def server_allowed_by_acl(server_name: str, acl_content: Mapping[str, Any]) -> bool:
    """Whether ``server_name`` (a port, if any, is ignored) may take part in a room whose
    ``m.room.server_acl`` has ``acl_content`` (the steps in this module's docstring)."""
    host = host_of(server_name)
    allow_ip_literals = acl_content.get("allow_ip_literals", True)
    if not isinstance(allow_ip_literals, bool):
        allow_ip_literals = True
    if not allow_ip_literals and is_ip_literal(host):
        return False
    if _matches_any(host, _entries(acl_content.get("deny"))):
        return False
    return _matches_any(host, _entries(acl_content.get("allow")))
