"""Membership handshakes with other servers, the room actor's side: event templates for
make_join/make_leave/make_knock, countersigning restricted joins, and joining a room held
elsewhere from a send_join answer.

Spec: server-server API "Joining Rooms", "Leaving Rooms (Rejecting Invites)", "Knocking".
"""

from __future__ import annotations

import logging
import os
from typing import Any

from durable.auth import check_auth_rules, check_event_auth
from durable.errors import AuthError
from durable.events import add_content_hash, event_from_pdu, sign_event
from durable.events.event import Event
from durable.room.persist import (
    PersistPlan,
    insert_state_group,
    replace_extremities,
)
from durable.room_versions import UnsupportedRoomVersion, get_room_version
from workers.errors import Codes, MatrixError
from durable.room.local import LocalEvents
from durable.room.core import MAX_DEPTH, MAX_PREV_EVENTS

log = logging.getLogger(__name__)

class Handshakes(LocalEvents):
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
        probe_pdu: dict[str, Any] = {**template, "hashes": {}, "signatures": {}}
        if "join_authorised_via_users_server" in content:
            # We authorise this restricted join and will sign it at send_join; the auth
            # rules want the authorising server's signature, so the probe carries ours.
            probe_pdu = sign_event(add_content_hash(template), room_version,
                                   self.env.config.server_name, self.env.signing_key)
        probe = Event(probe_pdu, room_version, "$probe")
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
            replace_extremities(plan, list(self.extremities), [])
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
        return sign_event(pdu, room_version, self.env.config.server_name, self.env.signing_key)
