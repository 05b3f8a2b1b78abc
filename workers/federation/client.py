"""The federation client: signed HTTPS requests to other homeservers.

Spec: server-server API "API standards" (JSON over HTTPS), "Resolving server names"
(see ``discovery``), "TLS" (certificates checked against the operating system's trust store
unless ``federation_verify_tls`` is off for local testing; SNI sent for hostnames, never for
IP literals) and "Request Authentication" (every request except key fetches carries an
``X-Matrix`` header, see ``x_matrix``).

Safety: every address a request would go to, including ``.well-known`` look-ups and their
redirects, is checked against the IP range policy (``ip_policy``) after DNS resolution, and
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
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import httpx
from canonicaljson import encode_canonical_json
from signedjson.types import SigningKey

from workers.federation.discovery import (
    WELL_KNOWN_ERROR_SECONDS,
    WELL_KNOWN_MAX_BYTES,
    WELL_KNOWN_MAX_REDIRECTS,
    ServerTarget,
    delegated_target,
    direct_target,
    fallback_target,
    is_ip_literal,
    parse_well_known,
    split_server_name,
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

ResolveHost = Callable[[str, int], Awaitable[list[str]]]


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


class FederationClient:
    """Signed requests from ``server_name`` to other homeservers.

    ``transport`` replaces the network (tests pass an ``httpx.MockTransport``);
    ``resolve_host`` replaces DNS (``(host, port) -> [ip, ...]``); ``cache`` is the KV
    namespace for well-known results (optional).
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
    ) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.cache = cache
        self.policy = policy or IPRangePolicy()
        self.verify_tls = verify_tls
        self.timeout = timeout
        self._transport = transport
        self._resolve_host = resolve_host or _system_resolve
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
            target = await self.resolve(destination)
        except ValueError as exc:
            raise DestinationRefused(destination, str(exc)) from None
        headers = {"Host": target.host_header, "User-Agent": USER_AGENT}
        body: bytes | None = None
        if content is not None:
            body = encode_canonical_json(content)
            headers["Content-Type"] = "application/json"
        if authenticated:
            headers["Authorization"] = authorization_header(
                self.server_name, self.signing_key, destination, method, uri, content
            )
        return await self._exchange(
            destination, target, method, uri, headers, body, timeout or self.timeout, max_bytes
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
        """Spec "Resolving server names": IP literal, explicit port, then ``.well-known``
        delegation (cached in KV), then the hostname on 8448. Raises ValueError for a name
        that is not a server name."""
        target = direct_target(server_name)
        if target is not None:
            return target
        delegated = await self._well_known(server_name)
        if delegated is not None:
            return delegated_target(delegated)
        return fallback_target(server_name)

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
                    hostname, target, "GET", uri, {"Host": host_header, "User-Agent": USER_AGENT},
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
        target: ServerTarget,
        method: str,
        uri: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,
        max_bytes: int,
        *,
        scheme: str = "https",
    ) -> tuple[int, bytes, httpx.Headers]:
        addresses = await self._addresses(destination, target.host, target.port)
        client = self._client(target.tls_name)
        extensions: dict[str, Any] = {}
        if target.tls_name is not None:
            extensions["sni_hostname"] = target.tls_name
        last_error = "no address"
        for address in addresses:
            netloc = f"[{address}]" if ":" in address else address
            request = client.build_request(
                method, f"{scheme}://{netloc}:{target.port}{uri}", headers=headers, content=body,
                extensions=extensions,
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
                last_error = f"cannot connect to {netloc}:{target.port}: {exc}"
                continue
            except (TimeoutError, httpx.TimeoutException):
                raise FederationUnavailable(destination, f"timed out after {timeout:.0f}s") from None
            except httpx.HTTPError as exc:
                raise FederationUnavailable(destination, f"{type(exc).__name__}: {exc}") from None
        raise FederationUnavailable(destination, last_error)


def federation_client(env: Any) -> FederationClient:
    """The env's federation client (``env.FEDERATION``, made by the runtime at start)."""
    client = getattr(env, "FEDERATION", None)
    if client is None:
        raise RuntimeError("env.FEDERATION is not set: the runtime creates it in Env.start()")
    return client


def now_ms() -> int:
    return int(time.time() * 1000)
