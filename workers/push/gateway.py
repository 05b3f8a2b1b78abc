"""Sending to push gateways: ``POST /_matrix/push/v1/notify``.

Spec: Push Gateway API (push_notifier.yaml) and client-server "Push Notifications".
``notification_body`` builds the request (pure). With the pusher's ``data.format`` set to
``event_id_only`` only ``event_id``, ``room_id``, ``counts`` and ``devices`` are sent;
otherwise the event-related fields too (type, sender, sender display name, room name and
alias, content, ``user_is_target``, ``prio``). ``devices[].data`` is the pusher's ``data``
without ``url``; counts that are zero are omitted.

``PushGatewayClient`` refuses gateway URLs whose host resolves only to addresses the IP
range policy refuses (private, loopback, link-local... unless allowed), as federation does:
a pusher's URL is chosen by a client, so without the check it would let users make this
server send requests into its own network. The policy is the federation one (config keys
``federation_ip_range_whitelist``, ``federation_ip_range_blacklist``,
``federation_allow_loopback``). The request goes to the address that was checked (the host
name travels in ``Host`` and TLS SNI), so a second DNS answer cannot swap it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Awaitable, Callable, Sequence

import httpx

from workers.federation.ip_policy import IPRangePolicy

JsonDict = dict[str, Any]
NOTIFY_PATH = "/_matrix/push/v1/notify"
EVENT_ID_ONLY = "event_id_only"
ResolveHost = Callable[[str, int], Awaitable[list[str]]]


class GatewayError(Exception):
    """A notification could not be delivered. ``retryable``: try again later."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Device:
    app_id: str
    pushkey: str
    pushkey_ts: int
    data: Mapping[str, Any]
    tweaks: Mapping[str, Any]

    def to_json(self) -> JsonDict:
        return {
            "app_id": self.app_id,
            "pushkey": self.pushkey,
            "pushkey_ts": self.pushkey_ts,
            "data": {k: v for k, v in self.data.items() if k != "url"},
            "tweaks": dict(self.tweaks),
        }


def notification_body(
    event: Mapping[str, Any],
    devices: Sequence[Device],
    *,
    event_id_only: bool,
    unread: int,
    user_id: str,
    sender_display_name: str | None = None,
    room_name: str | None = None,
    room_alias: str | None = None,
) -> JsonDict:
    """The ``/notify`` request body for one event and the devices of one pusher."""
    notification: JsonDict = {"event_id": event["event_id"], "room_id": event["room_id"]}
    if not event_id_only:
        notification["type"] = event["type"]
        notification["sender"] = event["sender"]
        high = any("sound" in d.tweaks or d.tweaks.get("highlight") for d in devices)
        notification["prio"] = "high" if high else "low"
        if sender_display_name:
            notification["sender_display_name"] = sender_display_name
        if room_name:
            notification["room_name"] = room_name
        if room_alias:
            notification["room_alias"] = room_alias
        if event["type"] == "m.room.member":
            notification["user_is_target"] = event.get("state_key") == user_id
        content = event.get("content")
        if isinstance(content, Mapping) and content:
            notification["content"] = dict(content)
    counts = {"unread": unread} if unread else {}
    notification["counts"] = counts
    notification["devices"] = [d.to_json() for d in devices]
    return {"notification": notification}


def check_gateway_url(url: Any) -> str | None:
    """Why a pusher URL is unacceptable (None when it is fine): an absolute ``http(s)``
    URL whose path is ``/_matrix/push/v1/notify`` (spec: PusherData ``url``)."""
    if not isinstance(url, str):
        return "data.url must be a string"
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return "data.url is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "data.url must be an absolute https URL"
    if parts.path != NOTIFY_PATH:
        return f"data.url must have the path {NOTIFY_PATH}"
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


class PushGatewayClient:
    """POSTs notifications to gateways. ``transport`` replaces the network (tests pass an
    ``httpx.MockTransport``), ``resolve_host`` replaces DNS."""

    def __init__(
        self,
        policy: IPRangePolicy | None = None,
        *,
        timeout: float = 10.0,
        verify_tls: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve_host: ResolveHost | None = None,
    ) -> None:
        self.policy = policy or IPRangePolicy()
        self.timeout = timeout
        self._resolve = resolve_host or system_resolve
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout, verify=verify_tls, follow_redirects=False
        )

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> "PushGatewayClient":
        options: dict[str, Any] = dict(
            policy=IPRangePolicy.from_config(
                config.federation_ip_range_whitelist,
                config.federation_ip_range_blacklist,
                config.federation_allow_loopback,
            ),
            verify_tls=config.federation_verify_tls,
        )
        options.update(overrides)
        return cls(**options)

    async def close(self) -> None:
        await self._client.aclose()

    async def address_for(self, url: str) -> str:
        """The first address of the URL's host that the IP policy permits; GatewayError
        (not retryable) when there is none, retryable when the name does not resolve."""
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            candidates = [host]
        except ValueError:
            try:
                candidates = await self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise GatewayError(f"cannot resolve {host}: {exc}", retryable=True) from None
        allowed = [a for a in candidates if self.policy.permits(a)]
        if not allowed:
            raise GatewayError(
                f"{host} resolves only to addresses refused by the IP range policy", retryable=False
            )
        return allowed[0]

    async def notify(self, url: str, body: JsonDict) -> list[str]:
        """POST the body; return the gateway's ``rejected`` pushkeys. Raises GatewayError:
        retryable on network errors, timeouts, 5xx, 408 and 429; not on other refusals."""
        address = await self.address_for(url)
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        pinned = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            response = await self._client.post(
                pinned, json=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            raise GatewayError(f"{type(exc).__name__}: {exc}", retryable=True) from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise GatewayError(f"gateway answered {response.status_code}", retryable=True)
        if not 200 <= response.status_code < 300:
            raise GatewayError(f"gateway answered {response.status_code}", retryable=False)
        try:
            answer = response.json()
        except ValueError:
            return []
        rejected = answer.get("rejected") if isinstance(answer, dict) else None
        return [k for k in rejected if isinstance(k, str)] if isinstance(rejected, list) else []
