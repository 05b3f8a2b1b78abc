"""The runtime's output gate and reset: a ``@pipelined`` method's caller waits for the output
it returned while the actor's gate is already open; any other method first waits for every
pending output; ``ctx.abort`` hands later calls to a fresh instance."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from local_runtime.durable_objects import (
    DurableObject,
    DurableObjectNamespace,
    DurableObjectState,
    OutputGate,
    pipelined,
)

INSTANCES: list["Writer"] = []


class Writer(DurableObject):
    """Queues "writes" that complete when the test releases them."""

    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        self.pending: list[asyncio.Future[str]] = []
        self.log: list[str] = []
        INSTANCES.append(self)

    @pipelined
    async def write(self, name: str) -> OutputGate:
        self.log.append(f"queued {name}")
        written: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending.append(written)

        async def answer() -> dict[str, str]:
            return {"written": await written}

        return OutputGate(answer())

    async def read(self) -> list[str]:
        return list(self.log)

    @pipelined
    async def fail_and_reset(self) -> None:
        self.ctx.abort("test reset")
        raise RuntimeError("reset")


@pytest.fixture
async def writers(tmp_path: Path):
    INSTANCES.clear()
    namespace = DurableObjectNamespace("WRITERS", Writer, env=None, storage_dir=tmp_path)
    await namespace.start()
    yield namespace
    await namespace.close()


async def wait_until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def test_a_pipelined_call_answers_after_its_output_and_lets_the_next_call_in(
    writers: DurableObjectNamespace,
) -> None:
    stub = writers.get_by_name("w")
    first = asyncio.create_task(stub.write("a"))
    second = asyncio.create_task(stub.write("b"))
    await wait_until(lambda: INSTANCES and len(INSTANCES[0].pending) == 2)  # both ran, gate open
    assert not first.done() and not second.done()  # neither answered before its write
    INSTANCES[0].pending[1].set_result("b")
    assert await second == {"written": "b"}
    assert not first.done()
    INSTANCES[0].pending[0].set_result("a")
    assert await first == {"written": "a"}


async def test_other_methods_wait_for_every_pending_output(writers: DurableObjectNamespace) -> None:
    stub = writers.get_by_name("w")
    write = asyncio.create_task(stub.write("a"))
    await wait_until(lambda: INSTANCES and INSTANCES[0].pending)
    read = asyncio.create_task(stub.read())
    await asyncio.sleep(0.05)
    assert not read.done()  # a read sees only settled writes
    INSTANCES[0].pending[0].set_result("a")
    assert await write == {"written": "a"}
    assert await read == ["queued a"]


async def test_an_output_runs_to_its_end_when_its_caller_goes_away(writers: DurableObjectNamespace) -> None:
    stub = writers.get_by_name("w")
    write = asyncio.create_task(stub.write("a"))
    await wait_until(lambda: INSTANCES and INSTANCES[0].pending)
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    read = asyncio.create_task(stub.read())
    await asyncio.sleep(0.05)
    assert not read.done()  # the write is still pending, though nobody waits for its answer
    INSTANCES[0].pending[0].set_result("a")
    assert await read == ["queued a"]


async def test_eviction_waits_for_pending_outputs(writers: DurableObjectNamespace) -> None:
    stub = writers.get_by_name("w")
    write = asyncio.create_task(stub.write("a"))
    await wait_until(lambda: INSTANCES and INSTANCES[0].pending)
    evict = asyncio.create_task(writers.evict(stub.id.hex))
    await asyncio.sleep(0.05)
    assert not evict.done()
    INSTANCES[0].pending[0].set_result("a")
    assert await evict is True
    assert await write == {"written": "a"}


async def test_abort_hands_later_calls_to_a_fresh_instance(writers: DurableObjectNamespace) -> None:
    stub = writers.get_by_name("w")
    write = asyncio.create_task(stub.write("a"))
    await wait_until(lambda: INSTANCES and INSTANCES[0].pending)
    with pytest.raises(RuntimeError, match="reset"):
        await stub.fail_and_reset()
    assert await stub.read() == []  # a new instance, built afresh
    assert len(INSTANCES) == 2
    INSTANCES[0].pending[0].set_result("a")  # the old instance's output still answers its caller
    assert await write == {"written": "a"}
