"""A write that fails part-way (disk error, crash) leaves no object and no D1 row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from local_runtime import blob_store
from local_runtime.config import load_config
from local_runtime.server import build_app

from .conftest import MEDIA_V3, SERVER, register


def test_failure_during_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = blob_store._AtomicWriter.write

    def failing_write(self: Any, piece: bytes) -> None:
        real_write(self, piece[: len(piece) // 2])  # some bytes reach the disk...
        raise OSError("disk went away")  # ...then the write dies

    config = load_config(data_dir=str(tmp_path / "data"), server_name=SERVER)
    with TestClient(build_app(config), raise_server_exceptions=False) as client:
        alice = register(client, "alice")
        monkeypatch.setattr(blob_store._AtomicWriter, "write", failing_write)
        env = client.app.state.env  # type: ignore[attr-defined]
        response = client.post(f"{MEDIA_V3}/upload", content=b"z" * 3_000_000, headers=alice.headers)
        assert response.status_code == 500
        assert response.json()["errcode"] == "M_UNKNOWN"
        assert client.portal.call(env.MEDIA.list).objects == []  # type: ignore[union-attr]
        assert list((env.MEDIA.root / ".tmp").iterdir()) == []
        count = env.DB.prepare("SELECT COUNT(*) AS n FROM media").first
        assert client.portal.call(count, "n") == 0  # type: ignore[union-attr]


def test_leftover_temporary_file_is_swept_at_start(tmp_path: Path) -> None:
    """What a killed process leaves (a temporary file) is never an object and is removed."""
    tmp_dir = tmp_path / "data" / "media" / ".tmp"
    tmp_dir.mkdir(parents=True)
    (tmp_dir / "deadbeef.part").write_bytes(b"half an upload")
    config = load_config(data_dir=str(tmp_path / "data"), server_name=SERVER)
    with TestClient(build_app(config)) as client:
        env = client.app.state.env  # type: ignore[attr-defined]
        assert client.portal.call(env.MEDIA.list).objects == []  # type: ignore[union-attr]
    assert list(tmp_dir.iterdir()) == []
