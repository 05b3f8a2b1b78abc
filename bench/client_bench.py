"""Client-server load generator (issue 4): what a homeserver does per message, as clients see it.

Against one homeserver (ours, started here on a free port unless ``--url`` is given), over
httpx + asyncio:

- registers users through the ``m.login.dummy`` user-interactive flow (401, then the session);
- creates rooms and measures messages/s sent over 1, 10, 100 and 1,000 rooms (``--rooms``),
  ``--messages`` per room count, ``--concurrency`` requests in flight; the sends go over lean
  h11 keep-alive connections (``--client httpx`` for httpx, whose own CPU per request exceeds
  the servers' and slows both down on a small machine);
- the same 1-room sends while the receiver long-polls ``/sync`` on the room, so that the CPU
  per message includes the fan-out to a waiting sync;
- the latency from a send to its arrival in another user's long-poll ``/sync`` (p50/p99 over
  ``--latency-samples`` messages sent one at a time);
- the time of an initial ``/sync`` (fresh login, so no response cache) for a user in
  ``--initial-sync-rooms`` rooms;
- the server's CPU seconds per message, from ``/proc/<pid>/stat`` (``--pid``, automatic when
  this script started the server).

``--synapse`` runs the same measurements against Synapse (``matrix-synapse`` from the venv's
``interop`` extra: sqlite, a free port, open registration, rate limits raised) and prints both
columns side by side. Our server is started with its rate limits off, Synapse with rc_* limits
far above the load; both log at WARNING. The load generator shares the machine's cores.

Run: ``.venv/bin/python bench/client_bench.py [--synapse] [--url URL --pid PID]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import quote, urlsplit

import h11
import httpx

REPO = Path(__file__).resolve().parents[1]
V3 = "/_matrix/client/v3"
PASSWORD = "bench password"
STARTUP_SECONDS = 120


# ---------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    """A homeserver to measure: its client URL, and its process id when CPU can be read."""

    label: str
    url: str
    pid: int | None


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/<pid>/stat, in clock ticks)."""
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    # The command name (field 2) may hold spaces; fields after it follow the closing paren.
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early (code {process.returncode}); log:\n{log.read_text()[-4000:]}")
        try:
            httpx.get(f"{url}/_matrix/client/versions", timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer within {STARTUP_SECONDS}s; log:\n{log.read_text()[-4000:]}") from None
            time.sleep(0.2)


@contextlib.contextmanager
def running(command: list[str], url: str, workdir: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """Start ``command``, wait for ``url`` to answer ``/versions``, yield its pid, then stop it."""
    log = workdir / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    try:
        wait_until_up(url, process, log)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def our_server(workdir: Path) -> Iterator[Target]:
    port = free_port()
    config = workdir / "matrix-edge.toml"
    config.write_text(textwrap.dedent(f"""\
        [server]
        server_name = "localhost:{port}"
        port = {port}
        data_dir = "{workdir / 'data'}"
        log_level = "warning"
        rc_message_per_second = 0
        rc_login_per_second = 0
        rc_registration_per_second = 0
        """))
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "local_runtime.cli", "serve", "--config", str(config)]
    with running(command, url, workdir, {"PYTHONPATH": str(REPO)}) as pid:
        yield Target("matrix-edge", url, pid)


def synapse_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import synapse.app.homeserver"], capture_output=True)
    return probe.returncode == 0


def _synapse_config(workdir: Path, port: int) -> Path:
    from signedjson.key import generate_signing_key, write_signing_keys

    with open(workdir / "signing.key", "w") as fh:
        write_signing_keys(fh, [generate_signing_key("a_bench")])
    (workdir / "log.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        formatters:
          plain: {{format: "%(asctime)s %(levelname)s %(name)s: %(message)s"}}
        handlers:
          file: {{class: logging.FileHandler, filename: "{workdir / 'synapse.log'}", formatter: plain}}
        root: {{level: WARNING, handlers: [file]}}
        disable_existing_loggers: false
        """))
    high = {"per_second": 100000, "burst_count": 1000000}
    config: dict[str, Any] = {
        "server_name": f"localhost:{port}",
        "pid_file": str(workdir / "homeserver.pid"),
        "listeners": [{
            "port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
            "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}],
        }],
        "database": {"name": "sqlite3", "args": {"database": str(workdir / "homeserver.db")}},
        "log_config": str(workdir / "log.yaml"),
        "media_store_path": str(workdir / "media_store"),
        "signing_key_path": str(workdir / "signing.key"),
        "report_stats": False,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "rc_message": high,
        "rc_registration": high,
        "rc_login": {"address": high, "account": high, "failed_attempts": high},
        "rc_joins": {"local": high, "remote": high},
        "rc_joins_per_room": high,
        "rc_room_creation": high,
        "rc_invites": {"per_room": high, "per_user": high, "per_issuer": high},
        "rc_profile": high,
    }
    path = workdir / "homeserver.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@contextlib.contextmanager
def synapse_server(workdir: Path) -> Iterator[Target]:
    port = free_port()
    config = _synapse_config(workdir, port)
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "synapse.app.homeserver", "--config-path", str(config)]
    with running(command, url, workdir) as pid:
        yield Target("synapse", url, pid)


# ---------------------------------------------------------------------------------- client


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done}/{total}   ", end="", file=sys.stderr, flush=True)


def progress_done() -> None:
    print(file=sys.stderr, flush=True)


class Api:
    """A thin Matrix client over one shared httpx.AsyncClient."""

    def __init__(self, http: httpx.AsyncClient, token: str = "", user_id: str = "") -> None:
        self.http = http
        self.token = token
        self.user_id = user_id

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        for attempt in range(20):
            response = await self.http.request(method, path, headers=headers, **kwargs)
            if response.status_code == 429 and attempt < 19:
                await asyncio.sleep(response.json().get("retry_after_ms", 500) / 1000)
                continue
            if response.status_code != 200:
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return response.json()
        raise RuntimeError(f"{method} {path}: still rate limited")

    def as_user(self, token: str, user_id: str) -> "Api":
        return Api(self.http, token, user_id)


class LeanConnection:
    """One keep-alive HTTP/1.1 connection driven through h11 directly: the client of the
    send phases. httpx costs some 3 ms of CPU per request here, more than the servers it
    measures, on the cores they share (and a client-bound server amortises less per
    request); this costs a small fraction of that."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.authority = parts.netloc
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.conn = h11.Connection(h11.CLIENT)

    async def request(self, method: str, target: str, token: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.conn.our_state is h11.MUST_CLOSE:
            await self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.conn = h11.Connection(h11.CLIENT)
        assert self.reader is not None and self.writer is not None
        headers = [("Host", self.authority), ("Authorization", f"Bearer {token}"),
                   ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        self.writer.write(self.conn.send(h11.Request(method=method, target=target, headers=headers))
                          + self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage()))
        status, chunks = 0, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                self.conn.receive_data(data)
                if not data and self.conn.their_state is not h11.DONE:
                    raise RuntimeError(f"{method} {target}: connection closed mid-response")
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return status, b"".join(chunks)

    async def call(self, method: str, target: str, token: str, body: Any) -> Any:
        """Like ``Api.call``: retries 429s, anything but 200 is an error."""
        payload = json.dumps(body).encode()
        for attempt in range(20):
            status, data = await self.request(method, target, token, payload)
            if status == 429 and attempt < 19:
                await asyncio.sleep(json.loads(data).get("retry_after_ms", 500) / 1000)
                continue
            if status != 200:
                raise RuntimeError(f"{method} {target}: {status} {data[:300]!r}")
            return json.loads(data)
        raise RuntimeError(f"{method} {target}: still rate limited")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None


@contextlib.asynccontextmanager
async def lean_pool(url: str, size: int) -> AsyncIterator["asyncio.Queue[LeanConnection]"]:
    """``size`` lean connections to take and give back, closed at the end."""
    pool: asyncio.Queue[LeanConnection] = asyncio.Queue()
    connections = [LeanConnection(url) for _ in range(size)]
    for connection in connections:
        pool.put_nowait(connection)
    try:
        yield pool
    finally:
        for connection in connections:
            await connection.close()


async def register(api: Api, localpart: str) -> Api:
    """The user-interactive flow: a 401 with a session, then ``m.login.dummy`` in it."""
    body = {"username": localpart, "password": PASSWORD, "initial_device_display_name": "bench"}
    first = await api.http.post(f"{V3}/register", json=body)
    if first.status_code != 401:
        raise RuntimeError(f"register {localpart}: expected 401 with flows, got {first.status_code} {first.text[:300]}")
    session = first.json()["session"]
    done = await api.call("POST", f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}})
    return api.as_user(done["access_token"], done["user_id"])


async def login(api: Api, user_id: str) -> Api:
    done = await api.call("POST", f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": PASSWORD,
    })
    return api.as_user(done["access_token"], done["user_id"])


