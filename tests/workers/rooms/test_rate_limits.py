"""Rate limits: 429 M_LIMIT_EXCEEDED with retry_after_ms, per user for messages and per
client address for login and registration; nothing is sent when refused."""

from __future__ import annotations

from local_runtime.rate_limiter import RateLimiter
from tests.workers.rooms.conftest import V3, Harness


def test_messages_are_limited_per_user(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    room_id = hs.create_room(alice, preset="public_chat")
    hs.post(bob, f"/join/{room_id}")
    hs.env.MESSAGE_LIMITER = RateLimiter(0.001, 3)
    for i in range(3):
        assert hs.send(alice, room_id, {"body": str(i)}, f"a{i}").status_code == 200
    before = hs.summary(room_id)
    refused = hs.send(alice, room_id, {"body": "too many"}, "a3")
    assert refused.status_code == 429
    assert refused.json()["errcode"] == "M_LIMIT_EXCEEDED" and refused.json()["retry_after_ms"] > 0
    assert hs.summary(room_id) == before
    assert hs.send(bob, room_id, {"body": "mine"}, "b0").status_code == 200  # another user's bucket


def test_login_and_registration_are_limited_per_address(hs: Harness) -> None:
    hs.env.LOGIN_LIMITER = RateLimiter(0.001, 1)
    hs.env.REGISTRATION_LIMITER = RateLimiter(0.001, 1)
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "nobody"}, "password": "x"}
    assert hs.client.post(f"{V3}/login", json=body).status_code == 403
    limited = hs.client.post(f"{V3}/login", json=body)
    assert limited.status_code == 429 and limited.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert hs.client.post(f"{V3}/register", json={}).status_code == 401  # UIA first step
    limited = hs.client.post(f"{V3}/register", json={})
    assert limited.status_code == 429 and "retry_after_ms" in limited.json()


def test_limits_can_be_turned_off(hs: Harness) -> None:
    from local_runtime.env import _limiter

    assert _limiter(0, 10) is None and _limiter(1, 0) is None
    hs.env.MESSAGE_LIMITER = None
    alice = hs.user("alice")
    room_id = hs.create_room(alice)
    for i in range(20):
        assert hs.send(alice, room_id, {"body": str(i)}, f"t{i}").status_code == 200
