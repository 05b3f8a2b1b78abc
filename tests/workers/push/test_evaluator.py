"""Push rule evaluation against the spec's default ruleset, and each condition kind."""

from __future__ import annotations

from typing import Any

import pytest

from workers.client.push_rule_defaults import ruleset
from workers.push.conditions import (
    PushContext,
    condition_matches,
    glob_matches,
    property_at,
    split_path,
)
from workers.push.evaluator import PushDecision, clean_actions, evaluate, tweaks

ME = "@me:hs.test"
BOB = "@bob:hs.test"
ROOM = "!room:hs.test"


def message(body: str = "hello", sender: str = BOB, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message", "sender": sender, "room_id": ROOM,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def ctx(members: int = 3, power: int = 0, **kw: Any) -> PushContext:
    return PushContext(
        user_id=ME, display_name=kw.get("display_name", "Me Myself"), member_count=members,
        sender_power_level=power, notification_levels=kw.get("levels", {"room": 50}),
    )


def defaults(rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return ruleset(ME, rows or [])


# (name, event, context, expected rule_id, notify, highlight, sound)
DEFAULT_CASES: list[tuple[str, dict[str, Any], PushContext, str | None, bool, bool, Any]] = [
    ("group message", message(), ctx(), ".m.rule.message", True, False, None),
    ("one-to-one message", message(), ctx(members=2), ".m.rule.room_one_to_one", True, False, "default"),
    ("own message never", message(sender=ME), ctx(members=2), None, False, False, None),
    ("notice suppressed", message(msgtype="m.notice"), ctx(members=2), ".m.rule.suppress_notices", False, False, None),
    ("user mention", message("hi", **{"m.mentions": {"user_ids": [ME]}}), ctx(),
     ".m.rule.is_user_mention", True, True, "default"),
    ("mention of someone else", message("hi", **{"m.mentions": {"user_ids": ["@x:hs.test"]}}), ctx(),
     ".m.rule.message", True, False, None),
    ("room mention with power", message("@room", **{"m.mentions": {"room": True}}), ctx(power=50),
     ".m.rule.is_room_mention", True, True, None),
    ("room mention without power", message("@room", **{"m.mentions": {"room": True}}), ctx(power=49),
     ".m.rule.message", True, False, None),
    ("room mention, custom level", message("@room", **{"m.mentions": {"room": True}}),
     ctx(power=10, levels={"room": 10}), ".m.rule.is_room_mention", True, True, None),
    ("room mention as a string is not true", message("x", **{"m.mentions": {"room": "true"}}),
     ctx(power=100), ".m.rule.message", True, False, None),
    ("body mention alone no longer highlights (v1.17)", message("hey Me Myself and @me:hs.test"), ctx(),
     ".m.rule.message", True, False, None),
    ("encrypted in a DM", {"type": "m.room.encrypted", "sender": BOB, "room_id": ROOM, "content": {}},
     ctx(members=2), ".m.rule.encrypted_room_one_to_one", True, False, "default"),
    ("encrypted in a group", {"type": "m.room.encrypted", "sender": BOB, "room_id": ROOM, "content": {}},
     ctx(members=5), ".m.rule.encrypted", True, False, None),
    ("call invite", {"type": "m.call.invite", "sender": BOB, "room_id": ROOM, "content": {}}, ctx(),
     ".m.rule.call", True, False, "ring"),
    ("tombstone", {"type": "m.room.tombstone", "state_key": "", "sender": BOB, "room_id": ROOM,
                   "content": {"body": "moved"}}, ctx(), ".m.rule.tombstone", True, True, None),
    ("tombstone with a state key does not highlight",
     {"type": "m.room.tombstone", "state_key": "x", "sender": BOB, "room_id": ROOM, "content": {}},
     ctx(), None, False, False, None),
    ("invite for me", {"type": "m.room.member", "state_key": ME, "sender": BOB, "room_id": ROOM,
                       "content": {"membership": "invite"}}, ctx(), ".m.rule.invite_for_me", True, False, "default"),
    ("invite for someone else", {"type": "m.room.member", "state_key": "@x:hs.test", "sender": BOB,
                                 "room_id": ROOM, "content": {"membership": "invite"}}, ctx(),
     ".m.rule.member_event", False, False, None),
    ("join", {"type": "m.room.member", "state_key": BOB, "sender": BOB, "room_id": ROOM,
              "content": {"membership": "join"}}, ctx(members=2), ".m.rule.member_event", False, False, None),
    ("reaction", {"type": "m.reaction", "sender": BOB, "room_id": ROOM,
                  "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "y"}}},
     ctx(members=2), ".m.rule.reaction", False, False, None),
    ("edit suppressed", message("* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}),
     ctx(members=2), ".m.rule.suppress_edits", False, False, None),
    ("server ACL", {"type": "m.room.server_acl", "state_key": "", "sender": BOB, "room_id": ROOM,
                    "content": {}}, ctx(), ".m.rule.room.server_acl", False, False, None),
    ("topic change matches nothing", {"type": "m.room.topic", "state_key": "", "sender": BOB,
                                      "room_id": ROOM, "content": {"topic": "t"}}, ctx(), None, False, False, None),
]


@pytest.mark.parametrize(
    "event, context, rule_id, notify, highlight, sound",
    [case[1:] for case in DEFAULT_CASES],
    ids=[case[0] for case in DEFAULT_CASES],
)
def test_default_rules(
    event: dict[str, Any], context: PushContext, rule_id: str | None, notify: bool,
    highlight: bool, sound: Any,
) -> None:
    decision = evaluate(event, defaults(), context)
    assert decision.rule_id == rule_id
    assert decision.notify is notify
    assert decision.highlight is highlight
    assert tweaks(decision.actions).get("sound") == sound


def test_master_rule_enabled_silences_everything() -> None:
    rules = defaults([{"kind": "override", "rule_id": ".m.rule.master", "is_default": True,
                       "priority": 0, "definition": None, "enabled": True, "actions": None}])
    mention = message("hi", **{"m.mentions": {"user_ids": [ME]}})
    decision = evaluate(mention, rules, ctx())
    assert decision.rule_id == ".m.rule.master" and not decision.notify


def test_disabled_default_rule_is_skipped() -> None:
    rules = defaults([{"kind": "override", "rule_id": ".m.rule.suppress_notices", "is_default": True,
                       "priority": 0, "definition": None, "enabled": False, "actions": None}])
    decision = evaluate(message(msgtype="m.notice"), rules, ctx())
    assert decision.rule_id == ".m.rule.message" and decision.notify


def _user_rule(kind: str, rule_id: str, actions: list[Any], priority: int = 1, **definition: Any) -> dict[str, Any]:
    return {"kind": kind, "rule_id": rule_id, "is_default": False, "priority": priority,
            "definition": definition, "enabled": None, "actions": actions}


def test_kind_order_content_before_room_before_sender_before_underride() -> None:
    rows = [
        _user_rule("content", "cake", ["notify", {"set_tweak": "sound", "value": "cake.wav"}], pattern="cake"),
        _user_rule("room", ROOM, []),
        _user_rule("sender", BOB, ["notify", {"set_tweak": "highlight"}]),
    ]
    rules = defaults(rows)
    assert evaluate(message("I like cake!"), rules, ctx()).rule_id == "cake"
    assert evaluate(message("I like pie"), rules, ctx()).rule_id == ROOM  # room silences it
    other_room = {**message("pie"), "room_id": "!other:hs.test"}
    decision = evaluate(other_room, rules, ctx())
    assert decision.rule_id == BOB and decision.highlight
    # The user's override outranks the default overrides (but not the master rule).
    rules = defaults([_user_rule("override", "all", ["notify"], conditions=[])])
    assert evaluate(message(msgtype="m.notice"), rules, ctx()).rule_id == "all"


def test_priority_within_a_kind() -> None:
    rows = [
        _user_rule("content", "tea", ["notify"], priority=1, pattern="tea"),
        _user_rule("content", "time", ["notify", {"set_tweak": "highlight"}], priority=2, pattern="time"),
    ]
    decision = evaluate(message("It's time for tea"), defaults(rows), ctx())
    assert decision.rule_id == "time" and decision.highlight


def test_unknown_condition_disables_the_rule() -> None:
    rows = [_user_rule("override", "weird", ["notify", {"set_tweak": "highlight"}],
                       conditions=[{"kind": "org.example.unknown"}])]
    assert evaluate(message(), defaults(rows), ctx()).rule_id == ".m.rule.message"


def test_historical_actions_are_stripped() -> None:
    assert clean_actions(["dont_notify"]) == []
    assert clean_actions(["notify", "coalesce", {"set_tweak": "sound", "value": "x"}, 3]) == [
        "notify", {"set_tweak": "sound", "value": "x"}]
    rows = [_user_rule("sender", BOB, ["dont_notify"])]
    decision = evaluate(message(), defaults(rows), ctx())
    assert decision == PushDecision(BOB, "sender", [])
    assert not decision.notify


@pytest.mark.parametrize("actions, highlight", [
    ([{"set_tweak": "highlight"}], True),
    ([{"set_tweak": "highlight", "value": True}], True),
    ([{"set_tweak": "highlight", "value": False}], False),
    ([{"set_tweak": "highlight", "value": "yes"}], False),
    (["notify"], False),
])
def test_highlight_tweak(actions: list[Any], highlight: bool) -> None:
    assert PushDecision("r", "override", actions).highlight is highlight


# --- conditions ----------------------------------------------------------------------------

@pytest.mark.parametrize("key, parts", [
    ("content.body", ["content", "body"]),
    ("content.m\\.relates_to.rel_type", ["content", "m.relates_to", "rel_type"]),
    ("content.m\\\\foo", ["content", "m\\foo"]),
    ("content.a\\xb", ["content", "a\\xb"]),
    ("type", ["type"]),
])
def test_split_path(key: str, parts: list[str]) -> None:
    assert split_path(key) == parts


@pytest.mark.parametrize("pattern, value, whole, word", [
    ("lunc?*", "Lunch plans", True, True),   # spec example: topic
    ("lunc?*", "LUNCH", True, True),
    ("lunc?*", " lunch", False, True),
    ("lunc?*", "lunc", False, False),
    ("ex*ple", "An example event.", False, True),  # spec example: body
    ("ex*ple", "exple", True, True),
    ("ex*ple", "An exciting triple-whammy", False, True),
    ("cake", "pancakes", False, False),
    ("cake", "cake_pop", False, False),      # _ is a word character
    ("cake", "cake-pop", False, True),
    ("a.b", "axb", False, False),            # regex characters are literal
    ("[x]", "[x]", True, True),
])
def test_globs(pattern: str, value: str, whole: bool, word: bool) -> None:
    assert glob_matches(pattern, value) is whole
    assert glob_matches(pattern, value, word_boundary=True) is word


def _cond(**condition: Any) -> dict[str, Any]:
    return condition


@pytest.mark.parametrize("condition, event, expected", [
    (_cond(kind="event_match", key="content.topic", pattern="*"), {"content": {"topic": None}}, False),
    (_cond(kind="event_match", key="content.topic", pattern="*"), {"content": {}}, False),
    (_cond(kind="event_match", key="content.n", pattern="1"), {"content": {"n": 1}}, False),
    (_cond(kind="event_property_is", key="content.m\\.federate", value=True), {"content": {"m.federate": True}}, True),
    (_cond(kind="event_property_is", key="content.m\\.federate", value=True), {"content": {"m.federate": "true"}}, False),
    (_cond(kind="event_property_is", key="content.m\\.federate", value=True), {"content": {"m.federate": 1}}, False),
    (_cond(kind="event_property_is", key="content.n", value=1), {"content": {"n": True}}, False),
    (_cond(kind="event_property_is", key="content.n", value=None), {"content": {"n": None}}, True),
    (_cond(kind="event_property_is", key="content.n", value=None), {"content": {}}, False),
    (_cond(kind="event_property_is", key="content.f", value=1.5), {"content": {"f": 1.5}}, False),
    (_cond(kind="event_property_is", key="content.o", value={}), {"content": {"o": {}}}, False),
    (_cond(kind="event_property_contains", key="content.alt_aliases", value="#myroom:example.com"),
     {"content": {"alt_aliases": ["#somewhere:example.org", "#myroom:example.com"]}}, True),
    (_cond(kind="event_property_contains", key="content.alt_aliases", value=":example.com"),
     {"content": {"alt_aliases": ["#myroom:example.com"]}}, False),
    (_cond(kind="event_property_contains", key="content.alt_aliases", value="x"), {"content": {"alt_aliases": "x"}}, False),
    (_cond(kind="event_property_contains", key="content.l", value=1), {"content": {"l": [True, 1]}}, True),
    (_cond(kind="event_property_contains", key="content.l", value=1), {"content": {"l": [True]}}, False),
    (_cond(kind="contains_display_name"), {"content": {"body": "hi me myself!"}}, True),
    (_cond(kind="contains_display_name"), {"content": {"body": "hi me myselfish"}}, False),
    (_cond(kind="contains_display_name"), {"content": {"body": 3}}, False),
])
def test_conditions(condition: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert condition_matches(condition, event, ctx()) is expected


def test_contains_display_name_without_a_name() -> None:
    event = {"content": {"body": "anything"}}
    assert not condition_matches({"kind": "contains_display_name"}, event, ctx(display_name=None))
    assert not condition_matches({"kind": "contains_display_name"}, event, ctx(display_name=""))


@pytest.mark.parametrize("spec, count, expected", [
    ("2", 2, True), ("2", 3, False), ("==2", 2, True), ("<10", 9, True), ("<10", 10, False),
    (">1", 2, True), (">1", 1, False), ("<=10", 10, True), (">=3", 2, False), (">=3", 3, True),
    ("", 2, False), ("=2", 2, False), ("two", 2, False), ("2.0", 2, False), (2, 2, False),
])
def test_room_member_count(spec: Any, count: int, expected: bool) -> None:
    assert condition_matches({"kind": "room_member_count", "is": spec}, {}, ctx(members=count)) is expected


@pytest.mark.parametrize("key, power, levels, expected", [
    ("room", 50, {"room": 50}, True),
    ("room", 49, {"room": 50}, False),
    ("room", float("inf"), {"room": 100}, True),   # a v12 creator
    ("other", 50, {"room": 0}, True),              # absent key: 50
    ("other", 49, {"room": 0}, False),
    (None, 100, {}, False),
])
def test_sender_notification_permission(key: Any, power: Any, levels: dict[str, int], expected: bool) -> None:
    context = ctx(power=power, levels=levels)
    assert condition_matches({"kind": "sender_notification_permission", "key": key}, {}, context) is expected


def test_property_at_missing_paths() -> None:
    event = {"content": {"a": {"b": 1}}}
    assert property_at(event, "content.a.b") == 1
    assert property_at(event, "content.a.c") is not None  # the absent marker, not a value
    assert not condition_matches({"kind": "event_property_is", "key": "content.a.c", "value": None}, event, ctx())


def test_each_ruleset_is_a_fresh_copy_of_the_defaults() -> None:
    """Changing one user's assembled ruleset (as the push rule endpoints do before storing)
    leaves the server defaults, and so the next ruleset, as they were."""
    first = ruleset("@a:example.test", [])
    for rules in first.values():
        for rule in rules:
            rule["enabled"] = "changed"
            for condition in rule.get("conditions", []):
                condition["pattern"] = "changed"
            rule.get("actions", []).append("changed")
    second = ruleset("@a:example.test", [])
    assert all(rule["enabled"] != "changed" for rules in second.values() for rule in rules)
    assert "changed" not in str(second)
    assert second["override"][0]["rule_id"] == ".m.rule.master"
