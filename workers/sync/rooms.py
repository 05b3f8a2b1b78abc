"""The rooms section of ``/sync``: ``join``, ``invite``, ``knock`` and ``leave``.

Spec: client-server API "Syncing" and ``GET /sync``. For each joined room: the ``timeline``
(the latest events, at most the filter's limit, ``limited`` when some were left out, and a
``prev_batch`` token to paginate back from), the ``state`` (the state at the start of the
timeline that the client does not know yet: all of it on an initial sync, with
``full_state``, or for a room joined since ``since``; otherwise only what changed in a gap),
``ephemeral``, the room's ``account_data``, a ``summary`` and ``unread_notifications``.
Invites and knocks carry stripped state. Rooms left since ``since`` (on an initial sync only
with ``include_leave``) carry the timeline up to the leave.

State events that are in the timeline are not repeated in ``state``. With
``lazy_load_members`` only the membership events of the timeline's senders (and the user's
own) are sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from d1.events import chunks
from workers.client.events_format import JsonDict, apply_event_fields, stripped_state
from workers.client.history import TIMELINE_SQL, RoomReader, Row
from workers.client.pagination import paginate
from workers.sync.filters import EventFilter, SyncFilter

StateMap = Mapping[tuple[str, str], str]

MAX_HEROES = 5
_MEMBERSHIP_ORDER = {"join": 0, "invite": 1}
# Memberships a client shows the room for: leaving them is news.
_PRESENT = ("join", "invite", "knock")


@dataclass(frozen=True)
class SyncWindow:
    """What one sync covers: events with ``since < stream_ordering <= upto`` (``since``
    None: an initial sync)."""

    since: int | None
    upto: int
    full_state: bool
    filter: SyncFilter


@dataclass
class RoomsSection:
    join: dict[str, JsonDict] = field(default_factory=dict)
    invite: dict[str, JsonDict] = field(default_factory=dict)
    knock: dict[str, JsonDict] = field(default_factory=dict)
    leave: dict[str, JsonDict] = field(default_factory=dict)

    def to_json(self) -> JsonDict:
        return {"join": self.join, "invite": self.invite, "knock": self.knock, "leave": self.leave}

    def is_empty(self) -> bool:
        return not (self.join or self.invite or self.knock or self.leave)


@dataclass(frozen=True)
class Membership:
    room_id: str
    membership: str
    event_id: str


def _memberships_statement(reader: RoomReader) -> Any:
    return reader.db.prepare(
        "SELECT room_id, membership, event_id FROM current_state"
        " WHERE type = 'm.room.member' AND state_key = ?"
    ).bind(reader.user_id)


def _as_memberships(rows: list[Row]) -> list[Membership]:
    return [Membership(r["room_id"], r["membership"], r["event_id"]) for r in rows]


async def current_memberships(reader: RoomReader) -> list[Membership]:
    """The user's membership in every room the server has one for."""
    return _as_memberships((await _memberships_statement(reader).all()).results)


async def memberships_and_changes(
    reader: RoomReader, since: int | None, upto: int
) -> tuple[list[Membership], dict[str, list[Row]], set[str]]:
    """In one hop (one snapshot): the user's current memberships and, for an incremental
    window, the user's membership events in ``(since, upto]`` per room, oldest first
    (outliers included: an invite over federation arrives as one), and the rooms with
    timeline events in the window."""
    if since is None or since == upto:
        return await current_memberships(reader), {}, set()
    members, changed, active = await reader.db.read_many([
        _memberships_statement(reader),
        reader.db.prepare(
            "SELECT * FROM events WHERE state_key = ? AND type = 'm.room.member'"
            " AND stream_ordering > ? AND stream_ordering <= ? AND rejected_reason IS NULL"
            " AND soft_failed = 0 ORDER BY stream_ordering"
        ).bind(reader.user_id, since, upto),
        reader.db.prepare(
            f"SELECT DISTINCT room_id FROM events WHERE stream_ordering > ? AND stream_ordering <= ?"
            f" AND {TIMELINE_SQL}"
        ).bind(since, upto),
    ])
    reader.remember(changed.results)
    changes: dict[str, list[Row]] = {}
    for row in changed.results:
        changes.setdefault(row["room_id"], []).append(row)
    return _as_memberships(members.results), changes, {r["room_id"] for r in active.results}


async def forgotten_rooms(reader: RoomReader) -> set[str]:
    rows = (
        await reader.db.prepare("SELECT room_id FROM room_forgotten WHERE user_id = ?")
        .bind(reader.user_id).all()
    ).results
    return {r["room_id"] for r in rows}


# --- one room ---------------------------------------------------------------------------


@dataclass
class RoomTimeline:
    rows: list[Row]
    limited: bool
    prev_batch: int
    state_rows: list[Row]


