"""GET /pushers and POST /pushers/set: storage, replacement, deletion and every refusal."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.workers.push.gateway_fake import GATEWAY_URL, FakeGateway, wait_for
from tests.workers.sync.harness import V3, Harness, User


def pusher(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "http", "app_id": "com.example.app.ios", "pushkey": "PUSHKEY",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": {"url": GATEWAY_URL, "format": "event_id_only"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def set_raw(user: User, body: dict[str, Any]) -> Any:
    return user.harness.client.post(f"{V3}/pushers/set", headers=user.headers, json=body)


@pytest.fixture
def fake(hs: Harness) -> FakeGateway:
    gateway = FakeGateway()
    hs.env.push_gateway = gateway.client()
    return gateway


def test_set_get_update_delete(hs: Harness, fake: FakeGateway) -> None:
    alice = hs.user("alice")
    assert alice.ok("/pushers") == {"pushers": []}
    alice.post("/pushers/set", pusher(profile_tag="tag"))
    listed = alice.ok("/pushers")["pushers"]
    assert listed == [{
        "pushkey": "PUSHKEY", "kind": "http", "app_id": "com.example.app.ios",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "profile_tag": "tag", "data": {"url": GATEWAY_URL, "format": "event_id_only"},
    }]
    alice.post("/pushers/set", pusher(device_display_name="Tablet", data={"url": GATEWAY_URL}))
    (only,) = alice.ok("/pushers")["pushers"]
    assert only["device_display_name"] == "Tablet" and only["data"] == {"url": GATEWAY_URL}
    assert "profile_tag" not in only
    alice.post("/pushers/set", pusher(pushkey="OTHER"))
    assert len(alice.ok("/pushers")["pushers"]) == 2
    alice.post("/pushers/set", {"kind": None, "app_id": "com.example.app.ios", "pushkey": "PUSHKEY"})
    assert [p["pushkey"] for p in alice.ok("/pushers")["pushers"]] == ["OTHER"]
    # Deleting what does not exist changes nothing.
    alice.post("/pushers/set", {"kind": None, "app_id": "nope", "pushkey": "nope"})
    assert len(alice.ok("/pushers")["pushers"]) == 1


def test_append_false_takes_the_pushkey_from_other_users(hs: Harness, fake: FakeGateway) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    alice.post("/pushers/set", pusher())
    bob.post("/pushers/set", pusher(append=True))
    assert len(alice.ok("/pushers")["pushers"]) == 1
    bob.post("/pushers/set", pusher())
    assert alice.ok("/pushers")["pushers"] == []
    assert len(bob.ok("/pushers")["pushers"]) == 1


REFUSALS = [
    ({"kind": ...}, 400, "M_MISSING_PARAM"),
    ({"app_id": ...}, 400, "M_MISSING_PARAM"),
    ({"pushkey": ...}, 400, "M_MISSING_PARAM"),
    ({"lang": ..., "data": ...}, 400, "M_MISSING_PARAM"),
    ({"app_display_name": ...}, 400, "M_MISSING_PARAM"),
    ({"data": {"format": "event_id_only"}}, 400, "M_MISSING_PARAM"),
    ({"kind": "email"}, 400, "M_INVALID_PARAM"),
    ({"kind": 3}, 400, "M_INVALID_PARAM"),
    ({"app_id": "x" * 65}, 400, "M_INVALID_PARAM"),
    ({"app_id": ""}, 400, "M_INVALID_PARAM"),
    ({"pushkey": "é" * 257}, 400, "M_INVALID_PARAM"),
    ({"pushkey": 5}, 400, "M_INVALID_PARAM"),
    ({"lang": 5}, 400, "M_INVALID_PARAM"),
    ({"profile_tag": 5}, 400, "M_INVALID_PARAM"),
    ({"data": "url"}, 400, "M_INVALID_PARAM"),
    ({"data": {"url": "https://push.example/elsewhere"}}, 400, "M_INVALID_PARAM"),
    ({"data": {"url": 7}}, 400, "M_INVALID_PARAM"),
    ({"data": {"url": GATEWAY_URL, "format": "full"}}, 400, "M_INVALID_PARAM"),
    ({"append": "yes"}, 400, "M_INVALID_PARAM"),
    ({"data": {"url": "http://127.0.0.1:8080/_matrix/push/v1/notify"}}, 400, "M_INVALID_PARAM"),
]


@pytest.mark.parametrize("overrides, status, errcode", REFUSALS)
def test_refusals(hs: Harness, fake: FakeGateway, overrides: dict[str, Any], status: int, errcode: str) -> None:
    alice = hs.user("alice")
    response = set_raw(alice, pusher(**overrides))
    assert response.status_code == status, response.text
    assert response.json()["errcode"] == errcode
    assert alice.ok("/pushers") == {"pushers": []}


def test_missing_params_are_named(hs: Harness, fake: FakeGateway) -> None:
    response = set_raw(hs.user("alice"), pusher(lang=..., data=...))
    assert response.json()["error"] == "Missing parameters: lang, data"


def test_gateway_host_on_a_private_network_is_refused(hs: Harness, fake: FakeGateway) -> None:
    fake.addresses = ["10.0.0.7"]
    response = set_raw(hs.user("alice"), pusher())
    assert response.status_code == 400 and response.json()["errcode"] == "M_INVALID_PARAM"


def test_not_json_and_auth(hs: Harness, fake: FakeGateway) -> None:
    alice = hs.user("alice")
    response = hs.client.post(f"{V3}/pushers/set", headers=alice.headers, content=b"nope")
    assert response.status_code == 400 and response.json()["errcode"] == "M_NOT_JSON"
    assert hs.client.get(f"{V3}/pushers").status_code == 401


def test_deleting_a_device_deletes_the_pushers_it_set(hs: Harness, fake: FakeGateway) -> None:
    """As Synapse does: the pushers registered by a device's token go with the device."""
    laptop, phone = hs.user("alice", "LAPTOP"), hs.user("alice", "PHONE")
    laptop.post("/pushers/set", pusher(pushkey="LAPTOPKEY"))
    phone.post("/pushers/set", pusher(pushkey="PHONEKEY"))
    phone.post("/pushers/set", pusher(pushkey="PHONEKEY2", app_id="com.example.app.android"))
    assert len(laptop.ok("/pushers")["pushers"]) == 3
    phone.post("/logout")
    assert [p["pushkey"] for p in laptop.ok("/pushers")["pushers"]] == ["LAPTOPKEY"]
    # A message for alice is pushed to the remaining pusher only.
    bob = hs.user("bob")
    room = bob.create_room(preset="private_chat", invite=[laptop.user_id])
    laptop.join(room)
    message = bob.send(room, "hello")
    wait_for(lambda: any(n.get("event_id") == message for n in fake.notifications()))
    time.sleep(0.2)
    pushed = [d["pushkey"] for n in fake.notifications() for d in n["devices"]]
    assert pushed and set(pushed) == {"LAPTOPKEY"}
