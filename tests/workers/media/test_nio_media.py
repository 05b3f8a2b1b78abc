"""matrix-nio uploads and downloads through a real ``matrix-edge serve`` (the shared
``live_server`` fixture): plain and encrypted attachments, thumbnails and the config."""

from __future__ import annotations

import io
import os
import secrets
from typing import AsyncIterator

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ContentRepositoryConfigResponse,
    DownloadResponse,
    RegisterResponse,
    ResizingMethod,
    ThumbnailResponse,
    UploadResponse,
)
from nio.crypto import decrypt_attachment
from PIL import Image

from .conftest import make_image

pytestmark = pytest.mark.slow


@pytest.fixture
async def nio_client(live_server) -> AsyncIterator[AsyncClient]:  # type: ignore[no-untyped-def]
    client = AsyncClient(
        live_server.base_url, config=AsyncClientConfig(encryption_enabled=False, request_timeout=60)
    )
    try:
        registered = await client.register(f"media{secrets.token_hex(4)}", "a long enough password")
        assert isinstance(registered, RegisterResponse), registered
        yield client
    finally:
        await client.close()


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024 + 1])
async def test_upload_and_download_are_byte_identical(nio_client: AsyncClient, size: int) -> None:
    data = os.urandom(size)
    uploaded, keys = await nio_client.upload(
        io.BytesIO(data), content_type="application/octet-stream", filename="blob.bin", filesize=size
    )
    assert isinstance(uploaded, UploadResponse), uploaded
    assert keys is None
    downloaded = await nio_client.download(uploaded.content_uri)
    assert isinstance(downloaded, DownloadResponse), downloaded
    assert downloaded.body == data
    assert downloaded.filename == "blob.bin"
    assert downloaded.content_type == "application/octet-stream"


async def test_encrypted_attachment_round_trip(nio_client: AsyncClient) -> None:
    data = os.urandom(200_000)
    uploaded, keys = await nio_client.upload(
        io.BytesIO(data), content_type="image/png", encrypt=True, filesize=len(data)
    )
    assert isinstance(uploaded, UploadResponse), uploaded
    assert keys is not None
    downloaded = await nio_client.download(uploaded.content_uri)
    assert isinstance(downloaded, DownloadResponse), downloaded
    plain = decrypt_attachment(downloaded.body, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"])
    assert plain == data


async def test_thumbnail_and_config(nio_client: AsyncClient) -> None:
    png = make_image("PNG", (640, 480))
    uploaded, _ = await nio_client.upload(io.BytesIO(png), content_type="image/png", filesize=len(png))
    assert isinstance(uploaded, UploadResponse), uploaded
    server_name, media_id = uploaded.content_uri[len("mxc://"):].split("/")
    thumb = await nio_client.thumbnail(server_name, media_id, 64, 64, ResizingMethod.crop)
    assert isinstance(thumb, ThumbnailResponse), thumb
    assert thumb.content_type == "image/png"
    assert Image.open(io.BytesIO(thumb.body)).size == (96, 96)
    config = await nio_client.content_repository_config()
    assert isinstance(config, ContentRepositoryConfigResponse), config
    assert config.upload_size == 50 * 1024 * 1024
