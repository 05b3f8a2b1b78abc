"""The ``multipart/mixed`` bodies of the federation media endpoints, written and read.

Spec: server-server API "Content Repository" (content_repository.yaml): a 200 answer of
``/_matrix/federation/v1/media/download`` and ``/thumbnail`` is ``multipart/mixed`` with a
``boundary`` (RFC 2046 section 5.1) and exactly two parts. The first has a Content-Type of
``application/json`` and holds the media's metadata (an empty object for now); the second
holds either the bytes, with their ``Content-Type`` and ``Content-Disposition``, or a
``Location`` header naming where the bytes can be fetched.

Writing our own two-part answer needs no more than the delimiters around two parts, so it
is composed here; reading another server's answer goes through python-multipart's streaming
parser (the one Starlette and Synapse use), and header parameters through its
``parse_options_header`` and the standard library's RFC 2231 handling.
"""

from __future__ import annotations

import email.message
import json
import secrets
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MULTIPART_MIXED = "multipart/mixed"
METADATA_CONTENT_TYPE = "application/json"
_CRLF = b"\r\n"


class MultipartError(ValueError):
    """A body that is not the two-part answer the spec describes."""


@dataclass(frozen=True)
class MediaPart:
    """The second part of an answer: the bytes with their headers, or a redirect."""

    content_type: str | None
    content_disposition: str | None
    location: str | None
    body: bytes

    @property
    def filename(self) -> str | None:
        """The ``filename`` (or RFC 2231 ``filename*``) of the Content-Disposition."""
        if self.content_disposition is None:
            return None
        holder = email.message.Message()
        holder["Content-Disposition"] = self.content_disposition
        return holder.get_filename()


@dataclass(frozen=True)
class MediaAnswer:
    metadata: dict[str, Any]
    media: MediaPart


def new_boundary(data: bytes) -> str:
    """A random boundary that does not occur in ``data`` (RFC 2046: the delimiter must not
    appear inside any encapsulated part)."""
    while True:
        boundary = secrets.token_hex(16)
        if boundary.encode("ascii") not in data:
            return boundary


def _header_lines(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value or not value.isascii():
            raise ValueError(f"header {name} cannot be written into a multipart part")
        lines.append(f"{name}: {value}".encode("ascii") + _CRLF)
    return b"".join(lines)


def encode_media_answer(
    data: bytes, media_headers: dict[str, str], metadata: dict[str, Any] | None = None,
    boundary: str | None = None,
) -> tuple[str, bytes]:
    """``(Content-Type header, body)`` of a two-part answer carrying ``data``.

    ``media_headers`` go on the second part (its Content-Type and Content-Disposition).
    """
    boundary = boundary or new_boundary(data)
    dash = b"--" + boundary.encode("ascii")
    body = b"".join(
        (
            dash, _CRLF,
            _header_lines({"Content-Type": METADATA_CONTENT_TYPE}), _CRLF,
            json.dumps(metadata or {}, separators=(",", ":")).encode("utf-8"), _CRLF,
            dash, _CRLF,
            _header_lines(media_headers), _CRLF,
            data, _CRLF,
            dash, b"--", _CRLF,
        )
    )
    return f"{MULTIPART_MIXED}; boundary={boundary}", body


class _Collector:
    """Callbacks for MultipartParser that gather each part's headers and bytes."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[str, str], list[bytes]]] = []
        self.ended = False
        self._field = b""
        self._value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts.append(({}, []))

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self.parts[-1][0][name] = self._value.decode("latin-1").strip()
        self._field = self._value = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1][1].append(data[start:end])

    def _end(self) -> None:
        self.ended = True


def boundary_of(content_type: str | None) -> str:
    """The boundary of a ``multipart/mixed`` Content-Type; MultipartError otherwise."""
    kind, options = parse_options_header(content_type)
    if kind.lower() != MULTIPART_MIXED.encode("ascii"):
        raise MultipartError(f"expected {MULTIPART_MIXED}, got {kind.decode('latin-1')!r}")
    boundary = options.get(b"boundary")
    if not boundary:
        raise MultipartError("multipart/mixed without a boundary")
    return boundary.decode("latin-1")


def parse_media_answer(content_type: str | None, body: bytes) -> MediaAnswer:
    """Read another server's two-part answer (see the module docstring).

    Raises MultipartError when the Content-Type is not ``multipart/mixed`` with a boundary,
    the body is cut short or malformed, there are fewer than two parts, or the first part
    is not a JSON object.
    """
    collector = _Collector()
    try:
        parser = MultipartParser(boundary_of(content_type), collector.callbacks())
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise MultipartError(f"malformed multipart body: {exc}") from None
    if not collector.ended:
        raise MultipartError("multipart body ends before its closing delimiter")
    if len(collector.parts) < 2:
        raise MultipartError(f"expected two parts, got {len(collector.parts)}")
    (meta_headers, meta_chunks), (media_headers, media_chunks) = collector.parts[:2]
    meta_type, _ = parse_options_header(meta_headers.get("content-type"))
    if meta_type.lower() != METADATA_CONTENT_TYPE.encode("ascii"):
        raise MultipartError("the first part is not application/json")
    try:
        metadata = json.loads(b"".join(meta_chunks))
    except (ValueError, UnicodeDecodeError):
        raise MultipartError("the first part is not JSON") from None
    if not isinstance(metadata, dict):
        raise MultipartError("the first part is not a JSON object")
    media = MediaPart(
        content_type=media_headers.get("content-type"),
        content_disposition=media_headers.get("content-disposition"),
        location=media_headers.get("location"),
        body=b"".join(media_chunks),
    )
    return MediaAnswer(metadata, media)
