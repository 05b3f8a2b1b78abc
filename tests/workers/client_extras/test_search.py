"""``POST /search`` (spec: "Server Side Search"), over the FTS5 index filled at persist time."""

from __future__ import annotations

from typing import Any

from tests.workers.client_extras.conftest import SERVER, V3, ExtrasHarness

ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"


def search(hs: ExtrasHarness, headers: dict[str, str], criteria: dict[str, Any], next_batch: str | None = None) -> Any:
    params = {"next_batch": next_batch} if next_batch else None
    return hs.client.post(f"{V3}/search", headers=headers, params=params,
                          json={"search_categories": {"room_events": criteria}})


def room_events(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json()["search_categories"]["room_events"])


def result_ids(body: dict[str, Any]) -> list[str]:
    return [r["result"]["event_id"] for r in body["results"]]


def setup(hs: ExtrasHarness) -> dict[str, Any]:
    alice, bob = hs.user("alice"), hs.user("bob")
    room = hs.create_room(alice, preset="public_chat")
    hs.join(bob, room)
    ids = {
        "coming": hs.message(alice, room, "The Martians are coming", "1"),
        "men": hs.message(bob, room, "men and martians and more martians", "2"),
        "nothing": hs.message(alice, room, "nothing to see", "3"),
    }
    ids["name"] = hs.state_put(alice, room, "m.room.name", {"name": "Martian watch"}).json()["event_id"]
    ids["topic"] = hs.state_put(alice, room, "m.room.topic", {
        "topic": "sky", "m.topic": {"m.text": [{"mimetype": "text/plain", "body": "sky watchers of martians"}]},
    }).json()["event_id"]
    return {"alice": alice, "bob": bob, "room": room, **ids}


def test_search_matches_keys_by_word_prefix(hs: ExtrasHarness) -> None:
    s = setup(hs)
    everything = room_events(search(hs, s["alice"], {"search_term": "martian"}))
    assert set(result_ids(everything)) == {s["coming"], s["men"], s["name"], s["topic"]}
    assert everything["count"] == 4
    assert all(r["rank"] > 0 for r in everything["results"])
    ranks = [r["rank"] for r in everything["results"]]
    assert ranks == sorted(ranks, reverse=True)
    assert {"martian", "Martians", "martians", "Martian"} <= set(everything["highlights"])
    bodies = room_events(search(hs, s["alice"], {"search_term": "MARTIANS", "keys": ["content.body"]}))
    assert set(result_ids(bodies)) == {s["coming"], s["men"]}
    topics = room_events(search(hs, s["alice"], {"search_term": "watchers", "keys": ["content.topic"]}))
    assert result_ids(topics) == [s["topic"]]
    both_words = room_events(search(hs, s["bob"], {"search_term": "men martians"}))
    assert result_ids(both_words) == [s["men"]]
    assert room_events(search(hs, s["bob"], {"search_term": "venusians"}))["results"] == []
    assert room_events(search(hs, s["bob"], {"search_term": "  !! "}))["results"] == []
    served = everything["results"][0]["result"]
    assert served["room_id"] == s["room"] and "unsigned" in served


def test_recent_order_filters_and_pagination(hs: ExtrasHarness) -> None:
    s = setup(hs)
    recent = room_events(search(hs, s["alice"], {"search_term": "martian", "order_by": "recent"}))
    assert result_ids(recent) == [s["topic"], s["name"], s["men"], s["coming"]]
    page1 = room_events(search(hs, s["alice"], {"search_term": "martian", "order_by": "recent", "filter": {"limit": 3}}))
    assert result_ids(page1) == [s["topic"], s["name"], s["men"]]
    page2 = room_events(search(hs, s["alice"], {"search_term": "martian", "order_by": "recent", "filter": {"limit": 3}},
                               page1["next_batch"]))
    assert result_ids(page2) == [s["coming"]] and "next_batch" not in page2
    ranked1 = room_events(search(hs, s["alice"], {"search_term": "martian", "filter": {"limit": 2}}))
    ranked2 = room_events(search(hs, s["alice"], {"search_term": "martian", "filter": {"limit": 2}},
                                 ranked1["next_batch"]))
    assert len(set(result_ids(ranked1)) | set(result_ids(ranked2))) == 4
    assert "next_batch" not in ranked2
    by_bob = room_events(search(hs, s["alice"], {"search_term": "martian", "filter": {"senders": [BOB]}}))
    assert result_ids(by_bob) == [s["men"]]
    names = room_events(search(hs, s["alice"], {"search_term": "martian", "filter": {"types": ["m.room.name"]}}))
    assert result_ids(names) == [s["name"]]
    other_room = room_events(search(hs, s["alice"], {"search_term": "martian", "filter": {"rooms": ["!x:hs.test"]}}))
    assert other_room["results"] == []


