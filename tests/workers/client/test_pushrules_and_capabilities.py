"""Push rules API (defaults, user rules, ordering, enabled/actions) and /capabilities."""

from __future__ import annotations

from typing import Any

from d1 import account_data as account_data_db
from durable.room_versions import KNOWN_ROOM_VERSIONS
from tests.workers.client.conftest import V3, Account, Api

RULES = f"{V3}/pushrules/global"


def _ids(api: Api, account: Account, kind: str) -> list[str]:
    body = api.client.get(f"{V3}/pushrules/", headers=account.headers).json()
    return [r["rule_id"] for r in body["global"][kind]]


def test_default_ruleset(api: Api, alice: Account) -> None:
    body = api.client.get(f"{V3}/pushrules/", headers=alice.headers).json()
    rules = body["global"]
    assert set(rules) == {"override", "content", "room", "sender", "underride"}
    assert [r["rule_id"] for r in rules["override"]] == [
        ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me",
        ".m.rule.member_event", ".m.rule.is_user_mention", ".m.rule.is_room_mention",
        ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    assert [r["rule_id"] for r in rules["underride"]] == [
        ".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
        ".m.rule.message", ".m.rule.encrypted",
    ]
    assert rules["content"] == rules["room"] == rules["sender"] == []
    master = rules["override"][0]
    assert master == {"rule_id": ".m.rule.master", "default": True, "enabled": False,
                      "conditions": [], "actions": []}
    invite = rules["override"][2]
    assert {"key": "state_key", "kind": "event_match", "pattern": alice.user_id} in invite["conditions"]
    mention = rules["override"][4]
    assert mention["conditions"][0]["value"] == alice.user_id
    assert mention["actions"][-1] == {"set_tweak": "highlight"}
    assert api.client.get(f"{V3}/pushrules/global/", headers=alice.headers).json() == rules


def test_get_single_rule(api: Api, alice: Account) -> None:
    rule = api.client.get(f"{RULES}/underride/.m.rule.message", headers=alice.headers).json()
    assert rule["actions"] == ["notify"] and rule["default"] is True
    assert api.client.get(f"{RULES}/underride/.m.rule.message/enabled",
                          headers=alice.headers).json() == {"enabled": True}
    assert api.client.get(f"{RULES}/underride/.m.rule.message/actions",
                          headers=alice.headers).json() == {"actions": ["notify"]}
    missing = api.client.get(f"{RULES}/override/.m.rule.message", headers=alice.headers)
    assert missing.status_code == 404 and missing.json()["errcode"] == "M_NOT_FOUND"
    assert api.client.get(f"{RULES}/nonsense/x", headers=alice.headers).status_code == 400


def test_user_rules_and_ordering(api: Api, alice: Account) -> None:
    put = lambda rule_id, body, **q: api.client.put(  # noqa: E731
        f"{RULES}/override/{rule_id}", headers=alice.headers, json=body, params=q
    )
    body = {"actions": ["notify"], "conditions": [{"kind": "event_match", "key": "type", "pattern": "x"}]}
    assert put("one", body).status_code == 200
    assert put("two", body).status_code == 200
    assert _ids(api, alice, "override")[:3] == [".m.rule.master", "two", "one"]
    assert put("three", body, after="two").status_code == 200
    assert _ids(api, alice, "override")[:4] == [".m.rule.master", "two", "three", "one"]
    assert put("four", body, before="two").status_code == 200
    assert _ids(api, alice, "override")[:5] == [".m.rule.master", "four", "two", "three", "one"]
    # Updating keeps the place; the new definition replaces the old.
    assert put("two", {"actions": []}).status_code == 200
    two = api.client.get(f"{RULES}/override/two", headers=alice.headers).json()
    assert two == {"rule_id": "two", "default": False, "enabled": True, "actions": [], "conditions": []}
    assert _ids(api, alice, "override")[:5] == [".m.rule.master", "four", "two", "three", "one"]
    assert api.client.delete(f"{RULES}/override/three", headers=alice.headers).status_code == 200
    assert "three" not in _ids(api, alice, "override")
    assert api.client.delete(f"{RULES}/override/three", headers=alice.headers).status_code == 404


def test_content_room_and_sender_rules(api: Api, alice: Account) -> None:
    content = api.client.put(f"{RULES}/content/cake", headers=alice.headers,
                             json={"pattern": "cake*", "actions": ["notify"]})
    assert content.status_code == 200
    room = api.client.put(f"{RULES}/room/!r:example.test", headers=alice.headers,
                          json={"actions": []})
    assert room.status_code == 200
    rules = api.client.get(f"{V3}/pushrules/", headers=alice.headers).json()["global"]
    assert rules["content"] == [{"rule_id": "cake", "default": False, "enabled": True,
                                 "actions": ["notify"], "pattern": "cake*"}]
    assert rules["room"] == [{"rule_id": "!r:example.test", "default": False, "enabled": True,
                              "actions": []}]
    no_pattern = api.client.put(f"{RULES}/content/x", headers=alice.headers, json={"actions": []})
    assert no_pattern.status_code == 400


def test_put_refusals(api: Api, alice: Account) -> None:
    cases: list[tuple[str, dict[str, Any], dict[str, str], int]] = [
        (".reserved", {"actions": []}, {}, 400),
        ("ok", {"actions": "notify"}, {}, 400),
        ("ok", {"actions": ["shout"]}, {}, 400),
        ("ok", {"actions": [], "conditions": "x"}, {}, 400),
        ("ok", {"actions": []}, {"before": ".m.rule.master"}, 400),
        ("ok", {"actions": []}, {"after": "missing"}, 404),
    ]
    for rule_id, body, params, status in cases:
        response = api.client.put(f"{RULES}/override/{rule_id}", headers=alice.headers,
                                  json=body, params=params)
        assert response.status_code == status, (rule_id, body, params, response.text)
    assert "ok" not in _ids(api, alice, "override")
    assert api.client.delete(f"{RULES}/override/.m.rule.master", headers=alice.headers).status_code == 400
    assert api.client.put(f"{RULES}/override/x", json={"actions": []}).status_code == 401


def test_enabled_and_actions_of_defaults_and_user_rules(api: Api, alice: Account, bob: Account) -> None:
    url = f"{RULES}/override/.m.rule.master"
    assert api.client.put(f"{url}/enabled", headers=alice.headers, json={"enabled": True}).status_code == 200
    assert api.client.get(f"{url}/enabled", headers=alice.headers).json() == {"enabled": True}
    assert api.client.get(f"{url}/enabled", headers=bob.headers).json() == {"enabled": False}
    msg = f"{RULES}/underride/.m.rule.message/actions"
    assert api.client.put(msg, headers=alice.headers, json={"actions": ["dont_notify"]}).status_code == 200
    assert api.client.get(msg, headers=alice.headers).json() == {"actions": ["dont_notify"]}
    api.client.put(f"{RULES}/sender/@bob:example.test", headers=alice.headers, json={"actions": []})
    sender = f"{RULES}/sender/@bob:example.test"
    assert api.client.put(f"{sender}/enabled", headers=alice.headers, json={"enabled": False}).status_code == 200
    assert api.client.get(sender, headers=alice.headers).json()["enabled"] is False
    missing = api.client.put(f"{RULES}/override/nope/enabled", headers=alice.headers, json={"enabled": True})
    assert missing.status_code == 404
    missing_default = api.client.put(f"{RULES}/override/.m.rule.nope/actions", headers=alice.headers,
                                     json={"actions": []})
    assert missing_default.status_code == 404
    bad = api.client.put(f"{url}/enabled", headers=alice.headers, json={"enabled": "yes"})
    assert bad.status_code == 400


def test_changes_are_mirrored_into_account_data(api: Api, alice: Account) -> None:
    api.client.put(f"{RULES}/override/.m.rule.master/enabled", headers=alice.headers, json={"enabled": True})
    stored = api.client.get(f"{V3}/user/{alice.user_id}/account_data/m.push_rules", headers=alice.headers)
    assert stored.status_code == 200
    assert stored.json() == api.client.get(f"{V3}/pushrules/", headers=alice.headers).json()
    rows = api.call(account_data_db.changed_since, api.env.DB, alice.user_id, 0)
    assert [r["type"] for r in rows] == ["m.push_rules"]


def test_capabilities(api: Api, alice: Account) -> None:
    caps = api.client.get(f"{V3}/capabilities", headers=alice.headers).json()["capabilities"]
    assert caps["m.change_password"] == {"enabled": True}
    assert caps["m.set_displayname"] == {"enabled": True}
    assert caps["m.set_avatar_url"] == {"enabled": True}
    assert caps["m.3pid_changes"] == {"enabled": False}
    assert caps["m.room_versions"]["default"] == api.env.config.default_room_version
    assert caps["m.room_versions"]["available"] == {v: "stable" for v in KNOWN_ROOM_VERSIONS}
    assert api.client.get(f"{V3}/capabilities").status_code == 401
