"""``POST /_matrix/client/v3/search``: the ``room_events`` category.

Spec: client-server API "Server Side Search" and ``POST /search``. ``search_term`` is matched
against the requested ``keys`` (default all: ``content.body`` of messages, ``content.name``,
``content.topic``) through the FTS5 index ``event_search``; every word of the term must match,
as a word prefix. Only events the user may see are searched: rooms the user is or was joined
to (up to the leave, through the history visibility rules), never end-to-end encrypted rooms,
never redacted events. ``filter`` (a RoomEventFilter: rooms, types, senders, ``limit``, default
10) narrows the results. ``order_by`` ``rank`` (the default: best match first, ``rank`` is the
negated BM25 score, higher is closer) or ``recent`` (newest first). ``event_context`` adds the
events around each result (``before_limit``/``after_limit``, default 5) with pagination
tokens and, with ``include_profile``, the senders' profiles as of the result;
``include_state`` the state of each result's room; ``groupings`` group results by
``room_id`` or ``sender`` (the groups of this page; no per-group pagination, so no group
``next_batch``). ``count`` counts the matches in the user's rooms before visibility and
filters (the spec allows an estimate); ``highlights`` are the query words and the words of
the results they matched. ``next_batch`` continues the same request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from starlette.requests import Request
from starlette.routing import Route

from d1.search import SEARCH_KEYS
from workers.auth import require_user
from workers.client.events_format import JsonDict
from workers.client.history import RoomReader, Row
from workers.client.pagination import paginate
from workers.client.room_reads import reader_for, room_access
from workers.client.visibility import filter_visible
from workers.errors import bad_json, invalid_param, missing_param
from workers.routing import client_routes, read_json_object
from workers.sync.filters import EventFilter
from workers.sync.tokens import current_token

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 100
_BATCH = 100
MAX_ROWS_SCANNED = 2000
GROUP_KEYS = ("room_id", "sender")
# FTS5's unicode61 tokenizer splits on everything but letters, digits and private-use marks.
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r"([rs])(-?\d{1,18})")

_SEARCHABLE_ROWS = (
    " FROM event_search JOIN events e ON e.stream_ordering = event_search.rowid"
    " WHERE event_search MATCH ?"
    " AND e.room_id IN (SELECT room_id FROM current_state WHERE type = 'm.room.member'"
    " AND state_key = ? AND membership IN ('join', 'leave', 'ban'))"
    " AND e.room_id NOT IN (SELECT room_id FROM current_state WHERE type = 'm.room.encryption')"
    " AND e.outlier = 0 AND e.soft_failed = 0 AND e.rejected_reason IS NULL"
    " AND e.redacted_by IS NULL"
)


@dataclass(frozen=True)
class EventContext:
    before_limit: int
    after_limit: int
    include_profile: bool


@dataclass(frozen=True)
class Criteria:
    """A parsed ``room_events`` request."""

    words: list[str]
    columns: list[str]
    event_filter: EventFilter
    order_by: str
    context: EventContext | None
    include_state: bool
    group_by: list[str]

    def fts_query(self) -> str:
        phrases = " ".join('"' + word.replace('"', '""') + '"*' for word in self.words)
        return "{" + " ".join(self.columns) + "} : (" + phrases + ")"


def _non_negative(obj: Mapping[str, Any], key: str, default: int, maximum: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_param(f"{key} must be a non-negative integer")
    return min(value, maximum)


def parse_criteria(criteria: Any) -> Criteria:
    if not isinstance(criteria, dict):
        raise bad_json("room_events must be an object")
    term = criteria.get("search_term")
    if term is None:
        raise missing_param("room_events.search_term is required")
    if not isinstance(term, str):
        raise bad_json("search_term must be a string")
    keys = criteria.get("keys", list(SEARCH_KEYS))
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k in SEARCH_KEYS for k in keys):
        raise invalid_param(f"keys must be a non-empty list of {', '.join(SEARCH_KEYS)}")
    order_by = criteria.get("order_by", "rank")
    if order_by not in ("rank", "recent"):
        raise invalid_param("order_by must be 'rank' or 'recent'")
    context = None
    raw_context = criteria.get("event_context")
    if raw_context is not None:
        if not isinstance(raw_context, dict):
            raise bad_json("event_context must be an object")
        include_profile = raw_context.get("include_profile", False)
        if not isinstance(include_profile, bool):
            raise bad_json("include_profile must be a boolean")
        context = EventContext(
            _non_negative(raw_context, "before_limit", DEFAULT_CONTEXT, MAX_CONTEXT),
            _non_negative(raw_context, "after_limit", DEFAULT_CONTEXT, MAX_CONTEXT),
            include_profile,
        )
    include_state = criteria.get("include_state", False)
    if not isinstance(include_state, bool):
        raise bad_json("include_state must be a boolean")
    group_by: list[str] = []
    groupings = criteria.get("groupings")
    if groupings is not None:
        groups = groupings.get("group_by", []) if isinstance(groupings, dict) else None
        if not isinstance(groups, list) or not all(
            isinstance(g, dict) and g.get("key") in GROUP_KEYS for g in groups
        ):
            raise invalid_param("groupings.group_by must list {\"key\": \"room_id\" | \"sender\"}")
        group_by = list(dict.fromkeys(g["key"] for g in groups))
    return Criteria(
        words=[w.casefold() for w in dict.fromkeys(_WORD.findall(term))],
        columns=[SEARCH_KEYS[k] for k in dict.fromkeys(keys)],
        event_filter=EventFilter.parse(criteria.get("filter")),
        order_by=order_by,
        context=context,
        include_state=include_state,
        group_by=group_by,
    )


def _parse_next_batch(token: str | None, order_by: str) -> int | None:
    if token is None:
        return None
    match = _TOKEN.fullmatch(token)
    if match is None or match.group(1) != ("r" if order_by == "rank" else "s"):
        raise invalid_param("Invalid next_batch token")
    return int(match.group(2))


async def _candidates(
    reader: RoomReader, criteria: Criteria, position: int | None
) -> list[Row]:
    """A batch of matching rows with their ``score`` (BM25, lower is better), in the
    requested order from ``position`` (an offset for ``rank``, a stream ordering for
    ``recent``)."""
    sql = "SELECT e.*, bm25(event_search) AS score" + _SEARCHABLE_ROWS
    params: list[Any] = [criteria.fts_query(), reader.user_id]
    rooms = criteria.event_filter.rooms
    if rooms is not None and len(rooms) <= 50:
        sql += f" AND e.room_id IN ({','.join('?' * len(rooms))})"
        params.extend(rooms)
    if criteria.order_by == "recent":
        if position is not None:
            sql += " AND e.stream_ordering < ?"
            params.append(position)
        sql += " ORDER BY e.stream_ordering DESC LIMIT ?"
        params.append(_BATCH)
    else:
        sql += " ORDER BY score, e.stream_ordering DESC LIMIT ? OFFSET ?"
        params.extend([_BATCH, position or 0])
    rows = (await reader.db.prepare(sql).bind(*params).all()).results
    reader.remember(rows)
    return rows


def _passes(row: Row, event_filter: EventFilter) -> bool:
    content = json.loads(row["json"]).get("content")
    return event_filter.allows(
        {"type": row["type"], "sender": row["sender"], "room_id": row["room_id"], "content": content}
    )


async def find_results(
    reader: RoomReader, criteria: Criteria, start: int | None, limit: int
) -> tuple[list[Row], int | None]:
    """Up to ``limit`` visible, filter-passing matches and the position to continue from
    (None when there are no more)."""
    out: list[Row] = []
    position = start
    scanned = 0
    while len(out) < limit and scanned < MAX_ROWS_SCANNED:
        batch = await _candidates(reader, criteria, position)
        if not batch:
            return out, None
        candidates = [r for r in batch if _passes(r, criteria.event_filter)]
        visible = {r["event_id"] for r in await filter_visible(reader, candidates, reader.user_id)}
        for index, row in enumerate(batch):
            position = (
                row["stream_ordering"] if criteria.order_by == "recent" else scanned + (start or 0) + index + 1
            )
            if row["event_id"] in visible:
                out.append(row)
                if len(out) == limit:
                    more = len(batch) == _BATCH or index < len(batch) - 1
                    return out, position if more else None
        scanned += len(batch)
        if len(batch) < _BATCH:
            return out, None
    return out, position


def highlights(criteria: Criteria, rows: list[Row]) -> list[str]:
    words = set(criteria.words)
    for row in rows:
        content = json.loads(row["json"]).get("content")
        if not isinstance(content, dict):
            continue
        for key in ("body", "name", "topic"):
            if key in criteria.columns and isinstance(content.get(key), str):
                for word in _WORD.findall(content[key]):
                    if any(word.casefold().startswith(w) for w in criteria.words):
                        words.add(word)
    return sorted(words)


async def _context(
    reader: RoomReader, row: Row, context: EventContext, base: Any
) -> JsonDict:
    """The events around a result, as ``/context`` gives them (spec: "Event Context")."""
    everything = EventFilter()
    position = row["stream_ordering"]
    before, _ = await paginate(
        reader, row["room_id"], start=position - 1, stop=None, backwards=True,
        limit=context.before_limit, event_filter=everything,
    ) if context.before_limit else ([], None)
    after, _ = await paginate(
        reader, row["room_id"], start=position, stop=None, backwards=False,
        limit=context.after_limit, event_filter=everything,
    ) if context.after_limit else ([], None)
    out: JsonDict = {
        "events_before": await reader.serialize(before),
        "events_after": await reader.serialize(after),
        "start": base.with_events((before[-1]["stream_ordering"] if before else position) - 1).encode(),
        "end": base.with_events(after[-1]["stream_ordering"] if after else position).encode(),
    }
    if context.include_profile:
        state = await reader.state_after(row)
        profiles: JsonDict = {}
        for sender in dict.fromkeys(r["sender"] for r in [*before, row, *after]):
            member = await reader.content_of(state.get(("m.room.member", sender)))
            profile = {k: member[k] for k in ("displayname", "avatar_url") if isinstance(member.get(k), str)}
            profiles[sender] = profile
        out["profile_info"] = profiles
    return out


async def _room_events(
    reader: RoomReader, env: Any, criteria: Criteria, next_batch: str | None
) -> JsonDict:
    start = _parse_next_batch(next_batch, criteria.order_by)
    limit = min(criteria.event_filter.timeline_limit(DEFAULT_LIMIT), MAX_LIMIT)
    if not criteria.words or limit == 0 or criteria.event_filter.allows_nothing():
        return {"count": 0, "highlights": [], "results": []}
    rows, end = await find_results(reader, criteria, start, limit)
    count = await reader.db.prepare("SELECT COUNT(*) AS n" + _SEARCHABLE_ROWS).bind(
        criteria.fts_query(), reader.user_id
    ).first("n")
    events = {e["event_id"]: e for e in await reader.serialize(rows)}
    base = await current_token(env.DB) if criteria.context is not None else None
    results: list[JsonDict] = []
    for row in rows:
        if row["event_id"] not in events:
            continue
        result: JsonDict = {"rank": -float(row["score"]), "result": events[row["event_id"]]}
        if criteria.context is not None:
            result["context"] = await _context(reader, row, criteria.context, base)
        results.append(result)
    body: JsonDict = {"count": int(count or 0), "highlights": highlights(criteria, rows), "results": results}
    if criteria.group_by:
        groups: JsonDict = {}
        for key in criteria.group_by:
            by_value: JsonDict = {}
            for row in rows:
                group = by_value.setdefault(row[key], {"results": [], "order": len(by_value) + 1})
                group["results"].append(row["event_id"])
            groups[key] = by_value
        body["groups"] = groups
    if criteria.include_state:
        state: JsonDict = {}
        for room_id in dict.fromkeys(r["room_id"] for r in rows):
            access = await room_access(reader, room_id)
            state_map = await reader.state_at(room_id, access.upto)
            state[room_id] = await reader.serialize(await reader.state_rows(state_map))
        body["state"] = state
    if end is not None:
        body["next_batch"] = f"{'r' if criteria.order_by == 'rank' else 's'}{end}"
    return body


async def search(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    body = await read_json_object(request)
    categories = body.get("search_categories")
    if categories is None:
        raise missing_param("search_categories is required")
    if not isinstance(categories, dict):
        raise bad_json("search_categories must be an object")
    out: JsonDict = {}
    if "room_events" in categories:
        criteria = parse_criteria(categories["room_events"])
        out["room_events"] = await _room_events(
            reader_for(env, requester), env, criteria, request.query_params.get("next_batch")
        )
    return {"search_categories": out}


routes: list[Route] = [*client_routes("/search", search, ["POST"])]
