"""Account changes reaching rooms: profile changes and deactivation."""

from __future__ import annotations

from tests.workers.rooms.conftest import SERVER, V3, Harness


def test_displayname_change_updates_member_events(hs: Harness) -> None:
    alice = hs.user("alice")
    rooms = [hs.create_room(alice), hs.create_room(alice)]
    response = hs.client.put(f"{V3}/profile/@alice:{SERVER}/displayname", headers=alice, json={"displayname": "Alice A."})
    assert response.status_code == 200
    for room_id in rooms:
        member = hs.state_content(room_id, "m.room.member", f"@alice:{SERVER}")
        assert member == {"membership": "join", "displayname": "Alice A."}


def test_deactivated_user_leaves_rooms(hs: Harness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    joined = hs.create_room(alice, preset="public_chat")
    hs.post(bob, f"/join/{joined}")
    invited = hs.create_room(alice, invite=[f"@bob:{SERVER}"])
    hs.call(hs.env.hooks.user_deactivated, f"@bob:{SERVER}")
    assert hs.state_content(joined, "m.room.member", f"@bob:{SERVER}")["membership"] == "leave"
    assert hs.state_content(invited, "m.room.member", f"@bob:{SERVER}")["membership"] == "leave"
