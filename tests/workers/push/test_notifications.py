"""GET /notifications: newest first, read flags, only=highlight, pagination, refusals."""

from __future__ import annotations

from tests.workers.push.test_unread import group_room, send
from tests.workers.sync.harness import V3, Harness


def test_lists_notifications_with_read_flags(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    first = bob.send(room, "one")
    mention = send(bob, room, {"msgtype": "m.text", "body": "hi", "m.mentions": {"user_ids": [alice.user_id]}})
    alice.send(room, "mine")
    send(bob, room, {"msgtype": "m.notice", "body": "bot"})
    alice.post(f"/rooms/{room}/receipt/m.read/{first}", {})
    body = alice.ok("/notifications")
    notes = body["notifications"]
    assert [n["event"]["event_id"] for n in notes] == [mention, first]
    assert [n["read"] for n in notes] == [False, True]
    assert all(n["room_id"] == room and "room_id" not in n["event"] for n in notes)
    assert notes[0]["actions"] == ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]
    assert notes[1]["actions"] == ["notify"]
    assert isinstance(notes[0]["ts"], int) and notes[0]["event"]["content"]["body"] == "hi"
    assert "next_token" not in body
    only = alice.ok("/notifications", only="highlight")["notifications"]
    assert [n["event"]["event_id"] for n in only] == [mention]


def test_pagination(hs: Harness) -> None:
    alice, bob, _, room = group_room(hs)
    sent = [bob.send(room, f"m{i}") for i in range(5)]
    page = alice.ok("/notifications", limit=2)
    assert [n["event"]["event_id"] for n in page["notifications"]] == [sent[4], sent[3]]
    page = alice.ok("/notifications", limit=2, **{"from": page["next_token"]})
    assert [n["event"]["event_id"] for n in page["notifications"]] == [sent[2], sent[1]]
    page = alice.ok("/notifications", limit=2, **{"from": page["next_token"]})
    assert [n["event"]["event_id"] for n in page["notifications"]] == [sent[0]]
    assert "next_token" not in page


def test_refusals(hs: Harness) -> None:
    alice = hs.user("alice")
    for params in ({"from": "abc"}, {"limit": "x"}, {"limit": "-1"}):
        response = hs.client.get(f"{V3}/notifications", headers=alice.headers, params=params)
        assert response.status_code == 400 and response.json()["errcode"] == "M_INVALID_PARAM"
    assert hs.client.get(f"{V3}/notifications").status_code == 401
    assert alice.ok("/notifications") == {"notifications": []}
