"""What the spec-conformance tests share (tests/workers/test_openapi_responses.py for the
client-server API, tests/federation/test_federation_responses.py for the server-server API):
the cases (a scenario's response and the spec operation it answers), the recorder that checks
each response was made to its operation, and the check of a body's schema errors against a
documented schema quirk."""

from __future__ import annotations

import io
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable

import httpx
from jsonschema import ValidationError
from PIL import Image


@dataclass(frozen=True)
class Case:
    """One response of the scenario (``id``) and the spec operation it answers."""

    id: str
    method: str
    path: str  # the spec's full path template
    status: int = 200


def cases_from_rows(status: int, rows: str) -> list[Case]:
    """Rows of ``id METHOD /spec/path``, one a line."""
    cases = []
    for line in rows.strip().splitlines():
        case_id, method, path = line.split()
        cases.append(Case(case_id, method.lower(), path, status))
    return cases


@dataclass(frozen=True)
class Quirk:
    """Errors the schema reports although the body is right: each must be a failure of
    ``keyword`` whose message matches ``message``, and at least one must occur (so a fixed
    schema, or a body that changed, shows up)."""

    keyword: str
    message: str  # a regular expression
    reason: str


def assert_valid_or_quirk(case_id: str, errors: list[ValidationError], quirk: Quirk | None) -> None:
    """No schema errors, or (for a case with a documented quirk) only the quirk's, and some."""
    errors = sorted(errors, key=lambda e: list(e.absolute_path))
    if quirk is not None:
        assert errors, f"{case_id}: listed as a schema quirk but valid now; drop it from the list"
        unexplained = [e for e in errors if e.validator != quirk.keyword or not re.search(quirk.message, e.message)]
        assert not unexplained, "\n".join(f"{e.json_path}: {e.message}" for e in unexplained)
        return
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def pointer_token(token: str) -> str:
    """A JSON pointer token, escaped (RFC 6901) and percent-encoded for a URI fragment."""
    return urllib.parse.quote(token.replace("~", "~0").replace("/", "~1"), safe="")


def path_regex(template: str) -> re.Pattern[str]:
    """A regex matching the request paths of a spec path template (``{param}`` = a segment)."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]*" if p.startswith("{") else re.escape(p) for p in parts) + "$")


class Recorder:
    """Collects one response per case id, checking it was made to the case's operation."""

    def __init__(self, cases: Iterable[Case]) -> None:
        self.cases = {case.id: case for case in cases}
        self.responses: dict[str, httpx.Response] = {}

    def __call__(self, case_id: str, response: httpx.Response) -> Any:
        case = self.cases[case_id]
        assert case_id not in self.responses, case_id
        request = response.request
        assert request.method.lower() == case.method, (case_id, request.method)
        assert path_regex(case.path).match(request.url.path), (case_id, request.url.path)
        assert response.status_code == case.status, (case_id, response.status_code, response.text)
        self.responses[case_id] = response
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else None


def png(color: tuple[int, int, int]) -> bytes:
    """A small PNG image (64x48) of one colour."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "PNG")
    return out.getvalue()
