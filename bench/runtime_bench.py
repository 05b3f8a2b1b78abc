"""Benchmark of the edge runtime (issue 2): actor calls and D1 commits, in one process.

Prints, with a progress line per phase:
- actor calls/s to one actor (in-memory method, through stub, input gate and JSON copy)
- actor calls/s spread over 1,000 actors
- D1 single-row commits/s (one INSERT per batch, committed)
- the same commits made through an actor, and the actor's share of that cost

Run: `make bench` or `.venv/bin/python bench/runtime_bench.py [--calls N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from d1 import D1Database  # noqa: E402
from local_runtime.durable_objects import DurableObject, DurableObjectNamespace  # noqa: E402


class BenchActor(DurableObject):
    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.count = 0

    async def bump(self, by: int) -> int:
        self.count += by
        return self.count

    async def write(self, value: str) -> None:
        await self.env.prepare("INSERT INTO t (v) VALUES (?)").bind(value).run()


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done}/{total}", end="", file=sys.stderr, flush=True)


async def timed(label: str, total: int, make, concurrency: int = 100) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    done = 0
    step = max(1, total // 20)
    while done < total:
        batch = min(concurrency, total - done)
        await asyncio.gather(*(make(done + i) for i in range(batch)))
        done += batch
        if done % step < batch:
            progress(label, done, total)
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return total / elapsed


async def main(calls: int, commits: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = D1Database(Path(tmp) / "bench.sqlite")
        await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        ns = DurableObjectNamespace("BENCH", BenchActor, db, Path(tmp) / "durable")
        await ns.start()
        one = ns.get_by_name("one")
        await one.bump(0)
        one_rate = await timed("one actor", calls, lambda i: one.bump(1))
        stubs = [ns.get_by_name(f"a{i}") for i in range(1000)]
        await asyncio.gather(*(s.bump(0) for s in stubs))
        spread_rate = await timed("1,000 actors", calls, lambda i: stubs[i % 1000].bump(1))
        stmt = db.prepare("INSERT INTO t (v) VALUES (?)")
        writer = ns.get_by_name("writer")
        await writer.write("warm-up")
        # Interleave direct and actor writes so both see the same disk and machine noise.
        direct = via_actor = 0.0
        for i in range(commits):
            # Alternate which goes first, so neither gains from following the other.
            if i % 2:
                started = time.perf_counter()
                await stmt.bind(f"v{i}").run()
                middle = time.perf_counter()
                await writer.write(f"w{i}")
                direct += middle - started
                via_actor += time.perf_counter() - middle
            else:
                started = time.perf_counter()
                await writer.write(f"w{i}")
                middle = time.perf_counter()
                await stmt.bind(f"v{i}").run()
                via_actor += middle - started
                direct += time.perf_counter() - middle
            if i % max(1, commits // 20) == 0:
                progress("D1 commits, direct and through an actor", i + 1, commits)
        print(file=sys.stderr)
        d1_rate, actor_d1_rate = commits / direct, commits / via_actor
        await ns.close()
        db.close()
    overhead = (1 / actor_d1_rate - 1 / d1_rate) / (1 / d1_rate) * 100
    print(f"{'measure':<40} {'result':>14}")
    print(f"{'actor calls/s, one actor':<40} {one_rate:>14,.0f}")
    print(f"{'actor calls/s, spread over 1,000 actors':<40} {spread_rate:>14,.0f}")
    print(f"{'D1 single-row commits/s':<40} {d1_rate:>14,.0f}")
    print(f"{'D1 single-row commits/s through an actor':<40} {actor_d1_rate:>14,.0f}")
    print(f"{'actor overhead on a D1 write':<40} {overhead:>13.1f}%")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--commits", type=int, default=5_000)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.commits))
