"""An object-store binding shaped like an R2 bucket, on local disk (``env.MEDIA``).

API as Workers code uses an R2 binding::

    obj = await env.MEDIA.put("local/abc", data, http_metadata={"contentType": "image/png"},
                              custom_metadata={"user": "@a:b"})
    body = await env.MEDIA.get("local/abc")      # R2ObjectBody (.body bytes) or None
    meta = await env.MEDIA.head("local/abc")     # R2Object (no body) or None
    await env.MEDIA.delete("local/abc")          # or a list of keys
    page = await env.MEDIA.list(prefix="local/", cursor=None, limit=1000)

``data`` is bytes or an (async) iterable of byte chunks, so a request body can be streamed to
disk without holding it in memory. If the iterable raises, nothing is stored and the error
propagates to the caller.

Durability and atomicity, locally as on the platform: an object is either absent or complete.
Each object is one file: the body, then a small JSON trailer (metadata, size, etag), then the
trailer's length in four bytes. It is written to a temporary file in ``<root>/.tmp``, flushed
and fsynced, then moved into place with ``os.replace`` (atomic on POSIX) and its directory fsynced. A crash mid-write
leaves only a temporary file, which the next start deletes; readers never see half an object.

Keys are any non-empty UTF-8 strings of at most 1024 bytes whose "/"-separated segments are
non-empty. Each segment is percent-encoded (dots too), so no key can name a path outside the
bucket, and the object file carries a ``.obj`` suffix, so ``a`` and ``a/b`` can both exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterable, Iterable, Union
from urllib.parse import quote, unquote

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 8192
_SUFFIX = ".obj"
_TMP_DIR = ".tmp"
_HEADER_LEN = struct.Struct(">I")
# Writes are gathered into pieces of this size before they go to disk.
_WRITE_PIECE = 1024 * 1024

PutData = Union[bytes, bytearray, memoryview, Iterable[bytes], AsyncIterable[bytes]]


class BlobStoreError(Exception):
    """A call broke the binding's rules (bad key, oversized metadata)."""


@dataclass(frozen=True)
class R2Object:
    """An object's metadata, as ``head`` and ``put`` return it."""

    key: str
    size: int
    etag: str
    uploaded: int  # ms since the epoch
    http_metadata: dict[str, str] = field(default_factory=dict)
    custom_metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class R2ObjectBody(R2Object):
    """An object with its bytes, as ``get`` returns it."""

    body: bytes = b""


@dataclass(frozen=True)
class R2Objects:
    """One page of ``list``: ``cursor`` is set when ``truncated``."""

    objects: list[R2Object]
    truncated: bool
    cursor: str | None


def _check_key(key: str) -> list[str]:
    if not isinstance(key, str) or not key:
        raise BlobStoreError("object key must be a non-empty string")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise BlobStoreError(f"object key longer than {MAX_KEY_BYTES} bytes")
    segments = key.split("/")
    if any(not segment for segment in segments):
        raise BlobStoreError(f"object key has an empty path segment: {key!r}")
    return segments


def _encode_segment(segment: str) -> str:
    return quote(segment, safe="-_~").replace(".", "%2E")


def _check_metadata(name: str, value: dict[str, str] | None) -> dict[str, str]:
    value = dict(value or {})
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise BlobStoreError(f"{name} keys and values must be strings")
    return value


