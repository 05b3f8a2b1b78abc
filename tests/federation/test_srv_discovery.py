"""SRV records in server discovery (spec: "Resolving server names", steps 3.3, 3.4, 4, 5).

The pure ordering of SRV answers (RFC 2782) is table-driven; the client's ``resolve`` runs
against a fake network, a fake well-known server and a fake SRV look-up.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import dns.exception
import dns.rdata
import dns.resolver
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv.namespace import KVNamespace
from tests.federation.peers import make_signing_key
from workers.federation.client import DnsSrvLookup, FederationClient
from workers.federation.discovery import (
    ServerTarget,
    SrvRecord,
    delegated_srv_hostname,
    order_srv_records,
    srv_cache_seconds,
    srv_names,
    srv_service_refused,
    srv_targets,
)
from workers.federation.errors import DestinationRefused, FederationUnavailable
from workers.federation.ip_policy import IPRangePolicy

# --- the pure steps ---------------------------------------------------------------------------


class ScriptedPick:
    """``pick(total)`` answering from a script, recording the totals it was asked about."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)
        self.totals: list[int] = []

    def __call__(self, total: int) -> int:
        self.totals.append(total)
        return self.answers.pop(0) if self.answers else 0


def srv(target: str, port: int = 8448, priority: int = 10, weight: int = 0, ttl: int = 3600) -> SrvRecord:
    return SrvRecord(priority, weight, port, target, ttl)


@pytest.mark.parametrize(
    "records, answers, expected_targets, expected_totals",
    [
        # lowest priority first, whatever the order of the answer
        ([srv("b", priority=20), srv("a", priority=10)], [], ["a", "b"], [0, 0]),
        # weights 10 and 30: 5 falls in a's share (running sums 10, 40), then only b is left
        ([srv("a", weight=10), srv("b", weight=30)], [5, 0], ["a", "b"], [40, 30]),
        # 10 is still a's (running sum 10 >= 10); 11 is b's
        ([srv("a", weight=10), srv("b", weight=30)], [10, 0], ["a", "b"], [40, 30]),
        ([srv("a", weight=10), srv("b", weight=30)], [11, 0], ["b", "a"], [40, 10]),
        ([srv("a", weight=10), srv("b", weight=30)], [40, 0], ["b", "a"], [40, 10]),
        # weight-0 records are listed first, so only a 0 picks them
        ([srv("w", weight=5), srv("z", weight=0)], [0, 0], ["z", "w"], [5, 5]),
        ([srv("w", weight=5), srv("z", weight=0)], [1, 0], ["w", "z"], [5, 0]),
        # the weighted choice happens within each priority separately
        (
            [srv("late", priority=5, weight=1), srv("x", priority=1, weight=1), srv("y", priority=1, weight=3)],
            [2, 0, 0],
            ["y", "x", "late"],
            [4, 1, 1],
        ),
        # unusable records are dropped: the "no service" target, a bad name, port 0
        ([srv("."), srv("bad name"), srv("ok", port=0), srv("good")], [], ["good"], [0]),
        ([], [], [], []),
    ],
)
def test_order_srv_records(
    records: list[SrvRecord], answers: list[int], expected_targets: list[str], expected_totals: list[int]
) -> None:
    pick = ScriptedPick(*answers)
    assert [r.target for r in order_srv_records(records, pick)] == expected_targets
    assert pick.totals == expected_totals


@pytest.mark.parametrize("bad", [-1, 41])
def test_a_pick_outside_the_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        order_srv_records([srv("a", weight=10), srv("b", weight=30)], lambda total: bad)


records_strategy = st.lists(
    st.builds(
        SrvRecord,
        priority=st.integers(0, 3),
        weight=st.integers(0, 20),
        port=st.integers(1, 65535),
        target=st.sampled_from(["a.example", "b.example", "c.example", "d.example"]),
    ),
    max_size=8,
)


@given(records=records_strategy, data=st.data())
def test_ordering_is_a_permutation_by_priority(records: list[SrvRecord], data: st.DataObject) -> None:
    ordered = order_srv_records(records, lambda total: data.draw(st.integers(0, total)))
    assert sorted(ordered, key=repr) == sorted(records, key=repr)
    priorities = [r.priority for r in ordered]
    assert priorities == sorted(priorities)


