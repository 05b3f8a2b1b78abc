"""The room actor's core: its hot state, how it is loaded from D1, and how accepted events
are planned, committed and passed on.

The actor holds the room's hot state in memory (room version, current state map and its
state events, forward extremities, depth, current state group), loaded from D1 when the actor
is (re)built; it is the only code that writes the room's rows in D1. Every change is planned
as one D1 batch (durable/room/persist.py) and acknowledged only after that batch commits
(ARCHITECTURE invariant 2). State before an event with several prev_events is resolved with
state resolution v2/v2.1 (durable/state_res).

Commits are pipelined: a change updates memory and queues its plan; the queued plans go to D1
in order, those queued while a batch is in flight together as the next batch (so a busy
room's events share commits). ``send_event`` answers through the runtime's output gate: its
caller hears back once its event's batch has committed, while the actor already builds the
next event on top of it. Should a batch fail, memory is ahead of D1: every queued plan fails
and the actor resets (``ctx.abort``), so the next call is served by an instance loaded from
D1, which holds exactly what was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Mapping

from d1.database import D1Error
from d1.events import get_event_rows, row_to_event
from d1.state import current_state_ids, state_for_group
from durable.auth import auth_types_for_event, check_event_auth, named_level, user_power_level
from durable.base import DurableObject, DurableObjectState
from durable.errors import AuthError
from durable.events import redact, reference_hash_entry
from durable.events.event import Event, StateKey
from durable.room.persist import (
    PersistPlan,
    extremity_statements,
    insert_event,
    insert_state_group,
    mark_redacted,
    next_group,
    replace_extremities,
    set_current_state,
    set_room_state_group,
)
from durable.room_versions import RoomVersion, get_room_version
from durable.state_res import resolve_state
from workers.errors import Codes, MatrixError

log = logging.getLogger(__name__)

MAX_PREV_EVENTS = 10
MAX_DEPTH = 2**63 - 1
# At most this many queued changes share one D1 batch (bounds a batch's size and wait).
MAX_PLANS_PER_COMMIT = 64

# State copied into an invite's or knock's `unsigned` for the invitee (spec: "Stripped state").
STRIPPED_STATE_TYPES = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.name",
    "m.room.encryption",
    "m.room.topic",
)


_ABSENT = object()


class EventCache(dict[str, Event]):
    """The actor's event cache (a dict of event ID to ``Event``) that can journal its writes.

    While a snapshot is open (``RoomCore._snapshot``), each assignment or deletion first
    records the entry's previous value (once per key), so that a failed commit undoes exactly
    what it changed: restoring costs what the call wrote, not the size of the room.
    """

    __slots__ = ("journal",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.journal: dict[str, Any] | None = None

    def __setitem__(self, key: str, value: Event) -> None:
        if self.journal is not None and key not in self.journal:
            self.journal[key] = self.get(key, _ABSENT)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        if self.journal is not None and key not in self.journal:
            self.journal[key] = self.get(key, _ABSENT)
        super().__delitem__(key)

    def undo(self, journal: dict[str, Any]) -> None:
        """Put back every entry the journal recorded (removing those that were absent)."""
        for key, value in journal.items():
            if value is _ABSENT:
                super().pop(key, None)
            else:
                super().__setitem__(key, value)


class _Snapshot:
    """The hot state as it was when a change began. ``state`` and ``extremities`` are only
    ever replaced, never changed in place, so keeping the references is enough; the event
    cache is changed in place and journals its writes instead."""

    __slots__ = ("state", "extremities", "depth", "state_group", "group_chain_len",
                 "room_version", "journal")

    def __init__(self, core: "RoomCore") -> None:
        self.state = core.state
        self.extremities = core.extremities
        self.depth = core.depth
        self.state_group = core.state_group
        self.group_chain_len = core.group_chain_len
        self.room_version = core.room_version
        self.journal: dict[str, Any] = {}


class _QueuedCommit:
    """A planned change waiting for (or in) a D1 batch; ``done`` gets the stream ordering of
    its last event once the batch has committed."""

    __slots__ = ("plan", "notify", "fan_out", "done")

    def __init__(self, plan: PersistPlan, notify: set[str], fan_out: list[Event]) -> None:
        self.plan = plan
        self.notify = notify
        self.fan_out = fan_out
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()


class RoomCore(DurableObject):
    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        if ctx.id.name is None:
            raise RuntimeError("room actors are addressed by room ID (id_from_name)")
        self.room_id: str = ctx.id.name
        self.room_version: RoomVersion | None = None
        self.state: dict[StateKey, str] = {}
        # Current state events and forward extremities (and what was loaded with them).
        self.events: EventCache = EventCache()
        self._open_snapshot: _Snapshot | None = None
        self._servers_cache: tuple[dict[StateKey, str], frozenset[str]] | None = None
        self.extremities: list[str] = []
        self.depth = 0
        self.state_group: str | None = None
        self._persisted_state_group: str | None = None  # rooms.state_group as last queued
        self.group_chain_len = 0
        self._queued: list[_QueuedCommit] = []
        self._flusher: asyncio.Task[None] | None = None
        self._broken: BaseException | None = None
        ctx.block_concurrency_while(self._load)

    async def _load(self) -> None:
        db = self.env.DB
        room = await db.prepare("SELECT room_version, state_group FROM rooms WHERE room_id = ?").bind(
            self.room_id
        ).first()
        if room is None:
            return
        self.room_version = get_room_version(room["room_version"])
        self.state_group = room["state_group"]
        self._persisted_state_group = self.state_group
        if self.state_group is not None:
            self.group_chain_len = await db.prepare(
                "SELECT chain_len FROM state_groups WHERE id = ?"
            ).bind(self.state_group).first("chain_len") or 0
        self.state = await current_state_ids(db, self.room_id)
        self.extremities = [
            r["event_id"]
            for r in (
                await db.prepare(
                    "SELECT event_id FROM forward_extremities WHERE room_id = ?"
                ).bind(self.room_id).all()
            ).results
        ]
        await self._cache_events(list(self.state.values()) + self.extremities)
        self.depth = max((self.events[e].depth for e in self.extremities if e in self.events), default=0)

    async def _cache_events(self, event_ids: list[str]) -> None:
        assert self.room_version is not None
        rows = await get_event_rows(self.env.DB, [e for e in event_ids if e not in self.events])
        for event_id, row in rows.items():
            event = row_to_event(row, self.room_version)
            if row["redacted_by"] is not None:
                # Auth sees the redacted form of a redacted state event.
                event = Event(redact(event.pdu, self.room_version), self.room_version, event_id)
            self.events[event_id] = event

    def _require_room(self) -> RoomVersion:
        if self.room_version is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Unknown room {self.room_id}")
        return self.room_version

    def _state_event(self, event_type: str, state_key: str = "") -> Event | None:
        event_id = self.state.get((event_type, state_key))
        return None if event_id is None else self.events.get(event_id)

    def _auth_event_ids(self, event_type: str, state_key: str | None, sender: str,
                        content: Mapping[str, Any]) -> list[str]:
        room_version = self._require_room()
        ids = []
        for key in auth_types_for_event(room_version, event_type, state_key, sender, content):
            event_id = self.state.get(key)
            if event_id is not None:
                ids.append(event_id)
        return ids

    def _hashes_of(self, event_id: str) -> Mapping[str, str]:
        assert self.room_version is not None
        return reference_hash_entry(self.events[event_id].pdu, self.room_version)

    def _now_ms(self) -> int:
        return int(time.time() * 1000)

    def _has_power(self, user_id: str, level_name: str) -> bool:
        """Whether the user's power level reaches a named level of the current power levels
        (``redact``, ``invite``, ``kick``, ...), with the spec's defaults."""
        create = self._state_event("m.room.create")
        assert create is not None
        power = self._state_event("m.room.power_levels")
        return user_power_level(user_id, power, create) >= named_level(level_name, power)

    def _check_auth(self, event: Event) -> None:
        """Auth against the current state (which is where the event's auth events came from)."""
        room_version = self._require_room()
        auth_events = [self.events[e] for e in event.auth_event_ids]
        if not room_version.create_event_in_auth_events:
            create = self._state_event("m.room.create")
            if create is not None:
                auth_events.append(create)
        try:
            check_event_auth(event, auth_events)
        except AuthError as exc:
            raise MatrixError(403, Codes.FORBIDDEN, f"Not allowed: {exc.reason}") from exc

    def _stripped_state(self) -> list[dict[str, Any]]:
        stripped = []
        for event_type in STRIPPED_STATE_TYPES:
            event = self._state_event(event_type)
            if event is not None:
                stripped.append(
                    {"type": event.type, "state_key": event.state_key or "",
                     "content": dict(event.content), "sender": event.sender}
                )
        return stripped

    def _plan_accept(self, plan: PersistPlan, event: Event, local_unsigned: dict[str, Any] | None) -> None:
        """Add an accepted event extending the current state to the plan and to memory."""
        db = self.env.DB
        if event.is_state():
            key = event.key
            local_unsigned = {**self._replaced_state(key, self.state), **(local_unsigned or {})} or None
            new_state = dict(self.state)
            new_state[key] = event.event_id
            prev_group, chain_len, delta = next_group(
                self.state_group, self.group_chain_len, new_state, {key: event.event_id}
            )
            insert_state_group(db, plan, event.event_id, prev_group, chain_len, delta)
            self.state = new_state
            self.state_group = event.event_id
            self.group_chain_len = chain_len
            set_current_state(db, plan, key[0], key[1], event)
        insert_event(db, plan, event, state_group=self.state_group, local_unsigned=local_unsigned,
                     may_be_known=event.sender.split(":", 1)[-1] != self.env.config.server_name)
        removed = [e for e in event.prev_event_ids if e in self.extremities]
        replace_extremities(plan, removed, [event.event_id])
        self.extremities = [e for e in self.extremities if e not in removed] + [event.event_id]
        self.events[event.event_id] = event
        self.depth = max(self.depth, event.depth)
        if event.type == "m.room.redaction" and event.redacts is not None:
            mark_redacted(db, plan, event.redacts, event.event_id)
            target = self.events.get(event.redacts)
            if target is not None and target.event_id in self.state.values():
                self.events[target.event_id] = Event(
                    redact(target.pdu, target.room_version), target.room_version, target.event_id
                )

    def _replaced_state(self, key: StateKey, state_before: Mapping[StateKey, str]) -> dict[str, Any]:
        """``replaces_state``/``prev_content``/``prev_sender`` of a state event, kept in
        ``local_unsigned`` (clients see them in ``unsigned``; /state_ids uses replaces_state)."""
        replaced_id = state_before.get(key)
        if replaced_id is None:
            return {}
        out: dict[str, Any] = {"replaces_state": replaced_id}
        replaced = self.events.get(replaced_id)
        if replaced is not None:
            out["prev_content"] = dict(replaced.content)
            out["prev_sender"] = replaced.sender
        return out

    def _snapshot(self) -> _Snapshot:
        """Note the hot state before changing it for a commit: O(1), since ``state`` and
        ``extremities`` are only ever replaced (never changed in place) and the event cache
        journals its writes from here on. ``_restore`` undoes the changes if the change is
        refused before it is queued; queueing its plan closes the snapshot (from then on a
        failed commit resets the whole actor instead).

        One snapshot is open at a time: the actor runs one call at a time and no change path
        opens one inside another, so opening one closes any left open (a path that wrote
        its batch without ``_commit``, such as a soft-failed event's)."""
        snapshot = _Snapshot(self)
        self._open_snapshot = snapshot
        self.events.journal = snapshot.journal
        return snapshot

    def _restore(self, snapshot: _Snapshot) -> None:
        """Put the hot state back as it was at ``snapshot``; nothing to undo once the
        snapshot was closed by queueing a commit (or replaced by a later one)."""
        if self._open_snapshot is not snapshot:
            return
        self.events.undo(snapshot.journal)
        self._close_snapshot()
        self.state = snapshot.state
        self.extremities = snapshot.extremities
        self.depth = snapshot.depth
        self.state_group = snapshot.state_group
        self.group_chain_len = snapshot.group_chain_len
        self.room_version = snapshot.room_version

    def _close_snapshot(self) -> None:
        self._open_snapshot = None
        self.events.journal = None

    def _queue_commit(
        self, plan: PersistPlan, notify_users: set[str], fan_out: list[Event] | None = None
    ) -> "asyncio.Future[int]":
        """Queue the plan for the room's next D1 batch and close the open snapshot (memory
        now runs ahead of D1 until the batch commits). The future gets the stream ordering
        of the plan's last event once committed, or the batch's error. After the commit
        syncs are woken and our own new events handed to the other servers in the room."""
        if self._broken is not None:
            raise D1Error(f"room {self.room_id}: resetting after a failed commit ({self._broken})")
        if self.state_group != self._persisted_state_group:
            set_room_state_group(self.env.DB, plan, self.state_group)
            self._persisted_state_group = self.state_group
        self._close_snapshot()
        queued = _QueuedCommit(plan, notify_users, fan_out or [])
        self._queued.append(queued)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_commits())
        return queued.done

    async def _commit(
        self, plan: PersistPlan, notify_users: set[str], fan_out: list[Event] | None = None
    ) -> int:
        """Queue the plan and wait until it is committed (for calls that answer only then)."""
        return await self._queue_commit(plan, notify_users, fan_out)

    async def _commits_settled(self) -> None:
        """Wait until every queued plan is committed (or failed), e.g. before reading the
        room's own rows back from D1."""
        while self._flusher is not None:
            await asyncio.wait({self._flusher})

    async def _flush_commits(self) -> None:
        """Send the queued plans to D1 in order, as many as are queued at once per batch."""
        db = self.env.DB
        try:
            while self._queued and self._broken is None:
                group = self._queued[:MAX_PLANS_PER_COMMIT]
                del self._queued[:len(group)]
                statements = [stmt for queued in group for stmt in queued.plan.statements]
                statements += extremity_statements(db, self.room_id, [queued.plan for queued in group])
                try:
                    results = await db.batch(statements)
                except BaseException as exc:  # noqa: BLE001  (every queued caller hears of it)
                    self._fail_queued(group, exc)
                    return
                streams: list[int] = []
                offset = 0
                for queued in group:
                    indexes = queued.plan.event_statements
                    streams.append(
                        results[offset + indexes[-1]].meta["last_row_id"] if indexes else 0
                    )
                    offset += len(queued.plan.statements)
                try:
                    self.env.NOTIFIER.notify([self.room_id, *set().union(*(q.notify for q in group))])
                    fan_out = [event for queued in group for event in queued.fan_out]
                    if fan_out:
                        await self._send_to_servers(fan_out)
                except Exception:  # committed is committed: log it, answer, go on
                    log.exception("room %s: passing on %d committed change(s) failed", self.room_id, len(group))
                finally:
                    for queued, stream in zip(group, streams):
                        if not queued.done.done():
                            queued.done.set_result(stream)
        finally:
            self._flusher = None

    def _fail_queued(self, group: list[_QueuedCommit], exc: BaseException) -> None:
        """A batch failed: memory holds changes D1 does not. Fail that batch's callers and
        every later queued one (their events build on the failed ones), then reset."""
        self._broken = exc
        failed, self._queued = group + self._queued, []
        log.error("room %s: a commit of %d change(s) failed (%s); resetting the actor",
                  self.room_id, len(failed), exc)
        for queued in failed:
            if not queued.done.done():
                queued.done.set_exception(D1Error(str(exc) if isinstance(exc, D1Error) else f"batch rolled back: {exc}"))
        self.ctx.abort(f"a commit failed: {exc}")

    def servers_in_room(self) -> set[str]:
        """Servers with a joined member in the current state.

        Remembered for as long as ``self.state`` is the same object: the state map is
        replaced on every change, never changed in place, and a state event's membership
        never changes (redaction keeps it), so a new message does not walk every member."""
        cached = self._servers_cache
        if cached is not None and cached[0] is self.state:
            return set(cached[1])
        servers = set()
        complete = True
        for (event_type, state_key), event_id in self.state.items():
            if event_type == "m.room.member":
                event = self.events.get(event_id)
                if event is None:
                    complete = False
                elif event.membership == "join" and ":" in state_key:
                    servers.add(state_key.split(":", 1)[1])
        self._servers_cache = (self.state, frozenset(servers)) if complete else None
        return servers

    async def _send_to_servers(self, events: list[Event]) -> None:
        """Queue events on the outbound queue of every other server in the room (and of a
        member event's target, e.g. an invited or kicked remote user)."""
        own = self.env.config.server_name
        servers = self.servers_in_room()
        for event in events:
            if event.type == "m.room.member" and event.state_key and ":" in event.state_key:
                servers.add(event.state_key.split(":", 1)[1])
        servers.discard(own)
        if not servers or getattr(self.env, "DESTINATIONS", None) is None:
            return
        for server in sorted(servers):
            stub = self.env.DESTINATIONS.get_by_name(server)
            try:
                await stub.enqueue([dict(e.pdu) for e in events], [])
            except Exception:  # the events are committed; a queue failure must not undo that
                log.exception("room %s: could not queue %d events for %s", self.room_id, len(events), server)

    def _prune_event_cache(self) -> None:
        # Each state event ID is one key's, so len(state) <= len(keep): a cache no larger than
        # 2 * len(state) + 100 is never pruned, and the keep set need not be built.
        if len(self.events) <= 2 * len(self.state) + 100:
            return
        keep = set(self.state.values()) | set(self.extremities)
        if len(self.events) > 2 * len(keep) + 100:
            pruned = EventCache((k, v) for k, v in self.events.items() if k in keep)
            pruned.journal = self.events.journal
            self.events = pruned

    async def _get_key(self, server: str, key_id: str, at_ts: int | None) -> Any:
        return await self.env.server_keys.get_verify_key(server, key_id, at_ts)

    async def _known(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        return await get_event_rows(self.env.DB, event_ids)

    async def _load_events(self, event_ids: set[str], *, with_auth_chains: bool) -> None:
        """Load events (and, if asked, their whole auth chains) into the cache."""
        assert self.room_version is not None
        todo = {e for e in event_ids if e not in self.events}
        seen: set[str] = set()
        while todo:
            rows = await get_event_rows(self.env.DB, sorted(todo))
            seen |= todo
            todo = set()
            for event_id, row in rows.items():
                event = row_to_event(row, self.room_version)
                if row["redacted_by"] is not None:
                    event = Event(redact(event.pdu, self.room_version), self.room_version, event_id,
                                  row["rejected_reason"])
                self.events[event_id] = event
                if with_auth_chains:
                    todo |= {a for a in event.auth_event_ids if a not in self.events and a not in seen}

    async def _state_after(self, event_id: str) -> dict[StateKey, str]:
        group = await self.env.DB.prepare("SELECT state_group FROM events WHERE event_id = ?").bind(
            event_id
        ).first("state_group")
        if group is None:
            raise LookupError(f"no state known at {event_id}")
        return await state_for_group(self.env.DB, group)

    async def _resolve(self, state_sets: list[dict[StateKey, str]]) -> dict[StateKey, str]:
        """State resolution over D1-backed events (v2 or v2.1 per the room version)."""
        room_version = self._require_room()
        distinct = [dict(s) for s in {tuple(sorted(s.items())): s for s in state_sets}.values()]
        if len(distinct) == 1:
            return distinct[0]
        conflicted = {e for s in distinct for k, e in s.items() if any(o.get(k) != e for o in distinct)}
        await self._load_events(conflicted, with_auth_chains=True)
        for _ in range(20):
            missing: set[str] = set()

            def get_event(event_id: str) -> Event | None:
                event = self.events.get(event_id)
                if event is None:
                    missing.add(event_id)
                return event

            result = resolve_state(room_version, distinct, get_event)
            unknown = missing - set(await self._known(sorted(missing))) if missing else set()
            if not (missing - unknown):
                return result
            await self._load_events(missing - unknown, with_auth_chains=True)
        return result

    def _auth_state(self, event: Event, state: Mapping[StateKey, str]) -> dict[StateKey, Event]:
        """The events of ``state`` that the auth rules need for ``event`` (plus the create
        event, which v12 does not list in auth_events)."""
        room_version = self._require_room()
        keys = auth_types_for_event(room_version, event.type, event.state_key, event.sender, event.content)
        out: dict[StateKey, Event] = {}
        for key in [*keys, ("m.room.create", "")]:
            event_id = state.get(key)
            if event_id is not None and event_id in self.events:
                out[key] = self.events[event_id]
        return out

    async def _group_for(self, plan: PersistPlan, event: Event, state_after: dict[StateKey, str]) -> str:
        """A state group for the state after ``event``: the single prev event's group when
        nothing changed, a delta on it for a state event, a full snapshot after a merge."""
        db = self.env.DB
        if len(event.prev_event_ids) == 1:
            prev_group = await db.prepare("SELECT state_group FROM events WHERE event_id = ?").bind(
                event.prev_event_ids[0]
            ).first("state_group")
            prev_state = await state_for_group(db, prev_group)
            if prev_state == state_after:
                return prev_group
            delta = {k: v for k, v in state_after.items() if prev_state.get(k) != v}
            if set(prev_state) <= set(state_after):
                chain = await self._chain_len(prev_group)
                base, chain_len, rows = next_group(prev_group, chain, state_after, delta)
                insert_state_group(db, plan, event.event_id, base, chain_len, rows)
                return event.event_id
        insert_state_group(db, plan, event.event_id, None, 0,
                           [[t, k, e] for (t, k), e in sorted(state_after.items())])
        return event.event_id

    async def _chain_len(self, group: str | None) -> int:
        if group is None:
            return 0
        value = await self.env.DB.prepare("SELECT chain_len FROM state_groups WHERE id = ?").bind(group).first(
            "chain_len"
        )
        return int(value or 0)

    def _plan_state_change(self, plan: PersistPlan, new_state: dict[StateKey, str]) -> None:
        db = self.env.DB
        for key, event_id in new_state.items():
            if self.state.get(key) != event_id:
                set_current_state(db, plan, key[0], key[1], self.events[event_id])
        for key in set(self.state) - set(new_state):
            plan.statements.append(
                db.prepare("DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?").bind(
                    self.room_id, key[0], key[1]
                )
            )
        self.state = dict(new_state)
