"""Relations, threads and bundled aggregations (spec: "Forming relationships between events",
"Relationships API", "Threading", "Event replacements", "Reference relations")."""

from __future__ import annotations

from typing import Any

from tests.workers.client_extras.conftest import SERVER, V1, V3, ExtrasHarness

ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"


def thread(root: str) -> dict[str, Any]:
    return {"rel_type": "m.thread", "event_id": root}


def edit_of(original: str) -> dict[str, Any]:
    return {"rel_type": "m.replace", "event_id": original}


def setup_room(hs: ExtrasHarness) -> tuple[dict[str, str], dict[str, str], str]:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = hs.create_room(alice, preset="public_chat")
    hs.join(bob, room)
    return alice, bob, room


def relations(hs: ExtrasHarness, headers: dict[str, str], room: str, event: str, *suffix: str,
              **params: Any) -> Any:
    path = "/".join([f"{V1}/rooms/{room}/relations/{event}", *suffix])
    return hs.get(headers, path, **params)


def test_relations_lists_children_newest_first_and_filters(hs: ExtrasHarness) -> None:
    alice, bob, room = setup_room(hs)
    root = hs.message(alice, room, "root", "t0")
    one = hs.message(bob, room, "one", "t1", thread(root))
    two = hs.message(alice, room, "two", "t2", thread(root))
    ref = hs.message(bob, room, "ref", "t3", {"rel_type": "m.reference", "event_id": root})
    hs.message(bob, room, "unrelated", "t4")
    reaction = hs.send(bob, room, {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "+1"}},
                       "t5", "m.reaction").json()["event_id"]

    response = relations(hs, alice, room, root)
    assert response.status_code == 200, response.text
    assert [e["event_id"] for e in response.json()["chunk"]] == [reaction, ref, two, one][:5]
    assert "next_batch" not in response.json()
    assert "recursion_depth" not in response.json()

    threaded = relations(hs, alice, room, root, "m.thread").json()["chunk"]
    assert [e["event_id"] for e in threaded] == [two, one]
    reactions = relations(hs, alice, room, root, "m.annotation", "m.reaction").json()["chunk"]
    assert [e["event_id"] for e in reactions] == [reaction]
    assert relations(hs, alice, room, root, "m.annotation", "m.room.message").json()["chunk"] == []


def test_relations_paginate_both_ways(hs: ExtrasHarness) -> None:
    alice, _bob, room = setup_room(hs)
    root = hs.message(alice, room, "root", "r")
    children = [hs.message(alice, room, f"c{i}", f"c{i}", thread(root)) for i in range(5)]

    first = relations(hs, alice, room, root, limit=2).json()
    assert [e["event_id"] for e in first["chunk"]] == [children[4], children[3]]
    assert "prev_batch" not in first
    second = relations(hs, alice, room, root, limit=2, **{"from": first["next_batch"]}).json()
    assert [e["event_id"] for e in second["chunk"]] == [children[2], children[1]]
    assert second["prev_batch"] == first["next_batch"]
    third = relations(hs, alice, room, root, limit=2, **{"from": second["next_batch"]}).json()
    assert [e["event_id"] for e in third["chunk"]] == [children[0]]
    assert "next_batch" not in third

    forwards = relations(hs, alice, room, root, dir="f", limit=3).json()
    assert [e["event_id"] for e in forwards["chunk"]] == children[:3]
    rest = relations(hs, alice, room, root, dir="f", **{"from": forwards["next_batch"]}).json()
    assert [e["event_id"] for e in rest["chunk"]] == children[3:]
    # `to` stops the walk: from page 1's start back to page 2's end
    bounded = relations(hs, alice, room, root, to=second["next_batch"]).json()
    assert [e["event_id"] for e in bounded["chunk"]] == [children[4], children[3], children[2], children[1]]


def test_relations_recurse(hs: ExtrasHarness) -> None:
    alice, _bob, room = setup_room(hs)
    root = hs.message(alice, room, "root", "r")
    child = hs.message(alice, room, "child", "c", {"rel_type": "m.reference", "event_id": root})
    grandchild = hs.message(alice, room, "grandchild", "g", {"rel_type": "m.reference", "event_id": child})
    direct = relations(hs, alice, room, root).json()
    assert [e["event_id"] for e in direct["chunk"]] == [child]
    deep = relations(hs, alice, room, root, recurse="true").json()
    assert [e["event_id"] for e in deep["chunk"]] == [grandchild, child]
    assert deep["recursion_depth"] == 3
    assert relations(hs, alice, room, root, recurse="false").json()["recursion_depth"] == 1
    # filters apply at every level: a thread filter finds no references below
    assert relations(hs, alice, room, root, "m.thread", recurse="true").json()["chunk"] == []
    assert relations(hs, alice, room, root, recurse="maybe").status_code == 400


