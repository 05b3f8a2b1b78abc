"""Benchmark of the media repository (issue 7): upload and download throughput, thumbnails/s.

Measures, over real HTTP, with a progress line per phase:
- upload MB/s (POST /_matrix/media/v3/upload) and download MB/s
  (GET /_matrix/client/v1/media/download) for 1 MB and 20 MB files;
- thumbnails rendered per second (each request on fresh media, so each one is rendered),
  and thumbnails served per second once stored;
- remote media (in-process only, ``--remote-rounds``, 0 to skip): two servers federating over
  their TLS listeners on loopback; a user of the second downloads the first's 1 MB and
  20 MB uploads: MB/s of the first download (signed federation fetch, multipart parse,
  cache write) and of the next one (served from the cache).

By default it starts the server in this process (uvicorn on a free port, a temporary data
folder, upload rate limit raised out of the way). ``--url`` benchmarks a running server instead
(its upload rate limit applies; registration must be open).

Run: `.venv/bin/python bench/media_bench.py [--rounds N] [--thumbnails N] [--url URL]`.
Not a test: it asserts nothing but that the bytes come back intact.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local_runtime.config import load_config  # noqa: E402
from local_runtime.server import Listeners, build_app  # noqa: E402

MB = 1024 * 1024


def progress(message: str) -> None:
    print(f"[media-bench] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class InProcessServer:
    """The app under uvicorn in a thread, on a free port."""

    def __init__(self, data_dir: str) -> None:
        port = free_port()
        config = load_config(
            data_dir=data_dir, server_name=f"localhost:{port}", port=port,
            media_upload_per_second=10_000.0, media_upload_burst=10_000, log_level="warning",
        )
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(build_app(config), host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "InProcessServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class FederatingServer:
    """A server with its TLS federation listener, in its own thread and event loop, named
    ``localhost:<federation port>`` so that another such server can reach it."""

    def __init__(self, data_dir: str) -> None:
        port, federation_port = free_port(), free_port()
        config = load_config(
            data_dir=data_dir, server_name=f"localhost:{federation_port}", port=port,
            federation_port=federation_port, federation_verify_tls=False,
            federation_allow_loopback=True, media_upload_per_second=10_000.0,
            media_upload_burst=10_000, log_level="warning",
        )
        self.url = f"http://127.0.0.1:{port}"
        self.listeners = Listeners(build_app(config), config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.listeners.run()), daemon=True)

    def __enter__(self) -> "FederatingServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.listeners.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("a federating server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.listeners.stop()
        self.thread.join(30)


def remote_throughput(origin: httpx.Client, fetcher: httpx.Client, size_mb: int,
                      rounds: int) -> tuple[float, float]:
    """(first download MB/s, cached download MB/s) of media of ``origin`` through ``fetcher``."""
    data = os.urandom(size_mb * MB)
    fetch_seconds = cached_seconds = 0.0
    for i in range(rounds):
        ref = upload(origin, data, "application/octet-stream")
        for first in (True, False):
            started = time.perf_counter()
            response = fetcher.get(f"/_matrix/client/v1/media/download/{ref}")
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if response.content != data:
                raise RuntimeError("remote media differs from the upload")
            if first:
                fetch_seconds += elapsed
            else:
                cached_seconds += elapsed
        progress(f"remote {size_mb} MB: round {i + 1}/{rounds}")
    total = size_mb * rounds
    return total / fetch_seconds, total / cached_seconds


def run_remote(rounds: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="media-bench-a-") as dir_a, \
            tempfile.TemporaryDirectory(prefix="media-bench-b-") as dir_b, \
            FederatingServer(dir_a) as server_a, FederatingServer(dir_b) as server_b, \
            httpx.Client(base_url=server_a.url, timeout=300) as origin, \
            httpx.Client(base_url=server_b.url, timeout=300) as fetcher:
        progress(f"remote: origin {server_a.url}, fetching server {server_b.url}")
        origin.headers["Authorization"] = f"Bearer {register(origin)}"
        fetcher.headers["Authorization"] = f"Bearer {register(fetcher)}"
        lines = []
        for size_mb in (1, 20):
            fetched, cached = remote_throughput(origin, fetcher, size_mb, rounds)
            lines.append(
                f"{size_mb:>2} MB remote: first download {fetched:8.1f} MB/s (over federation)"
                f"   cached {cached:8.1f} MB/s"
            )
        return lines


def register(http: httpx.Client) -> str:
    body = {"username": f"bench{secrets.token_hex(4)}", "password": secrets.token_hex(16)}
    first = http.post("/_matrix/client/v3/register", json=body)
    if first.status_code == 200:
        return str(first.json()["access_token"])
    session = first.json()["session"]
    done = http.post(
        "/_matrix/client/v3/register",
        json={**body, "auth": {"type": "m.login.dummy", "session": session}},
    )
    done.raise_for_status()
    return str(done.json()["access_token"])


def upload(http: httpx.Client, data: bytes, content_type: str) -> str:
    response = http.post(
        "/_matrix/media/v3/upload", content=data, headers={"Content-Type": content_type}
    )
    response.raise_for_status()
    return str(response.json()["content_uri"])[len("mxc://"):]


def throughput(http: httpx.Client, size_mb: int, rounds: int) -> tuple[float, float]:
    data = os.urandom(size_mb * MB)
    up_seconds = down_seconds = 0.0
    for i in range(rounds):
        started = time.perf_counter()
        ref = upload(http, data, "application/octet-stream")
        up_seconds += time.perf_counter() - started
        started = time.perf_counter()
        response = http.get(f"/_matrix/client/v1/media/download/{ref}")
        down_seconds += time.perf_counter() - started
        response.raise_for_status()
        if response.content != data:
            raise RuntimeError("downloaded bytes differ from the upload")
        progress(f"{size_mb} MB: round {i + 1}/{rounds}")
    total = size_mb * rounds
    return total / up_seconds, total / down_seconds


def photo(seed: int) -> bytes:
    """A 1600x1200 JPEG, different for each seed."""
    size = (1600, 1200)
    bands = [
        Image.linear_gradient("L").rotate(90 + seed % 90).resize(size),
        Image.linear_gradient("L").resize(size),
        Image.effect_noise(size, 40 + seed % 20),
    ]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, "JPEG", quality=90)
    return out.getvalue()


THUMBNAIL_SIZES = ((96, 96, "crop"), (320, 240, "scale"))


def thumbnails(http: httpx.Client, count: int) -> tuple[float, float]:
    refs = [upload(http, photo(i), "image/jpeg") for i in range(count)]
    progress(f"thumbnails: uploaded {count} photos of 1600x1200")

    def fetch(i: int, ref: str) -> None:
        width, height, method = THUMBNAIL_SIZES[i % len(THUMBNAIL_SIZES)]
        http.get(
            f"/_matrix/client/v1/media/thumbnail/{ref}",
            params={"width": width, "height": height, "method": method},
        ).raise_for_status()

    started = time.perf_counter()
    for i, ref in enumerate(refs):
        fetch(i, ref)  # fresh media: rendered and stored
        if (i + 1) % max(1, count // 5) == 0:
            progress(f"thumbnails: rendered {i + 1}/{count}")
    rendered = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for i, ref in enumerate(refs):
        fetch(i, ref)  # the same sizes again: served from the bucket
    stored = count / (time.perf_counter() - started)
    return rendered, stored


def run(url: str, rounds: int, thumbnail_count: int, remote_rounds: int = 0) -> None:
    with httpx.Client(base_url=url, timeout=300) as http:
        token = register(http)
        http.headers["Authorization"] = f"Bearer {token}"
        results = []
        for size_mb in (1, 20):
            up, down = throughput(http, size_mb, rounds)
            results.append(f"{size_mb:>2} MB files: upload {up:8.1f} MB/s   download {down:8.1f} MB/s")
        rendered, stored = thumbnails(http, thumbnail_count)
    if remote_rounds > 0:
        results.extend(run_remote(remote_rounds))
    print("\nmedia repository benchmark (" + url + ")")
    for line in results:
        print("  " + line)
    print(f"  thumbnails: {rendered:.1f}/s rendered (1600x1200 JPEG), {stored:.1f}/s served stored")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="benchmark this running server instead of one in-process")
    parser.add_argument("--rounds", type=int, default=5, help="uploads and downloads per size")
    parser.add_argument("--thumbnails", type=int, default=20, help="photos to thumbnail")
    parser.add_argument("--remote-rounds", type=int, default=3,
                        help="remote fetches per size between two in-process servers (0: skip)")
    args = parser.parse_args()
    if args.url:
        run(args.url.rstrip("/"), args.rounds, args.thumbnails)
        return
    with tempfile.TemporaryDirectory(prefix="media-bench-") as data_dir:
        with InProcessServer(data_dir) as server:
            progress(f"in-process server on {server.url}")
            run(server.url, args.rounds, args.thumbnails, args.remote_rounds)


if __name__ == "__main__":
    main()
