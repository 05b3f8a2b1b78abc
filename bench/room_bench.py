"""Benchmark of the room core (issue 3).

1. Local events created per second through one room actor: build (prev events, auth events,
   depth), hash, sign, check the auth rules, persist, acknowledge after the commit. Measured
   with one send at a time per room (latency-bound) and with several senders per room (a busy
   room: the actor builds the next event while the previous batch commits, and events queued
   meanwhile share the next commit), over 1 and 10 rooms, with the process's CPU time per
   event (all threads: the event loop and the database threads).
2. State resolution time with 10,000 unconflicted and 200 conflicted state events.

The process runs on one core (its CPU affinity is set to a single CPU before any thread
starts, so the event loop and the database threads share it): the events/s printed are
events/s on one core. ``--all-cores`` lets it use every core instead. It runs on the event
loop the server uses (uvloop when installed).

Prints the room version used. Run: `.venv/bin/python bench/room_bench.py [--events N] [--version V]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signedjson.key import generate_signing_key  # noqa: E402

from durable.auth import auth_types_for_event  # noqa: E402
from durable.events import build_event  # noqa: E402
from durable.events.event import Event  # noqa: E402
from durable.room_versions import get_room_version  # noqa: E402
from durable.state_res import resolve_state  # noqa: E402
from local_runtime.config import load_config  # noqa: E402
from local_runtime.env import Env  # noqa: E402
from local_runtime.server import event_loop_factory  # noqa: E402
from workers.client.room_create import create_room_for  # noqa: E402

SERVER = "bench.test"


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done}/{total}", end="", file=sys.stderr, flush=True)


async def local_events(version: str, count: int, rooms: int, in_flight: int) -> tuple[float, float]:
    """Events/s sent through ``rooms`` room actors at once, with ``in_flight`` sends waiting
    on each room at any time (1: each send waits for the previous one's answer), and the
    process's CPU time (all threads) per event in µs."""
    with tempfile.TemporaryDirectory() as tmp:
        env = Env(load_config(data_dir=tmp, server_name=SERVER))
        await env.start()
        try:
            stubs = [
                env.ROOMS.get_by_name(await create_room_for(env, f"@alice:{SERVER}", {"room_version": version}))
                for _ in range(rooms)
            ]
            per_sender = max(1, count // (rooms * in_flight))
            total = per_sender * rooms * in_flight
            done = 0

            async def sender(stub: object, lane: int) -> None:
                nonlocal done
                for i in range(per_sender):
                    await stub.send_event(  # type: ignore[attr-defined]
                        f"@alice:{SERVER}", "m.room.message", {"msgtype": "m.text", "body": f"m{lane}.{i}"}
                    )
                    done += 1
                    if done % max(1, total // 20) == 0:
                        progress(f"local events over {rooms} room(s), {in_flight} in flight each", done, total)

            cpu_started = time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(sender(stub, lane) for stub in stubs for lane in range(in_flight)))
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            print(file=sys.stderr)
        finally:
            await env.close()
    return total / elapsed, cpu / total * 1e6


def unavoidable_work_us(version: str, samples: int = 5000) -> float:
    """What one local event cannot avoid, measured now on this machine for scale: the
    canonical JSON of a typical message event, one Ed25519 signature over it, and its row
    inserted into SQLite (same table and indexes) with one commit per 32 rows, as busy rooms
    commit. Host noise moves this as much as it moves the results above."""
    import sqlite3

    from canonicaljson import encode_canonical_json

    room_version = get_room_version(version)
    key = generate_signing_key("floor")
    event = build_event(
        room_version, room_id=f"!floor:{SERVER}", sender=f"@alice:{SERVER}", type="m.room.message",
        content={"msgtype": "m.text", "body": "m0.123"}, prev_event_ids=["$" + "p" * 43],
        auth_event_ids=["$" + "a" * 43, "$" + "b" * 43, "$" + "c" * 43], depth=1000,
        origin_server_ts=1_700_000_000_000, server_name=SERVER, signing_key=key,
    )
    pdu = dict(event.pdu)
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for migration in sorted((Path(__file__).resolve().parents[1] / "d1" / "migrations").glob("*.sql")):
            conn.executescript(migration.read_text())
        started = time.process_time()
        for i in range(samples):
            if i % 32 == 0:
                conn.execute("BEGIN IMMEDIATE")
            encoded = encode_canonical_json(pdu)
            key.sign(encoded)
            conn.execute(
                "INSERT INTO events (event_id, room_id, type, sender, depth, origin_server_ts, json)"
                " VALUES (?,?,?,?,?,?,?)",
                (f"${os.urandom(32).hex()[:43]}", pdu["room_id"], pdu["type"], pdu["sender"], i,
                 pdu["origin_server_ts"], encoded.decode()),
            )
            if i % 32 == 31:
                conn.execute("COMMIT")
        if conn.in_transaction:
            conn.execute("COMMIT")
        elapsed = time.process_time() - started
        conn.close()
    return elapsed / samples * 1e6


def state_res_case(version: str, unconflicted: int, conflicted: int) -> tuple[list[dict], dict[str, Event]]:
    """A room with ``unconflicted`` members in both state sets and ``conflicted`` topic/name
    style state events that differ between the two sets."""
    room_version = get_room_version(version)
    key = generate_signing_key("b")
    events: dict[str, Event] = {}
    creator = f"@alice:{SERVER}"
    ts = 1_700_000_000_000
    state: dict[tuple[str, str], str] = {}

    def add(type_: str, state_key: str, content: dict, sender: str = creator, prev: list[str] | None = None) -> Event:
        nonlocal ts
        ts += 1
        auth = [state[k] for k in auth_types_for_event(room_version, type_, state_key, sender, content) if k in state]
        event = build_event(
            room_version, room_id=None if type_ == "m.room.create" and room_version.room_id_is_create_event_hash
            else room_id, sender=sender, type=type_, content=content, state_key=state_key,
            prev_event_ids=prev if prev is not None else ([] if not state else [last[0]]),
            auth_event_ids=auth, depth=len(events) + 1, origin_server_ts=ts, server_name=SERVER, signing_key=key,
        )
        events[event.event_id] = event
        state[event.key] = event.event_id
        last[0] = event.event_id
        return event

    last = [""]
    room_id = "!bench:" + SERVER
    create_content = {"room_version": version}
    if not room_version.implicit_room_creator:
        create_content["creator"] = creator
    create = add("m.room.create", "", create_content, prev=[])
    room_id = create.room_id
    add("m.room.member", creator, {"membership": "join"})
    add("m.room.power_levels", "", {"users": {} if room_version.privileged_creators else {creator: 100},
                                    "state_default": 50, "events_default": 0})
    add("m.room.join_rules", "", {"join_rule": "public"})
    for i in range(unconflicted):
        add("m.room.member", f"@u{i}:{SERVER}", {"membership": "join"}, sender=f"@u{i}:{SERVER}")
        if i % 1000 == 0:
            progress("building unconflicted state", i, unconflicted)
    print(file=sys.stderr)
    base = dict(state)
    fork_point = last[0]
    side_a, side_b = dict(base), dict(base)
    for side, label in ((side_a, "a"), (side_b, "b")):
        state.clear()
        state.update(base)
        last[0] = fork_point
        for i in range(conflicted // 2):
            event = add("m.room.topic" if i % 2 else "m.room.name", f"k{i}", {"topic": f"{label}{i}", "name": f"{label}{i}"})
            side[event.key] = event.event_id
    return [side_a, side_b], events


def state_res_time(version: str, unconflicted: int, conflicted: int, runs: int) -> float:
    state_sets, events = state_res_case(version, unconflicted, conflicted)
    room_version = get_room_version(version)
    times = []
    for i in range(runs):
        started = time.perf_counter()
        resolve_state(room_version, state_sets, events.get)
        times.append(time.perf_counter() - started)
        progress("state resolution runs", i + 1, runs)
    print(file=sys.stderr)
    return statistics.median(times) * 1000


def pin_to_one_core() -> int | None:
    """Run this process (and every thread it starts from now on) on one CPU; return it."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


async def main(args: argparse.Namespace) -> None:
    print(f"room version {args.version}", flush=True)
    cpu = None if args.all_cores else pin_to_one_core()
    print("on one core (CPU %d)" % cpu if cpu is not None else f"on all {os.cpu_count()} cores", flush=True)
    cases = [(rooms, in_flight) for rooms in (1, 10) for in_flight in (1, args.in_flight)]
    rates = {case: await local_events(args.version, args.events, *case) for case in cases}
    ms = state_res_time(args.version, args.unconflicted, args.conflicted, args.runs)
    floor = unavoidable_work_us(args.version)
    print(f"{'measure':<66} {'events/s':>9} {'CPU µs/event':>13}")
    for (rooms, in_flight), (rate, cpu_us) in rates.items():
        label = f"local events (auth+hash+sign+persist), {rooms} room(s), {in_flight} in flight each"
        print(f"{label:<66} {rate:>9,.0f} {cpu_us:>13,.0f}")
    label = f"state resolution, {args.unconflicted:,} unconflicted + {args.conflicted} conflicted (ms)"
    print(f"{label:<66} {ms:>9.1f}")
    label = "for scale: unavoidable work (canon. JSON + 1 signature + 1 row)"
    print(f"{label:<66} {1e6 / floor:>9,.0f} {floor:>13,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="12")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=32,
                        help="sends waiting on each room at once in the concurrent cases")
    parser.add_argument("--unconflicted", type=int, default=10_000)
    parser.add_argument("--conflicted", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--all-cores", action="store_true",
                        help="do not pin the process to one core")
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:  # the server's loop
        runner.run(main(parser.parse_args()))