class BlobStore:
    """The bucket: one folder on disk. Blocking file work runs on worker threads."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / _TMP_DIR
        self._tmp.mkdir(exist_ok=True)
        for stale in self._tmp.iterdir():
            # Left by a write that never finished (a crash): never part of any object.
            stale.unlink(missing_ok=True)

    # --- paths ----------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        segments = [_encode_segment(s) for s in _check_key(key)]
        segments[-1] += _SUFFIX
        return self.root.joinpath(*segments)

    def _key_of(self, path: Path) -> str:
        parts = path.relative_to(self.root).parts
        last = parts[-1][: -len(_SUFFIX)]
        return "/".join(unquote(p) for p in (*parts[:-1], last))

    # --- API ------------------------------------------------------------------------------
    async def put(
        self,
        key: str,
        data: PutData,
        *,
        http_metadata: dict[str, str] | None = None,
        custom_metadata: dict[str, str] | None = None,
    ) -> R2Object:
        """Store ``data`` under ``key`` (replacing any object there), all or nothing."""
        path = self._path(key)
        header = {
            "http_metadata": _check_metadata("http_metadata", http_metadata),
            "custom_metadata": _check_metadata("custom_metadata", custom_metadata),
        }
        if len(json.dumps(header).encode()) > MAX_METADATA_BYTES:
            raise BlobStoreError(f"metadata larger than {MAX_METADATA_BYTES} bytes")
        writer = _AtomicWriter(self._tmp, path)
        await asyncio.to_thread(writer.open)
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                await asyncio.to_thread(writer.write, bytes(data))
            else:
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in _chunks(data):
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= _WRITE_PIECE:
                        await asyncio.to_thread(writer.write, b"".join(pending))
                        pending, pending_size = [], 0
                if pending:
                    await asyncio.to_thread(writer.write, b"".join(pending))
            return await asyncio.to_thread(writer.commit, key, header)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(writer.abort))
            raise

    async def get(self, key: str) -> R2ObjectBody | None:
        return await asyncio.to_thread(self._read, self._path(key), key, True)  # type: ignore[return-value]

    async def head(self, key: str) -> R2Object | None:
        return await asyncio.to_thread(self._read, self._path(key), key, False)

    async def delete(self, keys: str | list[str]) -> None:
        """Delete one key or several; deleting a missing key is not an error."""
        paths = [self._path(k) for k in ([keys] if isinstance(keys, str) else keys)]
        await asyncio.to_thread(self._delete_sync, paths)

    async def list(
        self, prefix: str = "", cursor: str | None = None, limit: int = 1000
    ) -> R2Objects:
        """Objects whose key starts with ``prefix``, in key order, ``limit`` at most per page
        (1..1000); pass the returned ``cursor`` to get the next page."""
        if not 1 <= limit <= 1000:
            raise BlobStoreError("limit must be between 1 and 1000")
        return await asyncio.to_thread(self._list_sync, prefix, cursor, limit)

    # --- blocking helpers -----------------------------------------------------------------
    def _read(self, path: Path, key: str, with_body: bool) -> R2Object | None:
        try:
            with open(path, "rb") as fh:
                fh.seek(-_HEADER_LEN.size, os.SEEK_END)
                (length,) = _HEADER_LEN.unpack(fh.read(_HEADER_LEN.size))
                fh.seek(-_HEADER_LEN.size - length, os.SEEK_END)
                header = json.loads(fh.read(length))
                body = None
                if with_body:
                    fh.seek(0)
                    body = fh.read(header["size"])
        except FileNotFoundError:
            return None
        fields = dict(
            key=key,
            size=header["size"],
            etag=header["etag"],
            uploaded=header["uploaded"],
            http_metadata=header["http_metadata"],
            custom_metadata=header["custom_metadata"],
        )
        if body is None:
            return R2Object(**fields)
        return R2ObjectBody(**fields, body=body)

    def _delete_sync(self, paths: list[Path]) -> None:
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            _fsync_dir(path.parent)

    def _list_sync(self, prefix: str, cursor: str | None, limit: int) -> R2Objects:
        # Walk only the folder that every matching key must live under.
        fixed = prefix.split("/")[:-1]
        base = self.root.joinpath(*(_encode_segment(s) for s in fixed)) if all(fixed) else self.root
        keys: list[tuple[str, Path]] = []
        if base.is_dir():
            for dirpath, dirnames, filenames in os.walk(base):
                if Path(dirpath) == self.root and _TMP_DIR in dirnames:
                    dirnames.remove(_TMP_DIR)
                for name in filenames:
                    if name.endswith(_SUFFIX):
                        path = Path(dirpath) / name
                        key = self._key_of(path)
                        if key.startswith(prefix) and (cursor is None or key > cursor):
                            keys.append((key, path))
        keys.sort()
        page = keys[:limit]
        objects = [obj for key, path in page if (obj := self._read(path, key, False)) is not None]
        truncated = len(keys) > limit
        return R2Objects(objects, truncated, page[-1][0] if truncated else None)


async def _chunks(data: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    if hasattr(data, "__aiter__"):
        async for chunk in data:  # type: ignore[union-attr]
            if chunk:
                yield bytes(chunk)
    else:
        for chunk in data:  # type: ignore[union-attr]
            if chunk:
                yield bytes(chunk)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _AtomicWriter:
    """Writes body and trailer to a temporary file, then moves it into place at once."""

    def __init__(self, tmp_dir: Path, target: Path) -> None:
        self.target = target
        self.tmp_path = tmp_dir / f"{secrets.token_hex(8)}.part"
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self._fh: Any = None

    def open(self) -> None:
        self._fh = open(self.tmp_path, "wb")

    def write(self, piece: bytes) -> None:
        self._fh.write(piece)
        self.size += len(piece)
        self.md5.update(piece)

    def commit(self, key: str, header: dict[str, Any]) -> R2Object:
        uploaded = int(time.time() * 1000)
        header = {**header, "size": self.size, "etag": self.md5.hexdigest(), "uploaded": uploaded}
        encoded = json.dumps(header, separators=(",", ":")).encode()
        self._fh.write(encoded)
        self._fh.write(_HEADER_LEN.pack(len(encoded)))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp_path, self.target)
        _fsync_dir(self.target.parent)
        return R2Object(
            key=key,
            size=self.size,
            etag=header["etag"],
            uploaded=uploaded,
            http_metadata=header["http_metadata"],
            custom_metadata=header["custom_metadata"],
        )

    def abort(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        self.tmp_path.unlink(missing_ok=True)
