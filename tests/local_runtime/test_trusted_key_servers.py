"""The ``trusted_key_servers`` setting: notaries for other servers' keys, Synapse's shape,
empty by default, checked at load."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from local_runtime.config import ConfigError, TrustedKeyServer, load_config

# A public ed25519 key (matrix.org's ed25519:auto, as Synapse documents it).
KEY = "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw"


def test_default_is_empty(tmp_path: Path) -> None:
    assert load_config(data_dir=str(tmp_path)).trusted_key_servers == ()


def test_from_toml(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        "[server]\n"
        'trusted_key_servers = [\n'
        f'  {{ server_name = "notary.example.org", verify_keys = {{ "ed25519:a_1" = "{KEY}" }} }},\n'
        '  { server_name = "second.example.org:8448", verify_keys = { "ed25519:k" = "' + KEY + '" } },\n'
        "]\n"
    )
    config = load_config(config_file, data_dir=str(tmp_path))
    assert config.trusted_key_servers == (
        TrustedKeyServer("notary.example.org", (("ed25519:a_1", KEY),)),
        TrustedKeyServer("second.example.org:8448", (("ed25519:k", KEY),)),
    )


def test_example_config_entry_loads(tmp_path: Path) -> None:
    """config.example.toml documents the setting, commented out (no notary by default)."""
    example = (Path(__file__).parents[2] / "config.example.toml").read_text()
    (line,) = re.findall(r"^# (trusted_key_servers = .*)$", example, re.MULTILINE)
    config_file = tmp_path / "config.toml"
    config_file.write_text("[server]\n" + line + "\n")
    (notary,) = load_config(config_file, data_dir=str(tmp_path)).trusted_key_servers
    assert notary.server_name == "matrix.org" and notary.verify_keys == (("ed25519:auto", KEY),)


def test_notary_without_keys_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="local_runtime.config"):
        config = load_config(data_dir=str(tmp_path), trusted_key_servers=[{"server_name": "notary.example.org"}])
    assert config.trusted_key_servers == (TrustedKeyServer("notary.example.org", None),)
    (record,) = [r for r in caplog.records if r.name == "local_runtime.config"]
    assert record.levelno == logging.WARNING and "notary.example.org has no verify_keys" in record.getMessage()


def test_pinned_notaries_log_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="local_runtime.config"):
        load_config(
            data_dir=str(tmp_path),
            trusted_key_servers=[{"server_name": "notary.example.org", "verify_keys": {"ed25519:a": KEY}}],
        )
    assert [r for r in caplog.records if r.name == "local_runtime.config"] == []


def test_unpinned_notary_without_tls_checks_needs_an_explicit_opt_in(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="accept_keys_insecurely"):
        load_config(
            data_dir=str(tmp_path), federation_verify_tls=False,
            trusted_key_servers=[{"server_name": "notary.example.org"}],
        )
    config = load_config(
        data_dir=str(tmp_path), federation_verify_tls=False,
        trusted_key_servers=[{"server_name": "notary.example.org", "accept_keys_insecurely": True}],
    )
    assert config.trusted_key_servers[0].accept_keys_insecurely is True


def test_an_already_checked_entry_is_kept(tmp_path: Path) -> None:
    notary = TrustedKeyServer("notary.example.org", (("ed25519:a", KEY),))
    assert load_config(data_dir=str(tmp_path), trusted_key_servers=(notary,)).trusted_key_servers == (notary,)


def _notary(**fields: Any) -> dict[str, Any]:
    return {"server_name": "notary.example.org", "verify_keys": {"ed25519:a": KEY}, **fields}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"server_name": "notary.example.org"}, "must be a list of tables"),
        ("notary.example.org", "must be a list of tables"),
        (["notary.example.org"], "must be a table"),
        ([_notary(keys={})], "unknown keys in a trusted key server: keys"),
        ([{"verify_keys": {"ed25519:a": KEY}}], "None is not a server name"),
        ([_notary(server_name="bad name")], "is not a server name"),
        ([_notary(server_name=8448)], "is not a server name"),
        ([_notary(verify_keys={})], "non-empty table"),
        ([_notary(verify_keys=[KEY])], "non-empty table"),
        ([_notary(verify_keys={"curve25519:a": KEY})], "not an ed25519 key ID"),
        ([_notary(verify_keys={"ed25519:": KEY})], "not an ed25519 key ID"),
        ([_notary(verify_keys={"ed25519:a-b": KEY})], "not an ed25519 key ID"),
        ([_notary(verify_keys={"ed25519:a": 5})], "must be an unpadded base64 string"),
        ([_notary(verify_keys={"ed25519:a": "not base64!"})], "is not an ed25519 public key"),
        ([_notary(verify_keys={"ed25519:a": KEY[:20]})], "is not an ed25519 public key"),
        ([_notary(accept_keys_insecurely="yes")], "must be true or false"),
        ([_notary(server_name="localhost:8008")], "must not list this server itself"),
        ([_notary(), _notary()], "more than once"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(data_dir=str(tmp_path), trusted_key_servers=value)
