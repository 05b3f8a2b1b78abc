"""Which actions a user's push ruleset gives an event: pure, no I/O.

Spec: client-server API "Push Rules". The kinds are checked in the order ``override``,
``content``, ``room``, ``sender``, ``underride``, and within a kind in the ruleset's order
(highest priority first: ``workers.client.push_rule_defaults.ruleset`` builds it, master
first, then the user's rules, then the other server defaults). The first enabled rule that
matches decides; a disabled rule never matches; no match means no notification. Room rules
match events of the room named by their ``rule_id``, sender rules events from the user named
by theirs, content rules a ``content.body`` that the ``pattern`` glob matches at word
boundaries. "Homeservers MUST NOT notify the Push Gateway for events that the user has sent
themselves": the user's own events get no actions.

Actions: ``notify`` makes a notification; ``{"set_tweak": name, "value": v}`` sets a tweak
(``highlight`` with no value means true; no highlight tweak means false). The historical
``dont_notify`` and ``coalesce`` are stripped, so ``["dont_notify"]`` means ``[]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Sequence

from workers.client.push_rule_defaults import KINDS
from workers.push.conditions import PushContext, condition_matches, event_match

Ruleset = Mapping[str, Sequence[Mapping[str, Any]]]
HISTORICAL_ACTIONS = ("dont_notify", "coalesce")


@dataclass(frozen=True)
class PushDecision:
    """The outcome for one user and one event: the matched rule and its actions."""

    rule_id: str | None = None
    kind: str | None = None
    actions: list[Any] = field(default_factory=list)

    @property
    def notify(self) -> bool:
        return "notify" in self.actions

    @property
    def highlight(self) -> bool:
        return bool(tweaks(self.actions).get("highlight", False))


NO_MATCH = PushDecision()


def clean_actions(actions: Any) -> list[Any]:
    """The rule's actions without the historical ones (and without malformed entries)."""
    if not isinstance(actions, list):
        return []
    return [
        a for a in actions
        if (isinstance(a, str) and a not in HISTORICAL_ACTIONS)
        or (isinstance(a, Mapping) and isinstance(a.get("set_tweak"), str))
    ]


def tweaks(actions: Sequence[Any]) -> dict[str, Any]:
    """The tweaks the actions set (later ones win). ``highlight`` without a value is true;
    with a value, only ``true`` highlights."""
    out: dict[str, Any] = {}
    for action in actions:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            name = action["set_tweak"]
            if name == "highlight":
                out[name] = action.get("value", True) is True
            elif "value" in action:
                out[name] = action["value"]
    return out


def rule_matches(
    kind: str, rule: Mapping[str, Any], event: Mapping[str, Any], context: PushContext
) -> bool:
    """Whether an enabled rule of ``kind`` matches the event (a disabled one never does)."""
    if rule.get("enabled", True) is not True:
        return False
    if kind in ("override", "underride"):
        conditions = rule.get("conditions", [])
        if not isinstance(conditions, list):
            return False
        for condition in conditions:
            if not (type(condition) is dict or isinstance(condition, Mapping)):
                return False
            if not condition_matches(condition, event, context):
                return False
        return True
    if kind == "content":
        return event_match(event, "content.body", rule.get("pattern"))
    if kind == "room":
        return event.get("room_id") == rule.get("rule_id")
    if kind == "sender":
        return event.get("sender") == rule.get("rule_id")
    return False


def evaluate(event: Mapping[str, Any], ruleset: Ruleset, context: PushContext) -> PushDecision:
    """The decision of the user's ruleset (``{kind: [rule, ...]}``, the ``global`` object of
    ``m.push_rules``) for an event (its PDU or client form)."""
    if event.get("sender") == context.user_id:
        return NO_MATCH
    for kind in KINDS:
        for rule in ruleset.get(kind, ()):
            if rule_matches(kind, rule, event, context):
                return PushDecision(rule.get("rule_id"), kind, clean_actions(rule.get("actions")))
    return NO_MATCH