@pytest.mark.parametrize(
    "records, refused",
    [([srv(".")], True), ([srv("."), srv("a")], False), ([], False), ([srv("a")], False)],
)
def test_a_lone_dot_target_refuses_the_service(records: list[SrvRecord], refused: bool) -> None:
    assert srv_service_refused(records) is refused


@pytest.mark.parametrize(
    "records, seconds",
    [
        ([], 300),
        ([srv("a", ttl=10)], 60),
        ([srv("a", ttl=86400)], 3600),
        ([srv("a", ttl=600), srv("b", ttl=120)], 120),
    ],
)
def test_srv_cache_time(records: list[SrvRecord], seconds: int) -> None:
    assert srv_cache_seconds(records) == seconds


@pytest.mark.parametrize(
    "delegated, hostname",
    [
        ("matrix.example.org", "matrix.example.org"),  # 3.3: SRV for the delegated hostname
        ("matrix.example.org:443", None),  # 3.2
        ("5.6.7.8", None),  # 3.1
        ("[2001:db8::1]", None),
    ],
)
def test_which_delegations_look_srv_up(delegated: str, hostname: str | None) -> None:
    assert delegated_srv_hostname(delegated) == hostname


def test_srv_names_and_targets() -> None:
    assert srv_names("example.org") == ("_matrix-fed._tcp.example.org", "_matrix._tcp.example.org")
    # Host and certificate name are the looked-up name, never the SRV target
    assert srv_targets("example.org", [srv("fed.example.net", 8443), srv("b.example.net", 1)]) == [
        ServerTarget("fed.example.net", 8443, "example.org", "example.org"),
        ServerTarget("b.example.net", 1, "example.org", "example.org"),
    ]


# --- dnspython behind the default look-up -------------------------------------------------------


class FakeAnswer:
    def __init__(self, ttl: int, *texts: str) -> None:
        self.rrset = type("RRset", (), {"ttl": ttl})()
        self.rdatas = [dns.rdata.from_text("IN", "SRV", text) for text in texts]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rdatas)


class FakeResolver:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.queries: list[tuple[str, str, dict[str, Any]]] = []

    async def resolve(self, name: str, rdtype: str, **options: Any) -> Any:
        self.queries.append((name, rdtype, options))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


async def test_dns_answers_become_records_without_the_final_dot() -> None:
    lookup = DnsSrvLookup()
    resolver = FakeResolver(FakeAnswer(900, "10 5 8443 fed.example.net.", "20 0 8448 other.example.net."))
    lookup._resolver = resolver  # type: ignore[assignment]
    assert await lookup("_matrix-fed._tcp.example.org") == [
        SrvRecord(10, 5, 8443, "fed.example.net", 900),
        SrvRecord(20, 0, 8448, "other.example.net", 900),
    ]
    name, rdtype, options = resolver.queries[0]
    assert (name, rdtype, options["search"]) == ("_matrix-fed._tcp.example.org", "SRV", False)


@pytest.mark.parametrize(
    "failure",
    [dns.resolver.NXDOMAIN(), dns.resolver.NoAnswer(), dns.exception.Timeout(), dns.resolver.NoNameservers()],
)
async def test_dns_failures_mean_no_srv_records(failure: Exception, caplog: pytest.LogCaptureFixture) -> None:
    lookup = DnsSrvLookup()
    lookup._resolver = FakeResolver(failure)  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="workers.federation.client"):
        assert await lookup("_matrix-fed._tcp.example.org") == []
    assert any(
        r.levelno == logging.INFO and "_matrix-fed._tcp.example.org" in r.getMessage() for r in caplog.records
    )


# --- the client's resolution, against fakes ----------------------------------------------------


