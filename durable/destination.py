"""The destination actor: the outbound federation queue of one remote server (a Durable
Object per server name, binding ``env.DESTINATIONS``).

Spec: server-server API "Transactions" and transactions.yaml: PDUs and EDUs are pushed in
transactions ``PUT /_matrix/federation/v1/send/{txnId}`` of at most 50 PDUs and 100 EDUs; the
sender "must wait and retry for a 200 OK response before sending a transaction with a
different txnId". So:

- ``enqueue_pdu`` / ``enqueue_edu`` append to a queue persisted in ``ctx.storage`` (committed
  before the call returns) and schedule an alarm; they never wait on the network.
- The alarm takes the oldest queued items (up to 50 PDUs and 100 EDUs, each kind in queue
  order) into a transaction, records it as in flight (same txnId and body on every retry),
  and sends it from a background task, so callers of ``enqueue_*`` are not held up by a slow
  or dead destination. A watchdog alarm covers a send lost to a crash or restart.
- On 200 the items are dropped and the next transaction follows at once. On a network error,
  timeout, 5xx, 408 or 429 the same transaction is retried after an exponential backoff
  (``BASE_BACKOFF_SECONDS`` doubling up to ``MAX_BACKOFF_SECONDS``), through alarms, which
  survive restarts. Any other 4xx means the destination refuses this transaction: it is
  dropped (logged) and the queue moves on.
- ``wake()`` (called when the destination shows it is up again, e.g. it sent us a request)
  ends the backoff and resumes at once: the queue catches up from where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from durable.base import DurableObject, DurableObjectState
from workers.federation.client import federation_client
from workers.federation.errors import FederationError, RemoteServerError

log = logging.getLogger(__name__)

MAX_PDUS_PER_TRANSACTION = 50
MAX_EDUS_PER_TRANSACTION = 100
QUEUE_PREFIX = "q:"
BACKOFF_KV_PREFIX = "fed:backoff:"  # read by workers.federation.auth.require_server


def _now_ms() -> int:
    return int(time.time() * 1000)


class DestinationActor(DurableObject):
    BASE_BACKOFF_SECONDS = 5.0
    MAX_BACKOFF_SECONDS = 3600.0
    # How long after a send started the watchdog retries it if no outcome was recorded.
    SEND_GRACE_SECONDS = 15.0

    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        if ctx.id.name is None:
            raise RuntimeError("destination actors are addressed by server name (id_from_name)")
        self.destination: str = ctx.id.name
        self._sending: asyncio.Task[None] | None = None

    # --- calls ------------------------------------------------------------------------------
    async def enqueue_pdu(self, pdu: dict[str, Any]) -> None:
        """Queue a PDU (in its federation form) for this destination."""
        await self._enqueue([("pdu", pdu)])

    async def enqueue_edu(self, edu: dict[str, Any]) -> None:
        """Queue an EDU (``{"edu_type", "content"}``) for this destination."""
        await self._enqueue([("edu", edu)])

    async def enqueue(self, pdus: list[dict[str, Any]], edus: list[dict[str, Any]]) -> None:
        """Queue several PDUs and EDUs at once (PDUs first)."""
        await self._enqueue([("pdu", p) for p in pdus] + [("edu", e) for e in edus])

    async def wake(self) -> None:
        """The destination is reachable again: end the backoff and send what is queued now."""
        storage = self.ctx.storage
        retry = await storage.get("retry")
        if retry:
            await storage.delete("retry")
            await self.env.CACHE.delete(BACKOFF_KV_PREFIX + self.destination)
            if self._sending is None or self._sending.done():
                await storage.set_alarm(_now_ms())

    async def status(self) -> dict[str, Any]:
        """What the queue holds: counts, the transaction in flight, the retry state."""
        storage = self.ctx.storage
        items = await storage.list(prefix=QUEUE_PREFIX)
        inflight = await storage.get("inflight")
        return {
            "destination": self.destination,
            "queued_pdus": sum(1 for v in items.values() if v["kind"] == "pdu"),
            "queued_edus": sum(1 for v in items.values() if v["kind"] == "edu"),
            "inflight_txn": inflight["txn_id"] if inflight else None,
            "retry": await storage.get("retry"),
            "sent_transactions": (await storage.get("sent")) or 0,
            "dropped_transactions": (await storage.get("dropped")) or 0,
            "alarm_ms": await storage.get_alarm(),
        }

    async def transaction_done(self, txn_id: str, outcome: str, detail: str = "") -> None:
        """Record the outcome of sending ``txn_id``: "sent", "refused" or "failed".

        Called by this actor's own background sender through the stub (not during a call).
        """
        storage = self.ctx.storage
        inflight = await storage.get("inflight")
        if inflight is None or inflight["txn_id"] != txn_id:
            return  # a stale outcome (the transaction was already settled)
        if outcome in ("sent", "refused"):
            await storage.delete(list(inflight["keys"]) + ["inflight", "retry"])
            counter = "sent" if outcome == "sent" else "dropped"
            await storage.put(counter, ((await storage.get(counter)) or 0) + 1)
            if outcome == "refused":
                log.warning("%s refused transaction %s, dropped: %s", self.destination, txn_id, detail)
            await self.env.CACHE.delete(BACKOFF_KV_PREFIX + self.destination)
            if await storage.list(prefix=QUEUE_PREFIX, limit=1):
                await storage.set_alarm(_now_ms())
            else:
                await storage.delete_alarm()
            return
        retry = (await storage.get("retry")) or {"attempts": 0}
        attempts = retry["attempts"] + 1
        delay = min(self.BASE_BACKOFF_SECONDS * 2 ** (attempts - 1), self.MAX_BACKOFF_SECONDS)
        next_ms = _now_ms() + int(delay * 1000)
        await storage.put("retry", {"attempts": attempts, "next_ms": next_ms, "last_error": detail[:500]})
        await storage.set_alarm(next_ms)
        await self.env.CACHE.put(
            BACKOFF_KV_PREFIX + self.destination, str(next_ms), expiration_ttl=max(60.0, delay)
        )
        log.info(
            "transaction %s to %s failed (attempt %d), retrying in %.1fs: %s",
            txn_id, self.destination, attempts, delay, detail,
        )

    # --- sending ----------------------------------------------------------------------------
    async def _enqueue(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        storage = self.ctx.storage
        seq = (await storage.get("seq")) or 0
        entries = {}
        for kind, data in items:
            entries[f"{QUEUE_PREFIX}{seq:020d}"] = {"kind": kind, "data": data}
            seq += 1
        entries["seq"] = seq
        await storage.put(entries)
        if await storage.get("inflight") is None and await storage.get("retry") is None:
            alarm = await storage.get_alarm()
            now = _now_ms()
            if alarm is None or alarm > now:
                await storage.set_alarm(now)

    async def alarm(self) -> None:
        storage = self.ctx.storage
        if self._sending is not None and not self._sending.done():
            # A send is still running in this process: look again after its grace period.
            await storage.set_alarm(_now_ms() + int(self.SEND_GRACE_SECONDS * 1000))
            return
        inflight = await storage.get("inflight")
        if inflight is None:
            inflight = await self._next_transaction()
            if inflight is None:
                return
            await storage.put("inflight", inflight)
        timeout = float(getattr(self.env.config, "federation_timeout_seconds", 30.0))
        await storage.set_alarm(_now_ms() + int((timeout + self.SEND_GRACE_SECONDS) * 1000))
        self._sending = asyncio.get_running_loop().create_task(
            self._send(inflight["txn_id"], inflight["body"], timeout)
        )

    async def _next_transaction(self) -> dict[str, Any] | None:
        storage = self.ctx.storage
        queued = await storage.list(prefix=QUEUE_PREFIX, limit=2000)
        keys: list[str] = []
        pdus: list[dict[str, Any]] = []
        edus: list[dict[str, Any]] = []
        for key, item in queued.items():
            if item["kind"] == "pdu" and len(pdus) < MAX_PDUS_PER_TRANSACTION:
                pdus.append(item["data"])
                keys.append(key)
            elif item["kind"] == "edu" and len(edus) < MAX_EDUS_PER_TRANSACTION:
                edus.append(item["data"])
                keys.append(key)
            if len(pdus) >= MAX_PDUS_PER_TRANSACTION and len(edus) >= MAX_EDUS_PER_TRANSACTION:
                break
        if not keys:
            return None
        counter = ((await storage.get("txn_counter")) or 0) + 1
        await storage.put("txn_counter", counter)
        now = _now_ms()
        body: dict[str, Any] = {
            "origin": self.env.config.server_name,
            "origin_server_ts": now,
            "pdus": pdus,
        }
        if edus:
            body["edus"] = edus
        return {"txn_id": f"{now}_{counter}", "keys": keys, "body": body}

    async def _send(self, txn_id: str, body: dict[str, Any], timeout: float) -> None:
        """Runs outside any call: sends, then records the outcome through the stub."""
        outcome, detail = "sent", ""
        try:
            response = await federation_client(self.env).send_transaction(
                self.destination, txn_id, body, timeout=timeout
            )
            if isinstance(response, dict):
                for event_id, result in (response.get("pdus") or {}).items():
                    if isinstance(result, dict) and result.get("error"):
                        log.info("%s did not accept %s: %s", self.destination, event_id, result["error"])
        except RemoteServerError as exc:
            outcome = "failed" if exc.retryable else "refused"
            detail = exc.message
        except FederationError as exc:
            outcome, detail = "failed", exc.message
        except Exception as exc:  # a bug must not wedge the queue: log it and retry later
            log.exception("sending %s to %s failed unexpectedly", txn_id, self.destination)
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
        try:
            await self.env.DESTINATIONS.get_by_name(self.destination).transaction_done(
                txn_id, outcome, detail
            )
        except RuntimeError as exc:  # the namespace closed (shutdown): the watchdog resends
            log.info("outcome of %s to %s not recorded: %s", txn_id, self.destination, exc)
