"""Benchmark of E2EE and ephemeral delivery (issue 5), over real HTTP against ``matrix-edge
serve`` started in a subprocess on a free port with a temporary data folder.

Phases (a progress line each, a summary at the end):
- to-device: PUT /sendToDevice messages/s (one message per request, ``--concurrency`` in
  flight), then how fast the receiving device drains them through /sync.
- /keys/claim: a device uploads ``--claimers`` one-time keys; as many claimers claim at once;
  checks that every key went to exactly one claimer (none twice, none lost), then that one more
  claim gets the fallback key.
- typing fan-out: a room of ``--members`` users, all but one long-polling /sync; one user
  starts typing; latency from the PUT until each waiting sync returns with that ``m.typing``
  (p50 / p99 / max over ``--rounds`` rounds).

Run: `.venv/bin/python bench/e2ee_bench.py [--messages N] [--members N] [--rounds N] [--url URL]`.
Not a test: it exits non-zero only when a correctness check fails (a key handed out twice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import httpx

ROOT = Path(__file__).resolve().parents[1]
V3 = "/_matrix/client/v3"
PASSWORD = "bench password 1234"


def progress(message: str) -> None:
    print(f"\r  {message}\033[K", end="", file=sys.stderr, flush=True)


def progress_done() -> None:
    print(file=sys.stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(workdir: Path) -> Iterator[str]:
    port = free_port()
    exe = Path(sys.executable).parent / "matrix-edge"
    log = open(workdir / "server.log", "w")
    process = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--data-dir", str(workdir / "data"),
         "--server-name", f"localhost:{port}", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError((workdir / "server.log").read_text())
            try:
                httpx.get(f"{url}/_matrix/client/versions", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@dataclass
class User:
    user_id: str
    device_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register(http: httpx.AsyncClient, localpart: str) -> User:
    body: dict[str, Any] = {"username": localpart, "password": PASSWORD}
    first = await http.post(f"{V3}/register", json=body)
    if first.status_code == 401:
        body["auth"] = {"type": "m.login.dummy", "session": first.json()["session"]}
        first = await http.post(f"{V3}/register", json=body)
    first.raise_for_status()
    data = first.json()
    return User(data["user_id"], data["device_id"], data["access_token"])


async def in_parallel(count: int, concurrency: int, job: Callable[[int], Awaitable[Any]], label: str) -> list[Any]:
    results: list[Any] = [None] * count
    next_index = 0
    done = 0

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < count:
            index = next_index
            next_index += 1
            results[index] = await job(index)
            done += 1
            if done % max(1, count // 20) == 0 or done == count:
                progress(f"{label}: {done}/{count}")

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    progress_done()
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def sync(http: httpx.AsyncClient, user: User, since: str | None, timeout_ms: int = 0) -> Any:
    params: dict[str, Any] = {"timeout": timeout_ms, "set_presence": "offline"}
    if since is not None:
        params["since"] = since
    response = await http.get(f"{V3}/sync", headers=user.headers, params=params, timeout=timeout_ms / 1000 + 30)
    response.raise_for_status()
    return response.json()


# --- phases ----------------------------------------------------------------------------------


async def to_device_phase(http: httpx.AsyncClient, sender: User, receiver: User, messages: int, concurrency: int) -> dict[str, float]:
    since = (await sync(http, receiver, None))["next_batch"]
    run = secrets.token_hex(4)

    async def send(index: int) -> None:
        body = {"messages": {receiver.user_id: {receiver.device_id: {"n": index}}}}
        response = await http.put(f"{V3}/sendToDevice/m.bench/{run}-{index}", headers=sender.headers, json=body)
        response.raise_for_status()

    started = time.perf_counter()
    await in_parallel(messages, concurrency, send, "to-device sends")
    send_rate = messages / (time.perf_counter() - started)

    started = time.perf_counter()
    received = 0
    while received < messages:
        body = await sync(http, receiver, since)
        received += len(body["to_device"]["events"])
        since = body["next_batch"]
        progress(f"to-device drained: {received}/{messages}")
    progress_done()
    return {"send_per_s": send_rate, "drain_per_s": messages / (time.perf_counter() - started)}


async def claim_phase(http: httpx.AsyncClient, owner: User, claimers: list[User]) -> dict[str, float]:
    keys = {f"signed_curve25519:B{n:05d}": {"key": f"k{n}"} for n in range(len(claimers))}
    fallback = {"signed_curve25519:FALLBACK": {"key": "fb", "fallback": True}}
    response = await http.post(f"{V3}/keys/upload", headers=owner.headers, json={"one_time_keys": keys, "fallback_keys": fallback})
    response.raise_for_status()
    request = {"one_time_keys": {owner.user_id: {owner.device_id: "signed_curve25519"}}}
    gate = asyncio.Event()
    latencies: list[float] = []

    async def claim(claimer: User) -> list[str]:
        await gate.wait()
        started = time.perf_counter()
        response = await http.post(f"{V3}/keys/claim", headers=claimer.headers, json=request)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        return list(response.json()["one_time_keys"].get(owner.user_id, {}).get(owner.device_id, {}))

    tasks = [asyncio.create_task(claim(c)) for c in claimers]
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    gate.set()
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    handed = [key_id for result in results for key_id in result]
    if sorted(handed) != sorted(keys) or len(set(handed)) != len(handed):
        raise SystemExit(f"/keys/claim handed out {len(handed)} keys, {len(set(handed))} distinct, for {len(keys)} keys")
    response = await http.post(f"{V3}/keys/claim", headers=claimers[0].headers, json=request)
    got = list(response.json()["one_time_keys"][owner.user_id][owner.device_id])
    if got != ["signed_curve25519:FALLBACK"]:
        raise SystemExit(f"after the one-time keys ran out the claim got {got}, not the fallback key")
    progress(f"/keys/claim: {len(claimers)} concurrent claimers, {len(handed)} distinct keys, then the fallback key")
    progress_done()
    return {"claimers": len(claimers), "elapsed_s": elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000}


async def typing_phase(http: httpx.AsyncClient, users: list[User], rounds: int) -> dict[str, float]:
    typer, watchers = users[0], users[1:]
    room = (await http.post(f"{V3}/createRoom", headers=typer.headers, json={"preset": "public_chat"})).json()["room_id"]
    await in_parallel(len(watchers), 8, lambda i: http.post(f"{V3}/rooms/{room}/join", headers=watchers[i].headers, json={}), "members joining")
    tokens = {w.user_id: (await sync(http, w, None))["next_batch"] for w in watchers}
    latencies: list[float] = []
    for round_index in range(rounds):
        typing = round_index % 2 == 0
        sent_at: list[float] = []

        async def watch(watcher: User) -> float:
            since = tokens[watcher.user_id]
            while True:
                body = await sync(http, watcher, since, timeout_ms=20_000)
                since = body["next_batch"]
                events = body["rooms"]["join"].get(room, {}).get("ephemeral", {}).get("events", [])
                typers = [e["content"]["user_ids"] for e in events if e["type"] == "m.typing"]
                if typers and (typer.user_id in typers[-1]) == typing:
                    tokens[watcher.user_id] = since
                    return time.perf_counter() - sent_at[0]

        waiting = [asyncio.create_task(watch(w)) for w in watchers]
        await asyncio.sleep(0.5)  # let every long poll reach its wait
        sent_at.append(time.perf_counter())
        response = await http.put(
            f"{V3}/rooms/{room}/typing/{typer.user_id}", headers=typer.headers,
            json={"typing": typing, "timeout": 30_000},
        )
        response.raise_for_status()
        latencies += await asyncio.gather(*waiting)
        progress(f"typing fan-out: round {round_index + 1}/{rounds} to {len(watchers)} waiting syncs")
    progress_done()
    return {"members": len(users), "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "max_ms": max(latencies) * 1000,
            "mean_ms": statistics.mean(latencies) * 1000}


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.members + 50, max_keepalive_connections=args.members + 50)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        run_id = secrets.token_hex(3)
        count = max(args.members, args.claimers + 1)
        users = await in_parallel(count, 4, lambda i: register(http, f"bench{run_id}u{i}"), "registering users")
        results = {
            "to_device": await to_device_phase(http, users[0], users[1], args.messages, args.concurrency),
            "keys_claim": await claim_phase(http, users[0], users[1 : args.claimers + 1]),
            "typing_fan_out": await typing_phase(http, users[: args.members], args.rounds),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="to-device messages to send")
    parser.add_argument("--concurrency", type=int, default=20, help="to-device requests in flight")
    parser.add_argument("--claimers", type=int, default=100, help="concurrent /keys/claim callers")
    parser.add_argument("--members", type=int, default=100, help="members of the typing room")
    parser.add_argument("--rounds", type=int, default=4, help="typing start/stop rounds")
    parser.add_argument("--url", help="benchmark a running server instead of starting one")
    args = parser.parse_args(argv)
    if args.url:
        results = asyncio.run(run(args.url, args))
    else:
        with tempfile.TemporaryDirectory(prefix="e2ee-bench-") as tmp, server_process(Path(tmp)) as url:
            results = asyncio.run(run(url, args))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
