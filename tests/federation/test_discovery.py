"""Server discovery (spec: "Resolving server names") and the IP range policy."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from kv.namespace import KVNamespace
from tests.federation.peers import make_signing_key
from workers.federation.client import FederationClient
from workers.federation.discovery import (
    ServerTarget,
    delegated_target,
    direct_target,
    fallback_target,
    parse_well_known,
    split_server_name,
    well_known_cache_seconds,
)
from workers.federation.errors import DestinationRefused, FederationUnavailable, RemoteServerError
from workers.federation.ip_policy import IPRangePolicy


@pytest.mark.parametrize(
    "name, expected",
    [
        ("1.2.3.4", ServerTarget("1.2.3.4", 8448, "1.2.3.4", None)),
        ("1.2.3.4:1234", ServerTarget("1.2.3.4", 1234, "1.2.3.4:1234", None)),
        ("[2001:db8::1]", ServerTarget("2001:db8::1", 8448, "[2001:db8::1]", None)),
        ("[2001:db8::1]:99", ServerTarget("2001:db8::1", 99, "[2001:db8::1]:99", None)),
        ("example.org:8449", ServerTarget("example.org", 8449, "example.org:8449", "example.org")),
        ("example.org", None),  # needs the well-known look-up
    ],
)
def test_direct_targets_for_ip_literals_and_explicit_ports(name: str, expected: ServerTarget | None) -> None:
    assert direct_target(name) == expected


@pytest.mark.parametrize("name", ["", "a/b", "[::1", "[nothex]:80", "host:", "host:0", "host:99999", "host:8a", "h_st"])
def test_bad_server_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        split_server_name(name)


def test_delegated_and_fallback_targets() -> None:
    assert delegated_target("5.6.7.8") == ServerTarget("5.6.7.8", 8448, "5.6.7.8", None)
    assert delegated_target("matrix.example.org:443") == ServerTarget(
        "matrix.example.org", 443, "matrix.example.org:443", "matrix.example.org"
    )
    assert delegated_target("matrix.example.org") == ServerTarget(
        "matrix.example.org", 8448, "matrix.example.org", "matrix.example.org"
    )
    assert fallback_target("example.org") == ServerTarget("example.org", 8448, "example.org", "example.org")


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"m.server": "matrix.example.org:443"}', "matrix.example.org:443"),
        (b'{"m.server": 5}', None),
        (b'{"m.server": "bad name/"}', None),
        (b"{}", None),
        (b"not json", None),
        (b'["m.server"]', None),
    ],
)
def test_parse_well_known(body: bytes, expected: str | None) -> None:
    assert parse_well_known(body) == expected


@pytest.mark.parametrize(
    "header, seconds",
    [(None, 86400), ("max-age=600", 600), ("public, max-age=999999999", 172800), ("no-store", 0)],
)
def test_well_known_cache_time(header: str | None, seconds: int) -> None:
    assert well_known_cache_seconds(header) == seconds


@pytest.mark.parametrize(
    "address, allowed",
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("172.16.0.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared address space
        ("fd00::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("0.0.0.0", False),
        ("224.0.0.1", False),
    ],
)
def test_default_policy_allows_only_global_unicast(address: str, allowed: bool) -> None:
    assert IPRangePolicy().permits(address) is allowed


def test_policy_allow_and_deny_lists() -> None:
    policy = IPRangePolicy.from_config(["10.0.0.0/8"], ["8.8.8.0/24"], allow_loopback=True)
    assert policy.permits("10.9.9.9") and policy.permits("127.0.0.1") and policy.permits("::1")
    assert not policy.permits("8.8.8.8") and policy.permits("8.8.4.4")
    assert not policy.permits("192.168.1.1")


# --- the client's discovery, against a fake network -----------------------------------------

class FakeNet:
    def __init__(self, dns: dict[str, list[str]]) -> None:
        self.dns = dns
        self.routes: dict[tuple[str, str], httpx.Response] = {}
        self.seen: list[httpx.Request] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        if host not in self.dns:
            raise OSError("no such host")
        return self.dns[host]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        key = (request.headers["host"], request.url.path)
        if key not in self.routes:
            raise httpx.ConnectError("refused", request=request)
        return self.routes[key]


@pytest.fixture
async def kv(tmp_path: Any) -> Any:
    cache = KVNamespace(tmp_path / "kv.sqlite")
    yield cache
    cache.close()


def make_client(net: FakeNet, cache: Any = None, **options: Any) -> FederationClient:
    return FederationClient(
        "ours.test", make_signing_key(), cache=cache, transport=httpx.MockTransport(net.handle),
        resolve_host=net.resolve, **options,
    )


async def test_well_known_delegation_is_followed_and_cached(kv: Any) -> None:
    net = FakeNet({"example.org": ["1.2.3.4"], "matrix.example.org": ["5.6.7.8"]})
    net.routes[("example.org", "/.well-known/matrix/server")] = httpx.Response(
        200, json={"m.server": "matrix.example.org:8449"}
    )
    net.routes[("matrix.example.org:8449", "/_matrix/federation/v1/version")] = httpx.Response(
        200, json={"server": {"name": "x"}}
    )
    client = make_client(net, kv)
    assert await client.get_json("example.org", "/_matrix/federation/v1/version") == {"server": {"name": "x"}}
    well_known, request = net.seen
    assert str(well_known.url) == "https://1.2.3.4/.well-known/matrix/server"
    assert well_known.extensions["sni_hostname"] == "example.org"
    # connected to the checked address, Host and SNI for the delegated name, signed for example.org
    assert str(request.url) == "https://5.6.7.8:8449/_matrix/federation/v1/version"
    assert request.headers["host"] == "matrix.example.org:8449"
    assert request.extensions["sni_hostname"] == "matrix.example.org"
    assert 'destination="example.org"' in request.headers["authorization"]
    await client.get_json("example.org", "/_matrix/federation/v1/version")
    assert len(net.seen) == 3  # the well-known answer came from the cache
    assert json.loads(await kv.get("fed:wellknown:example.org")) == {"m.server": "matrix.example.org:8449"}
    await client.close()


async def test_without_well_known_the_hostname_on_8448_is_used(kv: Any) -> None:
    net = FakeNet({"example.org": ["1.2.3.4"]})
    net.routes[("example.org", "/_matrix/key/v2/server")] = httpx.Response(200, json={"ok": True})
    client = make_client(net, kv)
    assert await client.get_json("example.org", "/_matrix/key/v2/server", authenticated=False) == {"ok": True}
    assert str(net.seen[-1].url) == "https://1.2.3.4:8448/_matrix/key/v2/server"
    assert "authorization" not in net.seen[-1].headers
    assert await kv.get("fed:wellknown:example.org", type="json") == {"m.server": None}
    await client.close()


async def test_well_known_redirects_are_followed() -> None:
    net = FakeNet({"example.org": ["1.2.3.4"], "www.example.org": ["1.2.3.5"]})
    net.routes[("example.org", "/.well-known/matrix/server")] = httpx.Response(
        301, headers={"Location": "https://www.example.org/.well-known/matrix/server"}
    )
    net.routes[("www.example.org", "/.well-known/matrix/server")] = httpx.Response(
        200, json={"m.server": "5.6.7.8:9000"}
    )
    client = make_client(net)
    assert await client.resolve("example.org") == ServerTarget("5.6.7.8", 9000, "5.6.7.8:9000", None)
    await client.close()


async def test_ip_literal_and_explicit_port_skip_well_known() -> None:
    net = FakeNet({"example.org": ["1.2.3.4"]})
    net.routes[("5.6.7.8:1234", "/p")] = httpx.Response(200, json={})
    net.routes[("example.org:4321", "/p")] = httpx.Response(200, json={})
    client = make_client(net)
    await client.get_json("5.6.7.8:1234", "/p")
    await client.get_json("example.org:4321", "/p")
    assert [str(r.url) for r in net.seen] == ["https://5.6.7.8:1234/p", "https://1.2.3.4:4321/p"]
    assert "sni_hostname" not in net.seen[0].extensions  # no SNI for IP literals
    await client.close()


@pytest.mark.parametrize("name", ["127.0.0.1:8448", "[::1]:8448", "10.0.0.1", "internal.example:80"])
async def test_private_and_loopback_destinations_are_refused(name: str) -> None:
    net = FakeNet({"internal.example": ["192.168.1.10"]})
    client = make_client(net)
    with pytest.raises(DestinationRefused):
        await client.get_json(name, "/_matrix/federation/v1/version")
    assert net.seen == []  # nothing was sent
    await client.close()


async def test_well_known_cannot_delegate_to_a_private_address() -> None:
    net = FakeNet({"evil.example": ["1.2.3.4"]})
    net.routes[("evil.example", "/.well-known/matrix/server")] = httpx.Response(200, json={"m.server": "127.0.0.1:22"})
    client = make_client(net)
    with pytest.raises(DestinationRefused):
        await client.get_json("evil.example", "/p")
    await client.close()


async def test_loopback_allowed_by_config() -> None:
    net = FakeNet({"localhost": ["127.0.0.1"]})
    net.routes[("localhost:8448", "/p")] = httpx.Response(200, json={"ok": 1})
    client = make_client(net, policy=IPRangePolicy.from_config([], [], allow_loopback=True))
    assert await client.get_json("localhost:8448", "/p") == {"ok": 1}
    await client.close()


async def test_errors_carry_the_remote_errcode() -> None:
    net = FakeNet({})
    net.routes[("5.6.7.8", "/p")] = httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "no"})
    net.routes[("5.6.7.8", "/q")] = httpx.Response(200, content=b"<html>")
    client = make_client(net)
    with pytest.raises(RemoteServerError) as info:
        await client.get_json("5.6.7.8", "/p")
    assert (info.value.status, info.value.errcode, info.value.retryable) == (403, "M_FORBIDDEN", False)
    with pytest.raises(FederationUnavailable):
        await client.get_json("5.6.7.8", "/q")
    with pytest.raises(FederationUnavailable):
        await client.get_json("5.6.7.8", "/unrouted")
    with pytest.raises(DestinationRefused):
        await client.get_json("ours.test", "/p")  # never ourselves
    await client.close()


async def test_signed_uri_is_the_uri_sent() -> None:
    net = FakeNet({})
    net.routes[("5.6.7.8", "/_matrix/federation/v1/query/profile")] = httpx.Response(200, json={})
    client = make_client(net)
    await client.get_json("5.6.7.8", "/_matrix/federation/v1/query/profile", {"user_id": "@a b:x/y", "field": "displayname"})
    request = net.seen[0]
    sent = request.url.raw_path.decode()
    assert sent == "/_matrix/federation/v1/query/profile?user_id=%40a%20b%3Ax%2Fy&field=displayname"
    await client.close()
