"""Push actions per user, evaluated lazily and once, and the unread counts of ``/sync``.

Spec: client-server API "Receiving notifications" (unread counts in ``/sync``, updated as
they change, and "the updated notification count from a new event MUST appear in the same
/sync response as the event itself"), "Marking notifications as read" (counts run from the
more advanced of the user's ``m.read`` and ``m.read.private`` receipts) and "Server
behaviour" (push rules are processed for each local user in the room but the sender).

Design. Room events are written only by the room actor, which calls nothing of ours, so
evaluation happens on the reading side, at most once per (user, event):

- ``push_evaluated(user, room).evaluated_upto`` marks how far the room's timeline has been
  evaluated for the user; ``event_push_actions`` holds the events that notified.
- ``ensure_evaluated(user, rooms, upto)`` evaluates each room's timeline events in
  ``(mark, upto]`` (no mark yet: from the user's join, over at most the newest
  ``INITIAL_BACKLOG`` events) with
  the user's ruleset, stores the notifying ones and moves the mark to ``upto``. Only events
  of the user's current membership are evaluated: it starts after the first join that
  follows the user's latest non-join membership, and rows from an earlier membership of
  the room are dropped when a new one begins.
- Whoever reads first pays: a ``/sync`` (for the rooms in its response), ``GET
  /notifications`` (for all joined rooms) or the user's pusher actor (for rooms with new
  events). A sync with nothing new costs two indexed queries per room in its response.
- Counts are one grouped query: notifying rows after the read receipt's event, up to the
  sync's events position, so a receipt resets them at once.

Threads (spec: "Receiving notifications", threaded read receipts, and ``/sync``'s
``unread_thread_notifications``): each row carries its thread (``main`` or the root, up to
3 relation hops away: ``workers.push.threads``) and is
read once the receipt of its thread, or an unthreaded one, reaches it. Without the filter's
``unread_thread_notifications`` a room's counts cover every thread; with it
``unread_notifications`` covers the main timeline only and ``unread_thread_notifications``
maps each thread root with unread notifications to its counts (threads without any, and
the whole object when none has any, are left out).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from d1 import push_actions as actions_db
from d1 import push_rules as push_rules_db
from durable.events.redaction import redact
from workers.client.history import TIMELINE_SQL, RoomReader, Row
from workers.client.push_rule_defaults import ruleset
from workers.push.context import PushContexts
from workers.push.evaluator import Ruleset, evaluate
from workers.push.threads import MAIN_THREAD, ContentLoader, thread_of

JsonDict = dict[str, Any]
PAGE = 200
# A room evaluated for the first time for a user (a join, or data from before this table)
# is evaluated over at most this many of its newest events.
INITIAL_BACKLOG = 1000


async def user_ruleset(reader: RoomReader, user_id: str) -> Ruleset:
    return ruleset(user_id, await push_rules_db.load_rows(reader.db, user_id))


def _join_position_statement(reader: RoomReader, user_id: str, room_id: str) -> Any:
    member = (
        "FROM events WHERE state_key = ? AND type = 'm.room.member' AND room_id = ?"
        f" AND {TIMELINE_SQL}"
    )
    return reader.db.prepare(
        f"SELECT MIN(stream_ordering) AS p {member} AND membership = 'join'"
        f" AND stream_ordering > COALESCE((SELECT MAX(stream_ordering) {member}"
        " AND membership != 'join'), 0)"
    ).bind(user_id, room_id, user_id, room_id)


def _position(value: Any) -> int | None:
    return None if value is None else int(value)


async def current_join_position(reader: RoomReader, user_id: str, room_id: str) -> int | None:
    """The stream ordering of the join that began the user's current membership of the
    room (the first join after their latest other membership), or None if not joined."""
    return _position(await _join_position_statement(reader, user_id, room_id).first("p"))


async def _ruleset_and_join_position(
    reader: RoomReader, user_id: str, room_id: str
) -> tuple[Ruleset, int | None]:
    """``user_ruleset`` and ``current_join_position`` in one hop."""
    rules, joined = await reader.db.read_many([
        push_rules_db.rows_statement(reader.db, user_id),
        _join_position_statement(reader, user_id, room_id),
    ])
    position = _position(joined.results[0]["p"]) if joined.results else None
    return ruleset(user_id, push_rules_db.decode_rows(rules)), position


async def _pdu_as_served(reader: RoomReader, row: Row) -> JsonDict:
    pdu: JsonDict = json.loads(row["json"])
    if row.get("redacted_by") is not None:
        version = await reader.room_version(row["room_id"])
        if version is not None:
            pdu = redact(pdu, version)
    pdu.setdefault("room_id", row["room_id"])
    return pdu


def parent_loader(reader: RoomReader, room_id: str) -> ContentLoader:
    """Parents' contents for ``thread_of`` (here and for threaded receipts): events of
    the same room only."""

    async def load(event_id: str) -> Mapping[str, Any] | None:
        row = await reader.row(event_id)
        if row is None or row["room_id"] != room_id:
            return None
        return await reader.content_of(event_id)

    return load


async def evaluate_rows(
    reader: RoomReader, contexts: PushContexts, user_id: str, rules: Ruleset, rows: Sequence[Row]
) -> list[actions_db.PushActionRow]:
    """The notifying events among ``rows`` for the user."""
    out: list[actions_db.PushActionRow] = []
    for row in rows:
        if row["sender"] == user_id:
            continue
        pdu = await _pdu_as_served(reader, row)
        decision = evaluate(pdu, rules, await contexts.context_for(user_id, row))
        if not decision.notify:
            continue
        content = pdu.get("content")
        thread = await thread_of(content, parent_loader(reader, row["room_id"])) if isinstance(
            content, Mapping) else MAIN_THREAD
        out.append(
            actions_db.PushActionRow(
                event_id=row["event_id"], room_id=row["room_id"],
                stream_ordering=int(row["stream_ordering"]), highlight=decision.highlight,
                actions=decision.actions,
                thread_id=thread,
                ts=int(row["origin_server_ts"]),
            )
        )
    return out


async def _backlog_floor(reader: RoomReader, room_id: str, upto: int) -> int:
    """Where a first evaluation of the room starts at the earliest: before the newest
    ``INITIAL_BACKLOG`` timeline events at or before ``upto`` (0 when it has fewer)."""
    value = await reader.db.prepare(
        f"SELECT stream_ordering FROM events WHERE room_id = ? AND {TIMELINE_SQL}"
        " AND stream_ordering <= ? ORDER BY stream_ordering DESC LIMIT 1 OFFSET ?"
    ).bind(room_id, upto, INITIAL_BACKLOG).first("stream_ordering")
    return 0 if value is None else int(value)


async def _evaluate_room(
    reader: RoomReader, contexts: PushContexts, user_id: str, rules: Ruleset,
    room_id: str, joined_at: int | None, mark: int | None, upto: int,
) -> None:
    """Evaluate the room's events after ``mark`` (see the module notes); ``joined_at``
    from ``current_join_position``."""
    db = reader.db
    if joined_at is None:
        return
    statements = []
    if mark is None:
        start = max(joined_at, await _backlog_floor(reader, room_id, upto))
    else:
        if mark < joined_at:
            statements.append(actions_db.forget_before(db, user_id, room_id, joined_at))
        start = max(mark, joined_at)
    if start >= upto:  # nothing to read (the join is the newest event)
        await db.batch([*statements, actions_db.set_evaluated(db, user_id, room_id, upto)])
        return
    while start < upto:
        rows = (
            await db.prepare(
                f"SELECT * FROM events WHERE room_id = ? AND {TIMELINE_SQL}"
                " AND stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering LIMIT ?"
            ).bind(room_id, start, upto, PAGE).all()
        ).results
        reader.remember(rows)
        found = await evaluate_rows(reader, contexts, user_id, rules, rows)
        statements += [actions_db.insert_action(db, user_id, r) for r in found]
        start = upto if len(rows) < PAGE else int(rows[-1]["stream_ordering"])
        statements.append(actions_db.set_evaluated(db, user_id, room_id, start))
        await db.batch(statements)
        statements = []


async def ensure_evaluated(
    reader: RoomReader, user_id: str, room_ids: Sequence[str], upto: int
) -> None:
    """Evaluate, for the user, every not yet evaluated timeline event at or before ``upto``
    of the given rooms (see the module's design notes)."""
    if not room_ids:
        return
    marks, latest = await actions_db.marks_and_latest(reader.db, user_id, room_ids, upto)
    stale = [r for r in room_ids if marks.get(r, -1) < upto]
    if not stale:
        return
    rules: Ruleset | None = None
    contexts = PushContexts(reader)
    for room_id in stale:
        mark = marks.get(room_id)
        if mark is not None and latest.get(room_id, 0) <= mark:
            continue  # nothing new in the room since the mark
        if rules is None:
            rules, joined_at = await _ruleset_and_join_position(reader, user_id, room_id)
        else:
            joined_at = await current_join_position(reader, user_id, room_id)
        await _evaluate_room(reader, contexts, user_id, rules, room_id, joined_at, mark, upto)


def _counts(pair: tuple[int, int]) -> JsonDict:
    return {"notification_count": pair[0], "highlight_count": pair[1]}


async def unread_notifications(
    reader: RoomReader, user_id: str, room_ids: Sequence[str], upto: int,
    *, per_thread: bool = False,
) -> dict[str, JsonDict]:
    """room_id -> ``{"unread_notifications": {...}}`` for each given room, plus
    ``"unread_thread_notifications"`` (thread root -> counts) when ``per_thread`` and some
    thread has unread notifications; with ``per_thread`` the room counts are the main
    timeline's only."""
    await ensure_evaluated(reader, user_id, room_ids, upto)
    counts = await actions_db.unread_counts(reader.db, user_id, room_ids, upto)
    out: dict[str, JsonDict] = {}
    for room_id in room_ids:
        threads = counts.get(room_id, {})
        if not per_thread:
            total = (sum(n for n, _ in threads.values()), sum(h for _, h in threads.values()))
            out[room_id] = {"unread_notifications": _counts(total)}
            continue
        entry: JsonDict = {"unread_notifications": _counts(threads.get(MAIN_THREAD, (0, 0)))}
        by_root = {t: _counts(c) for t, c in sorted(threads.items()) if t != MAIN_THREAD}
        if by_root:
            entry["unread_thread_notifications"] = by_root
        out[room_id] = entry
    return out


async def fill_unread_counts(
    reader: RoomReader, joined: dict[str, JsonDict], upto: int, *, per_thread: bool = False
) -> None:
    """Set ``unread_notifications`` (and ``unread_thread_notifications`` with
    ``per_thread``, the timeline filter's flag) on every joined room entry of a sync response (those with a timeline and those with only ephemeral news, such
    as the user's new receipt). ``reader`` is the one the response was built with: rows and
    state it loaded are not read again."""
    if not joined:
        return
    counts = await unread_notifications(
        reader, reader.user_id, sorted(joined), upto, per_thread=per_thread
    )
    for room_id, entry in joined.items():
        entry.update(counts[room_id])
