"""History older than what this server saw: events fetched with /backfill, stored below
everything else in the stream so they are served by /messages but never as new in /sync.

Spec: server-server API "Backfilling and retrieving missing events".

Redactions reach history in both orders: a backfilled redaction applies to an event we
hold, and a backfilled event is redacted by a redaction we already hold (typically the
redaction came first: history is fetched newest first). Either way the redaction applies
only under the rule live redactions follow (rooms v3+, "Redactions": the redaction's
sender is on the target sender's server, or has the redact level in the state at the
redaction).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from d1.events import chunks, get_event_rows, row_to_event
from durable.auth import check_auth_rules, check_event_auth, named_level, user_power_level
from durable.backfill_order import backfill_positions, topological_order
from durable.errors import AuthError
from durable.events import redact
from durable.events.event import Event, StateKey
from durable.pdu_receipt import Dropped, receive_checks
from durable.room.persist import (
    PersistPlan,
    insert_event,
    insert_state_group,
    mark_redacted,
)
from durable.room.remote import RemoteEvents

log = logging.getLogger(__name__)

REDACTION = "m.room.redaction"


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
        redactions: list[tuple[Event, Mapping[StateKey, str] | None]] = []  # with the state before
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
            if reason is None and event.type == REDACTION and event.redacts is not None:
                redactions.append((stored, before))
        stored_events = {i: self.events[i] for i, o in outcomes.items() if o == "stored"}
        redactions += [(r, None) for r in await self._redactions_held_of(list(stored_events))]
        redacted = await self._plan_redactions(plan, redactions, stored_events)
        if plan.statements:
            await db.batch(plan.statements)
        for target_id in redacted:  # auth reads the redacted form of a redacted event
            target = self.events.get(target_id)
            if target is not None:
                self.events[target_id] = Event(redact(target.pdu, room_version), room_version,
                                               target_id, target.rejected_reason)
        self._prune_event_cache()
        stored_count = sum(1 for o in outcomes.values() if o == "stored")
        log.info("room %s: backfilled %d events from %s", self.room_id, stored_count, origin)
        return {"outcome": "done", "outcomes": outcomes}

    async def _redactions_held_of(self, event_ids: list[str]) -> list[Event]:
        """Accepted timeline redactions already stored that redact one of ``event_ids``."""
        room_version = self._require_room()
        wanted = set(event_ids)
        found: list[Event] = []
        for part in chunks(event_ids, 45):  # each ID is bound twice
            marks = ",".join("?" * len(part))
            rows = (
                await self.env.DB.prepare(
                    "SELECT * FROM events WHERE room_id = ? AND type = ? AND outlier = 0"
                    " AND soft_failed = 0 AND rejected_reason IS NULL"
                    f" AND (json_extract(json, '$.redacts') IN ({marks})"
                    f" OR json_extract(json, '$.content.redacts') IN ({marks}))"
                ).bind(self.room_id, REDACTION, *part, *part).all()
            ).results
            found += [e for e in (row_to_event(r, room_version) for r in rows) if e.redacts in wanted]
        return found

    async def _plan_redactions(
        self, plan: PersistPlan, redactions: list[tuple[Event, Mapping[StateKey, str] | None]],
        batch: Mapping[str, Event],
    ) -> list[str]:
        """Mark the targets of ``redactions`` (each with the state before it, or None to read
        the state at it) redacted where the rule allows; return the targets marked."""
        targets = [r.redacts for r, _ in redactions if r.redacts is not None]
        rows = await get_event_rows(self.env.DB, [t for t in targets if t not in batch])
        marked: list[str] = []
        for redaction, state in redactions:
            target_id = redaction.redacts
            assert target_id is not None
            if target_id in batch:
                target_sender = batch[target_id].sender
            elif target_id in rows and rows[target_id]["room_id"] == self.room_id:
                target_sender = rows[target_id]["sender"]
            else:
                continue  # not held yet: applied when the target is backfilled
            if state is None:
                try:
                    state = await self._state_after(redaction.event_id)
                except LookupError:  # no state known at it: its sender's power is unknown
                    state = {}
            if await self._may_redact(redaction.sender, target_sender, state):
                mark_redacted(self.env.DB, plan, target_id, redaction.event_id)
                marked.append(target_id)
        return marked

    async def _may_redact(self, sender: str, target_sender: str, state: Mapping[StateKey, str]) -> bool:
        """Spec "Redactions" (v3+): apply a redaction when its sender's server is the target
        sender's, or the sender has the redact level in ``state``."""
        if sender.split(":", 1)[-1] == target_sender.split(":", 1)[-1]:
            return True
        keys = [("m.room.create", ""), ("m.room.power_levels", "")]
        await self._load_events({state[k] for k in keys if k in state}, with_auth_chains=False)
        create_id, power_id = (state.get(k) for k in keys)
        create = self.events.get(create_id) if create_id else None
        if create is None:
            return False
        power = self.events.get(power_id) if power_id else None
        return user_power_level(sender, power, create) >= named_level("redact", power)
