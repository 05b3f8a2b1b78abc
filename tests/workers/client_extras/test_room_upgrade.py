"""``POST /rooms/{roomId}/upgrade`` (spec: "Room Upgrades", "Server behaviour")."""

from __future__ import annotations

from typing import Any

from tests.workers.client_extras.conftest import SERVER, V3, ExtrasHarness

ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"


def upgrade(hs: ExtrasHarness, headers: dict[str, str], room: str, **body: Any) -> Any:
    return hs.client.post(f"{V3}/rooms/{room}/upgrade", headers=headers, json=body)


def state(hs: ExtrasHarness, headers: dict[str, str], room: str, event_type: str, state_key: str = "") -> Any:
    response = hs.get(headers, f"{V3}/rooms/{room}/state/{event_type}/{state_key}")
    return response.json() if response.status_code == 200 else None


def test_upgrade_copies_state_moves_aliases_and_tombstones(hs: ExtrasHarness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    old = hs.create_room(
        alice, room_version="10", preset="public_chat", visibility="public", name="Old", topic="Topic",
        room_alias_name="town", creation_content={"type": "org.example.kind"},
        power_level_content_override={"users": {ALICE: 100, BOB: 40}},
        initial_state=[{"type": "m.room.guest_access", "content": {"guest_access": "forbidden"}},
                       {"type": "org.example.custom", "content": {"x": 1}}],
    )
    hs.join(bob, old)
    last = hs.message(alice, old, "last words", "l")
    response = upgrade(hs, alice, old, new_version="11")
    assert response.status_code == 200, response.text
    new = response.json()["replacement_room"]
    assert new != old

    create = hs.get(alice, f"{V3}/rooms/{new}/state/m.room.create/", format="event").json()
    assert create["content"]["room_version"] == "11"
    assert create["content"]["predecessor"] == {"room_id": old, "event_id": last}
    assert create["content"]["type"] == "org.example.kind"
    assert state(hs, alice, new, "m.room.name") == {"name": "Old"}
    assert state(hs, alice, new, "m.room.topic") == {"topic": "Topic"}
    assert state(hs, alice, new, "m.room.join_rules") == {"join_rule": "public"}
    assert state(hs, alice, new, "m.room.guest_access") == {"guest_access": "forbidden"}
    assert state(hs, alice, new, "m.room.history_visibility") == {"history_visibility": "shared"}
    assert state(hs, alice, new, "m.room.canonical_alias") == {"alias": f"#town:{SERVER}"}
    assert state(hs, alice, new, "org.example.custom") is None  # not transferable
    power = state(hs, alice, new, "m.room.power_levels")
    assert power["users"] == {ALICE: 100, BOB: 40}
    # members are not carried over
    members = hs.get(alice, f"{V3}/rooms/{new}/joined_members").json()["joined"]
    assert list(members) == [ALICE]

    tombstone = state(hs, bob, old, "m.room.tombstone")
    assert tombstone["replacement_room"] == new and tombstone["body"]
    old_power = state(hs, bob, old, "m.room.power_levels")
    assert old_power["events_default"] == 50 and old_power["invite"] == 50
    assert state(hs, bob, old, "m.room.canonical_alias") == {}
    alias = hs.get(alice, f"{V3}/directory/room/%23town:{SERVER}").json()
    assert alias["room_id"] == new
    assert hs.get(alice, f"{V3}/directory/list/room/{new}").json() == {"visibility": "public"}
    assert hs.get(alice, f"{V3}/directory/list/room/{old}").json() == {"visibility": "private"}
    # bob (40) may no longer talk in the old room
    refused = hs.send(bob, old, {"msgtype": "m.text", "body": "hi"}, "late")
    assert refused.status_code == 403


def test_upgrade_to_v12_keeps_creators_out_of_users(hs: ExtrasHarness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    old = hs.create_room(alice, room_version="11", power_level_content_override={"users": {ALICE: 100, BOB: 100}})
    response = upgrade(hs, alice, old, new_version="12", additional_creators=[BOB])
    assert response.status_code == 200, response.text
    new = response.json()["replacement_room"]
    create = hs.get(alice, f"{V3}/rooms/{new}/state/m.room.create/", format="event").json()
    assert create["content"]["additional_creators"] == [BOB]
    assert create["content"]["predecessor"]["room_id"] == old
    power = state(hs, alice, new, "m.room.power_levels")
    assert ALICE not in power["users"] and BOB not in power["users"]


def test_upgrade_from_v12_lists_the_creator(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    old = hs.create_room(alice, room_version="12")
    response = upgrade(hs, alice, old, new_version="11")
    assert response.status_code == 200, response.text
    power = state(hs, alice, response.json()["replacement_room"], "m.room.power_levels")
    assert power["users"] == {ALICE: 100}


def test_caller_level_raised_for_the_copy_then_restored(hs: ExtrasHarness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    old = hs.create_room(alice, room_version="10", preset="public_chat", name="N", power_level_content_override={
        "users": {ALICE: 100, BOB: 90}, "events": {"m.room.tombstone": 90, "m.room.name": 95, "m.room.power_levels": 100},
    })
    hs.join(bob, old)
    response = upgrade(hs, bob, old, new_version="10")
    assert response.status_code == 200, response.text
    new = response.json()["replacement_room"]
    assert state(hs, bob, new, "m.room.name") == {"name": "N"}
    assert state(hs, bob, new, "m.room.power_levels")["users"] == {ALICE: 100, BOB: 90}
    # bob could not change the old room's power levels (100 needed): they stay as they were
    assert state(hs, bob, old, "m.room.power_levels")["events_default"] == 0
    assert state(hs, bob, old, "m.room.tombstone")["replacement_room"] == new


def test_refusals(hs: ExtrasHarness) -> None:
    alice, bob, eve = hs.user("alice"), hs.user("bob"), hs.user("eve")
    room = hs.create_room(alice, preset="public_chat")
    hs.join(bob, room)
    unsupported = upgrade(hs, alice, room, new_version="1")
    assert unsupported.status_code == 400 and unsupported.json()["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    assert upgrade(hs, alice, room, new_version="99").json()["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    for headers in (bob, eve):  # no power / not in the room
        refused = upgrade(hs, headers, room, new_version="11")
        assert refused.status_code == 403 and refused.json()["errcode"] == "M_FORBIDDEN"
    unknown = upgrade(hs, alice, "!nowhere:" + SERVER, new_version="11")
    assert unknown.status_code == 403
    assert upgrade(hs, alice, room).json()["errcode"] == "M_MISSING_PARAM"
    assert upgrade(hs, alice, room, new_version=11).json()["errcode"] == "M_BAD_JSON"
    assert upgrade(hs, alice, room, new_version="12", additional_creators=["nobody"]).json()["errcode"] == "M_BAD_JSON"
    assert state(hs, alice, room, "m.room.tombstone") is None
