"""The actor runtime: single writer, concurrency across actors, storage, alarms, hibernation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from local_runtime.durable_objects import DurableObject, DurableObjectNamespace, DurableObjectState


class Counter(DurableObject):
    """Read-modify-write through storage with an await in between: only safe with one writer."""

    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        self.loaded_from_storage: int | None = None
        self.alarms: list[float] = []
        ctx.block_concurrency_while(self._load)

    async def _load(self) -> None:
        self.loaded_from_storage = await self.ctx.storage.get("count")

    async def increment(self, by: int = 1) -> int:
        value = (await self.ctx.storage.get("count")) or 0
        await asyncio.sleep(0)  # yield to other callers mid read-modify-write
        await self.ctx.storage.put("count", value + by)
        return value + by

    async def get(self) -> int:
        return (await self.ctx.storage.get("count")) or 0

    async def loaded(self) -> int | None:
        return self.loaded_from_storage

    async def put_then_fail(self) -> None:
        await self.ctx.storage.put("count", -1)
        raise ValueError("boom")

    async def slow(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    async def schedule(self, delay_ms: float) -> None:
        await self.ctx.storage.set_alarm(time.time() * 1000 + delay_ms)

    async def alarm(self) -> None:
        fired = (await self.ctx.storage.get("alarms_fired")) or 0
        await self.ctx.storage.put("alarms_fired", fired + 1)

    async def alarms_fired(self) -> int:
        return (await self.ctx.storage.get("alarms_fired")) or 0

    async def sql_roundtrip(self, value: str) -> list[dict[str, Any]]:
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS notes (v TEXT)")
        self.ctx.storage.sql.exec("INSERT INTO notes (v) VALUES (?)", value)
        return self.ctx.storage.sql.exec("SELECT v FROM notes").to_array()

    async def put_big(self, size: int) -> None:
        await self.ctx.storage.put("big", "x" * size)

    async def echo(self, value: Any) -> Any:
        return value

    async def mutate(self, value: dict[str, Any]) -> None:
        value["mutated"] = True


@pytest.fixture
async def counters(tmp_path: Path):
    namespace = DurableObjectNamespace("COUNTERS", Counter, env=None, storage_dir=tmp_path)
    await namespace.start()
    yield namespace
    await namespace.close()


async def test_single_writer_under_load(counters: DurableObjectNamespace) -> None:
    stub = counters.get(counters.id_from_name("one"))
    results = await asyncio.gather(*(stub.increment() for _ in range(1000)))
    assert await stub.get() == 1000
    assert sorted(results) == list(range(1, 1001))


async def test_different_actors_run_concurrently(counters: DurableObjectNamespace) -> None:
    a = counters.get_by_name("a")
    b = counters.idFromName("b")
    started = time.monotonic()
    await asyncio.gather(a.slow(0.3), counters.get(b).slow(0.3))
    assert time.monotonic() - started < 0.55  # both slept at once, not one after the other


async def test_ids_from_names_are_stable(counters: DurableObjectNamespace) -> None:
    assert counters.id_from_name("x") == counters.id_from_name("x")
    assert counters.id_from_name("x") != counters.id_from_name("y")
    assert len(str(counters.id_from_name("x"))) == 64


async def test_hibernation_round_trip(counters: DurableObjectNamespace) -> None:
    stub = counters.get_by_name("sleepy")
    await stub.increment(41)
    assert counters.live_count() == 1
    assert await counters.evict(stub.id.hex)
    assert counters.live_count() == 0
    assert await stub.loaded() == 41  # rebuilt from storage by its constructor
    assert await stub.increment() == 42


async def test_idle_actors_are_evicted(tmp_path: Path) -> None:
    namespace = DurableObjectNamespace("C", Counter, None, tmp_path, idle_seconds=0.0)
    await namespace.start()
    try:
        await namespace.get_by_name("idle").increment()
        assert await namespace.evict_idle() == 1
        assert namespace.live_count() == 0
        assert await namespace.get_by_name("idle").get() == 1
    finally:
        await namespace.close()


async def test_exception_fails_that_call_only_and_rolls_back(counters: DurableObjectNamespace) -> None:
    stub = counters.get_by_name("err")
    await stub.increment(5)
    with pytest.raises(ValueError, match="boom"):
        await stub.put_then_fail()
    assert await stub.get() == 5  # the failed call's write was rolled back
    assert await stub.increment() == 6


async def test_calls_take_and_return_plain_data(counters: DurableObjectNamespace) -> None:
    stub = counters.get_by_name("plain")
    original = {"a": [1, 2]}
    assert await stub.echo(original) == original
    await stub.mutate(original)
    assert original == {"a": [1, 2]}  # the actor got a copy
    with pytest.raises(TypeError):
        await stub.echo(object())
    with pytest.raises(AttributeError):
        await stub.no_such_method()
    with pytest.raises(AttributeError):
        await counters.call(stub.id, "alarm", (), {})


async def test_sql_storage(counters: DurableObjectNamespace) -> None:
    stub = counters.get_by_name("sql")
    assert await stub.sql_roundtrip("hello") == [{"v": "hello"}]
    await counters.evict(stub.id.hex)
    assert await stub.sql_roundtrip("again") == [{"v": "hello"}, {"v": "again"}]


async def test_alarm_fires(counters: DurableObjectNamespace) -> None:
    stub = counters.get_by_name("alarm")
    await stub.schedule(50)
    for _ in range(100):
        if await stub.alarms_fired():
            break
        await asyncio.sleep(0.02)
    assert await stub.alarms_fired() == 1


async def test_alarm_set_before_restart_fires_after_it(tmp_path: Path) -> None:
    first = DurableObjectNamespace("C", Counter, None, tmp_path)
    await first.start()
    stub = first.get_by_name("persistent")
    await stub.schedule(300)
    await first.close()  # "restart": nothing in memory survives

    second = DurableObjectNamespace("C", Counter, None, tmp_path)
    await second.start()
    try:
        stub = second.get_by_name("persistent")
        assert await stub.alarms_fired() == 0
        for _ in range(100):
            if await stub.alarms_fired():
                break
            await asyncio.sleep(0.02)
        assert await stub.alarms_fired() == 1
    finally:
        await second.close()


async def test_storage_values_over_the_platform_limit_are_refused(counters: DurableObjectNamespace) -> None:
    stub = counters.get_by_name("big")
    await stub.put_big(1024)
    with pytest.raises(ValueError, match="larger than"):
        await stub.put_big(2 * 1024 * 1024 + 1)