def test_only_what_the_user_may_see(hs: ExtrasHarness) -> None:
    s = setup(hs)
    eve = hs.user("eve")
    assert room_events(search(hs, eve, {"search_term": "martians"}))["results"] == []
    # in a room with `joined` visibility, carol, who joins later, does not find earlier messages
    room = hs.create_room(s["alice"], preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
    ])
    hs.message(s["alice"], room, "martians before carol", "0")
    carol = hs.user("carol")
    hs.join(carol, room)
    fresh = hs.message(s["alice"], room, "martians again", "4")
    assert result_ids(room_events(search(hs, carol, {"search_term": "martians"}))) == [fresh]
    # after leaving, nothing said afterwards is found
    hs.leave(carol, room)
    hs.message(s["alice"], room, "martians after carol left", "5")
    assert result_ids(room_events(search(hs, carol, {"search_term": "martians"}))) == [fresh]
    # redacted events are not found
    response = hs.client.put(f"{V3}/rooms/{s['room']}/redact/{s['men']}/r", headers=s["alice"], json={})
    assert response.status_code == 200
    assert s["men"] not in result_ids(room_events(search(hs, s["alice"], {"search_term": "martians"})))


def test_encrypted_rooms_are_not_searched(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    room = hs.create_room(alice, name="secret martians", initial_state=[
        {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    ])
    assert room
    assert room_events(search(hs, alice, {"search_term": "martians"}))["results"] == []


def test_context_state_and_groups(hs: ExtrasHarness) -> None:
    s = setup(hs)
    hs.client.put(f"{V3}/profile/{BOB}/displayname", headers=s["bob"], json={"displayname": "Bob B"})
    criteria = {
        "search_term": "men", "keys": ["content.body"],
        "event_context": {"before_limit": 1, "after_limit": 2, "include_profile": True},
        "include_state": True,
        "groupings": {"group_by": [{"key": "room_id"}, {"key": "sender"}]},
    }
    body = room_events(search(hs, s["alice"], criteria))
    assert result_ids(body) == [s["men"]]
    context = body["results"][0]["context"]
    assert [e["event_id"] for e in context["events_before"]] == [s["coming"]]
    assert [e["event_id"] for e in context["events_after"]] == [s["nothing"], s["name"]]
    assert context["start"].startswith("s") and context["end"].startswith("s")
    # the profile as of the result, before the display name changed
    assert context["profile_info"][BOB] == {"displayname": "bob"}
    # the tokens bound the context: paginating forwards from `start` begins at events_before
    messages = hs.get(s["alice"], f"{V3}/rooms/{s['room']}/messages", dir="f", **{"from": context["start"]}).json()
    assert messages["chunk"][0]["event_id"] == s["coming"]
    later = hs.get(s["alice"], f"{V3}/rooms/{s['room']}/messages", dir="f", **{"from": context["end"]}).json()
    assert later["chunk"][0]["event_id"] == s["topic"]
    state_types = {e["type"] for e in body["state"][s["room"]]}
    assert {"m.room.create", "m.room.name", "m.room.member"} <= state_types
    assert body["groups"]["room_id"] == {s["room"]: {"results": [s["men"]], "order": 1}}
    assert body["groups"]["sender"] == {BOB: {"results": [s["men"]], "order": 1}}


def test_refusals(hs: ExtrasHarness) -> None:
    alice = hs.user("alice")
    def post(body: Any, **params: Any) -> Any:
        return hs.client.post(f"{V3}/search", headers=alice, json=body, params=params)
    assert post({}).json()["errcode"] == "M_MISSING_PARAM"
    assert post({"search_categories": []}).json()["errcode"] == "M_BAD_JSON"
    assert post({"search_categories": {"room_events": {}}}).json()["errcode"] == "M_MISSING_PARAM"
    assert post({"search_categories": {"room_events": {"search_term": 3}}}).json()["errcode"] == "M_BAD_JSON"
    for criteria in ({"keys": ["content.url"]}, {"order_by": "size"}, {"groupings": {"group_by": [{"key": "type"}]}},
                     {"event_context": {"before_limit": -1}}):
        response = post({"search_categories": {"room_events": {"search_term": "x", **criteria}}})
        assert response.status_code == 400 and response.json()["errcode"] == "M_INVALID_PARAM", criteria
    bad_token = post({"search_categories": {"room_events": {"search_term": "x", "order_by": "recent"}}}, next_batch="r5")
    assert bad_token.json()["errcode"] == "M_INVALID_PARAM"
    not_json = hs.client.post(f"{V3}/search", headers=alice, content=b"nope")
    assert not_json.json()["errcode"] == "M_NOT_JSON"
    assert hs.client.post(f"{V3}/search", json={"search_categories": {}}).status_code == 401
    assert post({"search_categories": {}}).json() == {"search_categories": {}}
