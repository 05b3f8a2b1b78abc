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
    unsupported = upgrade(hs, alice, room, new_version="0")
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


# --- bans and per-user data follow the upgrade ----------------------------------------------

CAROL = f"@carol:{SERVER}"
MALLORY = "@mallory:remote.test"


def member(hs: ExtrasHarness, headers: dict[str, str], room: str, user_id: str) -> Any:
    return state(hs, headers, room, "m.room.member", user_id)


def test_upgrade_copies_bans_it_has_the_power_for(hs: ExtrasHarness) -> None:
    alice, bob, carol = hs.user("alice"), hs.user("bob"), hs.user("carol")
    old = hs.create_room(alice, room_version="10", preset="public_chat")
    hs.join(bob, old)
    hs.join(carol, old)
    assert hs.post(alice, f"/rooms/{old}/ban", {"user_id": BOB, "reason": "spam"}).status_code == 200
    assert hs.post(alice, f"/rooms/{old}/ban", {"user_id": MALLORY}).status_code == 200
    assert hs.post(alice, f"/rooms/{old}/ban", {"user_id": CAROL}).status_code == 200
    # carol is listed at alice's level afterwards: alice cannot ban her in the new room
    levels = state(hs, alice, old, "m.room.power_levels")
    levels["users"][CAROL] = 100
    assert hs.state_put(alice, old, "m.room.power_levels", levels).status_code == 200

    response = upgrade(hs, alice, old, new_version="11")
    assert response.status_code == 200, response.text
    new = response.json()["replacement_room"]
    assert member(hs, alice, new, BOB) == {"membership": "ban", "reason": "spam"}
    assert member(hs, alice, new, MALLORY) == {"membership": "ban"}
    assert member(hs, alice, new, CAROL) is None  # skipped, the upgrade still happened
    assert state(hs, alice, old, "m.room.tombstone")["replacement_room"] == new
    refused = hs.client.post(f"{V3}/join/{new}", headers=bob, json={})
    assert refused.status_code == 403


def put_rule(hs: ExtrasHarness, headers: dict[str, str], kind: str, rule_id: str, body: dict[str, Any]) -> None:
    response = hs.client.put(f"{V3}/pushrules/global/{kind}/{rule_id}", headers=headers, json=body)
    assert response.status_code == 200, response.text


def tags(hs: ExtrasHarness, headers: dict[str, str], user_id: str, room: str) -> dict[str, Any]:
    return dict(hs.get(headers, f"{V3}/user/{user_id}/rooms/{room}/tags").json()["tags"])


def direct(hs: ExtrasHarness, headers: dict[str, str], user_id: str) -> Any:
    return hs.get(headers, f"{V3}/user/{user_id}/account_data/m.direct").json()


def rule(hs: ExtrasHarness, headers: dict[str, str], kind: str, rule_id: str) -> Any:
    response = hs.get(headers, f"{V3}/pushrules/global/{kind}/{rule_id}")
    return response.json() if response.status_code == 200 else None


