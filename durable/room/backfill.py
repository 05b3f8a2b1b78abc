"""History older than what this server saw: events fetched with /backfill, stored below
everything else in the stream so they are served by /messages but never as new in /sync.

Spec: server-server API "Backfilling and retrieving missing events".
"""

from __future__ import annotations

import logging
import os
from typing import Any

from durable.auth import check_auth_rules, check_event_auth
from durable.backfill_order import backfill_positions, topological_order
from durable.errors import AuthError
from durable.events.event import Event, StateKey
from durable.pdu_receipt import Dropped, receive_checks
from durable.room.persist import (
    PersistPlan,
    insert_event,
    insert_state_group,
)
from durable.room.remote import RemoteEvents

log = logging.getLogger(__name__)

class Backfill(RemoteEvents):
    async def store_backfill(
        self, origin: str, pdus: list[dict[str, Any]],
        states: dict[str, list[list[str]]] | None = None,
    ) -> dict[str, Any]:
        """Store older history another server sent in answer to ``/backfill`` (spec:
        server-server "Backfilling and retrieving missing events"), each event through
        receipt checks 1 to 5 ("Checks performed on receipt of a PDU"): format and
        signatures (else dropped), content hash (else redacted), auth against its own auth
        events and against the state before it (else rejected). Check 6 (soft failure
        against the current state) is for new events and does not apply to history.

        The state before an event is resolved from its prev_events' states when we hold
        them (stored, or earlier in this batch); for an event whose prev_events we lack,
        from ``states[event_id]`` (``[[type, state_key, event_id], ...]``, from the remote
        ``/state``; those events must be stored). Without that, nothing is stored and the
        answer is ``{"outcome": "missing", "auth_for": [...], "need_state": [...]}``: the
        events whose auth events are unknown (fetch their auth chains) and those that need
        a state. Stored events get a state group and negative stream positions in
        topological order, below all others (``backfill_order``): /messages serves them
        before our join, and no incremental /sync sees them. Current state and forward
        extremities do not change."""
        room_version = self._require_room()
        states = states or {}
        outcomes: dict[str, str] = {}
        batch: dict[str, Event] = {}
        for pdu in pdus:
            if not isinstance(pdu, dict):
                continue
            try:
                event = await receive_checks(pdu, room_version, self._get_key)
            except Dropped as exc:
                outcomes[str(pdu.get("event_id", "?"))] = f"dropped: {exc.reason}"
                continue
            if event.room_id == self.room_id:  # (a v12 create event's room ID is derived)
                batch[event.event_id] = event
        refs = {r for e in batch.values() for r in [*e.prev_event_ids, *e.auth_event_ids]}
        known = await self._known(sorted(set(batch) | refs))
        todo = {i: e for i, e in batch.items() if not (i in known and not known[i]["outlier"])}
        for event_id in set(batch) - set(todo):
            outcomes[event_id] = "duplicate"
        auth_for = sorted(i for i, e in todo.items()
                          if any(a not in known and a not in batch for a in e.auth_event_ids))
        need_state = sorted(
            i for i, e in todo.items() if i not in states and any(
                p not in todo and (p not in known or known[p]["state_group"] is None)
                for p in e.prev_event_ids)
        )
        if auth_for or need_state:
            return {"outcome": "missing", "auth_for": auth_for, "need_state": need_state, "outcomes": outcomes}

        ordered = topological_order(todo.values())
        lowest = await self.env.DB.prepare("SELECT MIN(stream_ordering) AS s FROM events").first("s")
        positions = backfill_positions(len(ordered), lowest)
        create = self._state_event("m.room.create")
        extra = [create] if create is not None and not room_version.create_event_in_auth_events else []
        after: dict[str, tuple[dict[StateKey, str], str | None]] = {}  # state after, its group
        plan = PersistPlan(self.room_id)
        db = self.env.DB
        for event, position in zip(ordered, positions):
            await self._load_events(set(event.auth_event_ids) - set(todo), with_auth_chains=False)
            auth = [self.events.get(a) for a in event.auth_event_ids]
            reason: str | None = None
            if any(a is None or a.rejected_reason for a in auth):
                reason = "auth events: unknown or rejected"
            else:
                try:
                    check_event_auth(event, [a for a in auth if a is not None]
                                     + (extra if event.type != "m.room.create" else []))
                except AuthError as exc:
                    reason = f"auth events: {exc.reason}"
            if event.event_id in states:
                before = {(t, k): e for t, k, e in states[event.event_id]}
                base_group: str | None = None
            else:
                sets: list[dict[StateKey, str]] = []
                groups: list[str | None] = []
                for prev in event.prev_event_ids:
                    if prev in after:
                        sets.append(after[prev][0])
                        groups.append(after[prev][1])
                    else:
                        sets.append(await self._state_after(prev))
                        groups.append(known[prev]["state_group"])
                before = await self._resolve(sets) if len(sets) != 1 else sets[0]
                base_group = groups[0] if len(groups) == 1 else None
            await self._load_events(set(before.values()), with_auth_chains=False)
            if reason is None:
                try:
                    check_auth_rules(event, self._auth_state(event, before))
                except AuthError as exc:
                    reason = f"state before the event: {exc.reason}"
            stored = Event(event.pdu, room_version, event.event_id, reason)
            self.events[event.event_id] = stored
            state_after = dict(before)
            if reason is None and event.is_state():
                state_after[event.key] = event.event_id
            group: str | None
            if (base_group is not None and state_after == before) or reason is not None:
                group = base_group  # a rejected event changes nothing and is never read
            else:
                group = f"sg_{os.urandom(12).hex()}"
                insert_state_group(db, plan, group, None, 0,
                                   [[t, k, e] for (t, k), e in sorted(state_after.items())])
            after[event.event_id] = (state_after, group)
            unsigned = self._replaced_state(event.key, before) if event.is_state() and reason is None else {}
            insert_event(db, plan, stored, state_group=None if reason else group,
                         local_unsigned=unsigned or None, stream_ordering=position)
            outcomes[event.event_id] = "rejected" if reason else "stored"
        if plan.statements:
            await db.batch(plan.statements)
        self._prune_event_cache()
        stored_count = sum(1 for o in outcomes.values() if o == "stored")
        log.info("room %s: backfilled %d events from %s", self.room_id, stored_count, origin)
        return {"outcome": "done", "outcomes": outcomes}
