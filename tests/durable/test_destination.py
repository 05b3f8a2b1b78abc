"""The destination actor: transactions of PDUs and EDUs, ordered, limited to 50/100,
retried with exponential backoff through alarms, persisted across restarts, woken when the
destination is back. The network is a fake transport."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from durable.destination import DestinationActor
from kv.namespace import KVNamespace
from local_runtime.durable_objects import DurableObjectNamespace
from workers.federation.errors import FederationUnavailable, RemoteServerError

DEST = "remote.test"


class FastDestination(DestinationActor):
    BASE_BACKOFF_SECONDS = 0.05
    MAX_BACKOFF_SECONDS = 0.4
    SEND_GRACE_SECONDS = 0.1


class FakeFederation:
    """Records every transaction; ``script`` decides each attempt's outcome:
    "ok", "fail" (unreachable), "refuse" (400) or "hang" (never answers)."""

    def __init__(self, script: Callable[[int], str] = lambda n: "ok") -> None:
        self.script = script
        self.sent: list[tuple[float, str, dict[str, Any]]] = []
        self.release = asyncio.Event()

    async def send_transaction(self, destination: str, txn_id: str, body: dict[str, Any], *, timeout: float) -> Any:
        assert destination == DEST
        outcome = self.script(len(self.sent))
        self.sent.append((time.monotonic(), txn_id, body))
        if outcome == "fail":
            raise FederationUnavailable(destination, "connection refused")
        if outcome == "refuse":
            raise RemoteServerError(destination, 400, "M_BAD_JSON", "no")
        if outcome == "hang":
            await self.release.wait()
            raise FederationUnavailable(destination, "timed out")
        return {"pdus": {}}


class Runtime:
    def __init__(self, tmp_path: Path, federation: FakeFederation, cls: type = FastDestination) -> None:
        self.env = SimpleNamespace(
            config=SimpleNamespace(server_name="ours.test", federation_timeout_seconds=0.2),
            CACHE=KVNamespace(tmp_path / "kv.sqlite"),
            FEDERATION=federation,
        )
        self.namespace = DurableObjectNamespace("DESTINATIONS", cls, self.env, tmp_path / "durable")
        self.env.DESTINATIONS = self.namespace
        self.stub = self.namespace.get_by_name(DEST)

    async def start(self) -> "Runtime":
        await self.namespace.start()
        return self

    async def close(self) -> None:
        await self.namespace.close()
        self.env.CACHE.close()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], seconds: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            status = await self.stub.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached; status {status}")
            await asyncio.sleep(0.02)


def pdu(n: int) -> dict[str, Any]:
    return {"type": "m.room.message", "content": {"n": n}}


def edu(n: int) -> dict[str, Any]:
    return {"edu_type": "m.typing", "content": {"n": n}}


def drained(status: dict[str, Any]) -> bool:
    return status["queued_pdus"] == 0 and status["queued_edus"] == 0 and status["inflight_txn"] is None


async def test_queued_items_go_out_in_one_ordered_transaction(tmp_path: Path) -> None:
    federation = FakeFederation()
    rt = await Runtime(tmp_path, federation).start()
    try:
        await rt.stub.enqueue_pdu(pdu(1))
        await rt.stub.enqueue_edu(edu(1))
        await rt.stub.enqueue([pdu(2), pdu(3)], [edu(2)])
        status = await rt.wait_for(drained)
        assert status["sent_transactions"] >= 1
        pdus = [p["content"]["n"] for _, _, body in federation.sent for p in body["pdus"]]
        edus = [e["content"]["n"] for _, _, body in federation.sent for e in body.get("edus", [])]
        assert (pdus, edus) == ([1, 2, 3], [1, 2])
        body = federation.sent[0][2]
        assert body["origin"] == "ours.test" and isinstance(body["origin_server_ts"], int)
    finally:
        await rt.close()


async def test_transactions_hold_at_most_50_pdus_and_100_edus(tmp_path: Path) -> None:
    federation = FakeFederation()
    rt = await Runtime(tmp_path, federation).start()
    try:
        await rt.stub.enqueue([pdu(i) for i in range(120)], [edu(i) for i in range(150)])
        await rt.wait_for(drained)
        sizes = [(len(b["pdus"]), len(b.get("edus", []))) for _, _, b in federation.sent]
        assert sizes == [(50, 100), (50, 50), (20, 0)]
        assert [p["content"]["n"] for _, _, b in federation.sent for p in b["pdus"]] == list(range(120))
        assert [e["content"]["n"] for _, _, b in federation.sent for e in b.get("edus", [])] == list(range(150))
        assert len({txn for _, txn, _ in federation.sent}) == 3
    finally:
        await rt.close()


async def test_failures_retry_the_same_transaction_with_growing_backoff(tmp_path: Path) -> None:
    federation = FakeFederation(lambda n: "fail" if n < 3 else "ok")
    rt = await Runtime(tmp_path, federation).start()
    try:
        await rt.stub.enqueue_pdu(pdu(1))
        status = await rt.wait_for(lambda s: s["retry"] is not None)
        assert status["retry"]["attempts"] >= 1 and "connection refused" in status["retry"]["last_error"]
        assert await rt.env.CACHE.get("fed:backoff:remote.test") is not None  # seen by require_server
        await rt.stub.enqueue_pdu(pdu(2))  # waits behind the failing transaction
        await rt.wait_for(lambda s: s["sent_transactions"] == 2 and drained(s))
        attempts = federation.sent
        first_txn = attempts[0][1]
        assert [txn for _, txn, _ in attempts[:4]] == [first_txn] * 4  # same txnId until a 200
        assert all(body == attempts[0][2] for _, _, body in attempts[:4])  # and the same body
        gaps = [attempts[i + 1][0] - attempts[i][0] for i in range(3)]
        assert gaps[0] >= 0.04 and gaps[1] >= 0.09 and gaps[2] >= 0.18  # 0.05, 0.1, 0.2 s
        assert [p["content"]["n"] for p in attempts[4][2]["pdus"]] == [2]
        assert await rt.env.CACHE.get("fed:backoff:remote.test") is None
    finally:
        await rt.close()


async def test_refused_transactions_are_dropped_and_the_queue_moves_on(tmp_path: Path) -> None:
    federation = FakeFederation(lambda n: "refuse" if n == 0 else "ok")
    rt = await Runtime(tmp_path, federation).start()
    try:
        await rt.stub.enqueue_pdu(pdu(1))
        await rt.wait_for(lambda s: s["dropped_transactions"] == 1)
        await rt.stub.enqueue_pdu(pdu(2))
        status = await rt.wait_for(lambda s: s["sent_transactions"] == 1 and drained(s))
        assert status["retry"] is None
        assert [len(b["pdus"]) for _, _, b in federation.sent] == [1, 1]
    finally:
        await rt.close()


async def test_queue_and_backoff_survive_a_restart(tmp_path: Path) -> None:
    failing = FakeFederation(lambda n: "fail")
    rt = await Runtime(tmp_path, failing).start()
    await rt.stub.enqueue([pdu(1), pdu(2)], [edu(1)])
    await rt.wait_for(lambda s: s["retry"] is not None)
    txn = failing.sent[0][1]
    await rt.close()

    working = FakeFederation()
    rt = await Runtime(tmp_path, working).start()  # the pending alarm is re-armed at start
    try:
        await rt.wait_for(lambda s: drained(s) and s["sent_transactions"] == 1)
        assert working.sent[0][1] == txn  # the very transaction that was in flight
        assert [p["content"]["n"] for p in working.sent[0][2]["pdus"]] == [1, 2]
    finally:
        await rt.close()


async def test_a_send_lost_in_a_crash_is_resent_after_restart(tmp_path: Path) -> None:
    hanging = FakeFederation(lambda n: "hang")
    rt = await Runtime(tmp_path, hanging).start()
    await rt.stub.enqueue_pdu(pdu(7))
    await rt.wait_for(lambda s: s["inflight_txn"] is not None and len(hanging.sent) == 1)
    txn = hanging.sent[0][1]
    await rt.namespace.close()  # the process "dies" with the send outstanding
    hanging.release.set()
    await asyncio.sleep(0.05)
    rt.env.CACHE.close()

    working = FakeFederation()
    rt = await Runtime(tmp_path, working).start()
    try:
        await rt.wait_for(lambda s: drained(s) and s["sent_transactions"] == 1)
        assert [t for _, t, _ in working.sent] == [txn]
    finally:
        await rt.close()


class SlowBackoff(FastDestination):
    BASE_BACKOFF_SECONDS = 60.0
    MAX_BACKOFF_SECONDS = 60.0


async def test_wake_ends_the_backoff_and_catches_up(tmp_path: Path) -> None:
    federation = FakeFederation(lambda n: "fail" if n == 0 else "ok")
    rt = await Runtime(tmp_path, federation, SlowBackoff).start()
    try:
        await rt.stub.enqueue_pdu(pdu(1))
        status = await rt.wait_for(lambda s: s["retry"] is not None)
        assert status["alarm_ms"] > time.time() * 1000 + 50_000  # next try a minute away
        await rt.stub.enqueue_pdu(pdu(2))
        await rt.stub.wake()
        await rt.wait_for(lambda s: drained(s) and s["sent_transactions"] == 2)
        assert [[p["content"]["n"] for p in b["pdus"]] for _, _, b in federation.sent] == [[1], [1], [2]]
    finally:
        await rt.close()


async def test_enqueue_does_not_wait_for_a_slow_destination(tmp_path: Path) -> None:
    hanging = FakeFederation(lambda n: "hang")
    rt = await Runtime(tmp_path, hanging).start()
    try:
        await rt.stub.enqueue_pdu(pdu(1))
        await rt.wait_for(lambda s: s["inflight_txn"] is not None and len(hanging.sent) == 1)
        started = time.monotonic()
        await rt.stub.enqueue_pdu(pdu(2))
        assert time.monotonic() - started < 0.5
    finally:
        hanging.release.set()
        await asyncio.sleep(0.05)
        await rt.close()
