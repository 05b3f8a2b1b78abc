"""Response headers that let browsers show media safely, and filename hygiene.

Spec: client-server API "Content repository" (the recommended Content-Security-Policy and
``Cross-Origin-Resource-Policy: cross-origin``) and "Serving inline content" (only the listed
types may be served ``inline``; everything else as ``attachment``). ``nosniff`` stops a
browser guessing a different type than the one declared.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; object-src 'self';"
)

# "Serving inline content": the types a server may serve with a disposition of inline.
INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
        "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
        "video/mp4", "video/webm", "video/ogg", "video/quicktime",
        "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave",
        "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
    }
)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_FILENAME_LENGTH = 255
MAX_CONTENT_TYPE_LENGTH = 255
# Characters that may stand in a quoted filename="..." as they are.
_PLAIN_FILENAME = frozenset(
    chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\%'
)


def base_type(content_type: str | None) -> str:
    """``image/png`` of ``Image/PNG; charset=x``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_inline(content_type: str | None) -> bool:
    return base_type(content_type) in INLINE_CONTENT_TYPES


def sanitise_filename(name: str | None) -> str | None:
    """The filename to keep for an upload: control and format characters dropped, path
    separators replaced (a filename never names a folder), at most 255 characters;
    None when nothing is left."""
    if name is None:
        return None
    kept = "".join(
        "_" if ch in "/\\" else ch
        for ch in name
        if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")
    ).strip()
    kept = kept[:MAX_FILENAME_LENGTH]
    return kept or None


def sanitise_content_type(value: str | None) -> str | None:
    """The declared Content-Type to keep, or None when absent or not a ``type/subtype``."""
    if value is None:
        return None
    value = value.strip()
    if (
        not value
        or len(value) > MAX_CONTENT_TYPE_LENGTH
        or "/" not in base_type(value)
        or any(ord(ch) < 0x20 or ord(ch) > 0x7E for ch in value)
    ):
        return None
    return value


def content_disposition(disposition: str, filename: str | None) -> str:
    """``inline`` or ``attachment`` with the filename, quoted when plain ASCII and
    RFC 6266 / RFC 8187 ``filename*=utf-8''...`` otherwise."""
    if not filename:
        return disposition
    if all(ch in _PLAIN_FILENAME for ch in filename):
        return f'{disposition}; filename="{filename}"'
    return f"{disposition}; filename*=utf-8''{quote(filename, safe='')}"


def media_headers(content_type: str | None, filename: str | None) -> dict[str, str]:
    """Headers for serving stored bytes: type, disposition and the browser guards."""
    served_type = content_type or DEFAULT_CONTENT_TYPE
    disposition = "inline" if is_inline(served_type) else "attachment"
    return {
        "Content-Type": served_type,
        "Content-Disposition": content_disposition(disposition, filename),
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
