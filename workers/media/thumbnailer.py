"""Thumbnail sizes and rendering (Pillow). No I/O: bytes in, bytes out.

Spec: client-server API "Thumbnails":
- "scale" keeps the aspect ratio, fitting the image inside the requested box;
  "crop" returns the requested aspect ratio, cut from the centre;
- the requested dimensions are the smallest the client wants: never return a smaller
  thumbnail unless the original is smaller, and then return the original itself;
- never upscale;
- servers SHOULD make 32x32 crop, 96x96 crop, 320x240 scale, 640x480 scale, 800x600 scale.
Here a request is served by the smallest of those sizes (same method) that covers it; a
request larger than all of them is rendered at its own size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageSequence

PRESET_SIZES: tuple[tuple[int, int, str], ...] = (
    (32, 32, "crop"),
    (96, 96, "crop"),
    (320, 240, "scale"),
    (640, 480, "scale"),
    (800, 600, "scale"),
)
METHODS = ("crop", "scale")
# Types Pillow decodes here, and the only ones thumbnailed.
THUMBNAILABLE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "image/apng", "image/bmp"}
)
# Types a thumbnail response may have (authed-content-repo.yaml), served as they are when
# the original is already smaller than the request.
THUMBNAIL_RESPONSE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/apng", "image/gif", "image/webp"}
)
MAX_ANIMATED_FRAMES = 300
JPEG_QUALITY = 85


class ThumbnailError(Exception):
    """The content cannot be thumbnailed (not an image Pillow reads, or broken)."""


class TooManyPixels(ThumbnailError):
    """The image is larger than the server is willing to decode."""


@dataclass(frozen=True)
class Target:
    """The size to render: ``width`` x ``height`` by ``method``."""

    width: int
    height: int
    method: str


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    content_type: str
    width: int
    height: int


def choose_target(width: int, height: int, method: str) -> Target:
    """The smallest preset of ``method`` at least ``width`` x ``height``, else the request."""
    covering = [
        (w * h, w, h) for w, h, m in PRESET_SIZES if m == method and w >= width and h >= height
    ]
    if covering:
        _, w, h = min(covering)
        return Target(w, h, method)
    return Target(width, height, method)


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    frames: int


def image_info(data: bytes, max_pixels: int) -> ImageInfo:
    """Size and frame count from the image header, refusing images over ``max_pixels``
    before any pixel is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            frames = getattr(image, "n_frames", 1)
    except (OSError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"cannot read image: {exc}") from exc
    if width * height > max_pixels:
        raise TooManyPixels(f"image of {width}x{height} pixels is too large to thumbnail")
    return ImageInfo(width, height, frames)


def scaled_size(orig_w: int, orig_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """"scale": the largest size of the original's aspect that fits the box, never
    larger than the original."""
    ratio = min(box_w / orig_w, box_h / orig_h, 1.0)
    return max(1, round(orig_w * ratio)), max(1, round(orig_h * ratio))


def crop_box(orig_w: int, orig_h: int, box_w: int, box_h: int) -> tuple[int, int, int, int]:
    """"crop": the largest centred region of the original with the box's aspect ratio."""
    if orig_w * box_h > orig_h * box_w:  # original is wider than the box
        crop_w, crop_h = max(1, round(orig_h * box_w / box_h)), orig_h
    else:
        crop_w, crop_h = orig_w, max(1, round(orig_w * box_h / box_w))
    left = (orig_w - crop_w) // 2
    top = (orig_h - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def _resize_frame(frame: Image.Image, target: Target) -> Image.Image:
    if target.method == "crop":
        box = crop_box(frame.width, frame.height, target.width, target.height)
        region = frame.crop(box)
        if region.width > target.width or region.height > target.height:
            region = region.resize((target.width, target.height), Image.Resampling.LANCZOS)
        return region
    size = scaled_size(frame.width, frame.height, target.width, target.height)
    if size == frame.size:
        return frame.copy()
    return frame.resize(size, Image.Resampling.LANCZOS)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )


def render(data: bytes, target: Target, *, animated: bool, max_pixels: int) -> Thumbnail:
    """Render ``data`` at ``target``. JPEG stays JPEG; other images become PNG, or an
    animated WebP when ``animated`` and the original has several frames."""
    image_info(data, max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as image:
            source_format = image.format
            frames = getattr(image, "n_frames", 1)
            if animated and frames > 1:
                return _render_animated(image, target)
            image.seek(0)
            image.load()
            frame = _resize_frame(image, target)
    except (OSError, ValueError, EOFError) as exc:
        raise ThumbnailError(f"cannot thumbnail image: {exc}") from exc
    out = io.BytesIO()
    if source_format == "JPEG" and not _has_alpha(frame):
        frame.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
        content_type = "image/jpeg"
    else:
        if frame.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            frame = frame.convert("RGBA" if _has_alpha(frame) else "RGB")
        frame.save(out, "PNG", optimize=False)
        content_type = "image/png"
    return Thumbnail(out.getvalue(), content_type, frame.width, frame.height)


def _render_animated(image: Image.Image, target: Target) -> Thumbnail:
    frames: list[Image.Image] = []
    durations: list[int] = []
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index >= MAX_ANIMATED_FRAMES:
            break
        durations.append(int(frame.info.get("duration", 100)))
        frames.append(_resize_frame(frame.convert("RGBA"), target))
    out = io.BytesIO()
    frames[0].save(
        out, "WEBP", save_all=True, append_images=frames[1:], duration=durations,
        loop=int(image.info.get("loop", 0)), quality=80,
    )
    return Thumbnail(out.getvalue(), "image/webp", frames[0].width, frames[0].height)