async def room_timeline(
    reader: RoomReader,
    room_id: str,
    *,
    since: int | None,
    upto: int,
    full_state: bool,
    timeline_filter: EventFilter,
    state_filter: EventFilter,
) -> RoomTimeline:
    """The timeline of one room in ``(since, upto]`` and the state the client needs with it.

    The state is the state at the start of the timeline minus what the client already had at
    ``since`` (nothing when ``since`` is None or ``full_state``), minus the events in the
    timeline.
    """
    limit = timeline_filter.timeline_limit()
    rows: list[Row] = []
    limited = False
    if limit > 0 and not timeline_filter.allows_nothing():
        newest_first, _ = await paginate(
            reader, room_id, start=upto, stop=since, backwards=True, limit=limit + 1,
            event_filter=timeline_filter,
        )
        limited = len(newest_first) > limit
        rows = list(reversed(newest_first[:limit]))
    start = rows[0]["stream_ordering"] - 1 if rows else upto
    state_start = await reader.state_at(room_id, start)
    known: StateMap = {} if since is None or full_state else await reader.state_at(room_id, since)
    in_timeline = {r["event_id"] for r in rows}
    wanted: dict[tuple[str, str], str] = {
        key: event_id
        for key, event_id in state_start.items()
        if known.get(key) != event_id and event_id not in in_timeline
    }
    if state_filter.lazy_load_members:
        wanted = {k: v for k, v in wanted.items() if k[0] != "m.room.member"}
        for user_id in {r["sender"] for r in rows} | {reader.user_id}:
            key = ("m.room.member", user_id)
            if key in state_start and state_start[key] not in in_timeline:
                wanted[key] = state_start[key]
    state_rows = [
        row for row in await reader.state_rows(wanted) if state_filter.allows(_filterable(row))
    ]
    return RoomTimeline(rows, limited, start, state_rows)


def _filterable(row: Row) -> dict[str, Any]:
    content = json.loads(row["json"]).get("content")
    return {"type": row["type"], "sender": row["sender"], "room_id": row["room_id"], "content": content}


async def room_summary(reader: RoomReader, state: StateMap) -> JsonDict:
    """``summary`` (spec: "m.heroes" are up to 5 other members, given when the room has no
    name and no canonical alias; joined and invited member counts)."""
    members = await _member_rows(reader, [v for k, v in state.items() if k[0] == "m.room.member"])
    joined = sum(1 for r in members if r["membership"] == "join")
    invited = sum(1 for r in members if r["membership"] == "invite")
    summary: JsonDict = {"m.joined_member_count": joined, "m.invited_member_count": invited}
    name = (await reader.content_of(state.get(("m.room.name", "")))).get("name")
    alias = (await reader.content_of(state.get(("m.room.canonical_alias", "")))).get("alias")
    if not name and not alias:
        others = [r for r in members if r["state_key"] != reader.user_id]
        current = [r for r in others if r["membership"] in _MEMBERSHIP_ORDER]
        pool = current or [r for r in others if r["membership"] in ("leave", "ban")]
        pool.sort(key=lambda r: (_MEMBERSHIP_ORDER.get(r["membership"], 2), r["stream_ordering"]))
        summary["m.heroes"] = [r["state_key"] for r in pool[:MAX_HEROES]]
    return summary


async def _member_rows(reader: RoomReader, event_ids: list[str]) -> list[Row]:
    """``state_key``, ``membership`` and ``stream_ordering`` of member events: what the
    summary needs, without each event's JSON, in one hop however many members there are."""
    if not event_ids:
        return []
    results = await reader.db.read_many([
        reader.db.prepare(
            "SELECT event_id, state_key, membership, stream_ordering FROM events"
            f" WHERE event_id IN ({','.join('?' * len(chunk))})"
        ).bind(*chunk)
        for chunk in chunks(event_ids)
    ])
    return [row for result in results for row in result.results]


async def _serialize(reader: RoomReader, rows: list[Row], fields: list[str] | None) -> list[JsonDict]:
    events = await reader.serialize(rows, include_room_id=False)
    if fields is not None:
        events = [apply_event_fields(e, fields) for e in events]
    return events


async def joined_room_entry(
    reader: RoomReader,
    room_id: str,
    window: SyncWindow,
    *,
    since: int | None,
    account_data: list[JsonDict],
    prev_batch_token: Any,
) -> JsonDict | None:
    """``rooms.join[room_id]``, or None when nothing changed (incremental syncs)."""
    room_filter = window.filter.room
    timeline = await room_timeline(
        reader, room_id, since=since, upto=window.upto, full_state=window.full_state,
        timeline_filter=room_filter.timeline, state_filter=room_filter.state,
    )
    if since is not None and not (timeline.rows or timeline.state_rows or account_data or window.full_state):
        return None
    fields = window.filter.event_fields
    return {
        "timeline": {
            "events": await _serialize(reader, timeline.rows, fields),
            "limited": timeline.limited,
            "prev_batch": prev_batch_token(timeline.prev_batch),
        },
        "state": {"events": await _serialize(reader, timeline.state_rows, fields)},
        "ephemeral": {"events": []},
        "account_data": {"events": account_data},
        "summary": await room_summary(reader, await reader.state_at(room_id, window.upto)),
        # Replaced by the real counts once the response is complete (workers.push.unread).
        "unread_notifications": {"highlight_count": 0, "notification_count": 0},
    }


