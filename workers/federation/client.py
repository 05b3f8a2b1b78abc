"""The federation client: signed HTTPS requests to other homeservers.

Spec: server-server API "API standards" (JSON over HTTPS), "Resolving server names"
(``discovery`` holds the steps; this module fetches ``.well-known`` and looks SRV records up
with dnspython, caching both in the KV namespace, and tries SRV targets in order until one
accepts the connection), "TLS" (certificates checked against the operating system's trust store
unless ``federation_verify_tls`` is off for local testing; SNI sent for hostnames, never for
IP literals) and "Request Authentication" (every request except key fetches carries an
``X-Matrix`` header, see ``x_matrix``).

Safety: every address a request would go to, including ``.well-known`` look-ups and their
redirects and SRV targets, is checked against the IP range policy (``ip_policy``) after DNS resolution, and
the connection is made to that checked address (the certificate is still checked against
the server's name through SNI), so a name cannot be re-resolved to a private address between
the check and the connection.

Failures raise ``FederationError`` subclasses (``errors``); a remote error's errcode is kept
on the exception for the caller, never relayed to clients as is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import dns.asyncresolver
import dns.exception
import dns.rdtypes.IN.SRV
import httpx
from canonicaljson import encode_canonical_json
from signedjson.types import SigningKey

from workers.federation.discovery import (
    WELL_KNOWN_ERROR_SECONDS,
    WELL_KNOWN_MAX_BYTES,
    WELL_KNOWN_MAX_REDIRECTS,
    PickWeight,
    ServerTarget,
    SrvRecord,
    delegated_srv_hostname,
    delegated_target,
    direct_target,
    fallback_target,
    is_ip_literal,
    order_srv_records,
    parse_well_known,
    split_server_name,
    srv_cache_seconds,
    srv_names,
    srv_service_refused,
    srv_targets,
    well_known_cache_seconds,
)
from workers.federation.errors import (
    DestinationRefused,
    FederationError,
    FederationUnavailable,
    RemoteServerError,
    ResponseTooLarge,
)
from workers.federation.ip_policy import IPRangePolicy
from workers.federation.x_matrix import authorization_header
from workers.routing import loads_strict

log = logging.getLogger(__name__)

USER_AGENT = "matrix-edge"
MAX_RESPONSE_BYTES = 100 * 1024 * 1024  # a full room state can be large
WELL_KNOWN_KV_PREFIX = "fed:wellknown:"
SRV_KV_PREFIX = "fed:srv:"
SRV_LOOKUP_SECONDS = 5.0

ResolveHost = Callable[[str, int], Awaitable[list[str]]]
SrvLookup = Callable[[str], Awaitable[list[SrvRecord]]]


def encode_path(template: str, *segments: str) -> str:
    """``template`` with each ``{}`` replaced by a percent-encoded path segment, e.g.
    ``encode_path("/_matrix/federation/v1/send/{}", txn_id)``."""
    return template.format(*(urllib.parse.quote(s, safe="") for s in segments))


def encode_query(query: Mapping[str, str | int | Sequence[str]] | None) -> str:
    """A query string with every key and value percent-encoded (repeated keys for lists)."""
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs.extend((key, str(v)) for v in values)
    return urllib.parse.urlencode(pairs, quote_via=lambda s, *_: urllib.parse.quote(s, safe=""))


@dataclass(frozen=True)
class RawResponse:
    """A 2xx answer whose body is not JSON, as ``get_bytes`` returns it."""

    status: int
    headers: httpx.Headers
    body: bytes


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


class DnsSrvLookup:
    """SRV look-ups through dnspython: ``await lookup(name) -> [SrvRecord, ...]``.

    Any DNS failure (NXDOMAIN, no SRV answer, timeout, no usable name server or resolver
    configuration) is logged at info and gives no records: discovery goes on to its next step.
    """

    def __init__(self, lifetime: float = SRV_LOOKUP_SECONDS) -> None:
        self.lifetime = lifetime
        self._resolver: dns.asyncresolver.Resolver | None = None

    async def __call__(self, name: str) -> list[SrvRecord]:
        try:
            if self._resolver is None:
                self._resolver = dns.asyncresolver.Resolver()
            answer = await self._resolver.resolve(name, "SRV", search=False, lifetime=self.lifetime)
        except dns.exception.DNSException as exc:
            log.info("no SRV records for %s: %s", name, exc)
            return []
        ttl = answer.rrset.ttl if answer.rrset is not None else 0
        return [
            SrvRecord(rdata.priority, rdata.weight, rdata.port, rdata.target.to_text(omit_final_dot=True), ttl)
            for rdata in answer
            if isinstance(rdata, dns.rdtypes.IN.SRV.SRV)
        ]


async def _no_srv_records(name: str) -> list[SrvRecord]:
    return []


def _random_weight(total: int) -> int:
    return random.randint(0, total)


class FederationClient:
    """Signed requests from ``server_name`` to other homeservers.

    ``transport`` replaces the network (tests pass an ``httpx.MockTransport``);
    ``resolve_host`` replaces A/AAAA look-ups (``(host, port) -> [ip, ...]``) and
    ``srv_lookup`` SRV look-ups (``name -> [SrvRecord, ...]``, dnspython by default). DNS is
    replaced as a whole: given ``resolve_host`` but no ``srv_lookup``, no SRV records exist
    (no real SRV query whose targets a fake resolver would then answer for). ``srv_pick``
    is the randomness of the weighted choice among SRV records (``pick(total)`` in
    ``[0, total]``). ``cache`` is the KV namespace for well-known and SRV results (optional).
    """

    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        *,
        cache: Any = None,
        policy: IPRangePolicy | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve_host: ResolveHost | None = None,
        srv_lookup: SrvLookup | None = None,
        srv_pick: PickWeight | None = None,
    ) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.cache = cache
        self.policy = policy or IPRangePolicy()
        self.verify_tls = verify_tls
        self.timeout = timeout
        self._transport = transport
        self._resolve_host = resolve_host or _system_resolve
        if srv_lookup is None:
            srv_lookup = _no_srv_records if resolve_host is not None else DnsSrvLookup()
        self._srv_lookup = srv_lookup
        self._srv_pick = srv_pick or _random_weight
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_config(
        cls, config: Any, signing_key: SigningKey, cache: Any = None, **overrides: Any
    ) -> "FederationClient":
        """A client set up from a ``ServerConfig`` (server name, TLS and IP policy, timeout)."""
        options: dict[str, Any] = dict(
            cache=cache,
            policy=IPRangePolicy.from_config(
                config.federation_ip_range_whitelist,
                config.federation_ip_range_blacklist,
                config.federation_allow_loopback,
            ),
            verify_tls=config.federation_verify_tls,
            timeout=config.federation_timeout_seconds,
        )
        options.update(overrides)
        return cls(config.server_name, signing_key, **options)

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    # --- requests ---------------------------------------------------------------------------
    async def get_json(
        self,
        destination: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        *,
        authenticated: bool = True,
        timeout: float | None = None,
    ) -> Any:
        return await self.request(
            "GET", destination, path, query=query, authenticated=authenticated, timeout=timeout
        )

    async def put_json(
        self,
        destination: str,
        path: str,
        content: Any,
        query: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        return await self.request("PUT", destination, path, query=query, content=content, timeout=timeout)

    async def post_json(
        self,
        destination: str,
        path: str,
        content: Any,
        query: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        return await self.request("POST", destination, path, query=query, content=content, timeout=timeout)

    async def send_transaction(
        self, destination: str, txn_id: str, body: Mapping[str, Any], *, timeout: float | None = None
    ) -> Any:
        """``PUT /_matrix/federation/v1/send/{txnId}`` (spec: "Transactions")."""
        return await self.put_json(
            destination, encode_path("/_matrix/federation/v1/send/{}", txn_id), dict(body),
            timeout=timeout,
        )

    async def request(
        self,
        method: str,
        destination: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        content: Any = None,
        authenticated: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """Send one request to ``destination`` and return its parsed JSON body.

        ``path`` is already percent-encoded (see ``encode_path``). PUT and POST always send a
        JSON body (``{}`` when ``content`` is None), as the spec requires. Raises
        DestinationRefused, FederationUnavailable or RemoteServerError.
        """
        status, body, _ = await self._send(
            method, destination, path, query=query, content=content,
            authenticated=authenticated, timeout=timeout, max_bytes=MAX_RESPONSE_BYTES,
        )
        return self._decode(destination, status, body)

    async def get_bytes(
        self,
        destination: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        *,
        max_bytes: int,
        authenticated: bool = True,
        timeout: float | None = None,
    ) -> RawResponse:
        """``GET`` a body that is not JSON (media), at most ``max_bytes`` of it.

        A 2xx answer is returned as it came (status, headers, bytes); any other raises
        RemoteServerError as ``request`` does. A body over ``max_bytes`` raises
        ResponseTooLarge (a FederationUnavailable).
        """
        status, body, headers = await self._send(
            "GET", destination, path, query=query, authenticated=authenticated,
            timeout=timeout, max_bytes=max_bytes,
        )
        if not 200 <= status < 300:
            self._decode(destination, status, body)  # raises RemoteServerError
        return RawResponse(status, headers, body)

    async def _send(
        self,
        method: str,
        destination: str,
        path: str,
        *,
        query: Mapping[str, Any] | None,
        content: Any = None,
        authenticated: bool,
        timeout: float | None,
        max_bytes: int,
    ) -> tuple[int, bytes, httpx.Headers]:
        method = method.upper()
        if content is None and method in ("PUT", "POST"):
            content = {}
        query_string = encode_query(query)
        uri = path + ("?" + query_string if query_string else "")
        if destination == self.server_name:
            raise DestinationRefused(destination, "refusing to send a federation request to ourselves")
        try:
            targets = await self.resolve_targets(destination)
        except ValueError as exc:
            raise DestinationRefused(destination, str(exc)) from None
        headers = {"User-Agent": USER_AGENT}
        body: bytes | None = None
        if content is not None:
            body = encode_canonical_json(content)
            headers["Content-Type"] = "application/json"
        if authenticated:
            headers["Authorization"] = authorization_header(
                self.server_name, self.signing_key, destination, method, uri, content
            )
        return await self._exchange(
            destination, targets, method, uri, headers, body, timeout or self.timeout, max_bytes
        )

    @staticmethod
    def _decode(destination: str, status: int, body: bytes) -> Any:
        try:
            parsed = loads_strict(body) if body else None
        except ValueError:
            parsed = None
            if 200 <= status < 300:
                raise FederationUnavailable(destination, f"HTTP {status} with a body that is not JSON") from None
        if 200 <= status < 300:
            return parsed
        errcode, message = "M_UNKNOWN", f"HTTP {status}"
        if isinstance(parsed, dict):
            if isinstance(parsed.get("errcode"), str):
                errcode = parsed["errcode"]
            if isinstance(parsed.get("error"), str):
                message = parsed["error"]
        raise RemoteServerError(destination, status, errcode, message)

    # --- discovery --------------------------------------------------------------------------
    async def resolve(self, server_name: str) -> ServerTarget:
        """The first target ``resolve_targets`` gives for ``server_name``."""
        return (await self.resolve_targets(server_name))[0]

    async def resolve_targets(self, server_name: str) -> list[ServerTarget]:
        """Spec "Resolving server names": where to connect for ``server_name``, in the order
        to try (several only when SRV records name several targets).

        Steps 1/2 (IP literal, explicit port), then ``.well-known`` delegation (3.1/3.2 as
        given, 3.3/3.4 SRV for a delegated hostname without port, else 3.5 on 8448), then
        without delegation SRV for the hostname (4/5), then the hostname on 8448 (6).
        Well-known and SRV answers are cached in KV. Raises ValueError for a name that is not
        a server name, FederationUnavailable when an SRV answer says the service is not
        offered (RFC 2782 target ``.``).
        """
        target = direct_target(server_name)
        if target is not None:
            return [target]
        delegated = await self._well_known(server_name)
        if delegated is not None:
            srv_hostname = delegated_srv_hostname(delegated)
            if srv_hostname is None:
                return [delegated_target(delegated)]
            return await self._srv_targets(server_name, srv_hostname) or [delegated_target(delegated)]
        hostname, _ = split_server_name(server_name)
        return await self._srv_targets(server_name, hostname) or [fallback_target(server_name)]

    async def _srv_targets(self, server_name: str, hostname: str) -> list[ServerTarget]:
        """Steps 3.3/3.4 or 4/5: the targets of ``_matrix-fed._tcp.<hostname>``, else those
        of the deprecated ``_matrix._tcp.<hostname>``, else none."""
        for name in srv_names(hostname):
            records = await self._srv_records(name)
            if srv_service_refused(records):
                raise FederationUnavailable(server_name, f"{name} says the service is not offered")
            ordered = order_srv_records(records, self._srv_pick)
            if ordered:
                return srv_targets(hostname, ordered)
        return []

    async def _srv_records(self, name: str) -> list[SrvRecord]:
        cache_key = SRV_KV_PREFIX + name
        if self.cache is not None:
            cached = await self.cache.get(cache_key, type="json")
            if isinstance(cached, dict) and isinstance(cached.get("records"), list):
                return [
                    SrvRecord(*row) for row in cached["records"]
                    if isinstance(row, list) and len(row) == 4
                    and all(isinstance(v, int) for v in row[:3]) and isinstance(row[3], str)
                ]
        records = await self._srv_lookup(name)
        if self.cache is not None:
            rows = [[r.priority, r.weight, r.port, r.target] for r in records]
            await self.cache.put(
                cache_key, json.dumps({"records": rows}), expiration_ttl=srv_cache_seconds(records)
            )
        return records

    async def _well_known(self, hostname: str) -> str | None:
        cache_key = WELL_KNOWN_KV_PREFIX + hostname
        if self.cache is not None:
            cached = await self.cache.get(cache_key, type="json")
            if isinstance(cached, dict):
                value = cached.get("m.server")
                return value if isinstance(value, str) else None
        delegated, cache_seconds = await self._fetch_well_known(hostname)
        if self.cache is not None and cache_seconds > 0:
            await self.cache.put(
                cache_key, json.dumps({"m.server": delegated}), expiration_ttl=max(60, cache_seconds)
            )
        return delegated

    async def _fetch_well_known(self, hostname: str) -> tuple[str | None, int]:
        """``(m.server or None, seconds to cache)``; 30x redirects followed up to 5 times."""
        scheme, host, port, uri = "https", hostname, 443, "/.well-known/matrix/server"
        for _ in range(WELL_KNOWN_MAX_REDIRECTS + 1):
            host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
            target = ServerTarget(host, port, host_header, None if is_ip_literal(host) else host)
            try:
                status, body, headers = await self._exchange(
                    hostname, [target], "GET", uri, {"User-Agent": USER_AGENT},
                    None, min(self.timeout, 10.0), WELL_KNOWN_MAX_BYTES, scheme=scheme,
                )
            except FederationError as exc:
                log.info("well-known look-up for %s failed: %s", hostname, exc.message)
                return None, WELL_KNOWN_ERROR_SECONDS
            if status in (301, 302, 303, 307, 308) and headers.get("location"):
                location = urllib.parse.urljoin(f"{scheme}://{host_header}{uri}", headers["location"])
                parts = urllib.parse.urlsplit(location)
                if parts.scheme not in ("https", "http") or not parts.hostname:
                    return None, WELL_KNOWN_ERROR_SECONDS
                scheme, host = parts.scheme, parts.hostname
                port = parts.port or (443 if scheme == "https" else 80)
                uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                continue
            if status != 200:
                return None, WELL_KNOWN_ERROR_SECONDS
            delegated = parse_well_known(body)
            if delegated is None:
                return None, WELL_KNOWN_ERROR_SECONDS
            return delegated, well_known_cache_seconds(headers.get("cache-control"))
        return None, WELL_KNOWN_ERROR_SECONDS  # a redirect loop or chain that is too long

    # --- transport --------------------------------------------------------------------------
    async def _addresses(self, destination: str, host: str, port: int) -> list[str]:
        if is_ip_literal(host):
            candidates = [host]
        else:
            try:
                candidates = await self._resolve_host(host, port)
            except (OSError, UnicodeError) as exc:
                raise FederationUnavailable(destination, f"cannot resolve {host}: {exc}") from None
        allowed = [a for a in candidates if self.policy.permits(a)]
        if not allowed:
            raise DestinationRefused(
                destination, f"{host} resolves only to addresses refused by the IP range policy"
            )
        return allowed

    def _client(self, tls_name: str | None) -> httpx.AsyncClient:
        key = tls_name or ""
        client = self._clients.get(key)
        if client is None:
            verify: ssl.SSLContext | bool = False
            if self.verify_tls:
                if self._ssl_context is None:
                    self._ssl_context = ssl.create_default_context()
                verify = self._ssl_context
            client = httpx.AsyncClient(
                verify=verify, transport=self._transport, follow_redirects=False, trust_env=False,
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            )
            self._clients[key] = client
        return client

    async def _exchange(
        self,
        destination: str,
        targets: Sequence[ServerTarget],
        method: str,
        uri: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,
        max_bytes: int,
        *,
        scheme: str = "https",
    ) -> tuple[int, bytes, httpx.Headers]:
        """Send the request to the first target, and address of it, that accepts the
        connection; ``Host`` and SNI come from the target. A target that cannot be resolved,
        resolves only to refused addresses or refuses every connection gives way to the
        next (spec: SRV targets may be tried in turn); a timeout or an error after the
        connection ends the attempt. DestinationRefused when every target was refused by the
        IP range policy, else FederationUnavailable."""
        refused: DestinationRefused | None = None
        unreachable = False
        last_error = "no address"
        for target in targets:
            try:
                addresses = await self._addresses(destination, target.host, target.port)
            except DestinationRefused as exc:
                refused = exc
                continue
            except FederationUnavailable as exc:
                unreachable, last_error = True, exc.message
                continue
            client = self._client(target.tls_name)
            extensions: dict[str, Any] = {}
            if target.tls_name is not None:
                extensions["sni_hostname"] = target.tls_name
            request_headers = {**headers, "Host": target.host_header}
            for address in addresses:
                netloc = f"[{address}]" if ":" in address else address
                request = client.build_request(
                    method, f"{scheme}://{netloc}:{target.port}{uri}", headers=request_headers,
                    content=body, extensions=extensions,
                )
                try:
                    async with asyncio.timeout(timeout):
                        response = await client.send(request, stream=True)
                        try:
                            chunks: list[bytes] = []
                            size = 0
                            async for chunk in response.aiter_bytes():
                                size += len(chunk)
                                if size > max_bytes:
                                    raise ResponseTooLarge(destination, max_bytes)
                                chunks.append(chunk)
                        finally:
                            await response.aclose()
                    return response.status_code, b"".join(chunks), response.headers
                except httpx.ConnectError as exc:
                    unreachable, last_error = True, f"cannot connect to {netloc}:{target.port}: {exc}"
                    continue
                except (TimeoutError, httpx.TimeoutException):
                    raise FederationUnavailable(destination, f"timed out after {timeout:.0f}s") from None
                except httpx.HTTPError as exc:
                    raise FederationUnavailable(destination, f"{type(exc).__name__}: {exc}") from None
        if refused is not None and not unreachable:
            raise refused
        raise FederationUnavailable(destination, last_error)


def federation_client(env: Any) -> FederationClient:
    """The env's federation client (``env.FEDERATION``, made by the runtime at start)."""
    client = getattr(env, "FEDERATION", None)
    if client is None:
        raise RuntimeError("env.FEDERATION is not set: the runtime creates it in Env.start()")
    return client


def now_ms() -> int:
    return int(time.time() * 1000)
