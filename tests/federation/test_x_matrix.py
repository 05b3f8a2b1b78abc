"""The X-Matrix header: parsing per RFC 9110 parameters, and signing as the spec describes."""

from __future__ import annotations

import pytest
from signedjson.key import get_verify_key
from signedjson.sign import verify_signed_json

from tests.federation.peers import make_signing_key
from workers.federation.x_matrix import (
    AuthHeaderError,
    XMatrixAuth,
    authorization_header,
    parse_authorization,
    request_json,
)


@pytest.mark.parametrize(
    "header, expected",
    [
        (
            'X-Matrix origin="origin.example",destination="dest.example",key="ed25519:k1",sig="ABC/+d"',
            XMatrixAuth("origin.example", "dest.example", "ed25519:k1", "ABC/+d"),
        ),
        # unquoted values, colons allowed unquoted (compatibility), names in any case/order
        (
            "X-Matrix KEY=ed25519:k1,Origin=origin.example:8448,sig=ABC",
            XMatrixAuth("origin.example:8448", None, "ed25519:k1", "ABC"),
        ),
        # several spaces after the scheme, whitespace around commas, the scheme in lower case
        (
            'x-matrix   origin="o.example" ,\tkey="ed25519:k1" , sig="s"',
            XMatrixAuth("o.example", None, "ed25519:k1", "s"),
        ),
        # backslash escapes are undone; unknown parameters are ignored
        (
            r'X-Matrix origin="o\.example",key="ed25519:k1",sig="s\"x",future="1"',
            XMatrixAuth("o.example", None, "ed25519:k1", 's"x'),
        ),
    ],
)
def test_parse_accepts_what_the_spec_allows(header: str, expected: XMatrixAuth) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        'Bearer origin="o",key="ed25519:k",sig="s"',
        'X-Matrixorigin="o",key="ed25519:k",sig="s"',
        'X-Matrix key="ed25519:k",sig="s"',  # no origin
        'X-Matrix origin="o",sig="s"',  # no key
        'X-Matrix origin="o",key="ed25519:k"',  # no sig
        'X-Matrix origin="o,key="ed25519:k",sig="s"',  # unterminated quote
        'X-Matrix origin="o",origin="p",key="ed25519:k",sig="s"',  # repeated
        'X-Matrix origin="o" junk,key="ed25519:k",sig="s"',
        "X-Matrix origin",
        "X-Matrix origin=,key=k,sig=s",
    ],
)
def test_parse_refuses_malformed_headers(header: str) -> None:
    with pytest.raises(AuthHeaderError):
        parse_authorization(header)


def test_header_signature_covers_method_uri_servers_and_content() -> None:
    key = make_signing_key("k1")
    content = {"a": [1, 2], "b": "c"}
    header = authorization_header("origin.example", key, "dest.example", "put", "/_matrix/x?y=1", content)
    assert header.startswith('X-Matrix origin="origin.example",destination="dest.example",key="ed25519:k1",sig="')
    auth = parse_authorization(header)
    signed = request_json("PUT", "/_matrix/x?y=1", "origin.example", "dest.example", content)
    signed["signatures"] = {"origin.example": {auth.key: auth.sig}}
    verify_signed_json(signed, "origin.example", get_verify_key(key))
    assert signed["method"] == "PUT" and signed["content"] == content


def test_request_json_omits_content_for_bodiless_requests() -> None:
    assert request_json("GET", "/p", "o", "d") == {"method": "GET", "uri": "/p", "origin": "o", "destination": "d"}
