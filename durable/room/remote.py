"""Events from other servers: the receipt checks in the spec's order, outliers (auth chains,
state snapshots), backwards extremities, and memberships of our users in rooms held elsewhere.

Spec: server-server API "Checks performed on receipt of a PDU", "Rejection", "Soft failure".
"""

from __future__ import annotations

import logging
import os
from typing import Any

from durable.auth import check_auth_rules, check_event_auth
from durable.errors import AuthError, InvalidEvent
from durable.events import event_from_pdu, redact, validate_pdu
from durable.events.event import Event, StateKey
from durable.pdu_receipt import Dropped, receive_checks
from durable.room.persist import (
    PersistPlan,
    insert_event,
    insert_state_group,
    mark_redacted,
    replace_extremities,
    set_current_state,
)
from durable.room_versions import UnsupportedRoomVersion, get_room_version
from workers.errors import Codes, MatrixError
from durable.room.core import RoomCore

log = logging.getLogger(__name__)

class RemoteEvents(RoomCore):
    async def receive_pdu(self, origin: str, pdu: dict[str, Any], fan_out: bool = False) -> dict[str, Any]:
        """Take a PDU from another server through the receipt checks, in the spec's order
        (server-server API "Checks performed on receipt of a PDU"):

        1-3. format, signatures (else dropped), content hash (else redacted);
        4. auth against its own auth events (else rejected);
        5. auth against the state before it, resolved from its prev_events (else rejected);
        6. auth against the room's current state (else soft-failed).

        Returns ``{"event_id", "outcome", "reason"}`` with outcome ``accepted``,
        ``soft_failed``, ``rejected``, ``dropped``, ``duplicate``, or ``missing`` (with the
        unknown ``auth_events``/``prev_events`` listed, for the caller to fetch and retry).
        With ``fan_out`` (send_join, send_leave, send_knock: the resident server passes the
        event on), an accepted event is queued for the room's other servers.
        """
        room_version = self._require_room()
        if pdu.get("room_id") != self.room_id:
            return {"event_id": None, "outcome": "dropped", "reason": "event is for another room"}
        try:
            event = await receive_checks(pdu, room_version, self._get_key)
        except Dropped as exc:
            log.info("room %s: dropped a PDU from %s: %s", self.room_id, origin, exc.reason)
            return {"event_id": None, "outcome": "dropped", "reason": exc.reason}
        known = await self._known([event.event_id, *event.auth_event_ids, *event.prev_event_ids])
        if event.event_id in known and not known[event.event_id]["outlier"]:
            return {"event_id": event.event_id, "outcome": "duplicate", "reason": ""}
        missing_auth = [e for e in event.auth_event_ids if e not in known]
        missing_prev = [e for e in event.prev_event_ids if e not in known or known[e]["state_group"] is None]
        if missing_auth or missing_prev:
            return {"event_id": event.event_id, "outcome": "missing", "reason": "unknown events",
                    "auth_events": missing_auth, "prev_events": missing_prev}
        return await self._accept_remote(event, known, fan_out=fan_out)

    async def _accept_remote(
        self, event: Event, known: dict[str, dict[str, Any]], fan_out: bool = False
    ) -> dict[str, Any]:
        room_version = self._require_room()
        await self._load_events(set(event.auth_event_ids) | set(event.prev_event_ids), with_auth_chains=False)
        create = self._state_event("m.room.create")
        extra = [create] if create is not None and not room_version.create_event_in_auth_events else []

        # 4. Auth against the event's own auth events (none of them may be rejected).
        rejected: str | None = None
        try:
            check_event_auth(event, [self.events[e] for e in event.auth_event_ids] + extra)
        except AuthError as exc:
            rejected = f"auth events: {exc.reason}"

        # 5. Auth against the state before the event.
        state_before: dict[StateKey, str] = {}
        if rejected is None:
            state_before = await self._resolve([await self._state_after(e) for e in event.prev_event_ids])
            await self._load_events(set(state_before.values()), with_auth_chains=False)
            try:
                check_auth_rules(event, self._auth_state(event, state_before))
            except AuthError as exc:
                rejected = f"state before the event: {exc.reason}"

        if rejected is not None:
            rejected_event = Event(event.pdu, room_version, event.event_id, rejected)
            plan = PersistPlan(self.room_id)
            insert_event(self.env.DB, plan, rejected_event, state_group=None)
            await self.env.DB.batch(plan.statements)
            log.info("room %s: rejected %s: %s", self.room_id, event.event_id, rejected)
            return {"event_id": event.event_id, "outcome": "rejected", "reason": rejected}

        # 6. Soft-fail against the current state.
        soft_failed = False
        try:
            check_auth_rules(event, self._auth_state(event, self.state))
        except AuthError as exc:
            soft_failed = True
            reason = f"current state: {exc.reason}"

        snapshot = self._snapshot()
        try:
            plan = PersistPlan(self.room_id)
            state_after = dict(state_before)
            if event.is_state():
                state_after[event.key] = event.event_id
            group = await self._group_for(plan, event, state_after)
            if soft_failed:
                insert_event(self.env.DB, plan, event, state_group=group, soft_failed=True)
                await self.env.DB.batch(plan.statements)
                log.info("room %s: soft-failed %s: %s", self.room_id, event.event_id, reason)
                return {"event_id": event.event_id, "outcome": "soft_failed", "reason": reason}
            unsigned = self._remote_unsigned(event) or {}
            if event.is_state():
                unsigned = {**self._replaced_state(event.key, state_before), **unsigned}
            insert_event(self.env.DB, plan, event, state_group=group, local_unsigned=unsigned or None)
            self.events[event.event_id] = event
            removed = [e for e in event.prev_event_ids if e in self.extremities]
            new_extremities = [e for e in self.extremities if e not in removed] + [event.event_id]
            replace_extremities(plan, removed, [event.event_id])
            if not [e for e in new_extremities if e != event.event_id]:
                new_state = state_after
                self.state_group = group
            else:
                sets = [state_after] + [await self._state_after(e) for e in new_extremities if e != event.event_id]
                new_state = await self._resolve(sets)
                self.state_group = f"sg_{os.urandom(12).hex()}"
                insert_state_group(self.env.DB, plan, self.state_group, None, 0,
                                   [[t, k, e] for (t, k), e in sorted(new_state.items())])
            self.group_chain_len = await self._chain_len(self.state_group)
            await self._load_events(set(new_state.values()), with_auth_chains=False)
            self._plan_state_change(plan, new_state)
            self.extremities = new_extremities
            self.depth = max(self.depth, event.depth)
            users = {event.state_key} if event.type == "m.room.member" and event.state_key else set()
            if event.type == "m.room.redaction" and event.redacts is not None:
                await self._plan_remote_redaction(plan, event)
            await self._commit(plan, users, fan_out=[event] if fan_out else None)  # type: ignore[arg-type]
        except BaseException:
            self._restore(snapshot)
            raise
        self._prune_event_cache()
        return {"event_id": event.event_id, "outcome": "accepted", "reason": ""}

    def _remote_unsigned(self, event: Event) -> dict[str, Any] | None:
        unsigned = event.pdu.get("unsigned")
        if isinstance(unsigned, dict) and event.type == "m.room.member":
            kept = {k: unsigned[k] for k in ("invite_room_state", "knock_room_state") if k in unsigned}
            return kept or None
        return None

    async def _plan_remote_redaction(self, plan: PersistPlan, event: Event) -> None:
        """Apply a remote redaction only if its sender may redact the target (spec v3+:
        "the server should only apply redactions if the sender's domain matches the original
        event's, or the sender has the redact level")."""
        target_id = event.redacts
        assert target_id is not None
        row = await self.env.DB.prepare("SELECT sender FROM events WHERE event_id = ? AND room_id = ?").bind(
            target_id, self.room_id
        ).first()
        if row is None:
            return
        same_domain = row["sender"].split(":", 1)[-1] == event.sender.split(":", 1)[-1]
        if same_domain or self._has_power(event.sender, "redact"):
            mark_redacted(self.env.DB, plan, target_id, event.event_id)
            target = self.events.get(target_id)
            if target is not None and target_id in self.state.values():
                # A current state event is read from memory (stripped state, auth): in its
                # redacted form from now on, as after a local redaction.
                self.events[target_id] = Event(redact(target.pdu, target.room_version), target.room_version,
                                               target_id)

    async def store_outliers(self, pdus: list[dict[str, Any]]) -> dict[str, Any]:
        """Store events known only as part of an auth chain or a state snapshot (outliers):
        checked for format and signatures, and against their own auth events (stored as
        rejected when they fail). ``pdus`` must be ordered so auth events come first (or be
        already known). Returns the outcome per event ID."""
        room_version = self._require_room()
        outcomes: dict[str, str] = {}
        plan = PersistPlan(self.room_id)
        batch_events: dict[str, Event] = {}
        for pdu in sorted(pdus, key=lambda p: p.get("depth", 0) if isinstance(p.get("depth"), int) else 0):
            try:
                event = await receive_checks(pdu, room_version, self._get_key)
            except Dropped as exc:
                outcomes[str(pdu.get("event_id", "?"))] = f"dropped: {exc.reason}"
                continue
            if event.event_id in batch_events or await self._known([event.event_id]):
                outcomes[event.event_id] = "duplicate"
                continue
            await self._load_events(set(event.auth_event_ids), with_auth_chains=False)
            auth = [batch_events.get(e) or self.events.get(e) for e in event.auth_event_ids]
            reason = None
            if any(a is None for a in auth):
                reason = "auth events unknown"
            else:
                create = self._state_event("m.room.create") or next(
                    (e for e in batch_events.values() if e.type == "m.room.create"), None)
                extra = [create] if create is not None and not room_version.create_event_in_auth_events \
                    and event.type != "m.room.create" else []
                try:
                    check_event_auth(event, [a for a in auth if a is not None] + extra)
                except AuthError as exc:
                    reason = exc.reason
            stored = Event(event.pdu, room_version, event.event_id, reason)
            batch_events[event.event_id] = stored
            insert_event(self.env.DB, plan, stored, state_group=None, outlier=True)
            outcomes[event.event_id] = "rejected" if reason else "stored"
        if plan.statements:
            await self.env.DB.batch(plan.statements)
        return {"outcomes": outcomes}

    async def store_event_with_state(
        self, origin: str, pdu: dict[str, Any], state_before: list[list[str]]
    ) -> dict[str, Any]:
        """Store an event whose own prev_events we cannot get, with the state before it as
        another server told us (``/state_ids``; the events must already be stored): checks
        1 to 5 as for any PDU, against that state. It becomes a backwards extremity: an
        outlier with state, so later events can be built on it."""
        room_version = self._require_room()
        try:
            event = await receive_checks(pdu, room_version, self._get_key)
        except Dropped as exc:
            return {"event_id": None, "outcome": "dropped", "reason": exc.reason}
        known = await self._known([event.event_id])
        if event.event_id in known and known[event.event_id]["state_group"] is not None:
            return {"event_id": event.event_id, "outcome": "duplicate", "reason": ""}
        state = {(t, k): e for t, k, e in state_before}
        await self._load_events(set(state.values()) | set(event.auth_event_ids), with_auth_chains=False)
        unknown = [e for e in [*state.values(), *event.auth_event_ids] if e not in self.events]
        if unknown:
            return {"event_id": event.event_id, "outcome": "missing", "reason": "unknown events",
                    "auth_events": unknown, "prev_events": []}
        create = self._state_event("m.room.create")
        extra = [create] if create is not None and not room_version.create_event_in_auth_events else []
        reason = None
        try:
            check_event_auth(event, [self.events[e] for e in event.auth_event_ids] + extra)
            check_auth_rules(event, self._auth_state(event, state))
        except AuthError as exc:
            reason = exc.reason
        plan = PersistPlan(self.room_id)
        if reason is not None:
            insert_event(self.env.DB, plan, Event(event.pdu, room_version, event.event_id, reason),
                         state_group=None, outlier=True)
            await self.env.DB.batch(plan.statements)
            return {"event_id": event.event_id, "outcome": "rejected", "reason": reason}
        state_after = dict(state)
        if event.is_state():
            state_after[event.key] = event.event_id
        group = f"sg_{os.urandom(12).hex()}"
        insert_state_group(self.env.DB, plan, group, None, 0,
                           [[t, k, e] for (t, k), e in sorted(state_after.items())])
        unsigned = self._replaced_state(event.key, state) if event.is_state() else {}
        insert_event(self.env.DB, plan, event, state_group=group, outlier=True,
                     local_unsigned=unsigned or None)
        await self.env.DB.batch(plan.statements)
        return {"event_id": event.event_id, "outcome": "stored", "reason": ""}

    async def store_remote_membership(
        self, room_version: str, pdu: dict[str, Any], invite_room_state: list[Any] | None = None
    ) -> dict[str, Any]:
        """Keep a membership event of one of our users in a room hosted elsewhere (an invite
        we countersigned, with its stripped state; or our leave rejecting it): stored as an
        outlier, so the user's sync shows it (spec: server-server "Inviting to a room",
        "Leaving Rooms"). Rooms we are in get such events again through a transaction."""
        try:
            version = get_room_version(room_version)
        except UnsupportedRoomVersion as exc:
            raise MatrixError(400, Codes.INCOMPATIBLE_ROOM_VERSION, str(exc)) from exc
        try:
            validate_pdu(pdu, version)
            event = event_from_pdu(pdu, version)
        except InvalidEvent as exc:
            raise MatrixError(400, Codes.BAD_JSON, f"Invalid invite event: {exc.reason}") from exc
        if event.room_id != self.room_id:
            raise MatrixError(400, Codes.BAD_JSON, "The invite is for another room")
        if await self._known([event.event_id]):
            return {"event_id": event.event_id}
        db = self.env.DB
        plan = PersistPlan(self.room_id)
        if self.room_version is None:
            plan.statements.append(
                db.prepare(
                    "INSERT OR REPLACE INTO remote_room_versions (room_id, room_version) VALUES (?, ?)"
                ).bind(self.room_id, version.identifier)
            )
        unsigned = None
        if invite_room_state is not None:
            # Over federation these are whole PDUs (spec v1.16+); clients get the stripped
            # form (type, state_key, content, sender).
            name = "knock_room_state" if event.membership == "knock" else "invite_room_state"
            unsigned = {name: [
                {"type": s.get("type"), "state_key": s.get("state_key", ""),
                 "content": s.get("content") if isinstance(s.get("content"), dict) else {},
                 "sender": s.get("sender")}
                for s in invite_room_state if isinstance(s, dict) and isinstance(s.get("type"), str)
            ]}
        insert_event(db, plan, event, state_group=None, outlier=True, local_unsigned=unsigned)
        if self.room_version is None or self.env.config.server_name not in self.servers_in_room():
            # Not in the room: this membership is all we know of it, and /sync and the
            # membership endpoints read a user's membership from current_state.
            set_current_state(db, plan, "m.room.member", event.state_key or "", event)
        await db.batch(plan.statements)
        self.env.NOTIFIER.notify([event.state_key or ""])
        return {"event_id": event.event_id}
