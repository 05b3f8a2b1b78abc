"""Canonical JSON, strict or lenient depending on the room version.

Spec: appendices, "Canonical JSON": the shortest UTF-8 encoding with object keys sorted by
code point; numbers must be integers in [-(2**53)+1, (2**53)-1]; floats are not permitted.
Room versions 1 to 5 may carry JSON outside these limits (large integers, floats) and servers
should cope with it; from room version 6 the limits are enforced ("v6-canonical-json": events
that break them are discarded).

The encoding itself is done by the ``canonicaljson`` library; this module only decides which
values are allowed for a room version and turns every failure into ``InvalidEvent``.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from canonicaljson import encode_canonical_json

from durable.errors import InvalidEvent
from durable.room_versions import RoomVersion

CANONICAL_INT_MAX = 2**53 - 1
CANONICAL_INT_MIN = -(2**53) + 1


def canonical_json(obj: Any, room_version: RoomVersion | None) -> bytes:
    """Encode ``obj`` as canonical JSON, checking it is legal for ``room_version``.

    Strict room versions (6 and later) refuse floats and integers outside ±(2**53 - 1).
    Lenient room versions (and ``room_version=None``) accept any integer and finite floats.
    Every version refuses what JSON cannot carry: NaN and infinities, non-string object keys,
    strings that are not valid Unicode (lone surrogates), and values that are not JSON types.

    Raises InvalidEvent naming the first offending value.
    """
    strict = room_version is not None and room_version.strict_canonicaljson
    _check_json_values(obj, strict)
    try:
        return encode_canonical_json(obj)
    except RecursionError:
        raise InvalidEvent("JSON is nested too deeply to encode") from None
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidEvent(f"value cannot be encoded as canonical JSON: {exc}") from None


def encode_checked(obj: Any) -> bytes:
    """Canonical JSON of ``obj`` whose values were already checked by ``canonical_json`` for
    the room version (it is a part of, or made from, an object that was), skipping the
    second walk over them. Raises InvalidEvent if it cannot be encoded after all."""
    try:
        return encode_canonical_json(obj)
    except RecursionError:
        raise InvalidEvent("JSON is nested too deeply to encode") from None
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"value cannot be encoded as canonical JSON: {exc}") from None


def merged_object_length(first: bytes, second: bytes) -> int:
    """The length of the canonical JSON of the union of two non-empty objects with disjoint
    keys, given the canonical JSON of each.

    Canonical JSON writes an object as ``{`` + its members joined by ``,`` + ``}`` with no
    whitespace, so reordering members changes no length: the union is both encodings without
    one pair of braces, plus one comma.
    """
    if len(first) <= 2 or len(second) <= 2 or first[:1] != b"{" or second[:1] != b"{":
        raise ValueError("both encodings must be non-empty JSON objects")
    return len(first) + len(second) - 1


def merged_objects(first: bytes, second: bytes) -> bytes:
    """The JSON text of the union of two non-empty objects with disjoint keys, given the
    canonical JSON of each: the first's members, then the second's. Valid JSON for the same
    object, though not canonical (its keys are not all in order): for storing, not hashing."""
    if len(first) <= 2 or len(second) <= 2 or first[:1] != b"{" or second[:1] != b"{":
        raise ValueError("both encodings must be non-empty JSON objects")
    return first[:-1] + b"," + second[1:]


def _check_json_values(obj: Any, strict: bool) -> None:
    """Walk ``obj`` without recursion, refusing values illegal in (strict) canonical JSON."""
    stack: list[Any] = [obj]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise InvalidEvent(f"object key {key!r} is not a string")
                stack.append(item)
            continue
        if kind is int:
            if strict and not CANONICAL_INT_MIN <= value <= CANONICAL_INT_MAX:
                raise InvalidEvent(f"integer {value} is outside the canonical JSON range")
            continue
        if kind is list:
            stack.extend(value)
            continue
        if isinstance(value, (str, bool)):
            continue
        if isinstance(value, int):
            if strict and not CANONICAL_INT_MIN <= value <= CANONICAL_INT_MAX:
                raise InvalidEvent(f"integer {value} is outside the canonical JSON range")
        elif isinstance(value, float):
            if strict:
                raise InvalidEvent(f"float {value!r} is not allowed in canonical JSON")
            if not math.isfinite(value):
                raise InvalidEvent(f"{value!r} is not a JSON number")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidEvent(f"object key {key!r} is not a string")
                stack.append(item)
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        else:
            raise InvalidEvent(f"{type(value).__name__} is not a JSON type")


def parse_json(data: str | bytes) -> Any:
    """Parse JSON text, normalising numbers the way canonical JSON needs them.

    Spec: appendices, "Canonical JSON" examples: ``-0`` and ``1e10`` in the input are the
    integers ``0`` and ``10000000000``. A number written with a fraction or an exponent that
    has an integral value becomes an ``int``; other fractional numbers stay ``float`` (and are
    refused later by strict room versions). ``NaN`` and ``Infinity`` are refused.

    Raises InvalidEvent when the text is not JSON.
    """
    try:
        return json.loads(data, parse_float=_parse_number, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidEvent("JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidEvent(f"not valid JSON: {exc}") from None


def _parse_number(text: str) -> int | float:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"bad number {text!r}") from None
    if number.is_finite() and number == number.to_integral_value():
        return int(number)
    return float(text)


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed in JSON")
