"""The server-default push rules and how a user's ruleset is assembled.

Spec: client-server API "Push Notifications" / "Predefined Rules" (v1.17 and later: the
legacy body-matching rules ``.m.rule.contains_user_name``, ``.m.rule.contains_display_name``
and ``.m.rule.roomnotif`` are gone, so there are no default content rules). Default rule IDs
start with a dot. ``.m.rule.master`` outranks every rule; all other defaults rank below the
user's own rules of the same kind.

Pure: the ruleset is a function of the user ID and the user's stored rules.
"""

from __future__ import annotations

from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")
MASTER = ".m.rule.master"
_USER = "[the user's Matrix ID]"

_SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


_DEFAULT_OVERRIDE: list[dict[str, Any]] = [
    {"rule_id": MASTER, "enabled": False, "conditions": [], "actions": []},
    {
        "rule_id": ".m.rule.suppress_notices",
        "conditions": [_match("content.msgtype", "m.notice")],
        "actions": [],
    },
    {
        "rule_id": ".m.rule.invite_for_me",
        "conditions": [
            _match("type", "m.room.member"),
            _match("content.membership", "invite"),
            _match("state_key", _USER),
        ],
        "actions": ["notify", _SOUND_DEFAULT],
    },
    {
        "rule_id": ".m.rule.member_event",
        "conditions": [_match("type", "m.room.member")],
        "actions": [],
    },
    {
        "rule_id": ".m.rule.is_user_mention",
        "conditions": [
            {"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
             "value": _USER},
        ],
        "actions": ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
    },
    {
        "rule_id": ".m.rule.is_room_mention",
        "conditions": [
            {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        "actions": ["notify", _HIGHLIGHT],
    },
    {
        "rule_id": ".m.rule.tombstone",
        "conditions": [_match("type", "m.room.tombstone"), _match("state_key", "")],
        "actions": ["notify", _HIGHLIGHT],
    },
    {
        "rule_id": ".m.rule.reaction",
        "conditions": [_match("type", "m.reaction")],
        "actions": [],
    },
    {
        "rule_id": ".m.rule.room.server_acl",
        "conditions": [_match("type", "m.room.server_acl"), _match("state_key", "")],
        "actions": [],
    },
    {
        "rule_id": ".m.rule.suppress_edits",
        "conditions": [
            {"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
             "value": "m.replace"},
        ],
        "actions": [],
    },
]

_DEFAULT_UNDERRIDE: list[dict[str, Any]] = [
    {
        "rule_id": ".m.rule.call",
        "conditions": [_match("type", "m.call.invite")],
        "actions": ["notify", {"set_tweak": "sound", "value": "ring"}],
    },
    {
        "rule_id": ".m.rule.encrypted_room_one_to_one",
        "conditions": [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
        "actions": ["notify", _SOUND_DEFAULT],
    },
    {
        "rule_id": ".m.rule.room_one_to_one",
        "conditions": [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
        "actions": ["notify", _SOUND_DEFAULT],
    },
    {
        "rule_id": ".m.rule.message",
        "conditions": [_match("type", "m.room.message")],
        "actions": ["notify"],
    },
    {
        "rule_id": ".m.rule.encrypted",
        "conditions": [_match("type", "m.room.encrypted")],
        "actions": ["notify"],
    },
]


def _substitute(value: Any, user_id: str) -> Any:
    """A copy of the JSON ``value`` (fresh lists and dicts all the way down) with the user's
    ID in place of the placeholder."""
    if value == _USER:
        return user_id
    if isinstance(value, list):
        return [_substitute(v, user_id) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, user_id) for k, v in value.items()}
    return value


def default_rules(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The server-default rules of every kind for ``user_id``, in priority order, each with
    ``default: true`` and ``enabled`` set."""
    rules: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for kind, definitions in (("override", _DEFAULT_OVERRIDE), ("underride", _DEFAULT_UNDERRIDE)):
        for definition in definitions:
            rule = _substitute(definition, user_id)  # a deep copy: the definition stays as it is
            rule.setdefault("enabled", True)
            rule["default"] = True
            rules[kind].append(rule)
    return rules


def is_default_rule_id(rule_id: str) -> bool:
    return rule_id.startswith(".")


def user_rule_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored user rule (``kind``, ``rule_id``, ``definition``, ``enabled``, ``actions``) as
    the client sees it. Room and sender rules carry only their ID and actions (their
    condition is implied by the ID)."""
    rule: dict[str, Any] = {
        "rule_id": row["rule_id"],
        "default": False,
        "enabled": True if row["enabled"] is None else bool(row["enabled"]),
        "actions": row["actions"] or [],
    }
    definition = row["definition"] or {}
    if row["kind"] == "content":
        rule["pattern"] = definition.get("pattern", "")
    elif row["kind"] in ("override", "underride"):
        rule["conditions"] = definition.get("conditions", [])
    return rule


def ruleset(user_id: str, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The user's ``global`` ruleset: master, then user rules (highest priority first), then
    the other defaults, per kind; with the user's changes to defaults applied."""
    defaults = default_rules(user_id)
    changes = {(r["kind"], r["rule_id"]): r for r in rows if r["is_default"]}
    for kind, rules in defaults.items():
        for rule in rules:
            change = changes.get((kind, rule["rule_id"]))
            if change is not None:
                if change["enabled"] is not None:
                    rule["enabled"] = bool(change["enabled"])
                if change["actions"] is not None:
                    rule["actions"] = change["actions"]
    result: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        own = sorted(
            (r for r in rows if r["kind"] == kind and not r["is_default"]),
            key=lambda r: -r["priority"],
        )
        head = [r for r in defaults[kind] if r["rule_id"] == MASTER]
        tail = [r for r in defaults[kind] if r["rule_id"] != MASTER]
        result[kind] = head + [user_rule_json(r) for r in own] + tail
    return result


def find_rule(
    rules: dict[str, list[dict[str, Any]]], kind: str, rule_id: str
) -> dict[str, Any] | None:
    return next((r for r in rules.get(kind, []) if r["rule_id"] == rule_id), None)
