"""``GET /.well-known/matrix/support`` (client-server API "Well-known URIs"): the configured
contacts and support page, 404 ``M_NOT_FOUND`` when none are configured, CORS headers on
both, and the configuration checks that keep a malformed document from being served."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from local_runtime.config import ConfigError, SupportContact, load_config
from local_runtime.server import build_app

PATH = "/.well-known/matrix/support"
ORIGIN = {"Origin": "https://app.element.io"}
ADMIN = {"role": "m.role.admin", "matrix_id": "@admin:example.org", "email_address": "admin@example.org"}
SECURITY = {"role": "m.role.security", "email_address": "security@example.org"}


def _client(tmp_path: Path, **config: Any) -> TestClient:
    return TestClient(build_app(load_config(data_dir=str(tmp_path), server_name="example.test", **config)))


@pytest.fixture
def unconfigured(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as client:
        yield client


def test_unconfigured_is_404_not_found_with_cors(unconfigured: TestClient) -> None:
    response = unconfigured.get(PATH, headers=ORIGIN)
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"
    assert response.headers["access-control-allow-origin"] == "*"


def test_contacts_and_page_served_with_cors(tmp_path: Path) -> None:
    with _client(tmp_path, support_contacts=[ADMIN, SECURITY],
                 support_page="https://example.org/support.html") as client:
        response = client.get(PATH, headers=ORIGIN)
        preflight = client.options(PATH, headers={**ORIGIN, "Access-Control-Request-Method": "GET"})
    assert response.status_code == 200
    assert response.json() == {"contacts": [ADMIN, SECURITY], "support_page": "https://example.org/support.html"}
    assert response.headers["access-control-allow-origin"] == "*"
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"support_page": "https://example.org/help"}, {"support_page": "https://example.org/help"}),
        ({"support_contacts": [SECURITY]}, {"contacts": [SECURITY]}),
        ({"support_contacts": [{"role": "org.example.billing", "matrix_id": "@pay:example.org"}]},
         {"contacts": [{"role": "org.example.billing", "matrix_id": "@pay:example.org"}]}),
    ],
)
def test_either_key_alone(tmp_path: Path, config: dict[str, Any], expected: dict[str, Any]) -> None:
    with _client(tmp_path, **config) as client:
        response = client.get(PATH)
    assert response.status_code == 200
    assert response.json() == expected


def test_read_from_toml(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        "[server]\n"
        'support_page = "https://example.org/support.html"\n'
        'support_contacts = [{ role = "m.role.admin", matrix_id = "@admin:example.org" }]\n'
    )
    config = load_config(config_file, data_dir=str(tmp_path))
    assert config.support_page == "https://example.org/support.html"
    assert config.support_contacts == (SupportContact(role="m.role.admin", matrix_id="@admin:example.org"),)


def test_example_config_documents_the_keys(tmp_path: Path) -> None:
    """The commented example in config.example.toml, uncommented, is a working configuration."""
    example = (Path(__file__).parents[2] / "config.example.toml").read_text()
    settings = re.findall(r"^# ((?:support_page|support_contacts) = .*|    \{.*|\])$", example, re.MULTILINE)
    assert len(settings) == 5
    config_file = tmp_path / "config.toml"
    config_file.write_text("[server]\n" + "\n".join(settings) + "\n")
    config = load_config(config_file, data_dir=str(tmp_path))
    assert config.support_page
    assert [c.role for c in config.support_contacts] == ["m.role.admin", "m.role.security"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"support_page": "example.org/support"}, "not an http(s) URL"),
        ({"support_page": "ftp://example.org/support"}, "not an http(s) URL"),
        ({"support_contacts": [{"matrix_id": "@admin:example.org"}]}, "needs a role"),
        ({"support_contacts": [{"role": "m.role.admin"}]}, "needs a matrix_id or an email_address"),
        ({"support_contacts": [{"role": "m.role.janitor", "email_address": "a@example.org"}]}, "not one the spec"),
        ({"support_contacts": [{"role": "m.role.admin", "matrix_id": "admin:example.org"}]}, "not a user ID"),
        ({"support_contacts": [{"role": "m.role.admin", "matrix_id": "@admin"}]}, "not a user ID"),
        ({"support_contacts": [{"role": "m.role.admin", "email_address": "admin"}]}, "not an email address"),
        ({"support_contacts": [{"role": "m.role.admin", "email_address": "a@b", "phone": "1"}]}, "unknown keys"),
        ({"support_contacts": [{"role": 1, "email_address": "a@b"}]}, "must be strings"),
        ({"support_contacts": ["@admin:example.org"]}, "must be a table"),
        ({"support_contacts": {"role": "m.role.admin"}}, "must be a list"),
    ],
)
def test_bad_support_config_refused(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(data_dir=str(tmp_path), **config)