def test_tags_push_rules_and_direct_follow_a_member_who_joins_the_new_room(hs: ExtrasHarness) -> None:
    alice, bob = hs.user("alice"), hs.user("bob")
    old = hs.create_room(alice, room_version="10", preset="public_chat")
    other = hs.create_room(alice, preset="public_chat")
    hs.join(bob, old)
    assert hs.client.put(f"{V3}/user/{BOB}/rooms/{old}/tags/u.work", headers=bob, json={"order": 0.5}).status_code == 200
    assert hs.client.put(f"{V3}/user/{BOB}/rooms/{old}/tags/m.favourite", headers=bob, json={}).status_code == 200
    dm = {ALICE: [other, old], "@x:remote.test": [other]}
    assert hs.client.put(f"{V3}/user/{BOB}/account_data/m.direct", headers=bob, json=dm).status_code == 200
    put_rule(hs, bob, "room", old, {"actions": ["dont_notify"]})
    put_rule(hs, bob, "override", "mute-it", {
        "actions": [], "conditions": [{"kind": "event_match", "key": "room_id", "pattern": old},
                                      {"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
    })
    assert hs.client.put(f"{V3}/pushrules/global/override/mute-it/enabled", headers=bob,
                         json={"enabled": False}).status_code == 200
    put_rule(hs, bob, "override", "elsewhere", {
        "actions": [], "conditions": [{"kind": "event_match", "key": "room_id", "pattern": other}],
    })
    assert hs.client.put(f"{V3}/user/{ALICE}/rooms/{old}/tags/u.mine", headers=alice, json={}).status_code == 200

    new = upgrade(hs, alice, old, new_version="11").json()["replacement_room"]
    # the upgrader's own tags are copied at once; bob's when he joins
    assert tags(hs, alice, ALICE, new) == {"u.mine": {}}
    assert tags(hs, bob, BOB, new) == {}
    assert rule(hs, bob, "room", new) is None
    hs.join(bob, new)

    assert tags(hs, bob, BOB, new) == {"u.work": {"order": 0.5}, "m.favourite": {}}
    assert tags(hs, bob, BOB, old) == {"u.work": {"order": 0.5}, "m.favourite": {}}  # kept
    assert direct(hs, bob, BOB) == {ALICE: [other, old, new], "@x:remote.test": [other]}
    room_rule = rule(hs, bob, "room", new)
    assert room_rule["actions"] == ["dont_notify"] and room_rule["enabled"] is True
    copied = rule(hs, bob, "override", new)  # named after the new room, as Synapse does
    assert copied["conditions"] == [{"kind": "event_match", "key": "room_id", "pattern": new},
                                    {"kind": "event_match", "key": "type", "pattern": "m.room.message"}]
    assert copied["enabled"] is False and copied["actions"] == []
    assert rule(hs, bob, "room", old) is not None and rule(hs, bob, "override", "mute-it") is not None
    overrides = [r["rule_id"] for r in hs.get(bob, f"{V3}/pushrules/").json()["global"]["override"]]
    assert overrides.count(new) == 1 and "elsewhere" in overrides
    # the m.push_rules account data shows the copies (what /sync delivers)
    pushed = hs.get(bob, f"{V3}/user/{BOB}/account_data/m.push_rules")
    assert pushed.status_code == 200
    assert any(r["rule_id"] == new for r in pushed.json()["global"]["room"])


def test_nothing_is_copied_for_a_room_that_is_no_upgrade_or_a_user_not_in_the_old_room(hs: ExtrasHarness) -> None:
    alice, bob, eve = hs.user("alice"), hs.user("bob"), hs.user("eve")
    old = hs.create_room(alice, room_version="10", preset="public_chat")
    plain = hs.create_room(alice, preset="public_chat")
    hs.join(bob, old)
    for who, user_id in ((bob, BOB), (eve, f"@eve:{SERVER}")):
        assert hs.client.put(f"{V3}/user/{user_id}/rooms/{old}/tags/u.t", headers=who, json={}).status_code == 200
        assert hs.client.put(f"{V3}/user/{user_id}/account_data/m.direct", headers=who,
                             json={ALICE: [old]}).status_code == 200
        put_rule(hs, who, "room", old, {"actions": ["dont_notify"]})
    hs.join(bob, plain)  # not an upgrade of anything
    assert tags(hs, bob, BOB, plain) == {}
    assert direct(hs, bob, BOB) == {ALICE: [old]}
    assert rule(hs, bob, "room", plain) is None

    new = upgrade(hs, alice, old, new_version="11").json()["replacement_room"]
    hs.join(eve, new)  # eve never was in the old room
    assert tags(hs, eve, f"@eve:{SERVER}", new) == {}
    assert direct(hs, eve, f"@eve:{SERVER}") == {ALICE: [old]}
    assert rule(hs, eve, "room", new) is None
