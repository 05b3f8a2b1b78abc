"""Reading a room's timeline and state from D1 for client reads (history, state, sync).

The timeline of a room is its event rows with ``outlier = 0``, ``soft_failed = 0`` and no
``rejected_reason``, in ``stream_ordering``. A position P in a room's stream means "after the
event with stream ordering P": the state at P is the state after the last timeline event at
or before P. A ``RoomReader`` lives for one request and memoizes what it loads (room
versions, event rows, state groups), so serving many events touches each row once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Sequence

from d1.database import D1Database
from d1.events import chunks, get_event_rows
from d1.state import StateMap, group_chain
from kv.local_cache import LocalCache
from durable.events.redaction import redact
from durable.room_versions import RoomVersion, get_room_version
from workers.client.events_format import JsonDict, client_event

TIMELINE_SQL = "outlier = 0 AND soft_failed = 0 AND rejected_reason IS NULL"

Row = dict[str, Any]


class RoomReader:
    """One request's view of the room tables, with memoized lookups."""

    def __init__(
        self, db: D1Database, *, user_id: str, device_id: str | None, now_ms: int,
        room_versions: LocalCache[str, RoomVersion] | None = None,
    ) -> None:
        """``room_versions``: the process's cache of room versions (``env.ROOM_VERSIONS``),
        shared across requests since a room's version never changes."""
        self.db = db
        self.user_id = user_id
        self.device_id = device_id
        self.now_ms = now_ms
        self._room_versions = room_versions
        self._versions: dict[str, RoomVersion | None] = {}
        self._rows: dict[str, Row] = {}
        self._groups: dict[str, StateMap] = {}
        self._state_at: dict[tuple[str, int], StateMap] = {}

    # --- rooms and rows -------------------------------------------------------------------
    async def room_version(self, room_id: str) -> RoomVersion | None:
        if room_id not in self._versions:
            cache = self._room_versions
            known = None if cache is None else cache.get(room_id)
            if known is not None:
                self._versions[room_id] = known
                return known
            generation = 0 if cache is None else cache.generation()
            row = await self.db.prepare(
                "SELECT room_version, 1 AS here FROM rooms WHERE room_id = ?"
                " UNION ALL SELECT room_version, 0 AS here FROM remote_room_versions WHERE room_id = ?"
                " LIMIT 1"
            ).bind(room_id, room_id).first()
            version = None if row is None else get_room_version(row["room_version"])
            self._versions[room_id] = version
            if cache is not None and version is not None and row is not None and row["here"]:
                # Only a room this server is in: a version known from an invite is what the
                # inviting server said, and the room itself may say otherwise on joining.
                cache.put(room_id, version, generation)
        return self._versions[room_id]

    async def rows(self, event_ids: Sequence[str]) -> dict[str, Row]:
        missing = [e for e in dict.fromkeys(event_ids) if e not in self._rows]
        if missing:
            self._rows.update(await get_event_rows(self.db, missing))
        return {e: self._rows[e] for e in event_ids if e in self._rows}

    async def row(self, event_id: str) -> Row | None:
        return (await self.rows([event_id])).get(event_id)

    def remember(self, rows: Sequence[Row]) -> None:
        for row in rows:
            self._rows.setdefault(row["event_id"], row)

    # --- timeline -------------------------------------------------------------------------
    async def timeline_page(
        self,
        room_id: str,
        *,
        after: int | None = None,
        upto: int | None = None,
        descending: bool = True,
        limit: int = 50,
    ) -> list[Row]:
        """Timeline rows with ``after < stream_ordering <= upto``, newest first when
        ``descending``."""
        sql = f"SELECT * FROM events WHERE room_id = ? AND {TIMELINE_SQL}"
        params: list[Any] = [room_id]
        if after is not None:
            sql += " AND stream_ordering > ?"
            params.append(after)
        if upto is not None:
            sql += " AND stream_ordering <= ?"
            params.append(upto)
        sql += f" ORDER BY stream_ordering {'DESC' if descending else 'ASC'} LIMIT ?"
        params.append(limit)
        rows = (await self.db.prepare(sql).bind(*params).all()).results
        self.remember(rows)
        return rows

    async def last_position(self, room_id: str, upto: int | None = None) -> int | None:
        """The stream ordering of the room's last timeline event at or before ``upto``."""
        rows = await self.timeline_page(room_id, upto=upto, limit=1)
        return rows[0]["stream_ordering"] if rows else None

    # --- state ----------------------------------------------------------------------------
    async def group_state(self, group_id: str) -> StateMap:
        """The full state of a state group (memoized along its delta chain; read-only)."""
        if group_id in self._groups:
            return self._groups[group_id]
        chain: list[tuple[str, list[list[str]]]] = []
        base: StateMap = {}
        for row in await group_chain(self.db, group_id):  # one query for the whole chain
            if row["id"] in self._groups:
                base = self._groups[row["id"]]
                break
            chain.append((row["id"], json.loads(row["delta"])))
        state = base
        for gid, delta in reversed(chain):
            state = dict(state)
            for event_type, state_key, event_id in delta:
                state[(event_type, state_key)] = event_id
            self._groups[gid] = state
        return self._groups[group_id]

    async def state_at(self, room_id: str, position: int | None) -> StateMap:
        """The room state after the last timeline event at or before ``position``
        (``None``: the current state); empty before the room's first event.

        The current state is the room's own (``rooms.state_group``), not the state after
        its last event: with several forward extremities (concurrent events from two
        servers) it is the resolution of the states after each of them."""
        key = (room_id, -1 if position is None else position)
        if key not in self._state_at:
            group = None
            if position is None:
                group = await self.db.prepare("SELECT state_group FROM rooms WHERE room_id = ?").bind(
                    room_id
                ).first("state_group")
            if group is None:
                sql = (
                    f"SELECT state_group FROM events WHERE room_id = ? AND {TIMELINE_SQL}"
                    " AND state_group IS NOT NULL"
                )
                params: list[Any] = [room_id]
                if position is not None:
                    sql += " AND stream_ordering <= ?"
                    params.append(position)
                sql += " ORDER BY stream_ordering DESC LIMIT 1"
                group = await self.db.prepare(sql).bind(*params).first("state_group")
            self._state_at[key] = {} if group is None else await self.group_state(group)
        return self._state_at[key]

    async def state_after(self, row: Row) -> StateMap:
        if row.get("state_group") is not None:
            return await self.group_state(row["state_group"])
        return await self.state_at(row["room_id"], row["stream_ordering"])

    async def state_before(self, row: Row) -> StateMap:
        """The state just before a timeline event: after its predecessor in the stream."""
        return await self.state_at(row["room_id"], row["stream_ordering"] - 1)

    async def prev_state_row(self, row: Row) -> Row | None:
        """The state event a state event replaced, if any."""
        if row.get("state_key") is None:
            return None
        before = await self.state_before(row)
        prev_id = before.get((row["type"], row["state_key"]))
        if prev_id is None or prev_id == row["event_id"]:
            return None
        return await self.row(prev_id)

    async def state_rows(self, state: Mapping[tuple[str, str], str]) -> list[Row]:
        found = await self.rows(list(state.values()))
        return [found[e] for e in state.values() if e in found]

    async def content_of(self, event_id: str | None) -> Mapping[str, Any]:
        """The (redacted, where it was redacted) content of an event; {} if unknown."""
        if event_id is None:
            return {}
        row = await self.row(event_id)
        if row is None:
            return {}
        pdu = json.loads(row["json"])
        if row["redacted_by"] is not None:
            version = await self.room_version(row["room_id"])
            if version is not None:
                pdu = redact(pdu, version)
        content = pdu.get("content")
        return content if isinstance(content, Mapping) else {}

    # --- serving --------------------------------------------------------------------------
    async def _transaction_ids(self, rows: Sequence[Row]) -> dict[str, str]:
        """txn IDs of the requesting device's own events (spec: ``unsigned.transaction_id``
        is only given to the client that sent the event)."""
        own = [r["event_id"] for r in rows if r["sender"] == self.user_id]
        if not own or self.device_id is None:
            return {}
        out: dict[str, str] = {}
        for part in chunks(own, 90):
            marks = ",".join("?" * len(part))
            result = await self.db.prepare(
                "SELECT event_id, txn_id FROM event_txn_ids WHERE user_id = ? AND device_id = ?"
                f" AND event_id IN ({marks})"
            ).bind(self.user_id, self.device_id, *part).all()
            out.update({r["event_id"]: r["txn_id"] for r in result.results})
        return out

    async def serialize(
        self, rows: Sequence[Row], *, include_room_id: bool = True, aggregate: bool = True,
        _depth: int = 0,
    ) -> list[JsonDict]:
        """Client events for ``rows``, in order. Rows of unknown rooms are left out.
        ``aggregate``: with their bundled aggregations (``unsigned["m.relations"]``; see
        ``workers.client.aggregations``), nested at most one level (a thread's latest event)."""
        self.remember(rows)
        redaction_rows = await self.rows(
            [r["redacted_by"] for r in rows if r.get("redacted_by") is not None]
        )
        redactions = await self._serialize_plain(
            list(redaction_rows.values()), include_room_id, {}
        )
        because = {event["event_id"]: event for event in redactions}
        events = await self._serialize_plain(rows, include_room_id, because)
        if aggregate and _depth <= 1 and events:
            # Imported here: the aggregations reach visibility, which builds on this module.
            from workers.client.aggregations import bundle_aggregations

            await bundle_aggregations(self, rows, events, include_room_id=include_room_id, depth=_depth)
        return events

    async def _serialize_plain(
        self, rows: Sequence[Row], include_room_id: bool, because: dict[str, JsonDict]
    ) -> list[JsonDict]:
        txn_ids = await self._transaction_ids(rows)
        out: list[JsonDict] = []
        for row in rows:
            version = await self.room_version(row["room_id"])
            if version is None:
                continue
            prev_state: tuple[str, Mapping[str, Any]] | None = None
            if row.get("state_key") is not None and not row.get("outlier"):
                prev = await self.prev_state_row(row)
                if prev is not None:
                    prev_state = (prev["event_id"], await self.content_of(prev["event_id"]))
            redacted_by = row.get("redacted_by")
            out.append(
                client_event(
                    json.loads(row["json"]),
                    row["event_id"],
                    row["room_id"],
                    version,
                    now_ms=self.now_ms,
                    redacted_because=because.get(redacted_by) if redacted_by else None,
                    local_unsigned=json.loads(row["local_unsigned"]) if row.get("local_unsigned") else None,
                    prev_state=prev_state,
                    transaction_id=txn_ids.get(row["event_id"]),
                    include_room_id=include_room_id,
                )
            )
        return out