async def left_room_entry(
    reader: RoomReader,
    room_id: str,
    leave_row: Row,
    window: SyncWindow,
    *,
    since: int | None,
    account_data: list[JsonDict],
    prev_batch_token: Any,
) -> JsonDict:
    """``rooms.leave[room_id]``: the timeline up to and including the user's leave."""
    room_filter = window.filter.room
    fields = window.filter.event_fields
    if leave_row["outlier"]:
        # A leave that never entered the room's DAG here (an invite rejected over federation).
        timeline = RoomTimeline([leave_row], False, window.upto, [])
    else:
        timeline = await room_timeline(
            reader, room_id, since=since, upto=leave_row["stream_ordering"],
            full_state=window.full_state, timeline_filter=room_filter.timeline,
            state_filter=room_filter.state,
        )
    return {
        "timeline": {
            "events": await _serialize(reader, timeline.rows, fields),
            "limited": timeline.limited,
            "prev_batch": prev_batch_token(timeline.prev_batch),
        },
        "state": {"events": await _serialize(reader, timeline.state_rows, fields)},
        "account_data": {"events": account_data},
    }


async def stripped_entry(reader: RoomReader, row: Row, key: str) -> list[JsonDict]:
    """Invite or knock state: the stripped state the inviting (or knocked) server gave,
    plus the membership event itself (spec: ``invite_state`` / ``knock_state``)."""
    local = json.loads(row["local_unsigned"]) if row.get("local_unsigned") else {}
    events = [e for e in local.get(key, []) if isinstance(e, dict)]
    events = [e for e in events if (e.get("type"), e.get("state_key")) != ("m.room.member", reader.user_id)]
    events.append(stripped_state(json.loads(row["json"])))
    return events


# --- all rooms --------------------------------------------------------------------------


async def rooms_section(
    reader: RoomReader,
    window: SyncWindow,
    room_account_data: dict[str, list[JsonDict]],
    prev_batch_token: Any,
) -> RoomsSection:
    section = RoomsSection()
    room_filter = window.filter.room
    memberships, changes, active = await memberships_and_changes(reader, window.since, window.upto)
    forgotten: set[str] | None = None  # read only when a left room may need an entry

    def quiet(member: Membership) -> bool:
        """A joined room with nothing new: no entry, nothing to read."""
        return (
            member.membership == "join" and window.since is not None
            and member.room_id not in changes and member.room_id not in active
            and not room_account_data.get(member.room_id) and not window.full_state
        )

    relevant = [m for m in memberships if room_filter.allows_room(m.room_id) and not quiet(m)]
    await reader.rows([m.event_id for m in relevant])  # every membership row in one read
    for member in relevant:
        room_id = member.room_id
        changed = changes.get(room_id, [])
        account_data = room_account_data.get(room_id, [])
        row = await reader.row(member.event_id)
        if row is None:
            continue
        before = (
            await membership_at(reader, room_id, window.since)
            if window.since is not None and changed
            else None
        )
        if member.membership == "join":
            # A room joined since `since` is sent in full, like on an initial sync.
            since = None if changed and before != "join" else window.since
            if since is not None and room_id not in active and not account_data and not window.full_state:
                continue
            entry = await joined_room_entry(
                reader, room_id, window, since=since, account_data=account_data,
                prev_batch_token=prev_batch_token,
            )
            if entry is not None:
                section.join[room_id] = entry
        elif member.membership == "invite":
            if window.since is None or changed:
                section.invite[room_id] = {
                    "invite_state": {"events": await stripped_entry(reader, row, "invite_room_state")}
                }
        elif member.membership == "knock":
            if window.since is None or changed:
                section.knock[room_id] = {
                    "knock_state": {"events": await stripped_entry(reader, row, "knock_room_state")}
                }
        elif member.membership in ("leave", "ban"):
            if forgotten is None:
                forgotten = await forgotten_rooms(reader)
            if room_id in forgotten:
                continue
            if window.since is None or (window.full_state and room_filter.include_leave):
                if not room_filter.include_leave:
                    continue
                since = None
            elif changed and (
                before in _PRESENT or any(r["membership"] in _PRESENT for r in changed)
            ):
                since = window.since if before == "join" else None
            else:
                continue
            section.leave[room_id] = await left_room_entry(
                reader, room_id, row, window, since=since, account_data=account_data,
                prev_batch_token=prev_batch_token,
            )
    return section


async def membership_at(reader: RoomReader, room_id: str, position: int) -> str | None:
    """The user's membership in the room's state at a stream position. In a room this server
    is not in (an invite or knock over federation, kept as an outlier) there is no state:
    the user's latest membership event up to that position says it."""
    state = await reader.state_at(room_id, position)
    if not state:
        membership = await reader.db.prepare(
            "SELECT membership FROM events WHERE room_id = ? AND type = 'm.room.member'"
            " AND state_key = ? AND stream_ordering <= ? AND rejected_reason IS NULL"
            " ORDER BY stream_ordering DESC LIMIT 1"
        ).bind(room_id, reader.user_id, position).first("membership")
        return membership if isinstance(membership, str) else None
    membership = (await reader.content_of(state.get(("m.room.member", reader.user_id)))).get(
        "membership"
    )
    return membership if isinstance(membership, str) else None
