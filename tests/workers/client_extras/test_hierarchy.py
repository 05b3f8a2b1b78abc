"""Spaces: the client and federation ``/hierarchy`` over local rooms (spec: "Spaces")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.federation.peers import ForgedPeer
from tests.workers.client_extras.conftest import SERVER, V1, ExtrasHarness
from workers.client.hierarchy import child_sort_key, valid_order

FED_HIERARCHY = "/_matrix/federation/v1/hierarchy"


def add_child(hs: ExtrasHarness, headers: dict[str, str], space: str, child: str, **content: Any) -> None:
    response = hs.state_put(headers, space, "m.space.child", {"via": [SERVER], **content}, child)
    assert response.status_code == 200, response.text


@pytest.fixture
def tree(hs: ExtrasHarness) -> dict[str, Any]:
    """S (public space): A (public, order "a"), D (public sub-space, order "b", suggested,
    with E suggested), C (restricted to members of S), B (invite only), and a child S does
    not host; bob joined S only."""
    alice, bob = hs.user("alice"), hs.user("bob")
    space = {"type": "m.space"}
    s = hs.create_room(alice, preset="public_chat", name="Space", creation_content=space)
    a = hs.create_room(alice, preset="public_chat", name="A")
    d = hs.create_room(alice, preset="public_chat", name="D", creation_content=space)
    e = hs.create_room(alice, preset="public_chat", name="E")
    c = hs.create_room(alice, preset="private_chat", room_version="10", initial_state=[{
        "type": "m.room.join_rules", "state_key": "",
        "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": s}]},
    }])
    b = hs.create_room(alice, preset="private_chat", name="B")
    add_child(hs, alice, s, c)
    add_child(hs, alice, s, b)
    add_child(hs, alice, s, a, order="a")
    add_child(hs, alice, s, d, order="b", suggested=True)
    add_child(hs, alice, s, "!elsewhere:remote.test")
    add_child(hs, alice, d, e, suggested=True)
    hs.join(bob, s)
    return {"alice": alice, "bob": bob, "S": s, "A": a, "B": b, "C": c, "D": d, "E": e}


def hierarchy(hs: ExtrasHarness, headers: dict[str, str], room: str, **params: Any) -> Any:
    return hs.get(headers, f"{V1}/rooms/{room}/hierarchy", **params)


def ids(body: dict[str, Any]) -> list[str]:
    return [r["room_id"] for r in body["rooms"]]


def test_depth_first_walk_in_spec_order_with_visibility(hs: ExtrasHarness, tree: dict[str, Any]) -> None:
    response = hierarchy(hs, tree["bob"], tree["S"])
    assert response.status_code == 200, response.text
    body = response.json()
    t = tree
    # B is invite-only and bob is not invited; C is restricted to S's members (bob is one)
    assert ids(body) == [t["S"], t["A"], t["D"], t["E"], t["C"]]
    assert "next_batch" not in body
    root = body["rooms"][0]
    assert root["room_type"] == "m.space" and root["name"] == "Space"
    assert root["join_rule"] == "public" and root["num_joined_members"] == 2
    assert [c["state_key"] for c in root["children_state"]] == [
        t["A"], t["D"], t["C"], t["B"], "!elsewhere:remote.test"
    ]
    assert all(isinstance(c["origin_server_ts"], int) and c["sender"] == f"@alice:{SERVER}"
               for c in root["children_state"])
    room_c = body["rooms"][4]
    assert room_c["join_rule"] == "restricted" and room_c["allowed_room_ids"] == [t["S"]]
    assert room_c["room_version"] == "10"
    room_a = body["rooms"][1]
    assert room_a["children_state"] == [] and "room_type" not in room_a


def test_max_depth_suggested_only_and_removed_children(hs: ExtrasHarness, tree: dict[str, Any]) -> None:
    t = tree
    assert ids(hierarchy(hs, t["bob"], t["S"], max_depth=1).json()) == [t["S"], t["A"], t["D"], t["C"]]
    assert ids(hierarchy(hs, t["bob"], t["S"], max_depth=0).json()) == [t["S"]]
    suggested = hierarchy(hs, t["bob"], t["S"], suggested_only="true").json()
    assert ids(suggested) == [t["S"], t["D"], t["E"]]
    assert [c["state_key"] for c in suggested["rooms"][0]["children_state"]] == [t["D"]]
    # a child whose `via` is emptied is no longer a child
    response = hs.state_put(t["alice"], t["S"], "m.space.child", {}, t["A"])
    assert response.status_code == 200
    assert t["A"] not in ids(hierarchy(hs, t["bob"], t["S"]).json())


def test_pagination(hs: ExtrasHarness, tree: dict[str, Any]) -> None:
    t = tree
    first = hierarchy(hs, t["bob"], t["S"], limit=2).json()
    assert ids(first) == [t["S"], t["A"]]
    second = hierarchy(hs, t["bob"], t["S"], limit=2, **{"from": first["next_batch"]}).json()
    assert ids(second) == [t["D"], t["E"]]
    third = hierarchy(hs, t["bob"], t["S"], limit=2, **{"from": second["next_batch"]}).json()
    assert ids(third) == [t["C"]] and "next_batch" not in third
    changed = hierarchy(hs, t["bob"], t["S"], limit=2, max_depth=1, **{"from": first["next_batch"]})
    assert changed.status_code == 400 and changed.json()["errcode"] == "M_INVALID_PARAM"
    changed = hierarchy(hs, t["bob"], t["S"], suggested_only="true", **{"from": first["next_batch"]})
    assert changed.status_code == 400 and changed.json()["errcode"] == "M_INVALID_PARAM"
    assert hierarchy(hs, t["bob"], t["S"], **{"from": "nonsense"}).json()["errcode"] == "M_INVALID_PARAM"


def test_refusals(hs: ExtrasHarness, tree: dict[str, Any]) -> None:
    t = tree
    for room in (t["B"], "!unknown:" + SERVER):
        response = hierarchy(hs, t["bob"], room)
        assert response.status_code == 403 and response.json()["errcode"] == "M_FORBIDDEN"
    for params in ({"limit": "0"}, {"max_depth": "-1"}, {"suggested_only": "yes"}):
        assert hierarchy(hs, t["bob"], t["S"], **params).json()["errcode"] == "M_INVALID_PARAM"
    # the invitee may see the room it is invited to
    hs.invite(t["alice"], t["B"], f"@bob:{SERVER}")
    assert ids(hierarchy(hs, t["bob"], t["B"]).json()) == [t["B"]]


def test_ordering_rules() -> None:
    assert valid_order(" ") and valid_order("~" * 50)
    assert not valid_order("a" * 51) and not valid_order("\u00e9") and not valid_order(3)
    children = [
        {"state_key": "!d", "origin_server_ts": 1, "content": {}},
        {"state_key": "!c", "origin_server_ts": 1, "content": {"order": "\n"}},
        {"state_key": "!b", "origin_server_ts": 5, "content": {"order": "aaaa"}},
        {"state_key": "!a", "origin_server_ts": 9, "content": {"order": " "}},
        {"state_key": "!e", "origin_server_ts": 2, "content": {"order": "aaaa"}},
    ]
    assert [c["state_key"] for c in sorted(children, key=child_sort_key)] == ["!a", "!e", "!b", "!c", "!d"]


def test_federation_hierarchy(hs: ExtrasHarness, tree: dict[str, Any], peer: ForgedPeer) -> None:
    t = tree
    response = hs.federation_get(peer, f"{FED_HIERARCHY}/{t['S']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["room"]["room_id"] == t["S"] and len(body["room"]["children_state"]) == 5
    # public A and D are visible to any server; B (invite) and C (restricted to S, where
    # remote.test has nobody) are not; the child hosted elsewhere is left out
    assert [c["room_id"] for c in body["children"]] == [t["A"], t["D"]]
    assert body["children"][1]["children_state"][0]["state_key"] == t["E"]
    assert body["inaccessible_children"] == [t["C"], t["B"]]
    suggested = hs.federation_get(peer, f"{FED_HIERARCHY}/{t['S']}", {"suggested_only": "true"}).json()
    assert [c["room_id"] for c in suggested["children"]] == [t["D"]]
    assert suggested["inaccessible_children"] == []


def test_federation_hierarchy_refusals(hs: ExtrasHarness, tree: dict[str, Any], peer: ForgedPeer) -> None:
    for room in (tree["B"], "!unknown:" + SERVER):
        response = hs.federation_get(peer, f"{FED_HIERARCHY}/{room}")
        assert response.status_code == 404 and response.json()["errcode"] == "M_NOT_FOUND"
    unsigned = hs.client.get(f"{FED_HIERARCHY}/{tree['S']}")
    assert unsigned.status_code == 401
