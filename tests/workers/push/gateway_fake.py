"""A fake push gateway behind an httpx MockTransport, and a client that resolves every host
to a public address (so the IP policy passes unless a test says otherwise)."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import httpx

from workers.federation.ip_policy import IPRangePolicy
from workers.push.gateway import PushGatewayClient

PUBLIC_IP = "93.184.216.34"
GATEWAY_URL = "https://push.example/_matrix/push/v1/notify"


class FakeGateway:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hosts: list[str] = []
        # Answers to give, in order (status, body); then 200 {"rejected": []}.
        self.script: list[tuple[int, dict[str, Any]]] = []
        self.addresses: list[str] = [PUBLIC_IP]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(f"{request.url.host}|{request.headers.get('host')}")
        status, body = self.script.pop(0) if self.script else (200, {"rejected": []})
        if status == 200:
            self.requests.append(json.loads(request.content))
        return httpx.Response(status, json=body)

    async def resolve(self, host: str, port: int) -> list[str]:
        return list(self.addresses)

    def client(self, policy: IPRangePolicy | None = None) -> PushGatewayClient:
        return PushGatewayClient(
            policy, timeout=2.0, transport=httpx.MockTransport(self.handler), resolve_host=self.resolve
        )

    def notifications(self) -> list[dict[str, Any]]:
        return [r["notification"] for r in self.requests]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