class FakeNet:
    """A/AAAA answers, HTTP routes keyed by (Host header, path), and SRV answers."""

    def __init__(self, dns: dict[str, list[str]], srv: dict[str, list[SrvRecord]] | None = None) -> None:
        self.dns = dns
        self.srv = srv or {}
        self.routes: dict[tuple[str, str], httpx.Response] = {}
        self.refusing: set[str] = set()  # addresses that refuse connections
        self.seen: list[httpx.Request] = []
        self.srv_queries: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        if host not in self.dns:
            raise OSError("no such host")
        return self.dns[host]

    async def lookup_srv(self, name: str) -> list[SrvRecord]:
        self.srv_queries.append(name)
        return list(self.srv.get(name, []))

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in self.refusing:
            raise httpx.ConnectError("refused", request=request)
        self.seen.append(request)
        key = (request.headers["host"], request.url.path)
        if key not in self.routes:
            raise httpx.ConnectError("refused", request=request)
        return self.routes[key]

    def well_known(self, host: str, m_server: str) -> None:
        self.routes[(host, "/.well-known/matrix/server")] = httpx.Response(200, json={"m.server": m_server})

    def api(self, host_header: str) -> None:
        self.routes[(host_header, "/p")] = httpx.Response(200, json={"ok": host_header})

    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.url.path == "/p"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def kv(tmp_path: Any, clock: Clock) -> Any:
    cache = KVNamespace(tmp_path / "kv.sqlite", clock=clock, cache_ttl=0.001)
    yield cache
    cache.close()


def make_client(net: FakeNet, cache: Any = None, **options: Any) -> FederationClient:
    return FederationClient(
        "ours.test", make_signing_key(), cache=cache, transport=httpx.MockTransport(net.handle),
        resolve_host=net.resolve, srv_lookup=net.lookup_srv, **options,
    )


FED = "_matrix-fed._tcp."
LEGACY = "_matrix._tcp."


@pytest.mark.parametrize(
    "srv_answers, url, host_header, queried",
    [
        # 3.3: _matrix-fed._tcp.<delegated_hostname>
        (
            {FED + "matrix.example.org": [srv("fed.example.net", 8443)]},
            "https://9.9.9.1:8443/p", "matrix.example.org", [FED + "matrix.example.org"],
        ),
        # 3.4: the deprecated _matrix._tcp.<delegated_hostname> when the first has no record
        (
            {LEGACY + "matrix.example.org": [srv("legacy.example.net", 8449)]},
            "https://9.9.9.2:8449/p", "matrix.example.org", [FED + "matrix.example.org", LEGACY + "matrix.example.org"],
        ),
        # _matrix-fed wins when both exist; _matrix is then not asked
        (
            {
                FED + "matrix.example.org": [srv("fed.example.net", 8443)],
                LEGACY + "matrix.example.org": [srv("legacy.example.net", 8449)],
            },
            "https://9.9.9.1:8443/p", "matrix.example.org", [FED + "matrix.example.org"],
        ),
        # 3.5: no SRV record, the delegated hostname on 8448
        (
            {},
            "https://5.6.7.8:8448/p", "matrix.example.org", [FED + "matrix.example.org", LEGACY + "matrix.example.org"],
        ),
    ],
)
async def test_delegation_to_a_hostname_without_port(
    srv_answers: dict[str, list[SrvRecord]], url: str, host_header: str, queried: list[str]
) -> None:
    net = FakeNet(
        {"example.org": ["1.2.3.4"], "matrix.example.org": ["5.6.7.8"],
         "fed.example.net": ["9.9.9.1"], "legacy.example.net": ["9.9.9.2"]},
        srv_answers,
    )
    net.well_known("example.org", "matrix.example.org")
    net.api("matrix.example.org")
    client = make_client(net)
    assert await client.get_json("example.org", "/p") == {"ok": "matrix.example.org"}
    (request,) = net.api_requests()
    assert str(request.url) == url
    # Host and certificate name: the delegated hostname, not the SRV target nor the server name
    assert request.headers["host"] == host_header
    assert request.extensions["sni_hostname"] == "matrix.example.org"
    assert 'destination="example.org"' in request.headers["authorization"]
    assert net.srv_queries == queried  # never SRV for the server name itself after delegation
    await client.close()


@pytest.mark.parametrize(
    "srv_answers, url, queried",
    [
        # 4: _matrix-fed._tcp.<hostname> when the well-known look-up failed
        ({FED + "example.org": [srv("fed.example.net", 8443)]}, "https://9.9.9.1:8443/p", [FED + "example.org"]),
        # 5: the deprecated _matrix._tcp.<hostname>
        (
            {LEGACY + "example.org": [srv("legacy.example.net", 8449)]},
            "https://9.9.9.2:8449/p", [FED + "example.org", LEGACY + "example.org"],
        ),
        # 6: no SRV record either, the hostname on 8448
        ({}, "https://1.2.3.4:8448/p", [FED + "example.org", LEGACY + "example.org"]),
    ],
)
async def test_without_well_known(srv_answers: dict[str, list[SrvRecord]], url: str, queried: list[str]) -> None:
    net = FakeNet(
        {"example.org": ["1.2.3.4"], "fed.example.net": ["9.9.9.1"], "legacy.example.net": ["9.9.9.2"]},
        srv_answers,
    )
    net.routes[("example.org", "/.well-known/matrix/server")] = httpx.Response(404, json={})
    net.api("example.org")
    client = make_client(net)
    assert await client.get_json("example.org", "/p") == {"ok": "example.org"}
    (request,) = net.api_requests()
    assert str(request.url) == url
    assert request.headers["host"] == "example.org"  # the hostname, not the SRV target
    assert request.extensions["sni_hostname"] == "example.org"
    assert net.srv_queries == queried
    await client.close()


