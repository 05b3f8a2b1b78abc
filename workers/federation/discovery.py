"""Server discovery: from a server name to the address, port, ``Host`` header and TLS name
to use. Pure functions; the federation client does the look-ups (HTTP and DNS) and passes
their results in.

Spec: server-server API "Resolving server names":

1. An IP literal is used as is, with its port or 8448; ``Host`` is the server name.
2. A hostname with an explicit port is resolved (A/AAAA) and used with that port; ``Host``
   is the server name; the certificate must be for the hostname.
3. Otherwise ``https://<hostname>/.well-known/matrix/server`` is fetched; a valid ``m.server``
   delegates to ``<delegated_hostname>[:<delegated_port>]``: 3.1 an IP literal is used with
   its port or 8448; 3.2 a hostname with a port is used as is; 3.3 a hostname without a port
   is looked up as ``_matrix-fed._tcp.<delegated_hostname>`` SRV, then 3.4 (deprecated) as
   ``_matrix._tcp.<delegated_hostname>``; 3.5 without SRV records, the hostname on 8448. In
   every case ``Host`` and the certificate name are the delegated name, never an SRV target.
4. Without a usable well-known, ``_matrix-fed._tcp.<hostname>`` SRV, then 5 (deprecated)
   ``_matrix._tcp.<hostname>``; ``Host`` and the certificate name are the hostname.
6. Without a usable well-known or SRV records, the hostname on port 8448.

SRV answers are ordered as RFC 2782 says (``order_srv_records``): lowest priority first,
then a weighted random choice among the records of one priority; the randomness comes in
as an argument. A lone record whose target is ``.`` means the service is decidedly not
offered at that name (``srv_service_refused``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

DEFAULT_FEDERATION_PORT = 8448

# Well-known caching (spec step 3): respect Cache-Control, 24 h by default, 48 h at most;
# errors cached for up to an hour.
WELL_KNOWN_DEFAULT_SECONDS = 24 * 3600
WELL_KNOWN_MAX_SECONDS = 48 * 3600
WELL_KNOWN_ERROR_SECONDS = 3600
WELL_KNOWN_MAX_BYTES = 50 * 1024
WELL_KNOWN_MAX_REDIRECTS = 5

# SRV caching: the records' TTL, kept within [1 minute, 1 hour]; a name without records is
# looked up again after 5 minutes.
SRV_MIN_CACHE_SECONDS = 60
SRV_MAX_CACHE_SECONDS = 3600
SRV_MISSING_CACHE_SECONDS = 300
SRV_SERVICES = ("_matrix-fed._tcp", "_matrix._tcp")  # steps 3.3/4, then deprecated 3.4/5

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
    """Step 6: no usable well-known and no SRV records: the hostname on port 8448."""
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


# --- SRV records (steps 3.3, 3.4, 4 and 5) --------------------------------------------------

@dataclass(frozen=True)
class SrvRecord:
    """One SRV answer (RFC 2782). ``target`` is a hostname without its final dot (``.`` for
    "no service here"); ``ttl`` is the answer's time to live in seconds."""

    priority: int
    weight: int
    port: int
    target: str
    ttl: int = SRV_MIN_CACHE_SECONDS


# pick(total) -> a uniformly chosen integer in [0, total], both ends included (RFC 2782).
PickWeight = Callable[[int], int]


def delegated_srv_hostname(delegated: str) -> str | None:
    """Step 3.3: the delegated hostname whose SRV records are looked up, or None when the
    ``m.server`` value is an IP literal or carries a port (steps 3.1 and 3.2 apply)."""
    host, port = split_server_name(delegated)
    if port is not None or is_ip_literal(host):
        return None
    return host


def srv_names(hostname: str) -> tuple[str, ...]:
    """The SRV names to try for ``hostname``, in order: ``_matrix-fed._tcp.<hostname>``
    (steps 3.3 and 4), then the deprecated ``_matrix._tcp.<hostname>`` (steps 3.4 and 5)."""
    return tuple(f"{service}.{hostname}" for service in SRV_SERVICES)


def srv_service_refused(records: Sequence[SrvRecord]) -> bool:
    """RFC 2782: a single record with the target ``.`` says the service is decidedly not
    available at this name."""
    return len(records) == 1 and records[0].target == "."


def _usable(record: SrvRecord) -> bool:
    return (
        record.target != "."
        and _DNS_NAME.match(record.target) is not None
        and 0 < record.port < 65536
        and record.priority >= 0
        and record.weight >= 0
    )


def _weighted_index(pending: Sequence[SrvRecord], chosen: int) -> int:
    """The first record whose running sum of weights reaches ``chosen``."""
    running = 0
    for index, record in enumerate(pending):
        running += record.weight
        if running >= chosen:
            return index
    return len(pending) - 1


def order_srv_records(records: Sequence[SrvRecord], pick: PickWeight) -> list[SrvRecord]:
    """The order in which to try SRV targets (RFC 2782, "Usage rules").

    Records that cannot be used (target ``.`` or not a hostname, port 0) are dropped. Lower
    priorities come first. Within one priority, the records not yet placed are listed with
    the weight-0 ones first; ``pick(total)`` chooses a number from 0 to the sum of their
    weights, and the first record whose running sum of weights reaches it comes next, until
    none is left. A zero weight is thus chosen only when the number is 0 (rarely, when other
    records have weight). ``pick`` must return a value in ``[0, total]``; ValueError if not.
    """
    usable = [record for record in records if _usable(record)]
    ordered: list[SrvRecord] = []
    for priority in sorted({record.priority for record in usable}):
        group = [record for record in usable if record.priority == priority]
        pending = [r for r in group if r.weight == 0] + [r for r in group if r.weight > 0]
        while pending:
            total = sum(record.weight for record in pending)
            chosen = pick(total)
            if not 0 <= chosen <= total:
                raise ValueError(f"pick({total}) gave {chosen}, outside [0, {total}]")
            ordered.append(pending.pop(_weighted_index(pending, chosen)))
    return ordered


def srv_targets(name: str, ordered: Sequence[SrvRecord]) -> list[ServerTarget]:
    """Steps 3.3/3.4 (``name`` is the delegated hostname) and 4/5 (``name`` is the server's
    hostname): connect to each SRV target and port, with ``name`` as the ``Host`` header and
    the name the certificate must be valid for (not the SRV target: DNS is not trusted to
    delegate, TLS must prove it)."""
    return [ServerTarget(record.target, record.port, name, name) for record in ordered]


def srv_cache_seconds(records: Sequence[SrvRecord]) -> int:
    """How long to cache an SRV answer: its smallest TTL within [60 s, 1 h]; 5 minutes when
    there were no records."""
    if not records:
        return SRV_MISSING_CACHE_SECONDS
    ttl = min(record.ttl for record in records)
    return max(SRV_MIN_CACHE_SECONDS, min(ttl, SRV_MAX_CACHE_SECONDS))
