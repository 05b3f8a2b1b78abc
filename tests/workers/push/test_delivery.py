"""Push delivery through the pusher actor to a fake gateway: formats, counts, tweaks, own
events, retries with backoff in order, refusals, rejected pushkeys, invites, restarts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from durable.pusher import PusherActor
from tests.workers.push.gateway_fake import GATEWAY_URL, FakeGateway, wait_for
from tests.workers.push.test_unread import send
from tests.workers.sync.harness import Harness, User, make_client


@pytest.fixture
def fake(hs: Harness, monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    monkeypatch.setattr(PusherActor, "BASE_BACKOFF_SECONDS", 0.05)
    gateway = FakeGateway()
    hs.env.push_gateway = gateway.client()
    return gateway


def add_pusher(user: User, pushkey: str = "KEY", **data: Any) -> None:
    user.post("/pushers/set", {
        "kind": "http", "app_id": "com.example.app", "pushkey": pushkey, "app_display_name": "App",
        "device_display_name": "Phone", "lang": "en", "data": {"url": GATEWAY_URL, **data},
    })


def status(hs: Harness, user: User) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        return await hs.env.PUSHERS.get_by_name(user.user_id).status()  # type: ignore[no-any-return]
    return hs.call(get)  # type: ignore[no-any-return]


def dm(hs: Harness) -> tuple[User, User, str]:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = bob.create_room(preset="private_chat", invite=[alice.user_id], name="Chat")
    alice.join(room)
    return alice, bob, room


def test_full_format_with_counts_and_tweaks(hs: Harness, fake: FakeGateway) -> None:
    alice, bob, room = dm(hs)
    bob.put("/profile/" + bob.user_id + "/displayname", {"displayname": "Bobby"})
    add_pusher(alice, custom="kept")
    event_id = bob.send(room, "hello alice")
    wait_for(lambda: len(fake.requests) == 1)
    (note,) = fake.notifications()
    assert note["event_id"] == event_id and note["room_id"] == room
    assert note["type"] == "m.room.message" and note["sender"] == bob.user_id
    assert note["sender_display_name"] == "Bobby" and note["room_name"] == "Chat"
    assert note["content"] == {"msgtype": "m.text", "body": "hello alice"}
    assert note["counts"] == {"unread": 1} and note["prio"] == "high"
    assert note["devices"] == [{
        "app_id": "com.example.app", "pushkey": "KEY", "pushkey_ts": note["devices"][0]["pushkey_ts"],
        "data": {"custom": "kept"}, "tweaks": {"sound": "default"},
    }]
    bob.send(room, "second")
    wait_for(lambda: len(fake.requests) == 2)
    assert fake.notifications()[1]["counts"] == {"unread": 2}


def test_event_id_only_and_what_is_not_pushed(hs: Harness, fake: FakeGateway) -> None:
    alice, bob, room = dm(hs)
    add_pusher(alice, format="event_id_only")
    alice.send(room, "my own")
    send(bob, room, {"msgtype": "m.notice", "body": "bot"})
    bob.state(room, "m.room.topic", {"topic": "t"})
    mention = send(bob, room, {"msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": [alice.user_id]}})
    wait_for(lambda: len(fake.requests) == 1)
    time.sleep(0.2)
    (note,) = fake.notifications()
    assert set(note) == {"event_id", "room_id", "counts", "devices"}
    assert note["event_id"] == mention
    assert note["devices"][0]["tweaks"] == {"sound": "default", "highlight": True}
    assert note["devices"][0]["data"] == {"format": "event_id_only"}


def test_retries_with_backoff_in_order(hs: Harness, fake: FakeGateway) -> None:
    alice, bob, room = dm(hs)
    add_pusher(alice, format="event_id_only")
    fake.script = [(500, {}), (503, {})]
    first = bob.send(room, "one")
    second = bob.send(room, "two")
    wait_for(lambda: len(fake.requests) == 2)
    assert [n["event_id"] for n in fake.notifications()] == [first, second]
    wait_for(lambda: status(hs, alice)["queued"] == 0)
    assert status(hs, alice)["sent"] == 2 and status(hs, alice)["retry"] == {}


def test_refused_notification_is_dropped(hs: Harness, fake: FakeGateway) -> None:
    alice, bob, room = dm(hs)
    add_pusher(alice, format="event_id_only")
    fake.script = [(400, {"errcode": "M_BAD_JSON"})]
    bob.send(room, "one")
    second = bob.send(room, "two")
    wait_for(lambda: len(fake.requests) == 1)
    assert fake.notifications()[0]["event_id"] == second
    wait_for(lambda: status(hs, alice)["dropped"] == 1)


def test_rejected_pushkey_removes_the_pusher(hs: Harness, fake: FakeGateway) -> None:
    alice, bob, room = dm(hs)
    add_pusher(alice, format="event_id_only")
    fake.script = [(200, {"rejected": ["KEY"]})]
    bob.send(room, "one")
    wait_for(lambda: alice.ok("/pushers")["pushers"] == [])
    bob.send(room, "two")
    time.sleep(0.3)
    assert len(fake.requests) == 1  # only the answer that rejected the key


def test_send_time_ip_check_drops(hs: Harness, fake: FakeGateway) -> None:
    alice, bob, room = dm(hs)
    add_pusher(alice, format="event_id_only")
    fake.addresses = ["10.0.0.1"]  # the name now points into a private network
    bob.send(room, "one")
    wait_for(lambda: status(hs, alice)["dropped"] == 1)
    assert fake.hosts == []


def test_each_pusher_gets_its_own_request(hs: Harness, fake: FakeGateway) -> None:
    alice, bob, room = dm(hs)
    add_pusher(alice, "K1", format="event_id_only")
    add_pusher(alice, "K2", format="event_id_only")
    bob.send(room, "one")
    wait_for(lambda: len(fake.requests) == 2)
    assert sorted(n["devices"][0]["pushkey"] for n in fake.notifications()) == ["K1", "K2"]


def test_invite_is_pushed(hs: Harness, fake: FakeGateway) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    add_pusher(alice)
    room = bob.create_room(name="Party")
    bob.invite(room, alice)
    wait_for(lambda: len(fake.requests) == 1)
    (note,) = fake.notifications()
    assert note["type"] == "m.room.member" and note["user_is_target"] is True
    assert note["devices"][0]["tweaks"] == {"sound": "default"}


def test_events_before_the_pusher_are_not_pushed(hs: Harness, fake: FakeGateway) -> None:
    alice, bob, room = dm(hs)
    bob.send(room, "old news")
    add_pusher(alice, format="event_id_only")
    new = bob.send(room, "new")
    wait_for(lambda: len(fake.requests) == 1)
    time.sleep(0.2)
    assert [n["event_id"] for n in fake.notifications()] == [new]


def test_queue_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PusherActor, "BASE_BACKOFF_SECONDS", 0.05)

    def start(script: list[tuple[int, dict[str, Any]]]) -> Iterator[tuple[Harness, FakeGateway]]:
        with make_client(tmp_path) as client:
            hs = Harness(client)
            gateway = FakeGateway()
            gateway.script = script
            hs.env.push_gateway = gateway.client()
            yield hs, gateway

    run = start([(503, {})] * 1000)  # the gateway is down
    hs, fake = next(run)
    alice, bob, room = dm(hs)
    add_pusher(alice, format="event_id_only")
    first = bob.send(room, "one")
    wait_for(lambda: status(hs, alice)["retry"].get(next(iter(status(hs, alice)["retry"]), ""), {}).get("attempts", 0) >= 2)
    run.close()

    run = start([])  # back up after the restart: the persisted item is delivered
    hs, fake = next(run)
    wait_for(lambda: len(fake.requests) == 1)
    assert fake.notifications()[0]["event_id"] == first
    wait_for(lambda: status(hs, alice)["queued"] == 0)
    run.close()
