"""Push rules API: ``GET /pushrules/``, ``GET /pushrules/global/``,
``GET/PUT/DELETE /pushrules/global/{kind}/{ruleId}`` and ``GET/PUT .../enabled`` and
``.../actions``.

Spec: client-server API "Push Rules: API" (pushrules.yaml). Rules are stored per user
(``d1.push_rules``); every change also rewrites the user's ``m.push_rules`` global account
data in the same transaction (spec "Push Rules: Events": the ruleset is delivered as that
account data event), so sync sees push rule changes on the account_data stream. For users
who never changed a rule there is no such row: sync should then send ``push_rules_for``.
Evaluation of rules against events is not done here.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

from starlette.requests import Request

from d1 import account_data as account_data_db
from d1 import push_rules as push_rules_db
from workers.auth import require_user
from workers.client import client_routes
from workers.client.push_rule_defaults import (
    KINDS,
    default_rules,
    find_rule,
    is_default_rule_id,
    ruleset,
)
from workers.errors import Codes, MatrixError
from workers.routing import check_stored_size, read_json_object

Rows = list[dict[str, Any]]
PUSH_RULES_TYPE = "m.push_rules"
SIMPLE_ACTIONS = ("notify", "dont_notify", "coalesce")


async def push_rules_for(env: Any, user_id: str) -> dict[str, Any]:
    """The content of the user's ``m.push_rules`` event: ``{"global": ruleset}``."""
    return {"global": ruleset(user_id, await push_rules_db.load_rows(env.DB, user_id))}


def _kind(request: Request) -> str:
    kind: str = request.path_params["kind"]
    if kind not in KINDS:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown push rule kind {kind!r}")
    return kind


async def _existing_rule(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    rules = (await push_rules_for(env, requester.user_id))["global"]
    rule = find_rule(rules, _kind(request), request.path_params["rule_id"])
    if rule is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Unknown push rule")
    return rule


async def _change(env: Any, user_id: str, change: Callable[[Rows], Rows]) -> None:
    """Apply ``change`` to the stored rows and refresh ``m.push_rules``, atomically."""

    def run(conn: sqlite3.Connection) -> None:
        rows = change(push_rules_db.load_rows_sync(conn, user_id))
        push_rules_db.replace_rows_sync(conn, user_id, rows)
        content = {"global": ruleset(user_id, rows)}
        for stmt in account_data_db.put_statements(
            env.DB, user_id, account_data_db.GLOBAL, PUSH_RULES_TYPE, content
        ):
            conn.execute(stmt.sql, stmt.params)

    await env.DB.run_in_transaction(run)
    env.NOTIFIER.notify([user_id])  # wake the user's waiting /sync


def _checked_actions(value: Any) -> list[Any]:
    """Actions: "notify", "dont_notify"/"coalesce" (historical, accepted), or a
    ``{"set_tweak": ...}`` object."""
    if not isinstance(value, list):
        raise MatrixError(400, Codes.BAD_JSON, "actions must be a list")
    for action in value:
        if isinstance(action, str):
            if action not in SIMPLE_ACTIONS:
                raise MatrixError(400, Codes.UNRECOGNIZED, f"Unknown action {action!r}")
        elif not (isinstance(action, dict) and isinstance(action.get("set_tweak"), str)):
            raise MatrixError(400, Codes.BAD_JSON, f"Invalid action {action!r}")
    check_stored_size(value, "actions")
    return value


def _checked_definition(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    if kind == "content":
        pattern = body.get("pattern")
        if not isinstance(pattern, str):
            raise MatrixError(400, Codes.MISSING_PARAM, "content rules need a pattern")
        return {"pattern": pattern}
    if kind in ("override", "underride"):
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list) or not all(
            isinstance(c, dict) and isinstance(c.get("kind"), str) for c in conditions
        ):
            raise MatrixError(400, Codes.BAD_JSON, "conditions must be a list of objects with a kind")
        return {"conditions": conditions}
    return {}


def _place(
    rows: Rows, kind: str, new: dict[str, Any], before: str | None, after: str | None
) -> Rows:
    """Insert or update the user rule ``new`` among the user rules of ``kind`` and renumber
    their priorities (higher first). ``before``: just above that rule; ``after``: just
    below; neither: updates keep their place, new rules go on top."""
    own = sorted(
        (r for r in rows if r["kind"] == kind and not r["is_default"]), key=lambda r: -r["priority"]
    )
    others = [r for r in rows if not (r["kind"] == kind and not r["is_default"])]
    position = next((i for i, r in enumerate(own) if r["rule_id"] == new["rule_id"]), None)
    anchor_id = before if before is not None else after
    if anchor_id is None:
        if position is not None:
            own[position] = new
        else:
            own.insert(0, new)
    else:
        if is_default_rule_id(anchor_id):
            raise MatrixError(
                400, Codes.INVALID_PARAM, "Rules cannot be placed relative to server-default rules"
            )
        if position is not None:
            own.pop(position)
        anchor = next((i for i, r in enumerate(own) if r["rule_id"] == anchor_id), None)
        if anchor is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"No user rule {anchor_id!r} to place against")
        own.insert(anchor if before is not None else anchor + 1, new)
    for index, row in enumerate(own):
        row["priority"] = len(own) - index
    return others + own


