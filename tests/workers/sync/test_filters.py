"""Filter parsing and matching (spec: "Filtering")."""

from __future__ import annotations

from typing import Any

import pytest

from workers.client.events_format import apply_event_fields, split_field_path
from workers.errors import MatrixError
from workers.sync.filters import EventFilter, SyncFilter, parse_room_event_filter


def ev(type: str = "m.room.message", sender: str = "@a:x", room_id: str = "!r:x", **content: Any) -> dict[str, Any]:
    return {"type": type, "sender": sender, "room_id": room_id, "content": content}


@pytest.mark.parametrize(
    "filter_json, event, expected",
    [
        ({}, ev(), True),
        ({"types": ["m.room.message"]}, ev(), True),
        ({"types": ["m.room.*"]}, ev("m.room.member"), True),
        ({"types": ["m.room.*"]}, ev("m.call.invite"), False),
        ({"types": ["*"]}, ev("anything"), True),
        ({"types": []}, ev(), False),
        ({"not_types": ["m.room.message"]}, ev(), False),
        ({"types": ["m.*"], "not_types": ["m.room.message"]}, ev(), False),  # not_ wins
        ({"types": ["m.room.mess"]}, ev(), False),  # whole type must match
        ({"types": ["m.room.messag?"]}, ev(), False),  # only * is a wildcard
        ({"senders": ["@a:x"]}, ev(), True),
        ({"senders": ["@b:x"]}, ev(), False),
        ({"senders": ["@a:x"], "not_senders": ["@a:x"]}, ev(), False),
        ({"rooms": ["!r:x"]}, ev(), True),
        ({"not_rooms": ["!r:x"]}, ev(), False),
        ({"contains_url": True}, ev(url="mxc://x/y"), True),
        ({"contains_url": True}, ev(body="no"), False),
        ({"contains_url": False}, ev(url="mxc://x/y"), False),
        ({"contains_url": False}, ev(body="no"), True),
    ],
)
def test_event_filter_matches(filter_json: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert EventFilter.parse(filter_json).allows(event) is expected


@pytest.mark.parametrize(
    "filter_json",
    [
        {"types": "m.room.message"},
        {"types": [1]},
        {"limit": "10"},
        {"limit": -1},
        {"limit": True},
        {"contains_url": "yes"},
        {"lazy_load_members": 1},
    ],
)
def test_malformed_event_filter_is_bad_json(filter_json: dict[str, Any]) -> None:
    with pytest.raises(MatrixError) as info:
        EventFilter.parse(filter_json)
    assert (info.value.status, info.value.errcode) == (400, "M_BAD_JSON")


def test_sync_filter_sections() -> None:
    parsed = SyncFilter.parse(
        {
            "event_fields": ["type", "content.body"],
            "account_data": {"types": ["m.push_rules"]},
            "room": {
                "include_leave": True,
                "not_rooms": ["!no:x"],
                "timeline": {"limit": 3, "lazy_load_members": True},
                "state": {"types": ["m.room.name"]},
            },
        }
    )
    assert parsed.event_fields == ["type", "content.body"]
    assert parsed.room.include_leave and not parsed.room.allows_room("!no:x")
    assert parsed.room.allows_room("!yes:x")
    assert parsed.room.timeline.timeline_limit() == 3
    assert parsed.room.timeline.lazy_load_members
    assert parsed.room.state.allows(ev("m.room.name")) and not parsed.room.state.allows(ev())
    assert SyncFilter().room.timeline.timeline_limit() == 10  # Synapse's default


def test_sync_filter_refusals() -> None:
    with pytest.raises(MatrixError):
        SyncFilter.parse([])
    with pytest.raises(MatrixError):
        SyncFilter.parse({"event_format": "xml"})
    with pytest.raises(MatrixError):
        SyncFilter.parse({"room": {"timeline": []}})


def test_room_event_filter_param() -> None:
    assert parse_room_event_filter(None) == EventFilter()
    assert parse_room_event_filter('{"types": ["a"]}').types == ["a"]
    with pytest.raises(MatrixError) as info:
        parse_room_event_filter("{not json")
    assert info.value.errcode == "M_NOT_JSON"


def test_event_fields() -> None:
    event = {
        "type": "m.room.message",
        "event_id": "$e",
        "content": {"body": "hi", "m.relates_to": {"rel_type": "x"}, "msgtype": "m.text"},
        "unsigned": {"age": 1},
    }
    assert apply_event_fields(event, ["type", "content.body"]) == {
        "type": "m.room.message",
        "content": {"body": "hi"},
    }
    assert apply_event_fields(event, ["content.m\\.relates_to.rel_type", "missing.path"]) == {
        "content": {"m.relates_to": {"rel_type": "x"}}
    }
    assert split_field_path("a\\\\b.c") == ["a\\b", "c"]