def test_relations_refusals(hs: ExtrasHarness) -> None:
    alice, _bob, room = setup_room(hs)
    root = hs.message(alice, room, "root", "r")
    outsider = hs.user("eve")
    hs.state_put(alice, room, "m.room.history_visibility", {"history_visibility": "joined"})
    unknown = relations(hs, alice, room, "$nope")
    assert unknown.status_code == 404 and unknown.json()["errcode"] == "M_NOT_FOUND"
    hidden = relations(hs, outsider, room, root)
    assert hidden.status_code == 404 and hidden.json()["errcode"] == "M_NOT_FOUND"
    assert relations(hs, alice, room, root, dir="x").json()["errcode"] == "M_INVALID_PARAM"
    assert relations(hs, alice, room, root, limit="-1").json()["errcode"] == "M_INVALID_PARAM"
    assert relations(hs, alice, room, root, **{"from": "garbage"}).json()["errcode"] == "M_INVALID_PARAM"
    assert relations(hs, {}, room, root).json()["errcode"] == "M_MISSING_TOKEN"


def test_redacted_child_no_longer_relates(hs: ExtrasHarness) -> None:
    alice, bob, room = setup_room(hs)
    root = hs.message(alice, room, "root", "r")
    child = hs.message(bob, room, "child", "c", thread(root))
    response = hs.client.put(f"{V3}/rooms/{room}/redact/{child}/x", headers=bob, json={})
    assert response.status_code == 200, response.text
    assert relations(hs, alice, room, root).json()["chunk"] == []
    event = hs.get(alice, f"{V3}/rooms/{room}/event/{root}").json()
    assert "m.relations" not in event["unsigned"]


