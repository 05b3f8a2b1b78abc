"""Forged federation peers for tests: servers that exist only as a signing key made in the
test, answering key requests through an httpx MockTransport."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import httpx
from nacl.signing import SigningKey as NaclSigningKey
from signedjson.key import decode_signing_key_base64, get_verify_key
from signedjson.sign import sign_json
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from workers.federation.client import FederationClient, encode_query
from workers.federation.x_matrix import authorization_header, request_json

DAY_MS = 24 * 3600 * 1000


def make_signing_key(version: str = "forged") -> SigningKey:
    seed = encode_base64(bytes(NaclSigningKey.generate()))
    return decode_signing_key_base64("ed25519", version, seed)


class ForgedPeer:
    """A remote server of our own making: its key, its key response, its signed requests."""

    def __init__(self, server_name: str, key_version: str = "forged") -> None:
        self.server_name = server_name
        self.signing_key = make_signing_key(key_version)
        self.valid_for_ms = DAY_MS
        self.key_requests = 0
        self.reachable = True
        self.transactions: list[dict[str, Any]] = []

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.signing_key.version}"

    def key_response(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "server_name": self.server_name,
            "verify_keys": {
                self.key_id: {"key": encode_base64(get_verify_key(self.signing_key).encode())}
            },
            "old_verify_keys": {},
            "valid_until_ts": int(time.time() * 1000) + self.valid_for_ms,
        }
        body.update(overrides)
        return sign_json(body, self.server_name, self.signing_key)

    def authorization(
        self, destination: str | None, method: str, uri: str, content: Any = None,
        signing_key: SigningKey | None = None,
    ) -> str:
        key = signing_key or self.signing_key
        if destination is not None:
            return authorization_header(self.server_name, key, destination, method, uri, content)
        # As servers before spec v1.3 did: no destination, neither signed nor in the header.
        signed = request_json(method, uri, self.server_name, "", content)
        del signed["destination"]
        sig = sign_json(signed, self.server_name, key)["signatures"][self.server_name]
        key_id = f"ed25519:{key.version}"
        return f'X-Matrix origin="{self.server_name}",key="{key_id}",sig="{sig[key_id]}"'

    def signed_headers(
        self, destination: str | None, method: str, path: str, query: dict[str, str] | None = None,
        content: Any = None,
    ) -> tuple[str, dict[str, str]]:
        """``(uri, headers)`` for a request to ``destination``."""
        qs = encode_query(query)
        uri = path + ("?" + qs if qs else "")
        return uri, {"Authorization": self.authorization(destination, method, uri, content)}


class PeerNetwork:
    """A fake internet: maps the Host header to a peer answering key requests, and records
    every request. Extra routes: ``handlers[(host, path)] = fn(request) -> httpx.Response``."""

    def __init__(self) -> None:
        self.peers: dict[str, ForgedPeer] = {}
        self.handlers: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}
        self.requests: list[httpx.Request] = []

    def add(self, peer: ForgedPeer) -> ForgedPeer:
        self.peers[peer.server_name] = peer
        return peer

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = request.headers["host"]
        handler = self.handlers.get((host, request.url.path))
        if handler is not None:
            return handler(request)
        peer = self.peers.get(host)
        if peer is None or not peer.reachable:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/_matrix/key/v2/server":
            peer.key_requests += 1
            return httpx.Response(200, json=peer.key_response())
        if request.url.path.startswith("/_matrix/federation/v1/send/"):
            peer.transactions.append(json.loads(request.content))
            return httpx.Response(200, json={"pdus": {}})
        return httpx.Response(404, json={"errcode": "M_UNRECOGNIZED", "error": "no such path"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


async def resolve_everything_public(host: str, port: int) -> list[str]:
    """DNS for tests: every hostname resolves to one public address."""
    return ["1.2.3.4"]


def client_for(env: Any, network: PeerNetwork, **options: Any) -> FederationClient:
    return FederationClient(
        env.config.server_name, env.signing_key, cache=env.CACHE,
        transport=network.transport(), resolve_host=resolve_everything_public, **options,
    )


def json_body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None
