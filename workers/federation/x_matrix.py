"""The ``X-Matrix`` authorization header: building it for outgoing requests and parsing it
on incoming ones. Pure functions (signing through signedjson).

Spec: server-server API "Request Authentication". The signed object is
``{"method", "uri", "origin", "destination", "content"?}``, ``uri`` being the path with
its query string as sent, ``content`` the parsed JSON body when there is one. The header is
``X-Matrix origin="…",destination="…",key="…",sig="…"`` (RFC 9110 section 11.4
parameters: names case-insensitive, any order, values as tokens or quoted strings with
backslash escapes, colons tolerated unquoted, unknown parameters ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signedjson.sign import sign_json
from signedjson.types import SigningKey

SCHEME = "X-Matrix"


class AuthHeaderError(ValueError):
    """The header is not a well-formed X-Matrix header; the message says why."""


@dataclass(frozen=True)
class XMatrixAuth:
    origin: str
    destination: str | None  # optional on receipt (servers before v1.3 did not send it)
    key: str
    sig: str


def request_json(
    method: str, uri: str, origin: str, destination: str, content: Any = None
) -> dict[str, Any]:
    """The object whose signature authenticates a request (step 1 of the spec)."""
    signed: dict[str, Any] = {
        "method": method.upper(),
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        signed["content"] = content
    return signed


def authorization_header(
    origin: str,
    signing_key: SigningKey,
    destination: str,
    method: str,
    uri: str,
    content: Any = None,
) -> str:
    """``Authorization`` header value for a request (step 2 of the spec), written as the
    spec asks senders to for old servers: one space, lower-case names, quoted values."""
    signed = sign_json(request_json(method, uri, origin, destination, content), origin, signing_key)
    key_id = f"{signing_key.alg}:{signing_key.version}"
    sig = signed["signatures"][origin][key_id]
    return (
        f'{SCHEME} origin="{origin}",destination="{destination}",key="{key_id}",sig="{sig}"'
    )


_SEPARATORS = " \t,"


def parse_authorization(value: str) -> XMatrixAuth:
    """Parse one ``Authorization`` header value of the X-Matrix scheme.

    Raises AuthHeaderError for another scheme, a malformed parameter list, a repeated
    parameter, or a missing ``origin``, ``key`` or ``sig``.
    """
    scheme, space, rest = value.partition(" ")
    if scheme.lower() != SCHEME.lower() or not space:
        raise AuthHeaderError("not an X-Matrix authorization header")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in _SEPARATORS:
            i += 1
        if i >= n:
            break
        eq = rest.find("=", i)
        if eq == -1:
            raise AuthHeaderError("parameter without a value")
        name = rest[i:eq].strip().lower()
        if not name or any(c in name for c in ' \t",'):
            raise AuthHeaderError("malformed parameter name")
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise AuthHeaderError("unterminated quoted value")
                c = rest[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise AuthHeaderError("dangling escape in quoted value")
                    chars.append(rest[i + 1])
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    chars.append(c)
                    i += 1
            param = "".join(chars)
            while i < n and rest[i] in " \t":
                i += 1
            if i < n and rest[i] != ",":
                raise AuthHeaderError("junk after a quoted value")
        else:
            start = i
            while i < n and rest[i] not in _SEPARATORS and rest[i] != '"':
                i += 1
            param = rest[start:i]
            if not param:
                raise AuthHeaderError(f"empty value for {name}")
            if i < n and rest[i] == '"':
                raise AuthHeaderError("quote inside an unquoted value")
        if name in params:
            raise AuthHeaderError(f"parameter {name} given twice")
        params[name] = param
    missing = [p for p in ("origin", "key", "sig") if not params.get(p)]
    if missing:
        raise AuthHeaderError(f"missing {', '.join(missing)}")
    return XMatrixAuth(
        origin=params["origin"],
        destination=params.get("destination") or None,
        key=params["key"],
        sig=params["sig"],
    )
