"""Events created here: room creation, sending, membership changes (with restricted-join
authorisation), redactions, and events prepared for a handshake with another server.

Spec: server-server API "Authorization rules" and "Auth events selection" (the event is
built from the forward extremities and the current state, hashed, signed, authorised and
persisted before it is acknowledged); client-server "Redactions" and "Restricted rooms".
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from typing import Any, Mapping

from durable.base import OutputGate, pipelined
from durable.auth import (
    check_event_auth,
    event_power_level,
    user_power_level,
)
from d1.database import D1Error
from d1.txn_ids import event_for_txn
from durable.errors import AuthError, InvalidEvent
from durable.events import build_event, event_from_pdu, validate_pdu
from durable.events.event import Event
from durable.room.persist import PersistPlan, record_txn
from durable.room_versions import UnsupportedRoomVersion, get_room_version
from durable.server_acl import server_allowed_by_acl
from workers.errors import Codes, MatrixError
from durable.room.remote import RemoteEvents
from durable.room.core import MAX_DEPTH, MAX_PREV_EVENTS

log = logging.getLogger(__name__)

# Transaction IDs of this many recent sends are remembered by the actor.
RECENT_TXNS = 10_000


class LocalEvents(RemoteEvents):
    _recent_txns: "OrderedDict[tuple[str, str, str], tuple[str, asyncio.Future[int]]]"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._recent_txns = OrderedDict()
        self._answering: set[asyncio.Task[None]] = set()

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

    def _check_own_server_allowed(self, event: Event) -> None:
        """Refuse a server ACL of ours that would shut this server out of the room (as
        Synapse does: the room's own members could no longer federate)."""
        if event.type == "m.room.server_acl" and event.state_key == "" and not server_allowed_by_acl(
            self.env.config.server_name, event.content
        ):
            raise MatrixError(400, Codes.UNKNOWN, "A server ACL may not deny this server")

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
                self._check_own_server_allowed(event)
                self._check_auth(event)
                unsigned = None
                if event.type == "m.room.member":
                    # The creator's join and each invite: those users' waiting syncs watch
                    # only the rooms they knew, so they are woken by user.
                    users.add(event.state_key or "")
                    if event.membership == "invite":
                        unsigned = {"invite_room_state": self._stripped_state()}
                self._plan_accept(plan, event, unsigned)
            await self._commit(plan, users, fan_out=[self.events[e] for e in plan.event_ids])
        except BaseException:
            self._restore(snapshot)
            raise
        log.info("room %s created (version %s) by %s", self.room_id, version.identifier, create.sender)
        return {"room_id": self.room_id, "event_ids": plan.event_ids}

    @pipelined
    async def send_event(
        self,
        sender: str,
        type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        txn: dict[str, str] | None = None,
        redacts: str | None = None,
    ) -> OutputGate:
        """Build, authorise and queue a local event; answer once it is committed (the output
        gate lets the actor build the next event meanwhile). Idempotent per (device, txn_id).

        A repeated transaction ID (a client's retry) gets the event ID of the first send,
        whatever the room's state is now: from memory while the first is recent (in flight
        or committed by this instance), else from D1 (workers look there before calling, and
        the txn row's primary key refuses a repeat that slipped past both)."""
        return OutputGate(await self._send(sender, type, content, state_key, txn, redacts))

    @pipelined
    async def update_membership(
        self,
        sender: str,
        target: str,
        membership: str,
        reason: str | None = None,
        extra_content: dict[str, Any] | None = None,
        txn: dict[str, str] | None = None,
    ) -> OutputGate:
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
        return OutputGate(await self._send(sender, "m.room.member", content, target, txn, None))

    async def _send(
        self,
        sender: str,
        type: str,
        content: dict[str, Any],
        state_key: str | None,
        txn: dict[str, str] | None,
        redacts: str | None,
    ) -> "asyncio.Future[dict[str, Any]]":
        """Queue a new event (or find the txn's earlier one); return what answers the caller."""
        self._require_room()
        key = None if txn is None else (sender, txn["device_id"], txn["txn_id"])
        if key is not None and key in self._recent_txns:
            event_id, committed = self._recent_txns[key]
            return self._answer(event_id, committed, txn, sender, repeat=True)
        try:
            event_id, committed = await self._queue_new_event(sender, type, content, state_key, txn, redacts)
        except MatrixError:
            earlier = await self._earlier_txn_event(sender, txn)
            if earlier is None:
                raise
            answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            answer.set_result({"event_id": earlier})
            return answer
        if key is not None:
            self._recent_txns[key] = (event_id, committed)
            while len(self._recent_txns) > RECENT_TXNS:
                self._recent_txns.popitem(last=False)
        return self._answer(event_id, committed, txn, sender)

    async def _earlier_txn_event(self, sender: str, txn: dict[str, str] | None) -> str | None:
        if txn is None:
            return None
        return await event_for_txn(self.env.DB, sender, txn["device_id"], self.room_id, txn["txn_id"])

    def _answer(
        self, event_id: str, committed: "asyncio.Future[int]", txn: dict[str, str] | None,
        sender: str, repeat: bool = False,
    ) -> "asyncio.Future[dict[str, Any]]":
        """The caller's answer, settled once the event's batch has committed (a future of its
        own: ``committed`` may be shared by a repeated txn). A batch that failed because the
        txn row existed already (a repeat that reached D1) answers with the earlier event."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()

        def settle(done: "asyncio.Future[int]") -> None:
            if done.cancelled():
                answer.cancel()
                return
            error = done.exception()
            if error is None:
                stream = done.result()
                if not answer.done():
                    answer.set_result(
                        {"event_id": event_id} if repeat else {"event_id": event_id, "stream_ordering": stream}
                    )
            elif isinstance(error, D1Error) and txn is not None:
                lookup = loop.create_task(self._answer_with_earlier(answer, error, sender, txn))
                self._answering.add(lookup)  # held until done (the loop keeps weak references)
                lookup.add_done_callback(self._answering.discard)
            elif not answer.done():
                answer.set_exception(error)

        committed.add_done_callback(settle)
        return answer

    async def _answer_with_earlier(
        self, answer: "asyncio.Future[dict[str, Any]]", error: D1Error, sender: str, txn: dict[str, str]
    ) -> None:
        try:
            earlier = await self._earlier_txn_event(sender, txn)
        except BaseException as exc:  # noqa: BLE001  (the caller hears of it)
            if not answer.done():
                answer.set_exception(exc)
            return
        if not answer.done():
            if earlier is None:
                answer.set_exception(error)
            else:
                answer.set_result({"event_id": earlier})

    async def _queue_new_event(
        self,
        sender: str,
        type: str,
        content: dict[str, Any],
        state_key: str | None,
        txn: dict[str, str] | None,
        redacts: str | None,
    ) -> tuple[str, "asyncio.Future[int]"]:
        db = self.env.DB
        if type == "m.room.redaction" or redacts is not None:
            if redacts is None:
                redacts = content.get("redacts") if isinstance(content.get("redacts"), str) else None
            content = {k: v for k, v in content.items() if k != "redacts"}
            await self._commits_settled()  # the target's row may be in a batch in flight
        event = self._build(sender, type, content, state_key, redacts)
        self._check_own_server_allowed(event)
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
            committed = self._queue_commit(plan, users, fan_out=[event])
        except BaseException:
            self._restore(snapshot)
            raise
        self._prune_event_cache()
        log.debug("room %s: %s %s from %s", self.room_id, event.type, event.event_id, sender)
        return event.event_id, committed

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
        suffix = ":" + self.env.config.server_name
        for (event_type, state_key), event_id in sorted(self.state.items()):
            if event_type != "m.room.member" or not state_key.endswith(suffix):
                continue
            event = self.events.get(event_id)
            if event is not None and event.membership == "join" and self._has_power(state_key, "invite"):
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
        if self._has_power(sender, "redact"):
            return
        row = await self.env.DB.prepare(
            "SELECT sender, room_id FROM events WHERE event_id = ?"
        ).bind(target_id).first()
        if row is None or row["room_id"] != self.room_id or row["sender"] != sender:
            raise MatrixError(403, Codes.FORBIDDEN, "You cannot redact other users' events")

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