def test_thread_aggregation_on_event_messages_and_sync(hs: ExtrasHarness) -> None:
    alice, bob, room = setup_room(hs)
    root = hs.message(alice, room, "root", "r")
    hs.message(bob, room, "first", "a", thread(root))
    latest = hs.message(bob, room, "second", "b", thread(root))
    # the latest thread event's own edit is bundled inside latest_event
    latest_edit = hs.message(bob, room, "* second!", "b2", edit_of(latest))

    event = hs.get(alice, f"{V3}/rooms/{room}/event/{root}").json()
    bundle = event["unsigned"]["m.relations"]["m.thread"]
    assert bundle["count"] == 2
    assert bundle["latest_event"]["event_id"] == latest
    assert bundle["latest_event"]["room_id"] == room
    assert bundle["latest_event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == latest_edit
    assert bundle["current_user_participated"] is True  # alice sent the root

    carol = hs.user("carol")
    hs.join(carol, room)
    as_carol = hs.get(carol, f"{V3}/rooms/{room}/event/{root}").json()
    assert as_carol["unsigned"]["m.relations"]["m.thread"]["current_user_participated"] is False
    as_bob = hs.get(bob, f"{V3}/rooms/{room}/event/{root}").json()
    assert as_bob["unsigned"]["m.relations"]["m.thread"]["current_user_participated"] is True

    messages = hs.get(alice, f"{V3}/rooms/{room}/messages", dir="b", limit=50).json()["chunk"]
    served_root = next(e for e in messages if e["event_id"] == root)
    assert served_root["unsigned"]["m.relations"]["m.thread"]["count"] == 2

    context = hs.get(alice, f"{V3}/rooms/{room}/context/{root}").json()
    assert context["event"]["unsigned"]["m.relations"]["m.thread"]["count"] == 2

    sync = hs.get(alice, f"{V3}/sync").json()
    timeline = sync["rooms"]["join"][room]["timeline"]["events"]
    synced_root = next(e for e in timeline if e["event_id"] == root)
    synced_latest = synced_root["unsigned"]["m.relations"]["m.thread"]["latest_event"]
    assert synced_latest["event_id"] == latest and "room_id" not in synced_latest
    plain = next(e for e in timeline if e["content"].get("body") == "first")
    assert "m.relations" not in plain["unsigned"]


def test_replace_aggregation_picks_latest_valid_edit(hs: ExtrasHarness) -> None:
    alice, bob, room = setup_room(hs)
    original = hs.message(alice, room, "hello", "o")
    first = hs.message(alice, room, "* hallo", "e1", edit_of(original))
    second = hs.message(alice, room, "* hullo", "e2", edit_of(original))
    # an edit by someone else is not valid, nor is one of another event type
    hs.message(bob, room, "* bob's", "e3", edit_of(original))
    hs.send(alice, room, {"m.relates_to": edit_of(original)}, "e4", "org.example.other")
    event = hs.get(alice, f"{V3}/rooms/{room}/event/{original}").json()
    replace = event["unsigned"]["m.relations"]["m.replace"]
    first_ts = hs.get(alice, f"{V3}/rooms/{room}/event/{first}").json()["origin_server_ts"]
    assert replace["event_id"] == second and replace["origin_server_ts"] >= first_ts
    assert replace["content"]["body"] == "* hullo"
    assert event["content"]["body"] == "hello"  # the original content is left intact

    # a redacted original bundles no edit
    response = hs.client.put(f"{V3}/rooms/{room}/redact/{original}/x", headers=alice, json={})
    assert response.status_code == 200
    redacted = hs.get(alice, f"{V3}/rooms/{room}/event/{original}").json()
    assert "m.replace" not in redacted["unsigned"].get("m.relations", {})


def test_reference_aggregation(hs: ExtrasHarness) -> None:
    alice, bob, room = setup_room(hs)
    poll = hs.message(alice, room, "poll", "p")
    one = hs.message(bob, room, "vote", "v1", {"rel_type": "m.reference", "event_id": poll})
    two = hs.message(alice, room, "vote", "v2", {"rel_type": "m.reference", "event_id": poll})
    event = hs.get(bob, f"{V3}/rooms/{room}/event/{poll}").json()
    assert event["unsigned"]["m.relations"] == {"m.reference": {"chunk": [{"event_id": one}, {"event_id": two}]}}


def test_threads_list(hs: ExtrasHarness) -> None:
    alice, bob, room = setup_room(hs)
    root_a = hs.message(alice, room, "a", "a")
    root_b = hs.message(bob, room, "b", "b")
    root_c = hs.message(bob, room, "c", "c")
    hs.message(bob, room, "in b", "b1", thread(root_b))
    hs.message(alice, room, "in a", "a1", thread(root_a))
    hs.message(bob, room, "in c", "c1", thread(root_c))
    path = f"{V1}/rooms/{room}/threads"

    everything = hs.get(alice, path).json()
    assert [e["event_id"] for e in everything["chunk"]] == [root_c, root_a, root_b]
    assert everything["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 1
    assert "next_batch" not in everything

    page = hs.get(alice, path, limit=2).json()
    assert [e["event_id"] for e in page["chunk"]] == [root_c, root_a]
    rest = hs.get(alice, path, limit=2, **{"from": page["next_batch"]}).json()
    assert [e["event_id"] for e in rest["chunk"]] == [root_b]
    assert "next_batch" not in rest

    # alice sent root_a and a reply in it; bob's threads b and c have nothing of hers
    mine = hs.get(alice, path, include="participated").json()
    assert [e["event_id"] for e in mine["chunk"]] == [root_a]


def test_threads_refusals(hs: ExtrasHarness) -> None:
    alice, _bob, room = setup_room(hs)
    eve = hs.user("eve")
    hs.state_put(alice, room, "m.room.join_rules", {"join_rule": "invite"})
    path = f"{V1}/rooms/{room}/threads"
    forbidden = hs.get(eve, path)
    assert forbidden.status_code == 403 and forbidden.json()["errcode"] == "M_FORBIDDEN"
    assert hs.get(alice, path, include="mine").json()["errcode"] == "M_INVALID_PARAM"
    assert hs.get(alice, path, limit="0").json()["errcode"] == "M_INVALID_PARAM"
    bad_token = hs.get(alice, path, **{"from": "s1_2"})
    assert bad_token.status_code == 400 and bad_token.json()["errcode"] == "M_INVALID_PARAM"


def test_threads_cannot_start_from_an_event_with_a_relation(hs: ExtrasHarness) -> None:
    """Spec "Validation of m.thread relationships": 400 M_UNKNOWN for a thread off a child
    of a relationship; replies and plain events may be thread roots."""
    alice, bob, room = setup_room(hs)
    root = hs.message(alice, room, "root", "v0")
    in_thread = hs.message(bob, room, "in thread", "v1", thread(root))
    edit = hs.message(alice, room, "* root", "v2", edit_of(root))
    reply = hs.message(bob, room, "a reply", "v3", {"m.in_reply_to": {"event_id": root}})
    for parent, txn in ((in_thread, "v4"), (edit, "v5")):
        refused = hs.send(bob, room, {"msgtype": "m.text", "body": "nested",
                                      "m.relates_to": thread(parent)}, txn)
        assert refused.status_code == 400, refused.text
        assert refused.json()["errcode"] == "M_UNKNOWN"
    # As a state event too.
    state = hs.client.put(f"{V3}/rooms/{room}/state/m.example/k", headers=alice,
                          json={"m.relates_to": thread(in_thread)})
    assert state.status_code == 400 and state.json()["errcode"] == "M_UNKNOWN"
    # A reply can be a thread root; so can the event whose relation was redacted away.
    hs.message(bob, room, "off a reply", "v6", thread(reply))
    redacted = hs.client.put(f"{V3}/rooms/{room}/redact/{edit}/v7", headers=alice, json={})
    assert redacted.status_code == 200, redacted.text
    hs.message(bob, room, "off a redacted edit", "v8", thread(edit))
    # Continuing the thread of a plain root is fine.
    hs.message(alice, room, "two", "v9", thread(root))
