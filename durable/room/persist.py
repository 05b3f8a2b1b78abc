"""The D1 statements that persist a room actor's accepted events, as one batch.

Only the room actor calls this; the batch is committed before anything is acknowledged
(ARCHITECTURE invariant 2), so a crash leaves either all of an event's rows or none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from d1.database import D1Database, PreparedStatement
from d1.relations import insert_relation
from d1.search import insert_search_row
from d1.state import MAX_CHAIN
from durable.events.event import Event


@dataclass
class PersistPlan:
    """Rows to write for a run of new events of one room."""

    room_id: str
    statements: list[PreparedStatement] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    # Index in ``statements`` of each event's INSERT (its result's ``meta.last_row_id`` is the
    # event's stream ordering: the events table's integer primary key).
    event_statements: list[int] = field(default_factory=list)
    # Forward extremity changes, in order: written by the room actor's commit, which merges
    # those of every plan in one D1 batch (a run of 32 messages removes 31 of its own).
    extremity_changes: list[tuple[bool, str]] = field(default_factory=list)


def insert_event(
    db: D1Database,
    plan: PersistPlan,
    event: Event,
    *,
    state_group: str | None,
    outlier: bool = False,
    soft_failed: bool = False,
    local_unsigned: dict[str, Any] | None = None,
    may_be_known: bool = True,
    stream_ordering: int | None = None,
) -> None:
    """Add the event's row. ``may_be_known`` (anything but an event we just built): the event
    may be stored already as an outlier (auth chain, invite); it then enters the DAG with a
    new stream position, so that incremental syncs see it. ``stream_ordering`` is given only
    for backfilled history: a negative position, below every live event, so that no
    incremental sync sees it."""
    json_text = event.json_text
    if json_text is None:
        pdu = dict(event.pdu)
        pdu.pop("unsigned", None)
        json_text = json.dumps(pdu, ensure_ascii=False, separators=(",", ":"))
    if may_be_known:
        plan.statements.append(
            db.prepare("DELETE FROM events WHERE event_id = ? AND outlier = 1").bind(event.event_id)
        )
    plan.statements.append(
        db.prepare(
            "INSERT INTO events (event_id, room_id, type, state_key, sender, membership, depth,"
            " origin_server_ts, json, rejected_reason, soft_failed, outlier, state_group,"
            " local_unsigned, stream_ordering) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        ).bind(
            event.event_id,
            event.room_id,
            event.type,
            event.state_key,
            event.sender,
            event.membership if event.type == "m.room.member" else None,
            event.depth,
            event.origin_server_ts,
            json_text,
            event.rejected_reason,
            int(soft_failed),
            int(outlier),
            state_group,
            None if not local_unsigned else json.dumps(local_unsigned),
            stream_ordering,
        )
    )
    plan.event_ids.append(event.event_id)
    plan.event_statements.append(len(plan.statements) - 1)
    if not outlier and not soft_failed and event.rejected_reason is None:
        # Timeline events only: the search and relations indexes (one row each at most; the
        # search row first, as it takes the rowid of the event's INSERT just before it).
        for index_row in (insert_search_row(db, event), insert_relation(db, event)):
            if index_row is not None:
                plan.statements.append(index_row)


def insert_state_group(
    db: D1Database,
    plan: PersistPlan,
    group_id: str,
    prev_group: str | None,
    chain_len: int,
    delta: list[list[str]],
) -> None:
    plan.statements.append(
        db.prepare(
            "INSERT INTO state_groups (id, room_id, prev_group, chain_len, delta) VALUES (?,?,?,?,?)"
        ).bind(group_id, plan.room_id, prev_group, chain_len, json.dumps(delta))
    )


def next_group(
    prev_group: str | None, prev_chain_len: int, full_state: dict[tuple[str, str], str],
    delta: dict[tuple[str, str], str],
) -> tuple[str | None, int, list[list[str]]]:
    """How to store a new group: as a delta on ``prev_group``, or as a full snapshot when the
    chain would grow past ``MAX_CHAIN`` (so reading any group walks a bounded chain)."""
    if prev_group is None or prev_chain_len + 1 >= MAX_CHAIN:
        return None, 0, [[t, k, e] for (t, k), e in sorted(full_state.items())]
    return prev_group, prev_chain_len + 1, [[t, k, e] for (t, k), e in sorted(delta.items())]


def set_current_state(
    db: D1Database, plan: PersistPlan, event_type: str, state_key: str, event: Event
) -> None:
    plan.statements.append(
        db.prepare(
            "INSERT INTO current_state (room_id, type, state_key, event_id, membership)"
            " VALUES (?,?,?,?,?) ON CONFLICT (room_id, type, state_key)"
            " DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership"
        ).bind(
            plan.room_id, event_type, state_key, event.event_id,
            event.membership if event_type == "m.room.member" else None,
        )
    )


def replace_extremities(plan: PersistPlan, removed: list[str], added: list[str]) -> None:
    """Record that ``removed`` stop being forward extremities and ``added`` become ones. The
    rows are written by ``extremity_statements`` over the changes of every plan committed
    together (the room actor's ``_flush_commits``)."""
    plan.extremity_changes.extend((False, event_id) for event_id in removed)
    plan.extremity_changes.extend((True, event_id) for event_id in added)


def extremity_statements(db: D1Database, room_id: str, plans: list[PersistPlan]) -> list[PreparedStatement]:
    """The net forward extremity rows of ``plans`` applied in order: an extremity added by
    one plan and removed by a later one is never written (deletions first, then inserts)."""
    deleted: set[str] = set()
    added: dict[str, None] = {}
    for plan in plans:
        for is_added, event_id in plan.extremity_changes:
            if is_added:
                added[event_id] = None
            elif event_id in added:
                del added[event_id]
            else:
                deleted.add(event_id)
    statements = [
        db.prepare("DELETE FROM forward_extremities WHERE room_id = ? AND event_id = ?").bind(room_id, event_id)
        for event_id in sorted(deleted)
    ]
    statements.extend(
        db.prepare("INSERT OR IGNORE INTO forward_extremities (room_id, event_id) VALUES (?, ?)").bind(
            room_id, event_id
        )
        for event_id in added
    )
    return statements


def mark_redacted(db: D1Database, plan: PersistPlan, target_id: str, redaction_id: str) -> None:
    plan.statements.append(
        db.prepare(
            "UPDATE events SET redacted_by = ? WHERE event_id = ? AND room_id = ?"
            " AND redacted_by IS NULL"
        ).bind(redaction_id, target_id, plan.room_id)
    )


def record_txn(
    db: D1Database, plan: PersistPlan, user_id: str, device_id: str, txn_id: str,
    event_id: str, now_ms: int,
) -> None:
    plan.statements.append(
        db.prepare(
            "INSERT INTO event_txn_ids (user_id, device_id, txn_id, room_id, event_id, created_ts)"
            " VALUES (?,?,?,?,?,?)"
        ).bind(user_id, device_id, txn_id, plan.room_id, event_id, now_ms)
    )


def set_room_state_group(db: D1Database, plan: PersistPlan, group_id: str | None) -> None:
    plan.statements.append(
        db.prepare("UPDATE rooms SET state_group = ? WHERE room_id = ?").bind(group_id, plan.room_id)
    )
