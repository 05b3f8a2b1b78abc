"""The pure parts of ``workers.client.upgrade_user_state``."""

from __future__ import annotations

from typing import Any

from workers.client.upgrade_user_state import direct_with, merged_tags, predecessor_of, rules_for_new_room

OLD, NEW = "!old:hs.test", "!new:hs.test"


def row(kind: str, rule_id: str, priority: int, definition: Any = None, is_default: bool = False) -> dict[str, Any]:
    return {"kind": kind, "rule_id": rule_id, "is_default": is_default, "priority": priority,
            "definition": definition, "enabled": None, "actions": ["notify"]}


def test_predecessor_of() -> None:
    assert predecessor_of({"predecessor": {"room_id": OLD, "event_id": "$e"}}) == OLD
    for content in (None, {}, {"predecessor": OLD}, {"predecessor": {"room_id": 5}}, {"predecessor": {"room_id": "x"}}):
        assert predecessor_of(content) is None


def test_rules_for_new_room() -> None:
    cond = {"kind": "event_match", "key": "room_id", "pattern": OLD}
    rows = [
        row("room", OLD, 1, {}),
        row("override", f"keep-{OLD}", 2, {"conditions": [cond]}),
        row("override", "top", 3, {"conditions": []}),
        row("underride", "other", 1, {"conditions": [{**cond, "pattern": "!else:hs.test"}]}),
        row("override", ".m.rule.master", 0, None, is_default=True),
    ]
    out = rules_for_new_room(rows, OLD, NEW)
    assert out is not None and out[: len(rows)] == rows  # originals kept unchanged
    added = {(r["kind"], r["rule_id"]): r for r in out[len(rows):]}
    assert set(added) == {("room", NEW), ("override", f"keep-{NEW}")}
    assert added[("override", f"keep-{NEW}")]["definition"] == {"conditions": [{**cond, "pattern": NEW}]}
    assert added[("override", f"keep-{NEW}")]["priority"] == 4  # on top of the user's overrides
    assert rows[1]["definition"] == {"conditions": [cond]}  # the input is not mutated
    assert rules_for_new_room([rows[2], rows[3]], OLD, NEW) is None
    # a copy replaces a rule of the same ID in its place
    again = rules_for_new_room([row("room", OLD, 1, {}), row("room", NEW, 7, {})], OLD, NEW)
    assert again is not None and [(r["rule_id"], r["priority"]) for r in again] == [(OLD, 1), (NEW, 7)]


def test_merged_tags_and_direct() -> None:
    assert merged_tags({"tags": {"a": {"order": 1}}}, {"tags": {"b": {}, "a": {}}}) == {"tags": {"b": {}, "a": {"order": 1}}}
    assert merged_tags({"tags": {"a": {}}}, None) == {"tags": {"a": {}}}
    assert merged_tags({"tags": {}}, None) is None and merged_tags(None, {"tags": {"b": {}}}) is None
    assert direct_with({"@a:x": [OLD], "@b:x": ["!c:x"]}, OLD, NEW) == {"@a:x": [OLD, NEW], "@b:x": ["!c:x"]}
    assert direct_with({"@a:x": [OLD, NEW]}, OLD, NEW) is None
    assert direct_with(None, OLD, NEW) is None and direct_with({"@a:x": "bad"}, OLD, NEW) is None