async def get_all(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    return await push_rules_for(env, requester.user_id)


async def get_global(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    return (await push_rules_for(env, requester.user_id))["global"]


async def get_rule(request: Request, env: Any) -> dict[str, Any]:
    return await _existing_rule(request, env)


async def put_rule(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    kind = _kind(request)
    rule_id: str = request.path_params["rule_id"]
    if is_default_rule_id(rule_id):
        raise MatrixError(400, Codes.INVALID_PARAM, "Rule IDs starting with '.' are reserved")
    if "/" in rule_id or "\\" in rule_id or not rule_id:
        raise MatrixError(400, Codes.INVALID_PARAM, "Rule IDs may not contain '/' or '\\'")
    body = await read_json_object(request)
    actions = _checked_actions(body.get("actions"))
    definition = _checked_definition(kind, body)
    check_stored_size(definition, "The rule")
    before = request.query_params.get("before")
    after = request.query_params.get("after")

    def change(rows: Rows) -> Rows:
        existing = next(
            (r for r in rows if r["kind"] == kind and r["rule_id"] == rule_id and not r["is_default"]),
            None,
        )
        new = {
            "kind": kind, "rule_id": rule_id, "is_default": False,
            "priority": existing["priority"] if existing else 0,
            "definition": definition, "actions": actions,
            "enabled": existing["enabled"] if existing else None,
        }
        return _place(rows, kind, new, before, after)

    await _change(env, requester.user_id, change)
    return {}


async def delete_rule(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    kind = _kind(request)
    rule_id: str = request.path_params["rule_id"]
    if is_default_rule_id(rule_id):
        if find_rule(default_rules(requester.user_id), kind, rule_id) is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown push rule")
        raise MatrixError(400, Codes.INVALID_PARAM, "Server-default rules cannot be deleted")

    def change(rows: Rows) -> Rows:
        kept = [r for r in rows if not (r["kind"] == kind and r["rule_id"] == rule_id)]
        if len(kept) == len(rows):
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown push rule")
        return kept

    await _change(env, requester.user_id, change)
    return {}


async def get_enabled(request: Request, env: Any) -> dict[str, Any]:
    return {"enabled": (await _existing_rule(request, env))["enabled"]}


async def get_actions(request: Request, env: Any) -> dict[str, Any]:
    return {"actions": (await _existing_rule(request, env))["actions"]}


async def _set_attribute(request: Request, env: Any, column: str, value: Any) -> None:
    """Set ``enabled`` or ``actions`` on an existing user or server-default rule."""
    requester = await require_user(request, env)
    kind = _kind(request)
    rule_id: str = request.path_params["rule_id"]
    user_id = requester.user_id
    is_default = is_default_rule_id(rule_id)
    if is_default and find_rule(default_rules(user_id), kind, rule_id) is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Unknown push rule")

    def change(rows: Rows) -> Rows:
        row = next((r for r in rows if r["kind"] == kind and r["rule_id"] == rule_id), None)
        if row is None:
            if not is_default:
                raise MatrixError(404, Codes.NOT_FOUND, "Unknown push rule")
            row = {
                "kind": kind, "rule_id": rule_id, "is_default": True, "priority": 0,
                "definition": None, "enabled": None, "actions": None,
            }
            rows = [*rows, row]
        row[column] = value
        return rows

    await _change(env, user_id, change)


async def put_enabled(request: Request, env: Any) -> dict[str, Any]:
    body = await read_json_object(request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise MatrixError(400, Codes.BAD_JSON, "enabled must be a boolean")
    await _set_attribute(request, env, "enabled", enabled)
    return {}


async def put_actions(request: Request, env: Any) -> dict[str, Any]:
    body = await read_json_object(request)
    actions = _checked_actions(body.get("actions"))
    await _set_attribute(request, env, "actions", actions)
    return {}


_RULE = "/pushrules/global/{kind}/{rule_id}"

routes = [
    *client_routes("/pushrules/", get_all, ["GET"]),
    *client_routes("/pushrules", get_all, ["GET"]),
    *client_routes("/pushrules/global/", get_global, ["GET"]),
    *client_routes(_RULE, get_rule, ["GET"]),
    *client_routes(_RULE, put_rule, ["PUT"]),
    *client_routes(_RULE, delete_rule, ["DELETE"]),
    *client_routes(_RULE + "/enabled", get_enabled, ["GET"]),
    *client_routes(_RULE + "/enabled", put_enabled, ["PUT"]),
    *client_routes(_RULE + "/actions", get_actions, ["GET"]),
    *client_routes(_RULE + "/actions", put_actions, ["PUT"]),
]