async def in_parallel(label: str, total: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> float:
    """Run ``job(0..total-1)`` with ``concurrency`` in flight; returns elapsed seconds."""
    next_index = 0
    done = 0
    step = max(1, total // 50)

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < total:
            index = next_index
            next_index += 1
            await job(index)
            done += 1
            if done % step == 0 or done == total:
                progress(label, done, total)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    progress_done()
    return time.perf_counter() - started


@dataclass
class Results:
    rows: dict[str, float | None] = field(default_factory=dict)

    def put(self, key: str, value: float | None) -> None:
        self.rows[key] = value


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q% of values at or below it."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


# ---------------------------------------------------------------------------------- phases


async def long_poll(
    api: Api, since: str, room_id: str, arrivals: dict[str, float], arrived: asyncio.Event, stop: asyncio.Event
) -> None:
    """Another user's /sync loop: note when each message body first arrives, and set
    ``arrived`` after every response that brought something."""
    sync_filter = json.dumps({
        "room": {"rooms": [room_id], "timeline": {"limit": 100}, "state": {"lazy_load_members": True}},
        "presence": {"types": []}, "account_data": {"types": []},
    })
    while not stop.is_set():
        body = await api.call("GET", f"{V3}/sync", params={"since": since, "timeout": "10000", "filter": sync_filter},
                              timeout=40)
        now = time.perf_counter()
        since = body["next_batch"]
        room = body.get("rooms", {}).get("join", {}).get(room_id, {})
        for event in room.get("timeline", {}).get("events", []):
            text = event.get("content", {}).get("body")
            if isinstance(text, str) and text not in arrivals:
                arrivals[text] = now
                arrived.set()


class ReceiverPoll:
    """The receiver long-polling one room (``long_poll``) from now on, while messages are
    sent; ``wait_for(text)`` gives the time a message body reached it."""

    def __init__(self, receiver: Api, room: str) -> None:
        self.receiver, self.room = receiver, room
        self.arrivals: dict[str, float] = {}
        self.arrived, self.stop = asyncio.Event(), asyncio.Event()
        self.poller: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "ReceiverPoll":
        since = (await self.receiver.call("GET", f"{V3}/sync", params={"timeout": "0", "filter": json.dumps(
            {"room": {"timeline": {"limit": 1}}})}))["next_batch"]
        self.poller = asyncio.create_task(
            long_poll(self.receiver, since, self.room, self.arrivals, self.arrived, self.stop))
        await asyncio.sleep(0.5)  # let the long poll settle on the server
        return self

    async def wait_for(self, text: str, timeout: float = 30) -> float:
        assert self.poller is not None
        deadline = time.perf_counter() + timeout
        while text not in self.arrivals:
            if self.poller.done():
                self.poller.result()
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout=max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                raise RuntimeError(f"{text!r} never reached the receiver's /sync") from None
        return self.arrivals[text]

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        if self.poller is not None:
            self.poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.poller


async def send_phase(
    target: Target, args: argparse.Namespace, sender: Api, rooms: list[str], txn_prefix: str, label: str,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> tuple[float, float | None]:
    """Send ``args.messages`` messages round-robin over ``rooms`` with ``args.concurrency``
    in flight: (elapsed seconds, server CPU ms per message or None). The CPU is read after
    ``settle()`` when given (work the sends caused after they were answered)."""
    async def send_httpx(index: int) -> None:
        room = rooms[index % len(rooms)]
        await sender.call("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/{txn_prefix}-{index}",
                          json={"msgtype": "m.text", "body": f"load {txn_prefix} {index}"})

    async with lean_pool(target.url, args.concurrency) as pool:
        async def send_lean(index: int) -> None:
            room = rooms[index % len(rooms)]
            connection = await pool.get()
            try:
                await connection.call("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/{txn_prefix}-{index}",
                                      sender.token, {"msgtype": "m.text", "body": f"load {txn_prefix} {index}"})
            finally:
                pool.put_nowait(connection)

        cpu_before = cpu_seconds(target.pid)
        elapsed = await in_parallel(label, args.messages, args.concurrency,
                                    send_httpx if args.client == "httpx" else send_lean)
        if settle is not None:
            await settle()
        cpu_after = cpu_seconds(target.pid)
    cpu = None if cpu_before is None or cpu_after is None else 1000 * (cpu_after - cpu_before) / args.messages
    return elapsed, cpu


async def measure(target: Target, args: argparse.Namespace) -> Results:
    results = Results()
    run = secrets.token_hex(3)
    limits = httpx.Limits(max_connections=args.concurrency + 8, max_keepalive_connections=args.concurrency + 8)
    async with httpx.AsyncClient(base_url=target.url, timeout=120, limits=limits) as http:
        api = Api(http)
        print(f"[{target.label}] {target.url} (pid {target.pid or 'unknown'})", file=sys.stderr)
        sender = await register(api, f"send{run}")
        receiver = await register(api, f"recv{run}")

        max_rooms = max(args.rooms)
        rooms: list[str] = [""] * max_rooms

        async def create(index: int) -> None:
            created = await sender.call("POST", f"{V3}/createRoom", json={"preset": "public_chat", "name": f"bench {index}"})
            rooms[index] = created["room_id"]

        cpu_before = cpu_seconds(target.pid)
        elapsed = await in_parallel("create rooms", max_rooms, min(args.concurrency, 16), create)
        results.put("rooms created/s", max_rooms / elapsed)
        cpu_after = cpu_seconds(target.pid)
        results.put("server CPU ms/room created", None if cpu_before is None or cpu_after is None
                    else 1000 * (cpu_after - cpu_before) / max_rooms)

        joined = min(args.initial_sync_rooms, max_rooms)

        async def join(index: int) -> None:
            await receiver.call("POST", f"{V3}/join/{quote(rooms[index])}", json={})

        await in_parallel(f"receiver joins {joined} rooms", joined, min(args.concurrency, 16), join)

        # Messages/s over 1, 10, 100, 1,000 rooms.
        for count in args.rooms:
            elapsed, cpu = await send_phase(target, args, sender, rooms[:count], f"m{run}-{count}",
                                            f"send {args.messages} over {count} rooms")
            results.put(f"messages/s, {count} room(s)", args.messages / elapsed)
            results.put(f"server CPU ms/message, {count} room(s)", cpu)

        # The 1-room sends again with the receiver long-polling the room, so that the CPU per
        # message includes the fan-out to a waiting /sync (Synapse evaluates the receiver's
        # push rules when a message is sent; matrix-edge when the receiver syncs).
        async with ReceiverPoll(receiver, rooms[0]) as poll:
            async def settle() -> None:
                # Stream order: once this arrives, the receiver has been served every send.
                marker = f"settled {run}"
                await sender.call("PUT", f"{V3}/rooms/{quote(rooms[0])}/send/m.room.message/s{run}",
                                  json={"msgtype": "m.text", "body": marker})
                await poll.wait_for(marker, timeout=120)

            elapsed, cpu = await send_phase(target, args, sender, rooms[:1], f"p{run}",
                                            f"send {args.messages} into 1 room, receiver syncing", settle)
        results.put("messages/s, 1 room, receiver syncing", args.messages / elapsed)
        results.put("server CPU ms/message, 1 room, receiver syncing", cpu)

        # Send-to-sync latency, one message at a time into a room the receiver long-polls.
        room = rooms[0]
        latencies: list[float] = []
        async with ReceiverPoll(receiver, room) as poll:
            for i in range(args.latency_samples):
                text = f"latency {run} {i}"
                started = time.perf_counter()
                await sender.call("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/l{run}-{i}",
                                  json={"msgtype": "m.text", "body": text})
                latencies.append(1000 * (await poll.wait_for(text) - started))
                progress("send-to-sync latency", i + 1, args.latency_samples)
            progress_done()
        results.put("send-to-sync latency p50 (ms)", statistics.median(latencies))
        results.put("send-to-sync latency p99 (ms)", percentile(latencies, 99))

        # Initial /sync of a user in ``joined`` rooms, each from a fresh login (fresh device).
        times: list[float] = []
        for i in range(args.initial_sync_samples):
            fresh = await login(api, receiver.user_id)
            started = time.perf_counter()
            body = await fresh.call("GET", f"{V3}/sync", params={"timeout": "0"})
            times.append(1000 * (time.perf_counter() - started))
            got = len(body.get("rooms", {}).get("join", {}))
            if got != joined:
                raise RuntimeError(f"initial sync returned {got} joined rooms, expected {joined}")
            progress(f"initial /sync in {joined} rooms", i + 1, args.initial_sync_samples)
        progress_done()
        results.put(f"initial /sync, {joined} rooms (ms, median)", statistics.median(times))
    return results


# ---------------------------------------------------------------------------------- output


def render(columns: list[tuple[str, Results]]) -> str:
    keys: list[str] = []
    for _, results in columns:
        keys += [k for k in results.rows if k not in keys]
    width = max(len(k) for k in keys) + 2
    lines = [f"{'':<{width}}" + "".join(f"{label:>14}" for label, _ in columns)]
    if len(columns) == 2:
        lines[0] += f"{'ours/theirs':>14}"
    for key in keys:
        cells = [results.rows.get(key) for _, results in columns]
        line = f"{key:<{width}}" + "".join(f"{'n/a' if v is None else f'{v:,.2f}':>14}" for v in cells)
        if len(cells) == 2:
            ours, theirs = cells
            line += f"{'n/a' if not ours or not theirs else f'{ours / theirs:.2f}x':>14}"
        lines.append(line)
    return "\n".join(lines)


async def bench_one(target: Target, args: argparse.Namespace) -> Results:
    started = time.perf_counter()
    results = await measure(target, args)
    print(f"[{target.label}] done in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return results


@contextlib.asynccontextmanager
async def our_target(args: argparse.Namespace, workdir: Path) -> AsyncIterator[Target]:
    if args.url:
        yield Target(args.label, args.url.rstrip("/"), args.pid)
        return
    with our_server(workdir / "ours") as target:
        yield target


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="measure this homeserver instead of starting matrix-edge")
    parser.add_argument("--pid", type=int, help="the server process whose CPU time to read (with --url)")
    parser.add_argument("--label", default="server", help="column name for --url")
    parser.add_argument("--synapse", action="store_true", help="also start and measure Synapse from the venv")
    parser.add_argument("--rooms", default="1,10,100,1000", help="room counts to spread sends over")
    parser.add_argument("--messages", type=int, default=1000, help="messages sent per room count")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight while sending")
    parser.add_argument("--client", choices=("h11", "httpx"), default="h11",
                        help="HTTP client of the send phases: lean h11 connections (default) or httpx,"
                             " whose own CPU cost slows both servers down on a small machine")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--initial-sync-rooms", type=int, default=100)
    parser.add_argument("--initial-sync-samples", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the servers' temporary directories")
    args = parser.parse_args(argv)
    args.rooms = sorted({int(n) for n in args.rooms.split(",")})
    if args.pid is not None and not args.url:
        parser.error("--pid goes with --url (a server this script starts is measured automatically)")
    return args


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.synapse and not synapse_available():
        print("matrix-synapse is not importable in this venv (install the interop extra)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="client_bench_"))
    for sub in ("ours", "synapse"):
        (workdir / sub).mkdir()
    columns: list[tuple[str, Results]] = []
    try:
        async with our_target(args, workdir) as target:
            columns.append((target.label, await bench_one(target, args)))
        if args.synapse:
            with synapse_server(workdir / "synapse") as target:
                columns.append((target.label, await bench_one(target, args)))
    finally:
        if args.keep:
            print(f"server directories kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nmessages per room count: {args.messages}, concurrency {args.concurrency} ({args.client} client), "
          f"latency samples {args.latency_samples}, {os.cpu_count()} CPUs shared with the load generator")
    print(render(columns))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
