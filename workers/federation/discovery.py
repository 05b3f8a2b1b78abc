"""Server discovery: from a server name to the address, port, ``Host`` header and TLS name
to use. Pure functions; the federation client does the look-ups.

Spec: server-server API "Resolving server names". The steps implemented:

1. An IP literal is used as is, with its port or 8448; ``Host`` is the server name.
2. A hostname with an explicit port is resolved (A/AAAA) and used with that port; ``Host``
   is the server name; the certificate must be for the hostname.
3. Otherwise ``https://<hostname>/.well-known/matrix/server`` is fetched; a valid ``m.server``
   delegates to ``<delegated_hostname>[:<delegated_port>]``, handled as in 3.1 (IP literal,
   port or 8448), 3.2 (hostname with port) and 3.5 (hostname, port 8448), with ``Host`` and
   the certificate name being the delegated name.
6. Without a usable well-known, the hostname is used with port 8448.

Steps 3.3/3.4 and 4/5 (SRV records ``_matrix-fed._tcp`` and the deprecated ``_matrix._tcp``)
are not implemented: they need a DNS library that can query SRV records, and the standard
library resolver cannot. A server that relies on SRV alone is unreachable from here; servers
that publish ``.well-known`` (as the spec recommends) or an explicit port are reachable.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

DEFAULT_FEDERATION_PORT = 8448

# Well-known caching (spec step 3): respect Cache-Control, 24 h by default, 48 h at most;
# errors cached for up to an hour.
WELL_KNOWN_DEFAULT_SECONDS = 24 * 3600
WELL_KNOWN_MAX_SECONDS = 48 * 3600
WELL_KNOWN_ERROR_SECONDS = 3600
WELL_KNOWN_MAX_BYTES = 50 * 1024
WELL_KNOWN_MAX_REDIRECTS = 5

# appendices "Server Name": a DNS name of letters, digits, '-' and '.', at most 255 chars.
_DNS_NAME = re.compile(r"^[A-Za-z0-9.-]{1,255}$")


@dataclass(frozen=True)
class ServerTarget:
    """Where to send requests for a server name.

    ``host`` is a hostname or an IP literal (no brackets) to resolve and connect to;
    ``host_header`` is the HTTP ``Host`` header; ``tls_name`` is the name the certificate
    must be valid for and the SNI to send (``None`` for IP literals: no SNI is sent and the
    certificate must be valid for the IP address).
    """

    host: str
    port: int
    host_header: str
    tls_name: str | None


def split_server_name(name: str) -> tuple[str, int | None]:
    """``(host, port)`` of a server name; IPv6 literals come back without brackets.

    Raises ValueError when ``name`` is not a server name (appendices "Server Name":
    ``hostname [ ":" port ]`` with hostname an IPv4 literal, a bracketed IPv6 literal or a
    DNS name, and port 1 to 5 digits).
    """
    if not name or len(name) > 255:
        raise ValueError(f"not a server name: {name!r}")
    if name.startswith("["):
        end = name.find("]")
        if end == -1:
            raise ValueError(f"unterminated IPv6 literal in {name!r}")
        host, rest = name[1:end], name[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bad IPv6 literal in {name!r}") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"not a server name: {name!r}")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_raw = name.partition(":")
        port_text = port_text_raw if sep else None
        if not _DNS_NAME.match(host):
            raise ValueError(f"not a server name: {name!r}")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or len(port_text) > 5 or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in server name {name!r}")
        port = int(port_text)
    return host, port


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def direct_target(server_name: str) -> ServerTarget | None:
    """Steps 1 and 2: the target when no well-known look-up is needed, else None."""
    host, port = split_server_name(server_name)
    if is_ip_literal(host):
        return ServerTarget(host, port or DEFAULT_FEDERATION_PORT, server_name, None)
    if port is not None:
        return ServerTarget(host, port, server_name, host)
    return None


def delegated_target(delegated: str) -> ServerTarget:
    """Step 3.1, 3.2 and 3.5: the target for a valid ``m.server`` value.

    The ``Host`` header and certificate name are the delegated name (with its port if any).
    """
    host, port = split_server_name(delegated)
    if is_ip_literal(host):
        return ServerTarget(host, port or DEFAULT_FEDERATION_PORT, delegated, None)
    return ServerTarget(host, port or DEFAULT_FEDERATION_PORT, delegated, host)


def fallback_target(server_name: str) -> ServerTarget:
    """Step 6: no usable well-known (and no SRV look-up): the hostname on port 8448."""
    host, _ = split_server_name(server_name)
    return ServerTarget(host, DEFAULT_FEDERATION_PORT, host, host)


def parse_well_known(body: bytes) -> str | None:
    """The ``m.server`` of a well-known body, or None when the response is invalid.

    Spec (wellknown.yaml): the body is parsed as JSON whatever its Content-Type; bad JSON, a
    missing or non-string ``m.server`` or one that is not a server name make it invalid.
    """
    if len(body) > WELL_KNOWN_MAX_BYTES:
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    delegated = value.get("m.server")
    if not isinstance(delegated, str):
        return None
    try:
        split_server_name(delegated)
    except ValueError:
        return None
    return delegated


def well_known_cache_seconds(cache_control: str | None) -> int:
    """How long to cache a valid well-known response: ``max-age`` if given (0 for
    ``no-store``/``no-cache``), else 24 hours; never more than 48 hours."""
    if cache_control:
        directives = [part.strip().lower() for part in cache_control.split(",")]
        if "no-store" in directives or "no-cache" in directives:
            return 0
        for directive in directives:
            name, _, value = directive.partition("=")
            if name.strip() == "max-age" and value.strip().isdigit():
                return min(int(value.strip()), WELL_KNOWN_MAX_SECONDS)
    return WELL_KNOWN_DEFAULT_SECONDS