@pytest.mark.parametrize(
    "server_name, m_server, expected",
    [
        ("example.org:8449", None, ServerTarget("example.org", 8449, "example.org:8449", "example.org")),  # 2
        ("5.6.7.8", None, ServerTarget("5.6.7.8", 8448, "5.6.7.8", None)),  # 1
        ("example.org", "matrix.example.org:443",  # 3.2
         ServerTarget("matrix.example.org", 443, "matrix.example.org:443", "matrix.example.org")),
        ("example.org", "5.6.7.8", ServerTarget("5.6.7.8", 8448, "5.6.7.8", None)),  # 3.1
    ],
)
async def test_explicit_ports_and_ip_literals_skip_srv(
    server_name: str, m_server: str | None, expected: ServerTarget
) -> None:
    every_name_has_srv = {
        FED + name: [srv("fed.example.net", 1)] for name in ("example.org", "matrix.example.org", "5.6.7.8")
    }
    net = FakeNet({"example.org": ["1.2.3.4"]}, every_name_has_srv)
    if m_server is not None:
        net.well_known("example.org", m_server)
    client = make_client(net)
    assert await client.resolve(server_name) == expected
    assert net.srv_queries == []
    await client.close()


async def test_srv_answers_are_cached_for_their_ttl(kv: Any, clock: Clock) -> None:
    net = FakeNet(
        {"example.org": ["1.2.3.4"], "fed.example.net": ["9.9.9.1"]},
        {FED + "example.org": [srv("fed.example.net", 8443, ttl=120)]},
    )
    client = make_client(net, kv)
    expected = [ServerTarget("fed.example.net", 8443, "example.org", "example.org")]
    assert await client.resolve_targets("example.org") == expected
    assert await client.resolve_targets("example.org") == expected
    assert net.srv_queries == [FED + "example.org"]  # the second answer came from KV
    assert await kv.get("fed:srv:" + FED + "example.org", type="json") == {
        "records": [[10, 0, 8443, "fed.example.net"]]
    }
    listed = {k["name"]: k["expiration"] for k in (await kv.list(prefix="fed:"))["keys"]}
    assert listed["fed:srv:" + FED + "example.org"] == int(clock.now + 120)
    assert "fed:wellknown:example.org" in listed  # the same namespace as well-known answers
    clock.now += 121
    net.srv[FED + "example.org"] = [srv("fed2.example.net", 8444, ttl=7200)]
    assert (await client.resolve_targets("example.org"))[0].host == "fed2.example.net"
    assert net.srv_queries == [FED + "example.org"] * 2
    listed = {k["name"]: k["expiration"] for k in (await kv.list(prefix="fed:srv:"))["keys"]}
    assert listed["fed:srv:" + FED + "example.org"] == int(clock.now + 3600)  # at most an hour
    await client.close()


async def test_missing_srv_records_are_cached_too(kv: Any, clock: Clock) -> None:
    net = FakeNet({"example.org": ["1.2.3.4"]})
    client = make_client(net, kv)
    for _ in range(2):
        assert await client.resolve("example.org") == ServerTarget("example.org", 8448, "example.org", "example.org")
    assert net.srv_queries == [FED + "example.org", LEGACY + "example.org"]
    assert await kv.get("fed:srv:" + LEGACY + "example.org", type="json") == {"records": []}
    listed = {k["name"]: k["expiration"] for k in (await kv.list(prefix="fed:srv:"))["keys"]}
    assert set(listed.values()) == {int(clock.now + 300)}
    await client.close()


