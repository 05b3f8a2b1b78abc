"""The push gateway request body, URL checks and the IP-pinned client."""

from __future__ import annotations

import httpx
import pytest

from tests.workers.push.gateway_fake import GATEWAY_URL, PUBLIC_IP, FakeGateway
from workers.federation.ip_policy import IPRangePolicy
from workers.push.gateway import Device, GatewayError, check_gateway_url, notification_body

EVENT = {
    "event_id": "$e", "room_id": "!r:hs", "type": "m.room.message", "sender": "@bob:hs",
    "content": {"msgtype": "m.text", "body": "hi"},
}
DEVICE = Device("com.example.app", "KEY", 1700000000, {"url": GATEWAY_URL, "format": "event_id_only", "x": 1},
                {"sound": "default"})


def test_full_body() -> None:
    body = notification_body(
        EVENT, [Device("a", "k", 5, {"url": GATEWAY_URL}, {"highlight": True})], event_id_only=False,
        unread=3, user_id="@me:hs", sender_display_name="Bob", room_name="Room", room_alias="#r:hs",
    )
    assert body == {"notification": {
        "event_id": "$e", "room_id": "!r:hs", "type": "m.room.message", "sender": "@bob:hs",
        "prio": "high", "sender_display_name": "Bob", "room_name": "Room", "room_alias": "#r:hs",
        "content": {"msgtype": "m.text", "body": "hi"}, "counts": {"unread": 3},
        "devices": [{"app_id": "a", "pushkey": "k", "pushkey_ts": 5, "data": {}, "tweaks": {"highlight": True}}],
    }}


def test_event_id_only_body_and_zero_counts() -> None:
    body = notification_body(EVENT, [DEVICE], event_id_only=True, unread=0, user_id="@me:hs")
    assert body == {"notification": {
        "event_id": "$e", "room_id": "!r:hs", "counts": {},
        "devices": [{"app_id": "com.example.app", "pushkey": "KEY", "pushkey_ts": 1700000000,
                     "data": {"format": "event_id_only", "x": 1}, "tweaks": {"sound": "default"}}],
    }}


def test_member_event_target_and_low_priority() -> None:
    invite = {**EVENT, "type": "m.room.member", "state_key": "@me:hs", "content": {"membership": "invite"}}
    note = notification_body(invite, [Device("a", "k", 1, {}, {})], event_id_only=False, unread=1,
                             user_id="@me:hs")["notification"]
    assert note["user_is_target"] is True and note["prio"] == "low"


@pytest.mark.parametrize("url, ok", [
    (GATEWAY_URL, True),
    ("http://push.example:8080/_matrix/push/v1/notify", True),
    ("https://push.example/notify", False),
    ("ftp://push.example/_matrix/push/v1/notify", False),
    ("/_matrix/push/v1/notify", False),
    ("https://push.example:99999/_matrix/push/v1/notify", False),
    (42, False),
])
def test_check_gateway_url(url: object, ok: bool) -> None:
    assert (check_gateway_url(url) is None) is ok


async def test_client_pins_the_checked_address() -> None:
    fake = FakeGateway()
    client = fake.client()
    try:
        assert await client.notify(GATEWAY_URL, {"notification": {"devices": []}}) == []
        assert fake.hosts == [f"{PUBLIC_IP}|push.example"]
        fake.script = [(200, {"rejected": ["KEY", 3]})]
        assert await client.notify(GATEWAY_URL, {"notification": {"devices": []}}) == ["KEY"]
    finally:
        await client.close()


@pytest.mark.parametrize("status, retryable", [(500, True), (503, True), (429, True), (408, True),
                                               (400, False), (404, False)])
async def test_client_errors(status: int, retryable: bool) -> None:
    fake = FakeGateway()
    fake.script = [(status, {})]
    client = fake.client()
    try:
        with pytest.raises(GatewayError) as info:
            await client.notify(GATEWAY_URL, {"notification": {"devices": []}})
        assert info.value.retryable is retryable
    finally:
        await client.close()


async def test_network_error_is_retryable() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    fake = FakeGateway()
    client = type(fake.client())(None, transport=httpx.MockTransport(fail), resolve_host=fake.resolve)
    try:
        with pytest.raises(GatewayError) as info:
            await client.notify(GATEWAY_URL, {})
        assert info.value.retryable
    finally:
        await client.close()


@pytest.mark.parametrize("addresses, policy, allowed", [
    (["10.0.0.1"], IPRangePolicy(), False),
    (["127.0.0.1"], IPRangePolicy(), False),
    (["::1"], IPRangePolicy(), False),
    (["169.254.169.254"], IPRangePolicy(), False),
    (["10.0.0.1", PUBLIC_IP], IPRangePolicy(), True),
    (["127.0.0.1"], IPRangePolicy.from_config([], [], True), True),
    (["10.1.2.3"], IPRangePolicy.from_config(["10.0.0.0/8"], [], False), True),
    ([PUBLIC_IP], IPRangePolicy.from_config([], [PUBLIC_IP + "/32"], False), False),
])
async def test_ip_policy(addresses: list[str], policy: IPRangePolicy, allowed: bool) -> None:
    fake = FakeGateway()
    fake.addresses = addresses
    client = fake.client(policy)
    try:
        if allowed:
            await client.notify(GATEWAY_URL, {})
            assert len(fake.requests) == 1
        else:
            with pytest.raises(GatewayError) as info:
                await client.notify(GATEWAY_URL, {})
            assert not info.value.retryable and fake.hosts == []
    finally:
        await client.close()


async def test_ip_literal_url_is_checked_without_dns() -> None:
    fake = FakeGateway()
    client = fake.client()
    try:
        with pytest.raises(GatewayError):
            await client.notify("http://192.168.1.5/_matrix/push/v1/notify", {})
    finally:
        await client.close()
