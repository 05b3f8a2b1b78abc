"""The room actor: the single writer of one room (a Durable Object per room ID).

It holds the room's hot state in memory (room version, current state map and its state
events, forward extremities, depth, current state group), loaded from D1 when the actor is
(re)built, and it is the only code that writes the room's rows in D1.

Creating a local event (spec: server-server API "Authorization rules", "Auth events
selection"): pick ``prev_events`` from the forward extremities, select the auth events from
the current state, compute depth, hash and sign, check the auth rules against the current
state, persist everything in one D1 batch, and only then acknowledge and notify.

Calls take and return plain data. Refusals raise ``MatrixError`` (the worker renders it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Mapping

from d1.events import get_event_rows, row_to_event
from d1.state import current_state_ids, state_for_group
from durable.auth import (
    auth_types_for_event,
    check_auth_rules,
    check_event_auth,
    event_power_level,
    user_power_level,
)
from durable.backfill_order import backfill_positions, topological_order
from durable.base import DurableObject, DurableObjectState
from durable.errors import AuthError, InvalidEvent
from durable.events import build_event, event_from_pdu, redact, reference_hash_entry, validate_pdu
from durable.events.event import Event, StateKey
from durable.pdu_receipt import Dropped, receive_checks
from durable.room_persist import (
    PersistPlan,
    insert_event,
    insert_state_group,
    mark_redacted,
    next_group,
    record_txn,
    replace_extremities,
    set_current_state,
    set_room_state_group,
)
from durable.room_versions import RoomVersion, UnsupportedRoomVersion, get_room_version
from durable.state_res import resolve_state
from workers.errors import Codes, MatrixError

log = logging.getLogger(__name__)

MAX_PREV_EVENTS = 10
MAX_DEPTH = 2**63 - 1

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


class RoomActor(DurableObject):
    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        if ctx.id.name is None:
            raise RuntimeError("room actors are addressed by room ID (id_from_name)")
        self.room_id: str = ctx.id.name
        self.room_version: RoomVersion | None = None
        self.state: dict[StateKey, str] = {}
        self.events: dict[str, Event] = {}  # current state events and forward extremities
        self.extremities: list[str] = []
        self.depth = 0
        self.state_group: str | None = None
        self._persisted_state_group: str | None = None  # rooms.state_group as last committed
        self.group_chain_len = 0
        ctx.block_concurrency_while(self._load)

    # --- loading --------------------------------------------------------------------------
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

    # --- helpers --------------------------------------------------------------------------
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

    def _build(
        self, sender: str, event_type: str, content: Mapping[str, Any],
        state_key: str | None, redacts: str | None = None,
    ) -> Event:
        room_version = self._require_room()
        prev = sorted(self.extremities, key=lambda e: -self.events[e].depth)[:MAX_PREV_EVENTS]
        depth = min(max((self.events[e].depth for e in prev), default=0) + 1, MAX_DEPTH)
        try:
            return build_event(
                room_version,
                room_id=self.room_id,
                sender=sender,
                type=event_type,
                content=content,
                state_key=state_key,
                prev_event_ids=prev,
                auth_event_ids=self._auth_event_ids(event_type, state_key, sender, content),
                depth=depth,
                origin_server_ts=self._now_ms(),
                server_name=self.env.config.server_name,
                signing_key=self.env.signing_key,
                redacts=redacts,
                event_id_localpart=os.urandom(12).hex() if room_version.event_id_in_event else None,
                get_event_hashes=self._hashes_of if room_version.event_id_in_event else None,
            )
        except InvalidEvent as exc:
            raise MatrixError(400, Codes.BAD_JSON, f"Invalid event: {exc.reason}") from exc
        except ValueError as exc:
            raise MatrixError(400, Codes.BAD_JSON, f"Invalid event: {exc}") from exc

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

    # --- applying accepted events ---------------------------------------------------------
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
        replace_extremities(db, plan, removed, [event.event_id])
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

    def _snapshot(self) -> tuple[Any, ...]:
        return (dict(self.state), dict(self.events), list(self.extremities), self.depth,
                self.state_group, self.group_chain_len, self.room_version)

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        (self.state, self.events, self.extremities, self.depth,
         self.state_group, self.group_chain_len, self.room_version) = snapshot

    async def _commit(
        self, plan: PersistPlan, notify_users: set[str], fan_out: list[Event] | None = None
    ) -> int:
        """Commit the plan in one D1 batch, then wake syncs and hand our own new events to
        the other servers in the room; return the stream ordering of the last event."""
        db = self.env.DB
        if self.state_group != self._persisted_state_group:
            set_room_state_group(db, plan, self.state_group)
        results = await db.batch(plan.statements)
        self._persisted_state_group = self.state_group
        self.env.NOTIFIER.notify([self.room_id, *notify_users])
        if fan_out:
            await self._send_to_servers(fan_out)
        return results[plan.event_statements[-1]].results[0]["stream_ordering"]

    def servers_in_room(self) -> set[str]:
        """Servers with a joined member in the current state."""
        servers = set()
        for (event_type, state_key), event_id in self.state.items():
            if event_type == "m.room.member":
                event = self.events.get(event_id)
                if event is not None and event.membership == "join" and ":" in state_key:
                    servers.add(state_key.split(":", 1)[1])
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
        keep = set(self.state.values()) | set(self.extremities)
        if len(self.events) > 2 * len(keep) + 100:
            self.events = {k: v for k, v in self.events.items() if k in keep}

    # --- calls ----------------------------------------------------------------------------
    async def create_room(
        self, room_version: str, create_pdu: dict[str, Any], events: list[dict[str, Any]],
        is_public: bool = False,
    ) -> dict[str, Any]:
        """Persist a new room: its create event (built and signed by the caller, since in
        room version 12 it defines the room ID) and the initial events built here from
        templates ``{type, state_key?, content, sender}``, all in one batch."""
        if self.room_version is not None:
            raise MatrixError(400, Codes.ROOM_IN_USE, "Room already exists")
        try:
            version = get_room_version(room_version)
        except UnsupportedRoomVersion as exc:
            raise MatrixError(400, Codes.UNSUPPORTED_ROOM_VERSION, str(exc)) from exc
        try:
            validate_pdu(create_pdu, version)
            create = event_from_pdu(create_pdu, version)
        except InvalidEvent as exc:
            raise MatrixError(400, Codes.BAD_JSON, f"Invalid create event: {exc.reason}") from exc
        if create.room_id != self.room_id or create.type != "m.room.create":
            raise MatrixError(400, Codes.BAD_JSON, "The create event does not define this room")
        snapshot = self._snapshot()
        self.room_version = version
        try:
            try:
                check_event_auth(create, [])
            except AuthError as exc:
                raise MatrixError(403, Codes.FORBIDDEN, f"Not allowed: {exc.reason}") from exc
            db = self.env.DB
            plan = PersistPlan(self.room_id)
            plan.statements.append(
                db.prepare(
                    "INSERT INTO rooms (room_id, room_version, creator, created_ts, is_public)"
                    " VALUES (?,?,?,?,?)"
                ).bind(self.room_id, version.identifier, create.sender, create.origin_server_ts,
                       int(is_public))
            )
            self._plan_accept(plan, create, None)
            users: set[str] = set()
            for template in events:
                event = self._build(
                    template["sender"], template["type"], template.get("content", {}),
                    template.get("state_key"),
                )
                self._check_auth(event)
                unsigned = None
                if event.type == "m.room.member" and event.membership == "invite":
                    unsigned = {"invite_room_state": self._stripped_state()}
                    users.add(event.state_key or "")
                self._plan_accept(plan, event, unsigned)
            await self._commit(plan, users, fan_out=[self.events[e] for e in plan.event_ids])
        except BaseException:
            self._restore(snapshot)
            raise
        log.info("room %s created (version %s) by %s", self.room_id, version.identifier, create.sender)
        return {"room_id": self.room_id, "event_ids": plan.event_ids}

    async def send_event(
        self,
        sender: str,
        type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        txn: dict[str, str] | None = None,
        redacts: str | None = None,
    ) -> dict[str, Any]:
        """Build, authorise and persist a local event; idempotent per (device, txn_id)."""
        room_version = self._require_room()
        db = self.env.DB
        if txn is not None:
            earlier = await db.prepare(
                "SELECT event_id FROM event_txn_ids WHERE user_id = ? AND device_id = ?"
                " AND room_id = ? AND txn_id = ?"
            ).bind(sender, txn["device_id"], self.room_id, txn["txn_id"]).first("event_id")
            if earlier is not None:
                return {"event_id": earlier}
        if type == "m.room.redaction" or redacts is not None:
            if redacts is None:
                redacts = content.get("redacts") if isinstance(content.get("redacts"), str) else None
            content = {k: v for k, v in content.items() if k != "redacts"}
        event = self._build(sender, type, content, state_key, redacts)
        self._check_auth(event)
        if event.type == "m.room.redaction":
            await self._check_redaction_target(event, sender)
        snapshot = self._snapshot()
        try:
            plan = PersistPlan(self.room_id)
            unsigned = None
            users: set[str] = set()
            if event.type == "m.room.member":
                users.add(event.state_key or "")
                if event.membership == "invite":
                    unsigned = {"invite_room_state": self._stripped_state()}
                elif event.membership == "knock":
                    unsigned = {"knock_room_state": self._stripped_state()}
            self._plan_accept(plan, event, unsigned)
            if txn is not None:
                record_txn(db, plan, sender, txn["device_id"], txn["txn_id"], event.event_id,
                           self._now_ms())
            stream = await self._commit(plan, users, fan_out=[event])
        except BaseException:
            self._restore(snapshot)
            raise
        self._prune_event_cache()
        log.debug("room %s: %s %s from %s", self.room_id, event.type, event.event_id, sender)
        return {"event_id": event.event_id, "stream_ordering": stream}

    async def update_membership(
        self,
        sender: str,
        target: str,
        membership: str,
        reason: str | None = None,
        extra_content: dict[str, Any] | None = None,
        txn: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send an ``m.room.member`` event for ``target`` (join, invite, leave, ban, knock).

        For a join under a ``restricted``/``knock_restricted`` rule by a user who is not
        invited, the allow conditions are checked here and a local user with the invite
        power is named in ``join_authorised_via_users_server`` (spec: "Restricted rooms").
        """
        self._require_room()
        content: dict[str, Any] = dict(extra_content or {})
        content["membership"] = membership
        if reason:
            content["reason"] = reason
        if membership == "join":
            if sender != target:
                raise MatrixError(403, Codes.FORBIDDEN, "You can only join as yourself")
            await self._authorise_restricted_join(target, content)
        return await self.send_event(sender, "m.room.member", content, state_key=target, txn=txn)

    async def _authorise_restricted_join(self, user_id: str, content: dict[str, Any]) -> None:
        room_version = self._require_room()
        join_rules = self._state_event("m.room.join_rules")
        rule = join_rules.content.get("join_rule") if join_rules is not None else None
        restricted = (rule == "restricted" and room_version.restricted_join_rule) or (
            rule == "knock_restricted" and room_version.knock_restricted_join_rule
        )
        if not restricted:
            return
        member = self._state_event("m.room.member", user_id)
        if member is not None and member.membership in ("join", "invite"):
            return
        allow = join_rules.content.get("allow") if join_rules is not None else None
        allowed = False
        for entry in allow if isinstance(allow, list) else []:
            if not isinstance(entry, dict) or entry.get("type") != "m.room_membership":
                continue
            other = entry.get("room_id")
            if isinstance(other, str) and await self.env.DB.prepare(
                "SELECT 1 FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
                " AND state_key = ? AND membership = 'join'"
            ).bind(other, user_id).first() is not None:
                allowed = True
                break
        if not allowed:
            raise MatrixError(
                403, Codes.FORBIDDEN,
                "You are not invited to this room and do not meet its join conditions",
            )
        create = self._state_event("m.room.create")
        power = self._state_event("m.room.power_levels")
        assert create is not None
        invite_level = 0
        if power is not None:
            try:
                invite_level = int(power.content.get("invite", 0))
            except (TypeError, ValueError):
                invite_level = 0
        suffix = ":" + self.env.config.server_name
        for (event_type, state_key), event_id in sorted(self.state.items()):
            if event_type != "m.room.member" or not state_key.endswith(suffix):
                continue
            event = self.events.get(event_id)
            if event is not None and event.membership == "join" and (
                user_power_level(state_key, power, create) >= invite_level
            ):
                content["join_authorised_via_users_server"] = state_key
                return
        raise MatrixError(
            403, Codes.FORBIDDEN, "No user on this server can authorise your join to this room"
        )

    async def user_can_send_state(self, user_id: str, event_type: str) -> bool:
        """Whether a joined user has the power to send this state event type."""
        self._require_room()
        member = self._state_event("m.room.member", user_id)
        if member is None or member.membership != "join":
            return False
        create = self._state_event("m.room.create")
        power = self._state_event("m.room.power_levels")
        assert create is not None
        return user_power_level(user_id, power, create) >= event_power_level(event_type, "", power)

    async def set_published(self, published: bool) -> None:
        """Publish the room in (or remove it from) this server's room directory."""
        self._require_room()
        await self.env.DB.prepare("UPDATE rooms SET is_public = ? WHERE room_id = ?").bind(
            int(published), self.room_id
        ).run()

    async def _check_redaction_target(self, event: Event, sender: str) -> None:
        """A client may redact its own events, or anyone's with the `redact` power level
        (spec: client-server "Redactions"; from room v3 the auth rules leave this to servers)."""
        target_id = event.redacts
        if target_id is None:
            raise MatrixError(400, Codes.BAD_JSON, "A redaction needs the event it redacts")
        create = self._state_event("m.room.create")
        power = self._state_event("m.room.power_levels")
        assert create is not None
        content = power.content if power is not None else {}
        try:
            redact_level = int(content.get("redact", 50))
        except (TypeError, ValueError):
            redact_level = 50
        if user_power_level(sender, power, create) >= redact_level:
            return
        row = await self.env.DB.prepare(
            "SELECT sender, room_id FROM events WHERE event_id = ?"
        ).bind(target_id).first()
        if row is None or row["room_id"] != self.room_id or row["sender"] != sender:
            raise MatrixError(403, Codes.FORBIDDEN, "You cannot redact other users' events")

    # --- events from other servers ----------------------------------------------------------
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
            replace_extremities(self.env.DB, plan, removed, [event.event_id])
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
        create = self._state_event("m.room.create")
        power = self._state_event("m.room.power_levels")
        assert create is not None
        content = power.content if power is not None else {}
        try:
            redact_level = int(content.get("redact", 50))
        except (TypeError, ValueError):
            redact_level = 50
        if same_domain or user_power_level(event.sender, power, create) >= redact_level:
            mark_redacted(self.env.DB, plan, target_id, event.event_id)

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
            name = "knock_room_state" if event.membership == "knock" else "invite_room_state"
            unsigned = {name: [s for s in invite_room_state if isinstance(s, dict)]}
        insert_event(db, plan, event, state_group=None, outlier=True, local_unsigned=unsigned)
        if self.room_version is None or self.env.config.server_name not in self.servers_in_room():
            # Not in the room: this membership is all we know of it, and /sync and the
            # membership endpoints read a user's membership from current_state.
            set_current_state(db, plan, "m.room.member", event.state_key or "", event)
        await db.batch(plan.statements)
        self.env.NOTIFIER.notify([event.state_key or ""])
        return {"event_id": event.event_id}

    async def prepare_event(
        self, sender: str, type: str, content: dict[str, Any], state_key: str | None = None
    ) -> dict[str, Any]:
        """Build and authorise a local event without persisting it, for a handshake with
        another server first (an invite to a remote user: spec "Inviting to a room")."""
        self._require_room()
        event = self._build(sender, type, content, state_key)
        self._check_auth(event)
        return dict(event.pdu)

    async def send_prepared(self, pdu: dict[str, Any]) -> dict[str, Any]:
        """Persist one of our own events built by ``prepare_event`` (possibly carrying
        another server's signature by now), taking it through the same checks as any PDU
        since the room may have moved on meanwhile, then send it to the room's servers."""
        room_version = self._require_room()
        event = event_from_pdu(pdu, room_version)
        if event.sender.split(":", 1)[-1] != self.env.config.server_name:
            raise MatrixError(400, Codes.BAD_JSON, "Only our own events can be sent this way")
        known = await self._known([event.event_id, *event.prev_event_ids, *event.auth_event_ids])
        result = await self._accept_remote(event, known, fan_out=True)
        if result["outcome"] != "accepted":
            raise MatrixError(403, Codes.FORBIDDEN, f"Not allowed: {result['reason']}")
        return {"event_id": event.event_id}

    # --- federation membership handshakes -------------------------------------------------
    async def make_membership_event(self, user_id: str, membership: str) -> dict[str, Any]:
        """The event template a remote server asks for with make_join/make_leave/make_knock
        (spec: server-server "Joining Rooms", "Leaving Rooms", "Knocking"): prev_events,
        auth_events and depth from our current state, checked against the auth rules so an
        unauthorised handshake is refused here (403) rather than at send_*."""
        room_version = self._require_room()
        content: dict[str, Any] = {"membership": membership}
        if membership == "join":
            await self._authorise_restricted_join(user_id, content)
        prev = sorted(self.extremities, key=lambda e: -self.events[e].depth)[:MAX_PREV_EVENTS]
        template: dict[str, Any] = {
            "type": "m.room.member",
            "room_id": self.room_id,
            "sender": user_id,
            "state_key": user_id,
            "content": content,
            "origin_server_ts": self._now_ms(),
            "depth": min(max(self.events[e].depth for e in prev) + 1, MAX_DEPTH),
            "prev_events": prev,
            "auth_events": self._auth_event_ids("m.room.member", user_id, user_id, content),
        }
        if not room_version.updated_redaction_rules:
            template["origin"] = user_id.split(":", 1)[1]
        if room_version.event_id_in_event:
            template["prev_events"] = [[e, dict(self._hashes_of(e))] for e in prev]
            template["auth_events"] = [[e, dict(self._hashes_of(e))] for e in template["auth_events"]]
        probe = Event({**template, "hashes": {}, "signatures": {}}, room_version, "$probe")
        auth_events = [self.events[e] for e in probe.auth_event_ids]
        create = self._state_event("m.room.create")
        if create is not None and not room_version.create_event_in_auth_events:
            auth_events.append(create)
        try:
            check_event_auth(probe, auth_events)
        except AuthError as exc:
            raise MatrixError(403, Codes.FORBIDDEN, f"You cannot {membership} this room: {exc.reason}") from exc
        return {"event": template, "room_version": room_version.identifier}

    async def join_remote_room(
        self, room_version: str, join_pdu: dict[str, Any], state: list[dict[str, Any]],
        auth_chain: list[dict[str, Any]], origin: str,
    ) -> dict[str, Any]:
        """Become a member of a room hosted elsewhere, from a send_join answer: store the
        auth chain and state as outliers (each checked for format, signatures and against
        its own auth events), check our join against that state, then persist it as the
        room's first DAG event here (spec: server-server "Joining Rooms", the joining
        server's checks of the response)."""
        try:
            version = get_room_version(room_version)
        except UnsupportedRoomVersion as exc:
            raise MatrixError(400, Codes.INCOMPATIBLE_ROOM_VERSION, str(exc)) from exc
        join = event_from_pdu(join_pdu, version)
        if await self.env.DB.prepare("SELECT 1 FROM events WHERE event_id = ? AND outlier = 0").bind(
            join.event_id
        ).first():
            return {"event_id": join.event_id}
        snapshot = self._snapshot()
        self.room_version = version
        try:
            create_pdu = next((p for p in state if p.get("type") == "m.room.create"
                               and p.get("state_key") == ""), None)
            if create_pdu is None:
                raise MatrixError(502, Codes.UNKNOWN, f"{origin} sent a room state without a create event")
            create = event_from_pdu(create_pdu, version)
            if create.room_id != self.room_id:
                raise MatrixError(502, Codes.UNKNOWN, f"{origin} sent the state of another room")
            db = self.env.DB
            if not await db.prepare("SELECT 1 FROM rooms WHERE room_id = ?").bind(self.room_id).first():
                await db.prepare(
                    "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?,?,?,?)"
                ).bind(self.room_id, version.identifier, create.sender, create.origin_server_ts).run()
            outcome = await self.store_outliers(auth_chain + state)
            state_ids = {}
            for pdu in state:
                event = event_from_pdu(pdu, version)
                if outcome["outcomes"].get(event.event_id, "stored") in ("stored", "duplicate"):
                    state_ids[event.key] = event.event_id
            await self._load_events(set(state_ids.values()), with_auth_chains=False)
            rejected = {k for k, e in state_ids.items() if self.events[e].rejected_reason}
            for key in rejected:
                del state_ids[key]
            try:
                check_auth_rules(join, self._auth_state(join, state_ids))
            except AuthError as exc:
                raise MatrixError(
                    403, Codes.FORBIDDEN, f"Our join is not allowed by the room state: {exc.reason}"
                ) from exc
            plan = PersistPlan(self.room_id)
            before_id = f"sg_{os.urandom(12).hex()}"
            insert_state_group(db, plan, before_id, None, 0,
                               [[t, k, e] for (t, k), e in sorted(state_ids.items())])
            self.state_group = before_id
            self.group_chain_len = 0
            self._plan_state_change(plan, state_ids)
            replace_extremities(db, plan, list(self.extremities), [])
            self.extremities = []
            self._plan_accept(plan, join, None)
            # The join's prev_events are not in our DAG: they are the remote extremities.
            await self._commit(plan, {join.state_key or ""})
        except BaseException:
            self._restore(snapshot)
            raise
        log.info("room %s: joined through %s (version %s)", self.room_id, origin, version.identifier)
        return {"event_id": join.event_id}

    async def sign_restricted_join(self, pdu: dict[str, Any]) -> dict[str, Any]:
        """Add our signature to a remote restricted join that one of our users authorises
        (spec: "Restricted rooms", send_join)."""
        room_version = self._require_room()
        authoriser = pdu.get("content", {}).get("join_authorised_via_users_server")
        if not isinstance(authoriser, str) or not authoriser.endswith(":" + self.env.config.server_name):
            return pdu
        from durable.events import sign_event

        return sign_event(pdu, room_version, self.env.config.server_name, self.env.signing_key)

    async def summary(self) -> dict[str, Any]:
        """The room's version, current state IDs and forward extremities (for workers and tests)."""
        room_version = self._require_room()
        return {
            "room_id": self.room_id,
            "room_version": room_version.identifier,
            "state": [[t, k, e] for (t, k), e in sorted(self.state.items())],
            "extremities": sorted(self.extremities),
            "depth": self.depth,
        }

    async def summary_servers(self) -> dict[str, Any]:
        """The servers with joined members (for send_join's ``servers_in_room``)."""
        self._require_room()
        return {"servers": sorted(self.servers_in_room())}

    async def stripped_state(self) -> list[dict[str, Any]]:
        """The stripped state of the room (spec: "Stripped state"), for knocks and invites."""
        self._require_room()
        return self._stripped_state()

    async def state_event_content(self, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        event = self._state_event(event_type, state_key)
        return None if event is None else json.loads(json.dumps(event.content))
