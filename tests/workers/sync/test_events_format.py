"""The client format of events (spec: "ClientEvent", redactions, stripped state)."""

from __future__ import annotations

from typing import Any

from durable.room_versions import get_room_version
from workers.client.events_format import client_event, stripped_state
from workers.client.visibility import may_see, normalize_visibility

V10 = get_room_version("10")
V11 = get_room_version("11")


def pdu(**fields: Any) -> dict[str, Any]:
    base = {
        "type": "m.room.message",
        "room_id": "!r:x",
        "sender": "@a:x",
        "origin_server_ts": 1000,
        "content": {"body": "hi", "msgtype": "m.text"},
        "depth": 3,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "abc"},
        "signatures": {"x": {"ed25519:k": "sig"}},
    }
    base.update(fields)
    return base


def test_message_event() -> None:
    event = client_event(pdu(), "$e", "!r:x", V10, now_ms=1500)
    assert event == {
        "content": {"body": "hi", "msgtype": "m.text"},
        "event_id": "$e",
        "origin_server_ts": 1000,
        "room_id": "!r:x",
        "sender": "@a:x",
        "type": "m.room.message",
        "unsigned": {"age": 500},
    }
    # Federation-only keys never reach clients.
    assert not {"hashes", "signatures", "depth", "prev_events", "auth_events"} & set(event)


def test_sync_form_leaves_out_room_id_and_keeps_transaction_id() -> None:
    event = client_event(pdu(), "$e", "!r:x", V10, now_ms=1000, include_room_id=False, transaction_id="t1")
    assert "room_id" not in event
    assert event["unsigned"] == {"age": 0, "transaction_id": "t1"}


def test_state_event_with_prev_content_and_local_unsigned() -> None:
    event = client_event(
        pdu(type="m.room.name", state_key="", content={"name": "new"}),
        "$e", "!r:x", V10, now_ms=1000,
        prev_state=("$old", {"name": "old"}),
        local_unsigned={"invite_room_state": [{"type": "m.room.name"}]},
    )
    assert event["state_key"] == ""
    assert event["unsigned"] == {
        "age": 0,
        "replaces_state": "$old",
        "prev_content": {"name": "old"},
        "invite_room_state": [{"type": "m.room.name"}],
    }


def test_prev_state_ignored_for_message_events() -> None:
    event = client_event(pdu(), "$e", "!r:x", V10, now_ms=1000, prev_state=("$old", {"a": 1}))
    assert "prev_content" not in event["unsigned"]


def test_redacted_event_has_redacted_content_and_because() -> None:
    because = {"type": "m.room.redaction", "event_id": "$red", "content": {}}
    event = client_event(pdu(), "$e", "!r:x", V10, now_ms=1000, redacted_because=because)
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"] == because
    member = client_event(
        pdu(type="m.room.member", state_key="@b:x", content={"membership": "join", "displayname": "B"}),
        "$m", "!r:x", V10, now_ms=1000, redacted_because=because,
    )
    assert member["content"] == {"membership": "join"}


def test_v11_redaction_redacts_copied_to_top_level() -> None:
    event = client_event(
        pdu(type="m.room.redaction", content={"redacts": "$target", "reason": "spam"}),
        "$r", "!r:x", V11, now_ms=1000,
    )
    assert event["redacts"] == "$target"
    assert event["content"] == {"redacts": "$target", "reason": "spam"}


def test_pre_v11_redaction_redacts_copied_into_content() -> None:
    event = client_event(
        pdu(type="m.room.redaction", redacts="$target", content={"reason": "spam"}),
        "$r", "!r:x", V10, now_ms=1000,
    )
    assert event["redacts"] == "$target"
    assert event["content"] == {"redacts": "$target", "reason": "spam"}


def test_stripped_state() -> None:
    assert stripped_state(pdu(type="m.room.name", state_key="", content={"name": "n"})) == {
        "type": "m.room.name", "state_key": "", "content": {"name": "n"}, "sender": "@a:x",
    }


# History visibility, spec "Room History Visibility" / "Server behaviour": (visibility,
# membership at the event, joined later) -> allowed.
VISIBILITY_TABLE = [
    ("world_readable", None, False, True),
    ("world_readable", "leave", False, True),
    ("shared", "join", False, True),
    ("shared", None, True, True),
    ("shared", None, False, False),
    ("shared", "leave", False, False),
    ("invited", "invite", False, True),
    ("invited", None, True, False),
    ("invited", "join", False, True),
    ("joined", "invite", False, False),
    ("joined", "join", False, True),
    ("joined", None, True, False),
    ("joined", "ban", False, False),
]


def test_visibility_rules() -> None:
    for visibility, membership, joined_later, expected in VISIBILITY_TABLE:
        assert may_see(visibility, membership, joined_later) is expected, (visibility, membership, joined_later)


def test_unknown_visibility_is_shared() -> None:
    assert normalize_visibility(None) == "shared"
    assert normalize_visibility("bogus") == "shared"
    assert normalize_visibility(5) == "shared"
    assert normalize_visibility("joined") == "joined"