async def test_a_private_srv_target_is_refused_like_a_private_well_known_target() -> None:
    net = FakeNet(
        {"evil.example": ["1.2.3.4"], "internal.evil.example": ["10.0.0.5"]},
        {FED + "evil.example": [srv("internal.evil.example", 22)]},
    )
    client = make_client(net)
    with pytest.raises(DestinationRefused):
        await client.get_json("evil.example", "/p")
    assert net.api_requests() == []  # nothing was sent to the private address
    # the same SRV target behind a delegation is refused the same way
    net.well_known("evil.example", "deleg.evil.example")
    net.srv = {FED + "deleg.evil.example": [srv("internal.evil.example", 22)]}
    other = make_client(net)
    with pytest.raises(DestinationRefused):
        await other.get_json("evil.example", "/p")
    assert net.api_requests() == []
    await client.close()
    await other.close()


async def test_a_private_srv_target_is_allowed_when_configured() -> None:
    net = FakeNet(
        {"example.org": ["1.2.3.4"], "internal.example.org": ["10.0.0.5"]},
        {FED + "example.org": [srv("internal.example.org", 8443)]},
    )
    net.api("example.org")
    client = make_client(net, policy=IPRangePolicy.from_config(["10.0.0.0/8"], [], allow_loopback=False))
    assert await client.get_json("example.org", "/p") == {"ok": "example.org"}
    assert str(net.api_requests()[0].url) == "https://10.0.0.5:8443/p"
    await client.close()


async def test_the_next_srv_target_is_tried_when_one_fails() -> None:
    net = FakeNet(
        {
            "example.org": ["1.2.3.4"], "down.example.net": ["9.9.9.1"],
            "private.example.net": ["192.168.1.1"], "up.example.net": ["9.9.9.3"],
        },
        {FED + "example.org": [
            srv("up.example.net", 3, priority=30),
            srv("down.example.net", 1, priority=10),  # refuses the connection
            srv("unknown.example.net", 4, priority=15),  # does not resolve
            srv("private.example.net", 2, priority=20),  # refused by the IP range policy
        ]},
    )
    net.refusing.add("9.9.9.1")
    net.api("example.org")
    client = make_client(net)
    assert await client.get_json("example.org", "/p") == {"ok": "example.org"}
    assert [str(r.url) for r in net.api_requests()] == ["https://9.9.9.3:3/p"]
    assert net.api_requests()[0].headers["host"] == "example.org"
    net.refusing.add("9.9.9.3")
    with pytest.raises(FederationUnavailable) as info:  # unreachable, not refused: retry later
        await client.get_json("example.org", "/p")
    assert not isinstance(info.value, DestinationRefused)
    await client.close()


async def test_srv_pick_orders_targets_of_one_priority() -> None:
    net = FakeNet(
        {"example.org": ["1.2.3.4"]},
        {FED + "example.org": [srv("a.example.net", 1, weight=1), srv("b.example.net", 2, weight=99)]},
    )
    low = make_client(net, srv_pick=lambda total: 0)
    high = make_client(net, srv_pick=lambda total: total)
    assert [t.host for t in await low.resolve_targets("example.org")] == ["a.example.net", "b.example.net"]
    assert [t.host for t in await high.resolve_targets("example.org")] == ["b.example.net", "a.example.net"]
    await low.close()
    await high.close()


async def test_a_dot_target_says_the_server_offers_no_federation() -> None:
    net = FakeNet({"example.org": ["1.2.3.4"]}, {FED + "example.org": [srv(".", 0)]})
    net.api("example.org")
    client = make_client(net)
    with pytest.raises(FederationUnavailable):
        await client.get_json("example.org", "/p")
    assert net.api_requests() == []
    assert net.srv_queries == [FED + "example.org"]  # the deprecated name is not tried either
    await client.close()


async def test_a_fake_host_resolver_alone_means_no_srv_records() -> None:
    net = FakeNet({"example.org": ["1.2.3.4"]})
    client = FederationClient(
        "ours.test", make_signing_key(), transport=httpx.MockTransport(net.handle), resolve_host=net.resolve
    )
    assert await client.resolve("example.org") == ServerTarget("example.org", 8448, "example.org", "example.org")
    await client.close()


def test_the_default_srv_lookup_is_dnspython() -> None:
    client = FederationClient("ours.test", make_signing_key())
    assert isinstance(client._srv_lookup, DnsSrvLookup)
