"""The pusher actor: one per local user with pushers (binding ``env.PUSHERS``, addressed by
user ID). It turns the user's new notifying events into ``/_matrix/push/v1/notify``
requests, one queue per pusher, delivered in order with retries.

Spec: client-server API "Push Notifications" ("Server behaviour": push rules are processed
for each local user in the room but the sender, and may result in a request to the push
gateway) and the Push Gateway API ("If the endpoint returns an HTTP error code, the
homeserver SHOULD retry for a reasonable amount of time using exponential backoff";
pushkeys the gateway returns in ``rejected`` must not be used again: their pushers go).

- ``process(upto)``: the user's joined rooms with events in ``(position, upto]`` are
  evaluated (``workers.push.unread.ensure_evaluated``: the same rows /sync counts), invites
  to the user too; each notifying event is queued for every pusher (``q:<pusher>:<seq>``),
  committed before the call returns, and an alarm is set. ``position`` starts where the
  first pusher was set, so no old events are pushed.
- ``alarm()``: each pusher not backing off and with nothing in flight sends its oldest item
  from a background task (callers are never held up by a slow gateway); the outcome comes
  back through ``delivery_done``. 2xx: the item goes. Network error, timeout, 5xx, 408,
  429: the same item again after ``BASE_BACKOFF_SECONDS`` doubling up to
  ``MAX_BACKOFF_SECONDS``; after ``MAX_ATTEMPTS`` it is dropped. Another 4xx, or a URL the IP
  policy refuses: the item is dropped. A watchdog alarm resends an item whose send was lost
  to a restart.
- ``pushers_changed(position)``: the queues of pushers that no longer exist are dropped.

The request is built at send time: ``counts.unread`` is the user's unread total then.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any

from d1 import push_actions as actions_db
from d1 import pushers as pushers_db
from durable.base import DurableObject, DurableObjectState
from workers.client.history import TIMELINE_SQL, RoomReader
from workers.push.context import PushContexts
from workers.push.evaluator import tweaks
from workers.push.gateway import EVENT_ID_ONLY, Device, GatewayError, notification_body
from workers.push.pushers import gateway_client
from workers.push.unread import ensure_evaluated, evaluate_rows, user_ruleset

log = logging.getLogger(__name__)

QUEUE_PREFIX = "q:"
RETRY_PREFIX = "retry:"
INFLIGHT_PREFIX = "inflight:"


def _now_ms() -> int:
    return int(time.time() * 1000)


def pusher_id(app_id: str, pushkey: str) -> str:
    """A storage-safe name for a pusher (its app_id and pushkey may hold any characters)."""
    return hashlib.sha256(f"{app_id}\n{pushkey}".encode()).hexdigest()[:24]


class PusherActor(DurableObject):
    BASE_BACKOFF_SECONDS = 1.0
    MAX_BACKOFF_SECONDS = 600.0
    MAX_ATTEMPTS = 12
    SEND_GRACE_SECONDS = 15.0

    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        if ctx.id.name is None:
            raise RuntimeError("pusher actors are addressed by user ID (id_from_name)")
        self.user_id: str = ctx.id.name
        self._sending: dict[str, asyncio.Task[None]] = {}

    # --- calls ------------------------------------------------------------------------------
    async def pushers_changed(self, position: int) -> None:
        """The user's pushers changed: start from ``position`` if this is the first, and drop
        the queues of pushers that are gone."""
        storage = self.ctx.storage
        pushers = await pushers_db.list_pushers(self.env.DB, self.user_id)
        if not pushers:
            await storage.delete_all()
            return
        if await storage.get("position") is None:
            await storage.put("position", position)
        live = {pusher_id(p["app_id"], p["pushkey"]) for p in pushers}
        stale = [
            k for k in (await storage.list(prefix=QUEUE_PREFIX)) | (await storage.list(prefix=RETRY_PREFIX))
            | (await storage.list(prefix=INFLIGHT_PREFIX))
            if k.split(":")[1] not in live
        ]
        if stale:
            await storage.delete(stale)

    async def process(self, upto: int) -> dict[str, int]:
        """Queue the notifying events at or before ``upto`` that are new since the last call."""
        storage = self.ctx.storage
        db = self.env.DB
        pushers = await pushers_db.list_pushers(db, self.user_id)
        if not pushers:
            await storage.delete_all()
            return {"queued": 0}
        position = await storage.get("position")
        if position is None:
            await storage.put("position", upto)
            return {"queued": 0}
        if upto <= position:
            return {"queued": 0}
        reader = RoomReader(db, user_id=self.user_id, device_id=None, now_ms=_now_ms())
        rooms = (
            await db.prepare(
                "SELECT DISTINCT e.room_id FROM events e JOIN current_state c ON c.room_id = e.room_id"
                " AND c.type = 'm.room.member' AND c.state_key = ? AND c.membership = 'join'"
                " WHERE e.stream_ordering > ? AND e.stream_ordering <= ?"
            ).bind(self.user_id, position, upto).all()
        ).results
        await ensure_evaluated(reader, self.user_id, sorted(r["room_id"] for r in rooms), upto)
        await self._evaluate_invites(reader, position, upto)
        found = await actions_db.actions_between(db, self.user_id, position, upto)
        seq = (await storage.get("seq")) or 0
        entries: dict[str, Any] = {}
        for row in found:
            item = {"event_id": row["event_id"], "room_id": row["room_id"], "actions": row["actions"]}
            for pusher in pushers:
                entries[f"{QUEUE_PREFIX}{pusher_id(pusher['app_id'], pusher['pushkey'])}:{seq:020d}"] = item
                seq += 1
        entries["seq"] = seq
        entries["position"] = upto
        await storage.put(entries)
        if found:
            await storage.set_alarm(_now_ms())
        return {"queued": len(entries) - 2}

    async def status(self) -> dict[str, Any]:
        storage = self.ctx.storage
        return {
            "position": await storage.get("position"),
            "queued": len(await storage.list(prefix=QUEUE_PREFIX)),
            "retry": {k[len(RETRY_PREFIX):]: v for k, v in (await storage.list(prefix=RETRY_PREFIX)).items()},
            "sent": (await storage.get("sent")) or 0,
            "dropped": (await storage.get("dropped")) or 0,
            "alarm_ms": await storage.get_alarm(),
        }

    async def delivery_done(self, pid: str, key: str, outcome: str, detail: str = "") -> None:
        """Record the outcome of sending the item ``key`` of pusher ``pid``: "sent",
        "refused" (dropped), "rejected" (the pushkey is dead: the pusher goes) or "failed".

        Called by this actor's own background sender through the stub (not during a call).
        """
        storage = self.ctx.storage
        inflight = await storage.get(INFLIGHT_PREFIX + pid)
        if inflight is None or inflight["key"] != key:
            return  # a stale outcome
        await storage.delete(INFLIGHT_PREFIX + pid)
        if outcome == "rejected":
            await self._drop_pusher(pid, detail)
        elif outcome in ("sent", "refused"):
            await storage.delete([key, RETRY_PREFIX + pid])
            counter = "sent" if outcome == "sent" else "dropped"
            await storage.put(counter, ((await storage.get(counter)) or 0) + 1)
            if outcome == "refused":
                log.warning("push to %s (%s) refused, dropped: %s", self.user_id, pid, detail)
        else:
            retry = (await storage.get(RETRY_PREFIX + pid)) or {"attempts": 0}
            attempts = retry["attempts"] + 1
            if attempts >= self.MAX_ATTEMPTS:
                log.warning("push to %s (%s) failed %d times, dropped: %s", self.user_id, pid, attempts, detail)
                await storage.delete([key, RETRY_PREFIX + pid])
                await storage.put("dropped", ((await storage.get("dropped")) or 0) + 1)
            else:
                delay = min(self.BASE_BACKOFF_SECONDS * 2 ** (attempts - 1), self.MAX_BACKOFF_SECONDS)
                await storage.put(RETRY_PREFIX + pid, {
                    "attempts": attempts, "next_ms": _now_ms() + int(delay * 1000), "last_error": detail[:500],
                })
                log.info("push to %s (%s) failed (attempt %d), retrying in %.1fs: %s",
                         self.user_id, pid, attempts, delay, detail)
        await self._schedule()

    # --- evaluation ---------------------------------------------------------------------------
    async def _evaluate_invites(self, reader: RoomReader, position: int, upto: int) -> None:
        """Invites of the user (rooms they are not in, so not covered by ensure_evaluated)."""
        db = self.env.DB
        rows = (
            await db.prepare(
                "SELECT * FROM events WHERE state_key = ? AND type = 'm.room.member'"
                " AND membership = 'invite' AND stream_ordering > ? AND stream_ordering <= ?"
                " AND rejected_reason IS NULL AND soft_failed = 0 ORDER BY stream_ordering"
            ).bind(self.user_id, position, upto).all()
        ).results
        if not rows:
            return
        reader.remember(rows)
        found = await evaluate_rows(
            reader, PushContexts(reader), self.user_id, await user_ruleset(reader, self.user_id), rows
        )
        if found:
            await db.batch([actions_db.insert_action(db, self.user_id, r) for r in found])

    # --- delivery -----------------------------------------------------------------------------
    async def alarm(self) -> None:
        storage = self.ctx.storage
        pushers = {
            pusher_id(p["app_id"], p["pushkey"]): p
            for p in await pushers_db.list_pushers(self.env.DB, self.user_id)
        }
        orphans = [
            k for k in await storage.list(prefix=QUEUE_PREFIX) if k.split(":")[1] not in pushers
        ]
        if orphans:  # queued for a pusher that was removed meanwhile
            await storage.delete(orphans)
        now = _now_ms()
        grace = int((gateway_client(self.env).timeout + self.SEND_GRACE_SECONDS) * 1000)
        for pid, pusher in pushers.items():
            task = self._sending.get(pid)
            if task is not None and not task.done():
                continue
            inflight = await storage.get(INFLIGHT_PREFIX + pid)
            if inflight is not None and now - inflight["started_ms"] < grace:
                continue  # sent by an earlier instance; its outcome may still come
            retry = await storage.get(RETRY_PREFIX + pid)
            if retry is not None and retry["next_ms"] > now:
                continue
            head = await storage.list(prefix=f"{QUEUE_PREFIX}{pid}:", limit=1)
            if not head:
                continue
            key, item = next(iter(head.items()))
            await storage.put(INFLIGHT_PREFIX + pid, {"key": key, "started_ms": now})
            self._sending[pid] = asyncio.get_running_loop().create_task(
                self._deliver(pid, key, item, pusher)
            )
        await self._schedule()

    async def _schedule(self) -> None:
        """The next alarm: now if a pusher can send, else the earliest retry or watchdog."""
        storage = self.ctx.storage
        now = _now_ms()
        grace = int((gateway_client(self.env).timeout + self.SEND_GRACE_SECONDS) * 1000)
        queued = {k.split(":")[1] for k in await storage.list(prefix=QUEUE_PREFIX)}
        times: list[int] = []
        for pid in queued:
            inflight = await storage.get(INFLIGHT_PREFIX + pid)
            retry = await storage.get(RETRY_PREFIX + pid)
            if inflight is not None:
                times.append(inflight["started_ms"] + grace)
            elif retry is not None:
                times.append(retry["next_ms"])
            else:
                times.append(now)
        if times:
            await storage.set_alarm(max(now, min(times)))
        else:
            await storage.delete_alarm()

    async def _request_body(self, item: dict[str, Any], pusher: dict[str, Any]) -> dict[str, Any] | None:
        db = self.env.DB
        reader = RoomReader(db, user_id=self.user_id, device_id=None, now_ms=_now_ms())
        row = await reader.row(item["event_id"])
        if row is None:
            return None
        event = json.loads(row["json"])
        event.setdefault("room_id", row["room_id"])
        event["event_id"] = row["event_id"]
        if row.get("redacted_by") is not None:
            event["content"] = {}
        state = await reader.state_at(row["room_id"], None)
        name = (await reader.content_of(state.get(("m.room.name", "")))).get("name")
        alias = (await reader.content_of(state.get(("m.room.canonical_alias", "")))).get("alias")
        sender = (await reader.content_of(state.get(("m.room.member", row["sender"])))).get("displayname")
        data = pusher["data"]
        device = Device(
            app_id=pusher["app_id"], pushkey=pusher["pushkey"], pushkey_ts=int(pusher["pushkey_ts"]),
            data=data, tweaks=tweaks(item["actions"]),
        )
        return notification_body(
            event, [device], event_id_only=data.get("format") == EVENT_ID_ONLY,
            unread=await actions_db.total_unread(db, self.user_id), user_id=self.user_id,
            sender_display_name=sender if isinstance(sender, str) else None,
            room_name=name if isinstance(name, str) else None,
            room_alias=alias if isinstance(alias, str) else None,
        )

    async def _deliver(self, pid: str, key: str, item: dict[str, Any], pusher: dict[str, Any]) -> None:
        """Runs outside any call: sends one notification, then records the outcome."""
        outcome, detail = "sent", ""
        try:
            body = await self._request_body(item, pusher)
            if body is None:
                outcome, detail = "refused", f"event {item['event_id']} is gone"
            else:
                rejected = await gateway_client(self.env).notify(pusher["data"]["url"], body)
                if pusher["pushkey"] in rejected:
                    outcome, detail = "rejected", "the gateway rejected the pushkey"
        except GatewayError as exc:
            outcome = "failed" if exc.retryable else "refused"
            detail = exc.message
        except Exception as exc:  # a bug must not wedge the queue: log it and retry later
            log.exception("push of %s to %s failed unexpectedly", item.get("event_id"), self.user_id)
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
        try:
            await self.env.PUSHERS.get_by_name(self.user_id).delivery_done(pid, key, outcome, detail)
        except RuntimeError as exc:  # the namespace closed (shutdown): the watchdog resends
            log.info("push outcome for %s not recorded: %s", self.user_id, exc)

    async def _drop_pusher(self, pid: str, detail: str) -> None:
        db = self.env.DB
        for pusher in await pushers_db.list_pushers(db, self.user_id):
            if pusher_id(pusher["app_id"], pusher["pushkey"]) == pid:
                await db.batch([pushers_db.delete(db, self.user_id, pusher["app_id"], pusher["pushkey"])])
                log.warning("pusher %s of %s removed: %s", pusher["app_id"], self.user_id, detail)
        storage = self.ctx.storage
        keys = list(await storage.list(prefix=f"{QUEUE_PREFIX}{pid}:"))
        await storage.delete(keys + [RETRY_PREFIX + pid])
