"""Thumbnails through the API: PNG and JPEG at both methods, preset sizes, the original when
it is smaller, one rendering per size, animation, and refusals."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from .conftest import CLIENT_V1_MEDIA, MEDIA_V3, SERVER, User, make_image, upload


def thumbnail(client: TestClient, user: User | None, media_id: str, prefix: str = CLIENT_V1_MEDIA, **params: Any):
    return client.get(
        f"{prefix}/thumbnail/{SERVER}/{media_id}", params=params,
        headers=user.headers if user else {},
    )


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# A 1000x800 original. Expected sizes: crop returns the preset (or requested) box, scale fits
# the original's 5:4 aspect inside the preset box that covers the request.
@pytest.mark.parametrize(
    ("fmt", "content_type", "pil_format"),
    [("PNG", "image/png", "PNG"), ("JPEG", "image/jpeg", "JPEG")],
)
@pytest.mark.parametrize(
    ("width", "height", "method", "expected"),
    [
        (32, 32, "crop", (32, 32)),
        (50, 40, "crop", (96, 96)),
        (96, 96, "crop", (96, 96)),
        (120, 60, "crop", (120, 60)),  # no crop preset covers it: rendered at its own size
        (100, 100, "scale", (300, 240)),
        (320, 240, "scale", (300, 240)),
        (500, 400, "scale", (600, 480)),
        (700, 500, "scale", (750, 600)),
        (900, 700, "scale", (875, 700)),  # larger than every preset: fits its own box
    ],
)
def test_png_and_jpeg_at_both_methods(
    client: TestClient, alice: User, fmt: str, content_type: str, pil_format: str,
    width: int, height: int, method: str, expected: tuple[int, int],
) -> None:
    media_id = upload(client, alice, make_image(fmt, (1000, 800)), content_type)
    response = thumbnail(client, alice, media_id, width=width, height=height, method=method)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    ext = "jpg" if fmt == "JPEG" else "png"
    assert response.headers["content-disposition"] == f'inline; filename="thumbnail.{ext}"'
    assert response.headers["x-content-type-options"] == "nosniff"
    image = opened(response.content)
    assert image.format == pil_format
    assert image.size == expected


def test_crop_keeps_the_centre(client: TestClient, alice: User) -> None:
    # Left half black, right half white, wide: a square crop from the centre has both.
    original = Image.new("L", (400, 100), 0)
    original.paste(255, (200, 0, 400, 100))
    out = io.BytesIO()
    original.save(out, "PNG")
    media_id = upload(client, alice, out.getvalue(), "image/png")
    image = opened(thumbnail(client, alice, media_id, width=96, height=96, method="crop").content)
    assert image.size == (96, 96)
    assert image.getpixel((5, 48)) < 30 and image.getpixel((90, 48)) > 225


def test_scale_is_the_default_method(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, make_image("PNG", (1000, 800)), "image/png")
    assert opened(thumbnail(client, alice, media_id, width=64, height=64).content).size == (300, 240)


def test_smaller_original_is_returned_as_is(client: TestClient, alice: User) -> None:
    data = make_image("PNG", (40, 30))
    media_id = upload(client, alice, data, "image/png")
    for method in ("crop", "scale"):
        response = thumbnail(client, alice, media_id, width=64, height=64, method=method)
        assert response.status_code == 200
        assert response.content == data


def test_never_upscaled(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, make_image("JPEG", (200, 150)), "image/jpeg")
    image = opened(thumbnail(client, alice, media_id, width=100, height=100, method="scale").content)
    assert image.size == (200, 150)  # preset 320x240 would need upscaling
    narrow = upload(client, alice, make_image("PNG", (80, 300)), "image/png")
    crop = opened(thumbnail(client, alice, narrow, width=64, height=64, method="crop").content)
    assert crop.size == (80, 80)  # the square of the original, not blown up to the 96x96 preset


def test_thumbnail_is_rendered_once_and_stored(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, make_image("PNG", (1000, 800)), "image/png")
    first = thumbnail(client, alice, media_id, width=64, height=64, method="crop")
    # Another request served by the same 96x96 preset gets the stored bytes.
    second = thumbnail(client, alice, media_id, width=90, height=80, method="crop")
    assert first.content == second.content
    env = client.app.state.env  # type: ignore[attr-defined]
    rows = client.portal.call(  # type: ignore[union-attr]
        env.DB.prepare(
            "SELECT width, height, method, actual_width, actual_height FROM media_thumbnails"
        ).all
    ).results
    assert rows == [{"width": 96, "height": 96, "method": "crop", "actual_width": 96, "actual_height": 96}]
    listing = client.portal.call(env.MEDIA.list, f"thumbnails/{media_id}/")  # type: ignore[union-attr]
    assert [o.key for o in listing.objects] == [f"thumbnails/{media_id}/96x96-crop"]


def test_legacy_thumbnail_needs_no_token(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, make_image("PNG", (500, 500)), "image/png")
    response = thumbnail(client, None, media_id, prefix=MEDIA_V3, width=32, height=32, method="crop")
    assert response.status_code == 200
    assert opened(response.content).size == (32, 32)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (200, 200), color) for color in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def test_animated_only_when_asked(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, _animated_gif(), "image/gif")
    moving = thumbnail(client, alice, media_id, width=96, height=96, method="crop", animated="true")
    assert moving.headers["content-type"] == "image/webp"
    image = opened(moving.content)
    assert (image.size, getattr(image, "n_frames", 1)) == ((96, 96), 3)
    for params in ({}, {"animated": "false"}):
        still = thumbnail(client, alice, media_id, width=96, height=96, method="crop", **params)
        assert still.headers["content-type"] == "image/png"
        assert getattr(opened(still.content), "n_frames", 1) == 1


def test_animated_is_ignored_for_jpeg(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, make_image("JPEG", (500, 500)), "image/jpeg")
    response = thumbnail(client, alice, media_id, width=32, height=32, method="crop", animated="true")
    assert response.headers["content-type"] == "image/jpeg"


def test_transparent_png_stays_png_with_alpha(client: TestClient, alice: User) -> None:
    media_id = upload(client, alice, make_image("PNG", (400, 400), "RGBA"), "image/png")
    image = opened(thumbnail(client, alice, media_id, width=32, height=32, method="crop").content)
    assert image.mode == "RGBA"


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"height": 32}, "M_MISSING_PARAM"),
        ({"width": 32}, "M_MISSING_PARAM"),
        ({"width": "x", "height": 32}, "M_INVALID_PARAM"),
        ({"width": -5, "height": 32}, "M_INVALID_PARAM"),
        ({"width": 0, "height": 32}, "M_INVALID_PARAM"),
        ({"width": 32, "height": 32, "method": "stretch"}, "M_INVALID_PARAM"),
        ({"width": 32, "height": 32, "animated": "maybe"}, "M_INVALID_PARAM"),
    ],
)
def test_bad_parameters(client: TestClient, alice: User, params: dict[str, Any], errcode: str) -> None:
    media_id = upload(client, alice, make_image("PNG", (100, 100)), "image/png")
    response = thumbnail(client, alice, media_id, **params)
    assert response.status_code == 400
    assert response.json()["errcode"] == errcode


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b"just text", "text/plain"), (b"not really a png", "image/png"), (b"%PDF-1.4", "application/pdf")],
)
def test_content_that_cannot_be_thumbnailed(client: TestClient, alice: User, data: bytes, content_type: str) -> None:
    media_id = upload(client, alice, data, content_type)
    response = thumbnail(client, alice, media_id, width=32, height=32)
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_UNKNOWN"


def test_unknown_media(client: TestClient, alice: User) -> None:
    response = thumbnail(client, alice, "nothingHere", width=32, height=32)
    assert (response.status_code, response.json()["errcode"]) == (404, "M_NOT_FOUND")


class TestPixelLimit:
    @pytest.fixture
    def media_config(self) -> dict[str, Any]:
        return {"max_thumbnail_pixels": 100 * 100}

    def test_image_over_the_pixel_limit_is_too_large(self, client: TestClient, alice: User) -> None:
        media_id = upload(client, alice, make_image("PNG", (101, 100)), "image/png")
        response = thumbnail(client, alice, media_id, width=32, height=32)
        assert response.status_code == 413
        assert response.json()["errcode"] == "M_TOO_LARGE"
