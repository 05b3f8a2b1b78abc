"""device_lists in /sync and /keys/changes: key uploads, cross-signing changes, device
deletion and membership changes of users sharing a room."""

from __future__ import annotations

from d1 import e2e_keys
from d1 import to_device as to_device_db
from tests.workers.e2ee.harness import PASSWORD, Harness


def test_key_upload_reaches_users_sharing_a_room_only(hs: Harness) -> None:
    alice, bob, carol = hs.device("alice"), hs.device("bob"), hs.device("carol")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    a0, c0 = alice.sync()["next_batch"], carol.sync()["next_batch"]
    bob.upload(device_keys=bob.device_keys())
    got = alice.sync(a0)
    assert got["device_lists"] == {"changed": [bob.user_id], "left": []}
    assert carol.sync(c0)["device_lists"] == {"changed": [], "left": []}
    # /keys/changes over the same window.
    changes = alice.ok("GET", "/keys/changes", **{"from": a0, "to": got["next_batch"]})
    assert changes == {"changed": [bob.user_id], "left": []}
    # One-time key uploads are not device-list changes.
    bob.upload(one_time_keys=bob.one_time_keys(0, 3))
    assert alice.sync(got["next_batch"])["device_lists"]["changed"] == []


def test_joining_and_leaving_rooms(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    room = alice.create_room(preset="public_chat")
    since = alice.sync()["next_batch"]
    bob.join(room)
    got = alice.sync(since)
    assert got["device_lists"] == {"changed": [bob.user_id], "left": []}
    bob_since = bob.sync()["next_batch"]
    bob.leave(room)
    got = alice.sync(got["next_batch"])
    assert got["device_lists"] == {"changed": [], "left": [bob.user_id]}
    # The one who joins learns about everyone already there.
    bob.join(room)
    assert alice.user_id in bob.sync(bob_since)["device_lists"]["changed"]


def test_an_invite_shares_no_room_and_leaves_none(hs: Harness) -> None:
    """Being invited (or rejecting the invite) neither shares a room with its members nor
    makes anyone 'left': only joining does, and leaving after a join."""
    alice, carol = hs.device("alice"), hs.device("carol")
    room = alice.create_room(preset="private_chat")
    since = carol.sync()["next_batch"]
    alice.ok("POST", f"/rooms/{room}/invite", {"user_id": carol.user_id})
    got = carol.sync(since)
    assert room in got["rooms"]["invite"]
    assert got["device_lists"] == {"changed": [], "left": []}
    carol.leave(room)  # rejects the invite
    assert carol.sync(got["next_batch"])["device_lists"] == {"changed": [], "left": []}


def test_initial_sync_has_no_device_list_changes(hs: Harness) -> None:
    alice = hs.device("alice")
    alice.upload(device_keys=alice.device_keys())
    assert alice.sync()["device_lists"] == {"changed": [], "left": []}


def test_deleting_a_device_drops_its_keys_and_inbox(hs: Harness) -> None:
    alice, bob = hs.device("alice"), hs.device("bob")
    old = hs.device("bob", "OLD")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    old.upload(device_keys=old.device_keys(), one_time_keys=old.one_time_keys(0, 2))
    alice.ok("PUT", "/sendToDevice/m.test/t1", {"messages": {bob.user_id: {"OLD": {"n": 1}}}})
    since = alice.sync()["next_batch"]
    challenge = bob.request("DELETE", "/devices/OLD", {})
    assert challenge.status_code == 401
    auth = {"type": "m.login.password", "session": challenge.json()["session"],
            "identifier": {"type": "m.id.user", "user": "bob"}, "password": PASSWORD}
    assert bob.request("DELETE", "/devices/OLD", {"auth": auth}).status_code == 200
    assert alice.sync(since)["device_lists"]["changed"] == [bob.user_id]
    db = hs.env.DB
    assert hs.call(e2e_keys.get_device_keys, db, bob.user_id, "OLD") is None
    assert hs.call(e2e_keys.one_time_key_counts, db, bob.user_id, "OLD") == {}
    assert hs.call(to_device_db.pending_count, db, bob.user_id, "OLD") == 0
    keys = alice.ok("POST", "/keys/query", {"device_keys": {bob.user_id: []}})["device_keys"]
    assert "OLD" not in keys[bob.user_id]


def test_keys_changes_needs_both_tokens(hs: Harness) -> None:
    alice = hs.device("alice")
    assert alice.request("GET", "/keys/changes").status_code == 400
    response = alice.request("GET", "/keys/changes", **{"from": "garbage", "to": "s0"})
    assert response.status_code == 400


def test_own_change_on_a_fresh_server_is_incremental(hs: Harness) -> None:
    # On a fresh server the first since token has every position at 0; it is still an
    # incremental sync, so the user's own key upload must show up.
    alice = hs.device("alice")
    first = alice.sync()
    positions = first["next_batch"][1:].split("_")
    assert positions[0] == "0" and positions[5] == "0"  # events and device_lists
    alice.upload(device_keys=alice.device_keys())
    assert alice.sync(first["next_batch"])["device_lists"]["changed"] == [alice.user_id]


def test_renaming_a_device_is_a_device_list_change(hs: Harness) -> None:
    alice, bob, carol = hs.device("alice"), hs.device("bob"), hs.device("carol")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    bob.upload(device_keys=bob.device_keys())
    a0, c0 = alice.sync()["next_batch"], carol.sync()["next_batch"]
    bob.ok("PUT", f"/devices/{bob.device_id}", {"display_name": "Bob's phone"})
    got = alice.sync(a0)
    assert got["device_lists"] == {"changed": [bob.user_id], "left": []}
    assert carol.sync(c0)["device_lists"] == {"changed": [], "left": []}
    keys = alice.ok("POST", "/keys/query", {"device_keys": {bob.user_id: []}})["device_keys"]
    assert keys[bob.user_id][bob.device_id]["unsigned"] == {"device_display_name": "Bob's phone"}
    # Setting the same name again changes nothing.
    bob.ok("PUT", f"/devices/{bob.device_id}", {"display_name": "Bob's phone"})
    assert alice.sync(got["next_batch"])["device_lists"]["changed"] == []
