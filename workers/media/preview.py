"""``GET /_matrix/client/v1/media/preview_url`` and the deprecated ``/_matrix/media/v3/preview_url``.

Spec: authed-content-repo.yaml "Get information about a URL for a client": the OpenGraph data
of the page. Off by default (``url_previews`` false): the endpoint then answers 404
``M_UNRECOGNIZED``, as for an endpoint this server does not offer.

When on, fetching on a user's behalf must not reach the server's own network: the host is
resolved once, every address must be public (no loopback, private, link-local, multicast,
reserved or unspecified address; 403 ``M_FORBIDDEN`` otherwise), and the connection goes to
that checked address (TLS still verifies the host name), so a second DNS answer cannot
redirect it. Redirects are followed by hand, each one checked the same way. Only
``text/html`` pages are read, at most ``MAX_PAGE_BYTES``; ``og:*`` meta tags, the title and
the description are returned. Images are not fetched, so ``og:image`` is left out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from starlette.requests import Request

from workers.auth import require_user
from workers.errors import Codes, MatrixError
from workers.media.download import AUTHENTICATED_PREFIX, LEGACY_PREFIXES
from workers.routing import route

MAX_PAGE_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
FETCH_TIMEOUT_S = 10.0
MAX_VALUE_LENGTH = 1000


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or not ip.is_global
    )


async def public_address(host: str, port: int) -> str:
    """One address of ``host``, after checking that every address it has is public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise MatrixError(404, Codes.NOT_FOUND, f"Cannot resolve {host}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(is_public_address(a) for a in addresses):
        raise MatrixError(403, Codes.FORBIDDEN, "URL previews of private addresses are not allowed")
    return addresses[0]


class _OpenGraph(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.title: str | None = None
        self.description: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v for k, v in attrs if v is not None}
        if tag == "meta":
            name = values.get("property") or values.get("name") or ""
            content = values.get("content")
            if content is None:
                return
            if name.startswith("og:") and name not in self.og:
                self.og[name] = content[:MAX_VALUE_LENGTH]
            elif name.lower() == "description" and self.description is None:
                self.description = content[:MAX_VALUE_LENGTH]
        elif tag == "title" and self.title is None:
            self._in_title = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False


def open_graph(html: str) -> dict[str, Any]:
    """The preview of a page: its ``og:*`` values, with the title and description as
    fall-backs for ``og:title`` and ``og:description``. Images are left out."""
    parser = _OpenGraph()
    parser.feed(html)
    parser.close()
    result: dict[str, Any] = {k: v for k, v in parser.og.items() if not k.startswith("og:image")}
    if "og:title" not in result and parser.title and parser.title.strip():
        result["og:title"] = parser.title.strip()[:MAX_VALUE_LENGTH]
    if "og:description" not in result and parser.description:
        result["og:description"] = parser.description
    return result


async def _fetch_page(url: str) -> str:
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise MatrixError(400, Codes.INVALID_PARAM, "Only http and https URLs can be previewed")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = await public_address(parts.hostname, port)
            netloc = f"[{address}]" if ":" in address else address
            pinned = parts._replace(netloc=f"{netloc}:{port}").geturl()
            host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
            request = client.build_request(
                "GET", pinned, headers={"Host": host_header, "Accept": "text/html"},
                extensions={"sni_hostname": parts.hostname},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise MatrixError(502, Codes.UNKNOWN, f"Could not fetch the URL: {exc}") from None
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise MatrixError(502, Codes.UNKNOWN, f"The URL answered {response.status_code}")
                if "text/html" not in response.headers.get("content-type", ""):
                    return ""
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_PAGE_BYTES:
                        break
                return body[:MAX_PAGE_BYTES].decode(response.encoding or "utf-8", errors="replace")
            finally:
                await response.aclose()
    raise MatrixError(502, Codes.UNKNOWN, "Too many redirects")


async def preview_url(request: Request, env: Any) -> dict[str, Any]:
    await require_user(request, env)
    if not env.config.url_previews:
        raise MatrixError(404, Codes.UNRECOGNIZED, "URL previews are disabled on this server")
    url = request.query_params.get("url")
    if not url:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing url")
    return open_graph(await _fetch_page(url))


routes = [
    route(AUTHENTICATED_PREFIX + "/preview_url", preview_url, ["GET"]),
    *(route(prefix + "/preview_url", preview_url, ["GET"]) for prefix in LEGACY_PREFIXES),
]
