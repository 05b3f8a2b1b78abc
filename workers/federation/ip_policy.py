"""Which IP addresses this server may send federation requests to.

A server name is chosen by whoever sends us an event or an invite, so without a policy a
malicious name could make this server issue requests into its own network (to loopback
services, cloud metadata endpoints, private hosts). By default only globally routable
unicast addresses are allowed; an allow list (``federation_ip_range_whitelist``, plus
127.0.0.0/8 and ::1 with ``federation_allow_loopback``) makes exceptions, and a deny list
(``federation_ip_range_blacklist``) refuses more.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK_RANGES = ("127.0.0.0/8", "::1/128")


def _networks(ranges: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(r, strict=False) for r in ranges)


@dataclass(frozen=True)
class IPRangePolicy:
    allow: tuple[IPNetwork, ...] = field(default_factory=tuple)
    deny: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def from_config(
        cls, whitelist: Iterable[str], blacklist: Iterable[str], allow_loopback: bool
    ) -> "IPRangePolicy":
        allowed = list(whitelist) + (list(LOOPBACK_RANGES) if allow_loopback else [])
        return cls(_networks(allowed), _networks(blacklist))

    def permits(self, address: str | IPAddress) -> bool:
        """Whether a request may be sent to ``address``.

        IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry. Allowed ranges
        win over everything; then denied ranges refuse; then only global unicast addresses
        pass (``is_global`` excludes private, loopback, link-local, shared, reserved and
        documentation ranges).
        """
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allow if net.version == ip.version):
            return True
        if any(ip in net for net in self.deny if net.version == ip.version):
            return False
        return ip.is_global and not ip.is_multicast
